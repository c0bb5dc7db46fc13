"""Reliability under load and over long runs: memory growth, threads, a long unbroken stream.

    .venv/bin/python bench/reliability_bench.py [--sequential 1000] [--threads 8]
        [--per-thread 50] [--stream-minutes 30] [--json out.json]

Three phases, each on a fresh Engine with the audio cache off (so every request runs the
model and memory figures show leaks, not the cache filling up to its cap):

- sequential: N short distinct requests one after another; resident memory after a warm-up
  of 20 requests, then after all N (the issue's bound: growth under 50 MB for 1,000).
- threads: T threads x R requests each at once on one engine; errors, and whether every
  stream came back in order with all its words.
- stream: one stream of a public-domain text (bench/pride_and_prejudice_ch1.txt, read again
  with a numbered heading until it is long enough) for the asked minutes of audio, checked
  by `check_stream` below, plus playback stalls: a player that starts at the first chunk and
  plays in real time would wait whenever a chunk arrives after the audio before it ran out.

`check_stream` is also what tests/test_reliability.py runs on its short versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import fan_out, progress

from kokoro_engine import SAMPLE_RATE, Chunk, Engine
from kokoro_engine._metrics import rss_mb
from kokoro_engine._normalize import normalize
from kokoro_engine._planner import PAUSES

TEXT_FILE = Path(__file__).with_name("pride_and_prejudice_ch1.txt")
# The model's speech is never exactly zero for more than a few samples; only the pause the
# engine appends after a piece is. So a gap is a run of exact zeros inside a piece's speech,
# or a trailing pause longer than the longest one planned (paragraph), beyond this slack.
FADE_SLACK = 16
# A piece with words must sound: its speech part above -40 dBFS RMS, and long enough for its
# words (people say at most ~6 words a second).
MIN_RMS = 0.01
MAX_WORDS_PER_S = 6.0


def short_text(n: int) -> str:
    """A distinct short request (its number makes every piece new to every cache)."""
    return f"Number {n}."


def long_text(minutes: float, words_per_minute: float = 150.0) -> str:
    """Whole paragraphs of the chapter, read again under a numbered heading after its end,
    until they hold about `minutes` of speech."""
    chapter = TEXT_FILE.read_text(encoding="utf-8").strip().split("\n\n")
    wanted = minutes * words_per_minute
    paragraphs: list[str] = []
    count, reading = 0, 1
    while count < wanted:
        for paragraph in [f"Reading {reading}.", *chapter]:
            paragraphs.append(paragraph)
            count += len(paragraph.split())
            if count >= wanted:
                break
        reading += 1
    return "\n\n".join(paragraphs)


def check_stream(
    text: str, chunks: list[Chunk], speed: float = 1.0, lang: str = "en-us"
) -> dict[str, Any]:
    """What went wrong in a finished stream: order, lost or repeated words, gaps, silent pieces.

    Every count is 0 (and in_order, words_match True) for a stream that is whole. Chunks
    carry the text as read (numbers spelled out), so words are compared after normalizing.
    """
    seqs = [c.seq for c in chunks]
    spoken = " ".join(c.text for c in chunks).split()
    longest_pause = round(max(PAUSES.values()) / speed * SAMPLE_RATE) + FADE_SLACK
    gaps = silent = repeated = 0
    longest_inner = 0
    for index, chunk in enumerate(chunks):
        speech = np.trim_zeros(chunk.samples, "b")  # what is left after the planned pause
        inner = _longest_zero_run(speech)
        longest_inner = max(longest_inner, inner)
        gaps += inner > FADE_SLACK or len(chunk.samples) - len(speech) > longest_pause
        if chunk.text.split() and not _sounds_like(speech, len(chunk.text.split())):
            silent += 1
        if index and np.array_equal(chunk.samples, chunks[index - 1].samples):
            repeated += 1
    return {
        "chunks": len(chunks),
        "in_order": seqs == list(range(len(chunks))),
        "words_match": spoken == normalize(text, lang).split(),
        "words": len(spoken),
        "gaps": gaps,
        "longest_inner_zero_run_s": round(longest_inner / SAMPLE_RATE, 4),
        "silent_pieces": silent,
        "repeated_pieces": repeated,
        "audio_s": round(sum(len(c.samples) for c in chunks) / SAMPLE_RATE, 2),
    }


def is_whole(report: dict[str, Any]) -> bool:
    return bool(
        report["in_order"]
        and report["words_match"]
        and not (report["gaps"] or report["silent_pieces"] or report["repeated_pieces"])
    )


def _longest_zero_run(samples: np.ndarray) -> int:
    zero = np.concatenate([[False], samples == 0.0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def _sounds_like(speech: np.ndarray, words: int) -> bool:
    if speech.size == 0:
        return False
    rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    return rms > MIN_RMS and speech.size / SAMPLE_RATE >= words / MAX_WORDS_PER_S


def playback_stalls(chunks: list[Chunk], arrivals: list[float]) -> dict[str, float]:
    """Stalls of a real-time player that starts when the first chunk arrives."""
    play_end = arrivals[0] if arrivals else 0.0
    stalls, stalled_s = 0, 0.0
    for chunk, arrived in zip(chunks, arrivals, strict=True):
        if arrived > play_end:
            stalls += chunk.seq > 0
            stalled_s += (arrived - play_end) if chunk.seq > 0 else 0.0
            play_end = arrived
        play_end += len(chunk.samples) / SAMPLE_RATE
    return {"stalls": stalls, "stalled_s": round(stalled_s, 3)}


# --- phases ------------------------------------------------------------------------------


def fresh_engine() -> Engine:
    return Engine(audio_cache_mb=0, background_warmup=False)


def sequential(engine: Engine, count: int, warmup: int = 20) -> dict[str, Any]:
    """`count` short requests one after another; memory after a warm-up and at the end."""
    for n in range(warmup):
        engine.synthesize(short_text(100_000 + n))
    before = rss_mb()
    start = time.perf_counter()
    errors, audio_s = 0, 0.0
    for n in range(count):
        try:
            audio_s += engine.synthesize(short_text(n)).duration_s
        except Exception:
            errors += 1
    after = rss_mb()
    return {
        "requests": count,
        "errors": errors,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_growth_mb": round(after - before, 1),
        "audio_s": round(audio_s, 1),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def threaded(engine: Engine, threads: int, per_thread: int) -> dict[str, Any]:
    """`threads` threads, each streaming `per_thread` distinct requests, all at once."""

    def request(t: int, r: int) -> dict[str, Any]:
        text = f"Thread {t} says line {r}. " + short_text(t * 1000 + r)
        return check_stream(text, list(engine.stream(text)))

    run = fan_out(request, threads, per_thread)
    reports = run.results
    return {
        "threads": threads,
        "requests": threads * per_thread,
        "errors": len(run.errors),
        "first_errors": run.errors[:3],
        "streams_whole": sum(is_whole(r) for r in reports),
        "streams_out_of_order": sum(not r["in_order"] for r in reports),
        "streams_missing_words": sum(not r["words_match"] for r in reports),
        "audio_s": round(sum(r["audio_s"] for r in reports), 1),
        "wall_s": round(run.wall_s, 1),
        "rss_after_mb": round(rss_mb(), 1),
    }


def long_stream(engine: Engine, minutes: float) -> dict[str, Any]:
    """One stream of `minutes` of audio, consumed as it comes; checked whole and for stalls."""
    text = long_text(minutes)
    chunks: list[Chunk] = []
    arrivals: list[float] = []
    before = rss_mb()
    peak = before
    start = time.perf_counter()
    for chunk in engine.stream(text):
        arrivals.append(time.perf_counter() - start)
        chunks.append(chunk)
        peak = max(peak, rss_mb())
    wall = time.perf_counter() - start
    report = check_stream(text, chunks)
    return {
        **report,
        "whole": is_whole(report),
        **playback_stalls(chunks, arrivals),
        "ttfa_s": round(arrivals[0], 3) if arrivals else None,
        "wall_s": round(wall, 1),
        "rtf": round(wall / report["audio_s"], 3) if report["audio_s"] else None,
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
    }


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=1000, help="requests in a row")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--per-thread", type=int, default=50)
    parser.add_argument("--stream-minutes", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {"machine": machine(), "args": vars(args) | {"json": None}}
    phases = [
        ("sequential", lambda e: sequential(e, args.sequential)),
        ("threads", lambda e: threaded(e, args.threads, args.per_thread)),
        ("stream", lambda e: long_stream(e, args.stream_minutes)),
    ]
    for name, phase in phases:
        progress(name)
        with fresh_engine() as engine:
            summary[name] = phase(engine)
        print(json.dumps({name: summary[name]}), file=sys.stderr, flush=True)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
