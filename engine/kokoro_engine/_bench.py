"""`kokoro-nb bench`: this engine and kokoro-onnx on the same paragraph, side by side in one run.

Reports time to first audio, real-time factor and cold start (a new process to its first
audio of a short sentence) for both, their ratios; continuity (where a gapless player fed by
the stream would stall, for the paragraph and a three-minute text, while the engine still
warms and once it is warm); and sweeps of first-piece size, concurrency and model variant.
The audio cache is off, so nothing counted is a cache hit.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import _assets as assets
from ._baseline import SHORT, Baseline, available, voices_npz
from ._engine import Engine
from ._errors import KokoroError
from ._playback import play
from ._pool import CPU
from ._quality import harvard_sentences
from ._types import SAMPLE_RATE, FloatArray
from ._variants import VARIANTS, passes, similarity

REPEATS = 3

_COLD_OURS = """
import sys
from kokoro_engine import Engine
stream = Engine().stream(sys.argv[1], voice=sys.argv[2])
next(stream)
print("FIRST", flush=True)
"""
_COLD_BASELINE = """
import asyncio, sys
from kokoro_onnx import Kokoro
async def main():
    kokoro = Kokoro(sys.argv[3], sys.argv[4])
    async for _ in kokoro.create_stream(sys.argv[1], voice=sys.argv[2], lang="en-us"):
        print("FIRST", flush=True)
        return
asyncio.run(main())
"""


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
    }


def cold_start(script: str, *args: str) -> float:
    """Seconds from spawning a new Python process to the line it prints at its first audio."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("FIRST"):
                took = time.perf_counter() - start
                proc.kill()
                return took
    raise RuntimeError(f"cold-start process exited with {proc.returncode} before any audio")


def ours_once(engine: Engine, text: str, voice: str) -> dict[str, float]:
    start = time.perf_counter()
    arrivals = [
        (time.perf_counter() - start, len(chunk.samples) / SAMPLE_RATE)
        for chunk in engine.stream(text, voice=voice)
    ]
    total = time.perf_counter() - start
    audio = sum(duration for _, duration in arrivals)
    playback = play(arrivals)
    return {
        "ttfa_s": arrivals[0][0] if arrivals else total,
        "total_s": total,
        "audio_s": audio,
        "rtf": total / audio,
        "underruns": playback.underruns,
        "underrun_s": round(playback.underrun_s, 3),
    }


def long_text() -> str:
    """About three minutes of speech: the Harvard sentences, five to a paragraph."""
    sentences = harvard_sentences()
    return "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5))


def continuity(text: str, voice: str) -> list[dict[str, Any]]:
    """Where a player would stall: the paragraph the moment the engine exists (its extra
    lanes still warming), then the paragraph and a three-minute text once it is warm."""
    engine = Engine(audio_cache_mb=0)
    rows = [{"text": "paragraph", "engine": "warming"} | ours_once(engine, text, voice)]
    engine.wait_warm()
    for name, words in (("paragraph", text), ("3-minute text", long_text())):
        rows.append({"text": name, "engine": "warm"} | ours_once(engine, words, voice))
    engine.close()
    return [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 4) for key in runs[0]}


def bench_ours(text: str, voice: str, **engine_kwargs: Any) -> dict[str, Any]:
    engine, load = _our_engine(**engine_kwargs)
    result: dict[str, Any] = median([ours_once(engine, text, voice) for _ in range(REPEATS)])
    result["engine_load_s"] = round(load, 3)
    result["variant"] = engine.variants
    engine.close()
    return result


def _our_engine(**engine_kwargs: Any) -> tuple[Engine, float]:
    start = time.perf_counter()
    engine = Engine(audio_cache_mb=0, **engine_kwargs)
    engine.wait_warm()
    load = time.perf_counter() - start
    ours_once(engine, SHORT, "af_heart")  # warm
    return engine, load


def side_by_side(text: str, voice: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both engines, their runs interleaved so a noisy machine slows both alike."""
    engine, load = _our_engine()
    model = assets.model_path()
    with tempfile.TemporaryDirectory() as tmp:
        npz = voices_npz(voice, Path(tmp))
        baseline = Baseline(model, npz, voice)
        ours_runs, their_runs, ours_cold, their_cold = [], [], [], []
        for _ in range(REPEATS):
            ours_runs.append(ours_once(engine, text, voice))
            their_runs.append(baseline.once(text))
        engine.close()
        for _ in range(REPEATS):
            ours_cold.append(cold_start(_COLD_OURS, SHORT, voice))
            their_cold.append(cold_start(_COLD_BASELINE, SHORT, voice, str(model), str(npz)))
    ours: dict[str, Any] = median(ours_runs) | {
        "engine_load_s": round(load, 3),
        "variant": engine.variants,
    }
    theirs: dict[str, Any] = median(their_runs) | {"engine_load_s": round(baseline.load_s, 3)}
    ours["cold_start_s"] = round(statistics.median(ours_cold), 3)
    theirs["cold_start_s"] = round(statistics.median(their_cold), 3)
    return ours, theirs


def sweep_first_piece(text: str, voice: str) -> list[dict[str, Any]]:
    engine = Engine(audio_cache_mb=0)
    engine.wait_warm()
    rows = []
    for size in (8, 16, 24, 32, 48, 64):
        engine.first_piece_ids = size
        ttfas = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            with engine.stream(text, voice=voice) as stream:
                first = next(stream)
                ttfas.append(time.perf_counter() - start)
        rows.append(
            {
                "first_piece_ids": size,
                "ttfa_s": round(statistics.median(ttfas), 4),
                "first_text": first.text,
            }
        )
    engine.close()
    return rows


def sweep_concurrency(voice: str) -> list[dict[str, Any]]:
    engine = Engine(audio_cache_mb=0)
    engine.wait_warm()
    rows = []
    for clients in (1, 2, 4, 8):
        rows.append(_concurrent(engine, clients, voice))
    engine.close()
    return rows


def _concurrent(engine: Engine, clients: int, voice: str) -> dict[str, Any]:
    errors: list[str] = []
    audio: list[float] = []
    ttfas: list[float] = []

    def client(i: int) -> None:
        text = f"Client {i} asks for two sentences. The engine answers every one in order."
        try:
            begin = time.perf_counter()
            seqs: list[int] = []
            samples = 0
            for chunk in engine.stream(text, voice=voice):
                if not seqs:
                    ttfas.append(time.perf_counter() - begin)
                seqs.append(chunk.seq)
                samples += len(chunk.samples)
            if seqs != list(range(len(seqs))):
                errors.append(f"client {i}: out of order {seqs}")
            audio.append(samples / SAMPLE_RATE)
        except Exception as exc:  # counted, not raised: the sweep reports errors
            errors.append(f"client {i}: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "clients": clients,
        "wall_s": round(wall, 3),
        "audio_s": round(sum(audio), 3),
        "throughput_rtf": round(wall / sum(audio), 4) if audio else None,
        "ttfa_p50_s": round(statistics.median(ttfas), 4) if ttfas else None,
        "errors": errors,
    }


def sweep_variants(text: str, voice: str) -> list[dict[str, Any]]:
    """Each variant on the CPU: its speed, and how close each piece's speech is to int8's.

    Pieces are compared one by one (the same planner cuts the same pieces), so a frame of
    rounding in one piece does not misalign all the pieces after it.
    """
    rows: list[dict[str, Any]] = []
    reference: list[FloatArray] | None = None
    for variant in VARIANTS:
        try:
            row, pieces = _measure_variant(variant, text, voice)
        except KokoroError as exc:  # a variant that cannot be built or run is reported
            rows.append({"variant": variant, "error": str(exc)[:200]})
            continue
        reference = pieces if reference is None else reference
        figures = [similarity(a, b) for a, b in zip(reference, pieces, strict=True)]
        row["worst_piece_log_mel_cosine"] = round(
            min(f["log_mel_cosine_aligned"] for f in figures), 4
        )
        row["length_ratio"] = round(sum(map(len, pieces)) / sum(map(len, reference)), 4)
        row["passes"] = all(passes(f) for f in figures)
        rows.append(row)
    return rows


def _measure_variant(
    variant: str, text: str, voice: str
) -> tuple[dict[str, Any], list[FloatArray]]:
    engine, load = _our_engine(variant=variant, providers=[CPU])
    try:
        row: dict[str, Any] = {"variant": variant}
        row.update(median([ours_once(engine, text, voice) for _ in range(REPEATS)]))
        row["engine_load_s"] = round(load, 3)
        return row, [chunk.samples for chunk in engine.stream(text, voice=voice)]
    finally:
        engine.close()


def run_bench(
    text: str,
    *,
    voice: str = "af_heart",
    quick: bool = False,
    baseline: bool = True,
    as_json: bool = False,
) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "text_chars": len(text), "voice": voice}
    report["load_average_before"] = _load_average()
    if baseline and available():
        _say(as_json, "measuring kokoro-nb and kokoro-onnx, runs interleaved ...")
        report["ours"], report["kokoro_onnx"] = side_by_side(text, voice)
        report["ratio"] = _ratios(report["ours"], report["kokoro_onnx"])
    else:
        _say(as_json, "measuring kokoro-nb ...")
        report["ours"] = bench_ours(text, voice)
        report["ours"]["cold_start_s"] = round(cold_start(_COLD_OURS, SHORT, voice), 3)
    _say(as_json, "measuring continuity (warming and warm, paragraph and 3-minute text) ...")
    report["continuity"] = continuity(text, voice)
    if not quick:
        _say(as_json, "sweeping first-piece size, concurrency and variants ...")
        report["first_piece"] = sweep_first_piece(text, voice)
        report["concurrency"] = sweep_concurrency(voice)
        report["variants"] = sweep_variants(text, voice)
    report["load_average_after"] = _load_average()
    print(json.dumps(report, indent=2) if as_json else render(report))
    return report


def _load_average() -> list[float] | None:
    """The machine's load: a benchmark run beside other work says so in its report."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    if "error" in theirs:
        return {}
    return {
        key: round(theirs[key] / ours[key], 2)
        for key in ("ttfa_s", "rtf", "cold_start_s", "total_s")
        if ours.get(key) and theirs.get(key)
    }


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}, onnxruntime {m['onnxruntime']}",
        f"text: {report['text_chars']} characters, voice {report['voice']}; "
        f"load average before {report.get('load_average_before')}, after {report.get('load_average_after')}",
        "",
        f"{'':<14}{'first audio':>12}{'RTF':>8}{'total':>9}{'audio':>9}{'cold start':>12}{'stalls':>8}",
    ]
    for name, key in (("kokoro-nb", "ours"), ("kokoro-onnx", "kokoro_onnx")):
        r = report.get(key)
        if r and "error" not in r:
            stalls = f"{r['underruns']:>8.0f}" if "underruns" in r else f"{'':>8}"
            lines.append(
                f"{name:<14}{r['ttfa_s']:>11.3f}s{r['rtf']:>8.3f}{r['total_s']:>8.2f}s{r['audio_s']:>8.2f}s{r['cold_start_s']:>11.2f}s{stalls}"
            )
        elif r:
            lines.append(f"{name:<14}{r['error']}")
    if report.get("ratio"):
        lines.append(
            "kokoro-onnx / kokoro-nb: " + ", ".join(f"{k} ×{v}" for k, v in report["ratio"].items())
        )
    for title, key in (
        ("continuity (stalls of a gapless player fed by the stream)", "continuity"),
        ("first piece", "first_piece"),
        ("concurrency", "concurrency"),
        ("variants", "variants"),
    ):
        if key in report:
            lines += ["", title + ":"] + [
                "  " + ", ".join(f"{k}={v}" for k, v in row.items() if k != "first_text")
                for row in report[key]
            ]
    return "\n".join(lines)
