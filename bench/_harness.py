"""The benches' shared load harness: requests fanned out over threads, all at once, results kept."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class FanOut(Generic[T]):
    """What every request returned, each failure as "Type: message", and the wall time."""

    results: list[T] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def fan_out(request: Callable[[int, int], T], threads: int, per_thread: int) -> FanOut[T]:
    """`threads` threads at once, thread t calling request(t, i) for i in range(per_thread).

    A failed request is recorded and its thread goes on with the next one, so one error
    neither stops the load nor hides the others.
    """
    out: FanOut[T] = FanOut()
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(per_thread):
            try:
                result = request(t, i)
            except Exception as exc:
                with lock:
                    out.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            with lock:
                out.results.append(result)

    start = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.wall_s = time.perf_counter() - start
    return out


def progress(message: str) -> None:
    """A timestamped line on stderr, so a long run shows where it is without touching stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
