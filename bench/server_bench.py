"""Speech-server benchmark on loopback: overhead over the engine, first bytes, ready time, load.

    .venv/bin/python bench/server_bench.py [--runs 8] [--clients 16] [--json out.json]

Every request text is distinct (140 characters, a different number in each) so the engine's
audio cache never answers; the engine and the server run the same texts, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
from _harness import fan_out, progress

from kokoro_engine import Engine
from kokoro_nb import server

VOICE = "af_heart"
_TEMPLATE = (
    "Entry {a}. The ridge station logged {b} gusts under clear skies, "
    "so the two tired hikers walked {c} metres on toward the old stone house."
)


def text(n: int) -> str:
    """A distinct request of exactly 140 characters for 1000 <= n < 10000.

    The engine caches audio per piece, and pieces start small: the number opens the text so
    the first piece differs, and every later clause has its own number (7 and 13 are prime
    to 9000, so no two texts share one). No piece of one text is cached from another.
    """
    words = _TEMPLATE.format(a=n, b=(n * 7) % 9000 + 1000, c=(n * 13) % 9000 + 1000)
    assert len(words) == 140, len(words)
    return words


def pct(values: list[float]) -> dict[str, float]:
    arr = np.array(values)
    return {
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p90": round(float(np.percentile(arr, 90)), 4),
        "p99": round(float(np.percentile(arr, 99)), 4),
        "mean": round(float(arr.mean()), 4),
        "n": len(values),
    }


def whole(http: httpx.Client, body: dict[str, Any]) -> tuple[float, float]:
    """(client wall time, the engine's own synthesis time for that same request)."""
    start = time.perf_counter()
    response = http.post("/v1/audio/speech", json={**body, "stream": False})
    wall = time.perf_counter() - start
    response.raise_for_status()
    return wall, float(response.headers["x-kokoro-synthesis-seconds"])


def first_bytes(http: httpx.Client, body: dict[str, Any]) -> tuple[float, float, float]:
    """(client time to first audio bytes, engine's time to first audio, total) of one stream."""
    start = time.perf_counter()
    with http.stream("POST", "/v1/audio/speech", json={**body, "stream": True}) as response:
        response.raise_for_status()
        chunks = response.iter_raw()
        next(chunks)
        ttfb = time.perf_counter() - start
        for _ in chunks:
            pass
    return ttfb, float(response.headers["x-kokoro-ttfa-seconds"]), time.perf_counter() - start


def engine_whole(engine: Engine, words: str) -> tuple[float, float]:
    start = time.perf_counter()
    audio = engine.synthesize(words, voice=VOICE)
    return time.perf_counter() - start, audio.metrics["total_s"]


def engine_first(engine: Engine, words: str) -> float:
    start = time.perf_counter()
    with engine.stream(words, voice=VOICE) as stream:
        next(stream)
        first = time.perf_counter() - start
        for _ in stream:
            pass
    return first


def overhead(engine: Engine, http: httpx.Client, runs: int, fmt: str, base: int) -> dict[str, Any]:
    """Single requests, one at a time: server vs engine on distinct texts, interleaved."""
    assert runs <= 100
    engine.clear_cache()
    rows: dict[str, list[float]] = {k: [] for k in ("srv", "srv_eng", "eng", "eng_own")}
    firsts: dict[str, list[float]] = {k: [] for k in ("srv", "srv_eng", "eng")}
    for i in range(runs):
        progress(f"{fmt}: run {i + 1} of {runs}")
        body = {"input": text(1000 + base + i), "voice": VOICE, "response_format": fmt}
        wall, engine_s = whole(http, body)
        rows["srv"].append(wall)
        rows["srv_eng"].append(engine_s)
        wall, own = engine_whole(engine, text(2000 + base + i))
        rows["eng"].append(wall)
        rows["eng_own"].append(own)
        ttfb, ttfa, _ = first_bytes(http, {**body, "input": text(3000 + base + i)})
        firsts["srv"].append(ttfb)
        firsts["srv_eng"].append(ttfa)
        firsts["eng"].append(engine_first(engine, text(4000 + base + i)))
    paired = [a - b for a, b in zip(rows["srv"], rows["srv_eng"], strict=True)]
    paired_first = [a - b for a, b in zip(firsts["srv"], firsts["srv_eng"], strict=True)]
    return {
        "format": fmt,
        "server_whole_s": pct(rows["srv"]),
        "engine_synthesize_s": pct(rows["eng"]),
        "overhead_whole_same_request_s": pct(paired),
        "server_first_bytes_s": pct(firsts["srv"]),
        "engine_first_audio_s": pct(firsts["eng"]),
        "overhead_first_bytes_same_request_s": pct(paired_first),
    }


def load(url: str, clients: int, per_client: int) -> dict[str, Any]:
    """`clients` threads, each sending `per_client` requests in turn, streamed and whole."""
    # One connection per client thread, as separate clients would hold.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with httpx.Client(base_url=url, timeout=600, limits=limits) as http:

        def request(n: int, i: int) -> tuple[float, float | None]:
            """(total, first bytes or None for a whole clip) of one request."""
            body = {"input": text(5000 + n * 100 + i), "voice": VOICE, "response_format": "mp3"}
            if (n + i) % 2:
                ttfb, _, total = first_bytes(http, body)
                return total, ttfb
            return whole(http, body)[0], None

        progress(f"load: {clients} clients x {per_client} requests")
        run = fan_out(request, clients, per_client)
    totals = [total for total, _ in run.results]
    ttfbs = [ttfb for _, ttfb in run.results if ttfb is not None]
    return {
        "clients": clients,
        "requests": clients * per_client,
        "errors": run.errors,
        "wall_s": round(run.wall_s, 2),
        "requests_per_s": round(clients * per_client / run.wall_s, 3),
        "total_s": pct(totals),
        "first_bytes_s": pct(ttfbs) if ttfbs else None,
    }


def ready_time() -> dict[str, float]:
    """A fresh `serve()` process: seconds from spawn until /health answers 200."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = f"from kokoro_nb.server import serve; serve(port={port})"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    first_answer = None
    try:
        while True:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code
                first_answer = first_answer or time.perf_counter() - start
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        ready = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(30)
    return {"port_open_s": round(first_answer or ready, 3), "healthy_s": round(ready, 3)}


def machine() -> dict[str, Any]:
    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as the tables docs/server.md carries (medians, with p90 where it matters)."""

    def cell(stats: dict[str, float] | None, key: str = "p50") -> str:
        return (
            "–"
            if not stats
            else f"{stats[key] * 1000:.0f} ms"
            if stats[key] < 1
            else f"{stats[key]:.2f} s"
        )

    lines = [
        "| format | server whole | engine synthesize | overhead, same request (p50 / p90) "
        "| server first bytes | engine first audio | overhead, same request (p50 / p90) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["single"]:
        lines.append(
            f"| {row['format']} | {cell(row['server_whole_s'])} | {cell(row['engine_synthesize_s'])} "
            f"| {cell(row['overhead_whole_same_request_s'])} / "
            f"{cell(row['overhead_whole_same_request_s'], 'p90')} "
            f"| {cell(row['server_first_bytes_s'])} | {cell(row['engine_first_audio_s'])} "
            f"| {cell(row['overhead_first_bytes_same_request_s'])} / "
            f"{cell(row['overhead_first_bytes_same_request_s'], 'p90')} |"
        )
    ready = results["ready"]
    lines += [
        "",
        _load_line(results.get("load"), cell),
        "",
        f"Ready: a fresh `serve()` process answers /health 200 after {ready['healthy_s']} s "
        f"(first HTTP answer after {ready['port_open_s']} s); `start` on a warm "
        f"engine: {ready['start_warm_engine_s']} s.",
    ]
    return "\n".join(lines)


def _load_line(load: dict[str, Any] | None, cell: Any) -> str:
    if not load:
        return "Load: not run."
    total, first = load["total_s"], load["first_bytes_s"]
    return (
        f"Load: {load['clients']} clients, {load['requests']} requests, "
        f"{len(load['errors'])} errors, {load['wall_s']} s, {load['requests_per_s']} requests/s. "
        f"Total p50 / p90 / p99: {cell(total)} / {cell(total, 'p90')} / {cell(total, 'p99')}; "
        f"first bytes (streamed half) p50 / p90 / p99: {cell(first)} / {cell(first, 'p90')} / "
        f"{cell(first, 'p99')}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine()}
    results["ready"] = ready_time()  # first, while nothing else runs in this process
    engine = Engine()
    engine.wait_warm()
    start = time.perf_counter()
    url = server.start(engine, port=0)
    results["ready"]["start_warm_engine_s"] = round(time.perf_counter() - start, 3)
    with httpx.Client(base_url=url, timeout=600) as http:
        whole_clip = http.post("/v1/audio/speech", json={"input": "Warm up.", "voice": VOICE})
        whole_clip.raise_for_status()
        results["single"] = [
            overhead(engine, http, args.runs, fmt, 100 * n)
            for n, fmt in enumerate(("pcm", "mp3", "opus"))
        ]
    if args.clients:
        results["load"] = load(url, args.clients, args.per_client)
    results["machine"]["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    server.stop()
    engine.close()
    print(json.dumps(results, indent=2))
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
