"""Checks that audio is plausible speech: finite, audible, voiced, and as long as its words."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 24_000


def assert_speech(samples: np.ndarray, text: str, *, sample_rate: int = SAMPLE_RATE) -> None:
    """Audio a listener would accept as `text` spoken at a normal rate."""
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert sample_rate == SAMPLE_RATE
    assert np.isfinite(samples).all()
    assert np.abs(samples).max() <= 1.5
    seconds = len(samples) / sample_rate
    words = max(len(text.split()), 1)
    # People speak 1.5–5 words a second; pauses between sentences lengthen the low end.
    assert words / 5.0 - 0.3 <= seconds <= words / 1.2 + 1.5, (seconds, words)
    frames = samples[: len(samples) // 960 * 960].reshape(-1, 960)  # 40 ms
    loud = np.sqrt((frames**2).mean(axis=1)) > 0.01
    assert loud.mean() > 0.3, "mostly silent"
    assert _voiced_fraction(frames[loud]) > 0.3, "no voiced (periodic) frames: not speech"


def _voiced_fraction(frames: np.ndarray) -> float:
    """Share of frames with a clear pitch period between 70 and 400 Hz (autocorrelation)."""
    voiced = 0
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 70
    for frame in frames:
        frame = frame - frame.mean()
        n = len(frame)
        corr = np.correlate(frame, frame, "full")[n - 1 :] / np.arange(n, 0, -1)  # unbiased
        if corr[0] <= 0:
            continue
        voiced += corr[lo:hi].max() / corr[0] > 0.5
    return voiced / max(len(frames), 1)


def spectral_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of the two clips' average log spectra (1.0 = same sound)."""

    def profile(x: np.ndarray) -> np.ndarray:
        frames = x[: len(x) // 512 * 512].reshape(-1, 512) * np.hanning(512)
        return np.log(np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0) + 1e-6)

    pa, pb = profile(a), profile(b)
    pa, pb = pa - pa.mean(), pb - pb.mean()
    return float(pa @ pb / (np.linalg.norm(pa) * np.linalg.norm(pb)))
