"""kokoro-onnx 0.6.1 on the same model file and voice: the peer every benchmark compares with."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _assets as assets

SHORT = "Hello there, this is a short sentence."  # what every warm-up says


def available() -> bool:
    """Whether kokoro-onnx is installed (a development dependency, not the engine's)."""
    try:
        import kokoro_onnx  # noqa: F401
    except ImportError:
        return False
    return True


def voices_npz(voice: str, folder: Path) -> Path:
    """kokoro-onnx reads voices from one .npz; build it from our voice files."""
    table = np.fromfile(assets.voice_path(voice, assets.voices_dir()), dtype="<f4")
    path = folder / "voices.npz"
    arrays: dict[str, Any] = {voice: table.reshape(510, 1, 256)}
    np.savez(path, **arrays)
    return path


class Baseline:
    """kokoro-onnx 0.6.1 on the same model file and voice."""

    def __init__(self, model: Path, npz: Path, voice: str) -> None:
        from kokoro_onnx import Kokoro

        start = time.perf_counter()
        self.kokoro = Kokoro(str(model), str(npz))
        self.load_s = time.perf_counter() - start
        self.voice = voice
        self.kokoro.create(SHORT, voice=voice, lang="en-us")  # warm, as we warm ours

    def once(self, text: str) -> dict[str, float]:
        import asyncio

        start = time.perf_counter()
        samples, rate = self.kokoro.create(text, voice=self.voice, lang="en-us")
        total = time.perf_counter() - start
        audio = len(samples) / rate
        return {
            "ttfa_s": asyncio.run(self._first_chunk(text)),
            "total_s": total,
            "audio_s": audio,
            "rtf": total / audio,
        }

    async def _first_chunk(self, text: str) -> float:
        begin = time.perf_counter()
        async for _ in self.kokoro.create_stream(text, voice=self.voice, lang="en-us"):
            return time.perf_counter() - begin
        return float("nan")
