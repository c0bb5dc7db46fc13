"""Request metrics: what one request cost, and a ring buffer of recent requests with percentiles."""

from __future__ import annotations

import html
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np


class _Timing(TypedDict):
    queue_wait_s: float
    inference_s: float
    provider: str  # the lane's provider, "cache" for a cached piece, "none" for no ids
    post_s: float


class PieceTiming(_Timing, total=False):
    """Where a piece's audio came from and how long it took; lane keys when a lane ran it."""

    lane: str
    fallback_from: str  # the lane that failed first, when another lane took over
    error: str


class _PieceBase(_Timing):
    seq: int
    text: str
    n_ids: int
    audio_s: float
    cached: bool
    start_s: float  # since the request started
    end_s: float
    rtf: float | None


class PieceMetrics(_PieceBase, total=False):
    """What one piece cost: its timing (PieceTiming) with its text, size and place in time."""

    lane: str
    fallback_from: str
    error: str


class StageMetrics(TypedDict, total=False):
    """Seconds spent per stage over a request; the last three come with its totals."""

    normalize_s: float
    phonemize_s: float
    queue_wait_s: float
    inference_s: float
    post_s: float


class _RequestBase(TypedDict):
    voice: str
    speed: float
    lang: str
    chars: int
    ttfa_s: float | None
    stages: StageMetrics
    pieces: list[PieceMetrics]


class RequestMetrics(_RequestBase, total=False):
    """What one request cost: its arguments from the start, its totals once it ends."""

    audio_s: float
    total_s: float
    rtf: float | None
    provider: str | None
    cached: bool
    fallbacks: int
    rss_mb: float
    complete: bool  # False when it was cancelled or the engine closed under it


COLUMNS = (
    "voice",
    "chars",
    "pieces",
    "ttfa_s",
    "total_s",
    "audio_s",
    "rtf",
    "provider",
    "cached",
    "rss_mb",
)
PERCENTILES = (50, 90, 99)


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def finish(metrics: RequestMetrics) -> RequestMetrics:
    """Fill in the totals of a request once its last piece is done."""
    pieces = metrics["pieces"]
    audio_s = sum(p["audio_s"] for p in pieces)
    # A piece ends in its worker a moment before the consumer receives it: the request is
    # not done before its first audio was delivered.
    total_s = max((p["end_s"] for p in pieces), default=0.0)
    total_s = max(total_s, metrics.get("ttfa_s") or 0.0)
    providers = sorted({p["provider"] for p in pieces})
    metrics["audio_s"] = round(audio_s, 4)
    metrics["total_s"] = round(total_s, 4)
    metrics["rtf"] = round(total_s / audio_s, 4) if audio_s else None
    metrics["provider"] = ",".join(providers) or None
    metrics["cached"] = bool(pieces) and all(p["cached"] for p in pieces)
    metrics["fallbacks"] = sum(1 for p in pieces if p.get("fallback_from"))
    metrics["rss_mb"] = round(rss_mb(), 1)
    stages = metrics["stages"]
    stages["queue_wait_s"] = round(sum(p["queue_wait_s"] for p in pieces), 4)
    stages["inference_s"] = round(sum(p["inference_s"] for p in pieces), 4)
    stages["post_s"] = round(sum(p.get("post_s", 0.0) for p in pieces), 4)
    return metrics


class RequestLog:
    """The last `size` requests' metrics; a table in notebooks (`_repr_html_`) and pandas."""

    def __init__(self, size: int = 256) -> None:
        self._rows: deque[RequestMetrics] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, metrics: RequestMetrics) -> None:
        with self._lock:
            self._rows.append(metrics)

    @property
    def rows(self) -> list[RequestMetrics]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def summary(self, *, include_cached: bool = False) -> dict[str, dict[str, float]]:
        """Percentiles of time to first audio, total time and RTF over synthesized requests."""
        # Read as plain mappings: the keys below are chosen at run time.
        rows: list[Mapping[str, Any]] = [
            r for r in self.rows if include_cached or not r.get("cached")
        ]
        out: dict[str, dict[str, float]] = {}
        for key in ("ttfa_s", "total_s", "rtf"):
            values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
            if values.size:
                out[key] = {f"p{q}": round(float(np.percentile(values, q)), 4) for q in PERCENTILES}
                out[key]["mean"] = round(float(values.mean()), 4)
        out["count"] = {"requests": float(len(rows))}
        return out

    def table(self) -> list[dict[str, Any]]:
        rows: Sequence[Mapping[str, Any]] = self.rows
        return [
            {c: (len(r["pieces"]) if c == "pieces" else r.get(c)) for c in COLUMNS} for r in rows
        ]

    def to_pandas(self) -> Any:
        """A DataFrame of recent requests (needs pandas, an optional dependency)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("RequestLog.to_pandas() needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.table(), columns=list(COLUMNS))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row.values()) + "</tr>"
            for row in self.table()
        )
        stats = self.summary()
        foot = " · ".join(
            f"{html.escape(k)} p50 {v['p50']:.3f} p90 {v['p90']:.3f}"
            for k, v in stats.items()
            if "p50" in v
        )
        return (
            f"<table class='kokoro-requests'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p>{len(self)} requests. {foot}</p>"
        )

    def __repr__(self) -> str:
        lines = ["  ".join(f"{c:>9}" for c in COLUMNS)]
        lines += ["  ".join(f"{_fmt(v)[:9]:>9}" for v in row.values()) for row in self.table()]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
