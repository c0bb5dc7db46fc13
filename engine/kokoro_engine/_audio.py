"""Audio results (Audio, Chunk) and the signal work that makes pieces join without a seam."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import InputError
from ._metrics import PieceMetrics, RequestMetrics
from ._types import SAMPLE_RATE, FloatArray, PathLikeStr

_FRAME = 240  # 10 ms: the resolution of silence trimming
_MARGIN = int(0.05 * SAMPLE_RATE)  # kept around speech so soft onsets and endings survive
_FADE = int(0.004 * SAMPLE_RATE)  # a few ms of fade: a cut at non-zero amplitude clicks
_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


def trim_silence(samples: FloatArray, threshold_db: float = -42.0) -> FloatArray:
    """Drop the model's leading and trailing near-silence (pad tokens), keeping a margin."""
    frames = len(samples) // _FRAME
    if frames == 0:
        return samples
    rms = np.sqrt(np.mean(samples[: frames * _FRAME].reshape(frames, _FRAME) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / (rms.max() + 1e-12)) > threshold_db)
    if loud.size == 0:
        return samples[:0]
    start = max(loud[0] * _FRAME - _MARGIN, 0)
    end = min((loud[-1] + 1) * _FRAME + _MARGIN, len(samples))
    return samples[start:end]


def fade(samples: FloatArray) -> FloatArray:
    """Fade both ends in place-free fashion so joins never click."""
    out = samples.astype(np.float32, copy=True)
    n = min(_FADE, len(out) // 2)
    if n:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def pcm16(samples: FloatArray) -> bytes:
    """Float samples in [-1, 1] as little-endian 16-bit PCM, clipped and rounded: the one
    conversion every player, file and wire format uses."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return np.round(clipped * 32767.0).astype("<i2").tobytes()


def check_format(path: PathLikeStr) -> tuple[str, str]:
    """The (format, subtype) for a file name, or InputError naming the suffixes that work."""
    kind = _FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise InputError(f"cannot save {Path(path).name!r}: use a .wav, .flac or .ogg file name")
    return kind


def save(samples: FloatArray, path: PathLikeStr, sample_rate: int = SAMPLE_RATE) -> Path:
    import soundfile

    target = Path(path)
    kind = check_format(target)
    soundfile.write(str(target), samples, sample_rate, format=kind[0], subtype=kind[1])
    return target


@dataclass
class Chunk:
    """One piece of a stream: its audio (pause included), its text and its timings."""

    seq: int
    samples: FloatArray
    text: str
    sample_rate: int
    metrics: PieceMetrics

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class Audio:
    """A finished clip: 1-D float32 samples at 24 kHz and the metrics of making it."""

    samples: FloatArray
    sample_rate: int
    metrics: RequestMetrics
    text: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def save(self, path: PathLikeStr) -> Path:
        """Write the clip; the format (wav, flac, ogg) comes from the file name's suffix."""
        return save(self.samples, path, self.sample_rate)

    def pcm16(self) -> bytes:
        return pcm16(self.samples)

    def __repr__(self) -> str:
        return f"Audio({self.duration_s:.2f} s at {self.sample_rate} Hz, {self.metrics.get('provider', '?')})"
