"""Where a request's time went: per-piece tables and a synthesis-versus-playback timeline.

``ProfileView`` renders the engine's metrics dicts as HTML (a table and an SVG timeline,
every user string escaped) and as plain text for terminals. The timeline shows each
piece's queue wait and inference against when its audio plays; the gap between a piece
being ready and being needed is the buffer's lead, and a piece ready too late stalls
playback.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PREROLL_S = 0.03  # player.js's START_LEAD_S: its least wait from first chunk to first sound

PIECE_COLUMNS = (
    ("seq", "seq"),
    ("text", "text"),
    ("n_ids", "ids"),
    ("provider", "provider"),
    ("queue_wait_s", "queue s"),
    ("inference_s", "infer s"),
    ("audio_s", "audio s"),
    ("rtf", "RTF"),
    ("cached", "cache"),
    ("lead_s", "lead s"),
)
REQUEST_COLUMNS = (
    ("voice", "voice"),
    ("chars", "chars"),
    ("pieces", "pieces"),
    ("ttfa_s", "first audio s"),
    ("total_s", "total s"),
    ("audio_s", "audio s"),
    ("rtf", "RTF"),
    ("provider", "provider"),
    ("cached", "cached"),
)


@dataclass(frozen=True)
class Span:
    """One piece on the timeline, in seconds since the request started."""

    seq: int
    text: str
    queued_at: float
    infer_at: float
    ready_at: float
    play_at: float
    play_end: float
    lead_s: float  # ready this long before playback needed it (negative: it was late)
    stall_s: float  # playback waited this long for it


def timeline(pieces: Sequence[Mapping[str, Any]], preroll_s: float = PREROLL_S) -> list[Span]:
    """Lay pieces out as the player plays them: back to back, never before they are ready."""
    spans: list[Span] = []
    due: float | None = None
    for piece in sorted(pieces, key=lambda p: int(p.get("seq", 0))):
        ready = float(piece.get("end_s") or 0.0)
        started = float(piece.get("start_s") or 0.0)
        infer_at = min(started + float(piece.get("queue_wait_s") or 0.0), ready)
        if due is None:
            due = ready + preroll_s
        play_at = max(due, ready)
        end = play_at + float(piece.get("audio_s") or 0.0)
        spans.append(
            Span(
                int(piece.get("seq", 0)),
                str(piece.get("text", "")),
                started,
                infer_at,
                ready,
                play_at,
                end,
                due - ready,
                play_at - due,
            )
        )
        due = end
    return spans


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def _piece_rows(pieces: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    leads = {span.seq: round(span.lead_s, 3) for span in timeline(pieces)}
    rows = []
    for piece in sorted(pieces, key=lambda p: int(p.get("seq", 0))):
        row = {key: piece.get(key) for key, _ in PIECE_COLUMNS}
        row["lead_s"] = leads.get(int(piece.get("seq", 0)))
        rows.append(row)
    return rows


def _request_row(metrics: Mapping[str, Any]) -> dict[str, Any]:
    row = {key: metrics.get(key) for key, _ in REQUEST_COLUMNS}
    row["pieces"] = len(metrics.get("pieces") or [])
    return row


class ProfileView:
    """Tables and a timeline for one request's metrics, or for a list of recent requests.

    >>> ProfileView(speech.metrics)          # one request: piece table + timeline
    >>> ProfileView(engine.recent.rows)      # many: one row each, then the last in detail
    """

    def __init__(
        self, requests: Mapping[str, Any] | Sequence[Mapping[str, Any]], title: str = ""
    ) -> None:
        self.requests = [requests] if isinstance(requests, Mapping) else list(requests)
        self.title = title

    @property
    def detail(self) -> Mapping[str, Any] | None:
        """The request shown piece by piece: the last one that has pieces."""
        for metrics in reversed(self.requests):
            if metrics.get("pieces"):
                return metrics
        return None

    # --- HTML --------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        parts = ['<div class="kokoro-profile" style="font-size:12px;max-width:900px">']
        if self.title:
            parts.append(f"<b>{html.escape(self.title)}</b>")
        if not self.requests:
            parts.append("<p>No requests yet: speak something first.</p></div>")
            return "".join(parts)
        if len(self.requests) > 1:
            parts.append(_html_table(REQUEST_COLUMNS, [_request_row(m) for m in self.requests]))
        detail = self.detail
        if detail is not None:
            parts.append(f"<p>{html.escape(_headline(detail))}</p>")
            parts.append(_html_table(PIECE_COLUMNS, _piece_rows(detail["pieces"])))
            parts.append(timeline_svg(timeline(detail["pieces"])))
        parts.append("</div>")
        return "".join(parts)

    # --- text --------------------------------------------------------------------------

    def __repr__(self) -> str:
        lines = [self.title] if self.title else []
        if not self.requests:
            return "\n".join([*lines, "No requests yet: speak something first."])
        if len(self.requests) > 1:
            lines += _text_table(REQUEST_COLUMNS, [_request_row(m) for m in self.requests])
            lines.append("")
        detail = self.detail
        if detail is not None:
            lines.append(_headline(detail))
            lines += _text_table(PIECE_COLUMNS, _piece_rows(detail["pieces"]))
            lines.append("")
            lines += timeline_text(timeline(detail["pieces"]))
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _headline(metrics: Mapping[str, Any]) -> str:
    pieces = metrics.get("pieces") or []
    bits = [
        f"{metrics.get('voice', '?')} ×{metrics.get('speed', 1.0)}",
        f"{len(pieces)} pieces",
        f"first audio {_fmt(metrics.get('ttfa_s'))} s",
        f"{_fmt(metrics.get('audio_s'))} s of audio in {_fmt(metrics.get('total_s'))} s",
        f"RTF {_fmt(metrics.get('rtf'))}",
        str(metrics.get("provider") or ""),
    ]
    if metrics.get("complete") is False:
        bits.append("stopped early")
    stalls = [s for s in timeline(pieces) if s.stall_s > 1e-6]
    if stalls:
        bits.append(f"playback stalled {len(stalls)}× ({sum(s.stall_s for s in stalls):.2f} s)")
    return " · ".join(b for b in bits if b)


def _html_table(columns: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = _fmt(row.get(key))
            style = (
                ' style="text-align:left;max-width:28em;overflow:hidden"' if key == "text" else ""
            )
            cells.append(f"<td{style}>{html.escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="kokoro-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _text_table(columns: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cells = [[label for _, label in columns]]
    for row in rows:
        line = []
        for key, _ in columns:
            value = _fmt(row.get(key))
            line.append(value if len(value) <= 32 else value[:31] + "…")
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return [
        "  ".join(
            c.ljust(w) if i == 1 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]


# --- the timeline ------------------------------------------------------------------------

_COLORS = {"queue": "#b0bec5", "infer": "#1e88e5", "play": "#43a047", "stall": "#e53935"}


def _nice_step(span: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if span / step <= 10:
            return step
    return 1200.0


def timeline_svg(spans: Sequence[Span], width: int = 760) -> str:
    """An inline SVG: per piece, synthesis (queue wait, inference) above playback."""
    if not spans:
        return ""
    left, right, top, row = 44, 12, 30, 22
    end = max(max(s.play_end for s in spans), max(s.ready_at for s in spans), 0.001)
    scale = (width - left - right) / end
    height = top + row * len(spans) + 8

    def x(t: float) -> float:
        return round(left + t * scale, 2)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="synthesis and playback timeline" '
        'style="font:11px sans-serif;fill:currentColor">'
    ]
    legend = (
        ("queue", "queue wait"),
        ("infer", "inference"),
        ("play", "playback"),
        ("stall", "stall"),
    )
    for i, (key, label) in enumerate(legend):
        parts.append(
            f'<rect x="{left + i * 110}" y="4" width="10" height="10" fill="{_COLORS[key]}"/>'
        )
        parts.append(f'<text x="{left + i * 110 + 14}" y="13">{label}</text>')
    step = _nice_step(end)
    tick = 0.0
    while tick <= end + 1e-9:
        parts.append(
            f'<line x1="{x(tick)}" x2="{x(tick)}" y1="{top - 6}" y2="{height - 4}" stroke="currentColor" stroke-opacity=".15"/>'
        )
        parts.append(
            f'<text x="{x(tick)}" y="{top - 8}" text-anchor="middle" fill-opacity=".7">{tick:g}s</text>'
        )
        tick += step
    for i, span in enumerate(spans):
        y = top + i * row
        tip = html.escape(
            f"#{span.seq}: {span.text}\nready at {span.ready_at:.2f} s, plays at {span.play_at:.2f} s, lead {span.lead_s:.2f} s"
        )
        parts.append(f"<g><title>{tip}</title>")
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">#{span.seq}</text>')
        bars = (
            ("queue", span.queued_at, span.infer_at, y + 2),
            ("infer", span.infer_at, span.ready_at, y + 2),
            ("stall", span.play_at - span.stall_s, span.play_at, y + 11),
            ("play", span.play_at, span.play_end, y + 11),
        )
        for key, start, stop, top_y in bars:
            if stop - start > 1e-6:
                parts.append(
                    f'<rect x="{x(start)}" y="{top_y}" width="{max(x(stop) - x(start), 0.5)}" height="7" rx="1.5" fill="{_COLORS[key]}"/>'
                )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def timeline_text(spans: Sequence[Span], width: int = 60) -> list[str]:
    """The same timeline in characters: '.' queue wait, '#' inference, '=' playback, '!' stall."""
    if not spans:
        return []
    end = max(max(s.play_end for s in spans), 0.001)

    def col(t: float) -> int:
        return min(width - 1, int(t / end * width))

    lines = [f"timeline 0 … {end:.2f} s   . queue  # inference  = playback  ! stall"]
    for span in spans:
        synth = [" "] * width
        play = [" "] * width
        for start, stop, mark, line in (
            (span.queued_at, span.infer_at, ".", synth),
            (span.infer_at, span.ready_at, "#", synth),
            (span.play_at - span.stall_s, span.play_at, "!", play),
            (span.play_at, span.play_end, "=", play),
        ):
            if stop - start > 1e-6:
                for c in range(col(start), col(stop) + 1):
                    line[c] = mark
        lines.append(f"#{span.seq:<3} synth |{''.join(synth)}|")
        lines.append(f"     play  |{''.join(play)}|")
    return lines
