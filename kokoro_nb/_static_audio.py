"""A finished clip as a static <audio> element (16-bit mono WAV data URI) that every frontend plays.

The player widget needs a live kernel; this element does not, so a saved notebook still
speaks in nbviewer, GitHub, VS Code or a reopened JupyterLab. Length is capped (and the
rate may be lowered) so notebooks stay small.
"""

from __future__ import annotations

import base64
import html
import io
import wave
from dataclasses import dataclass

import numpy as np

from kokoro_engine import SAMPLE_RATE, pcm16

DEFAULT_MAX_S = 60.0


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A complete 16-bit mono PCM WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(rate))
        out.writeframes(pcm16(samples))
    return buffer.getvalue()


def resample(samples: np.ndarray, source: int, target: int) -> np.ndarray:
    """Change the sample rate; lowering it low-passes first so high sounds do not alias."""
    samples = np.asarray(samples, dtype=np.float32)
    if source == target or samples.size == 0:
        return samples
    if target < source:
        samples = _lowpass(samples, 0.45 * target / source)
    n_out = round(samples.size * target / source)
    positions = np.arange(n_out, dtype=np.float64) * (source / target)
    resampled: np.ndarray = np.interp(positions, np.arange(samples.size), samples)
    return resampled.astype(np.float32)


def _lowpass(samples: np.ndarray, cutoff: float, taps: int = 63) -> np.ndarray:
    """Windowed-sinc FIR; `cutoff` is a fraction of the sample rate (0 < cutoff < 0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
    kernel /= kernel.sum()
    return np.convolve(samples, kernel, mode="same").astype(np.float32)


@dataclass
class StaticAudio:
    """The clip, ready to embed: ``_repr_html_`` gives the <audio> element and a caption."""

    samples: np.ndarray
    rate: int = SAMPLE_RATE
    max_s: float = DEFAULT_MAX_S
    target_rate: int | None = None
    caption: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    @property
    def truncated(self) -> bool:
        return self.max_s > 0 and self.duration_s > self.max_s

    def embedded(self) -> tuple[np.ndarray, int]:
        """The samples and rate that go into the element (capped, maybe resampled)."""
        samples = self.samples
        if self.truncated:
            samples = _fade_out(samples[: int(self.max_s * self.rate)], self.rate)
        rate = self.target_rate or self.rate
        return resample(samples, self.rate, rate), rate

    def data_uri(self) -> str:
        samples, rate = self.embedded()
        return "data:audio/wav;base64," + base64.b64encode(wav_bytes(samples, rate)).decode("ascii")

    def note(self) -> str:
        """What the reader should know: length, and whether the element holds all of it."""
        if self.truncated:
            return (
                f"first {self.max_s:g} s of {self.duration_s:.1f} s "
                "(raise SpeakMagics.static_max_s to keep more)"
            )
        return f"{self.duration_s:.1f} s"

    def _repr_html_(self) -> str:
        caption = " · ".join(x for x in (self.caption, self.note()) if x)
        return (
            '<div class="kokoro-static" style="display:flex;align-items:center;gap:.6em;'
            'font-size:12px;opacity:.9">'
            f'<audio controls src="{self.data_uri()}"></audio>'
            f"<span>{html.escape(caption)}</span></div>"
        )

    def __repr__(self) -> str:
        caption = " · ".join(x for x in (self.caption, self.note()) if x)
        return f"<audio clip: {caption}>"

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def _fade_out(samples: np.ndarray, rate: int, seconds: float = 0.05) -> np.ndarray:
    """A cut in the middle of a word clicks; a short fade does not."""
    n = min(len(samples), int(seconds * rate))
    out = samples.astype(np.float32, copy=True)
    if n:
        out[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return out
