"""What a listener hears of a stream: a gapless player's schedule from chunk arrivals, and the silences where it ran dry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

# A player holds this much audio before it starts (kokoro_nb's player.js floor: it may
# hold more when it predicts a shortfall; this is the strictest case).
PREROLL_S = 0.1
# Silences shorter than this are scheduling jitter, not an audible stall.
AUDIBLE_GAP_S = 0.02


@dataclass(frozen=True)
class Playback:
    """When the first sound starts and where playback stalled (seconds from the request)."""

    first_sound_s: float
    end_s: float
    gaps: tuple[tuple[float, float], ...]  # (when, how long) for each stall

    @property
    def underruns(self) -> int:
        return len(self.gaps)

    @property
    def underrun_s(self) -> float:
        return sum(length for _, length in self.gaps)


def play(arrivals: Sequence[tuple[float, float]], preroll_s: float = PREROLL_S) -> Playback:
    """Schedule chunks back to back as they arrive: `arrivals` holds each chunk's (ready
    time, duration) in order; a chunk that is not ready when the one before ends is a stall."""
    if not arrivals:
        return Playback(0.0, 0.0, ())
    held = accumulate(duration for _, duration in arrivals)
    # It starts once `preroll_s` of audio is in hand (or all of it, if less).
    start = next((i for i, total in enumerate(held) if total >= preroll_s), len(arrivals) - 1)
    first = clock = max(arrivals[start][0], arrivals[0][0])
    gaps: list[tuple[float, float]] = []
    for ready, duration in arrivals:
        if ready > clock + AUDIBLE_GAP_S:
            gaps.append((round(clock, 3), round(ready - clock, 3)))
        clock = max(clock, ready) + duration
    return Playback(round(first, 4), round(clock, 4), tuple(gaps))
