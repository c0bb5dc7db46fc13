"""Request metrics: what one request cost, and a ring buffer of recent requests with percentiles."""

from __future__ import annotations

import html
import threading
from collections import deque
from typing import Any

import numpy as np

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

    return psutil.Process().memory_info().rss / 2**20


def finish(metrics: dict[str, Any]) -> dict[str, Any]:
    """Fill in the totals of a request once its last piece is done."""
    pieces = metrics["pieces"]
    audio_s = sum(p["audio_s"] for p in pieces)
    total_s = max((p["end_s"] for p in pieces), default=0.0)
    providers = sorted({p["provider"] for p in pieces})
    metrics.update(
        audio_s=round(audio_s, 4),
        total_s=round(total_s, 4),
        rtf=round(total_s / audio_s, 4) if audio_s else None,
        provider=",".join(providers) or None,
        cached=bool(pieces) and all(p["cached"] for p in pieces),
        fallbacks=sum(1 for p in pieces if p.get("fallback_from")),
        rss_mb=round(rss_mb(), 1),
    )
    stages = metrics["stages"]
    stages["queue_wait_s"] = round(sum(p["queue_wait_s"] for p in pieces), 4)
    stages["inference_s"] = round(sum(p["inference_s"] for p in pieces), 4)
    stages["post_s"] = round(sum(p.get("post_s", 0.0) for p in pieces), 4)
    return metrics


class RequestLog:
    """The last `size` requests' metrics; a table in notebooks (`_repr_html_`) and pandas."""

    def __init__(self, size: int = 256) -> None:
        self._rows: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, metrics: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(metrics)

    @property
    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def summary(self, *, include_cached: bool = False) -> dict[str, dict[str, float]]:
        """Percentiles of time to first audio, total time and RTF over synthesized requests."""
        rows = [r for r in self.rows if include_cached or not r.get("cached")]
        out: dict[str, dict[str, float]] = {}
        for key in ("ttfa_s", "total_s", "rtf"):
            values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
            if values.size:
                out[key] = {f"p{q}": round(float(np.percentile(values, q)), 4) for q in PERCENTILES}
                out[key]["mean"] = round(float(values.mean()), 4)
        out["count"] = {"requests": float(len(rows))}
        return out

    def table(self) -> list[dict[str, Any]]:
        return [
            {c: (len(r["pieces"]) if c == "pieces" else r.get(c)) for c in COLUMNS}
            for r in self.rows
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
