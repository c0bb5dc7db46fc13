"""Voices: loading style tables, weighted blends ("af_heart:0.7,am_adam:0.3"), style rows."""

from __future__ import annotations

import difflib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from . import _assets as assets
from ._errors import VoiceError
from ._manifest import STYLE_DIM, VOICE_ROWS, VOICE_SHA256
from ._phonemize import voice_language
from ._types import FloatArray


def parse_voice(spec: str) -> list[tuple[str, float]]:
    """Voice names and weights (normalized to sum 1) from "name" or "a:0.7,b:0.3"."""
    if not isinstance(spec, str) or not spec.strip():
        raise VoiceError(
            "no voice given; pass a name like 'af_heart' or a blend 'af_heart:0.7,am_adam:0.3'"
        )
    parts = [p.strip() for p in spec.split(",")]
    pairs = [_weighted(part, spec) for part in parts]
    total = sum(w for _, w in pairs)
    if total <= 0:
        raise VoiceError(
            f"voice blend {spec!r} has weights that add up to {total:g}; use positive weights"
        )
    merged: dict[str, float] = {}
    for name, weight in pairs:
        merged[name] = merged.get(name, 0.0) + weight / total
    return list(merged.items())


def _weighted(part: str, spec: str) -> tuple[str, float]:
    name, sep, weight_text = part.partition(":")
    name = name.strip()
    if not name:
        raise VoiceError(f"voice blend {spec!r} has an empty voice name; write 'a:0.7,b:0.3'")
    if not sep:
        return name, 1.0
    try:
        weight = float(weight_text)
    except ValueError:
        raise VoiceError(
            f"voice blend {spec!r}: weight {weight_text.strip()!r} is not a number"
        ) from None
    if not math.isfinite(weight) or weight < 0:
        raise VoiceError(
            f"voice blend {spec!r}: weight {weight_text.strip()} must be a finite number ≥ 0"
        )
    return name, weight


class VoiceBank:
    """Loads voices on first use (fetching them if needed) and caches tables and blends."""

    def __init__(self, folder: Path, *, fetch: bool = True, max_blends: int = 64) -> None:
        self.folder = folder
        self.fetch = fetch
        self._tables: dict[str, FloatArray] = {}
        self._blends: OrderedDict[str, FloatArray] = OrderedDict()
        self._max_blends = max_blends
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        own = {p.stem for p in self.folder.glob("*.bin")} if self.folder.is_dir() else set()
        return sorted(own | set(VOICE_SHA256))

    def table(self, spec: str) -> FloatArray:
        """The [510, 256] style table for a voice or blend."""
        key = spec.replace(" ", "")
        with self._lock:
            if key in self._blends:
                self._blends.move_to_end(key)
                return self._blends[key]
        pairs = parse_voice(spec)
        table = sum(
            (w * self._load(name) for name, w in pairs),
            np.zeros((VOICE_ROWS, STYLE_DIM), np.float32),
        )
        table = np.asarray(table, dtype=np.float32)
        with self._lock:
            self._blends[key] = table
            while len(self._blends) > self._max_blends:
                self._blends.popitem(last=False)
        return table

    def style(self, spec: str, n_ids: int) -> FloatArray:
        """The style row for an utterance of `n_ids` phoneme ids: row n-1 (docs/architecture.md)."""
        row = min(max(n_ids - 1, 0), VOICE_ROWS - 1)
        return self.table(spec)[row : row + 1]

    def _load(self, name: str) -> FloatArray:
        with self._lock:
            if name in self._tables:
                return self._tables[name]
        if name not in self.names:
            raise VoiceError(_unknown_message(name, self.names))
        path = assets.voice_path(name, self.folder, fetch=self.fetch)
        data = np.fromfile(path, dtype="<f4")
        if data.size != VOICE_ROWS * STYLE_DIM or not np.isfinite(data).all():
            raise VoiceError(f"voice file {path} is not a [510, 1, 256] float32 table")
        table = data.reshape(VOICE_ROWS, STYLE_DIM).astype(np.float32)
        with self._lock:
            self._tables[name] = table
        return table

    def cache_info(self) -> dict[str, int]:
        return {"voices": len(self._tables), "blends": len(self._blends)}

    def clear(self) -> None:
        with self._lock:
            self._blends.clear()


def _unknown_message(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"unknown voice {name!r}; {hint}`kokoro-nb voices` lists all {len(names)}"


def voice_gender(name: str) -> str | None:
    """'female' or 'male' from a voice name's second letter (af_heart, am_adam); None if neither."""
    return {"f": "female", "m": "male"}.get(name.strip()[1:2].lower())


def voices_by_language(voices: Iterable[str]) -> dict[str, list[str]]:
    """Voices grouped by the language they were made for (a code like "en-gb"), in the
    order the languages first appear in `voices`."""
    groups: dict[str, list[str]] = {}
    for voice in voices:
        groups.setdefault(voice_language(voice), []).append(voice)
    return groups
