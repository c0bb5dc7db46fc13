"""Warm-up: first runs on a real utterance, and the extra CPU lanes built in the background."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._manifest import STYLE_DIM
from ._pool import Lane, Pool
from ._sessions import cpu_lane, throughput_lane_specs

# Warm-up lengths (phoneme ids). The CPU pays its first-run cost once, whatever the shape;
# accelerators pick kernels per shape, so they warm over short, typical and long pieces.
CPU_WARM_LENGTHS = (24,)
ACCELERATOR_WARM_LENGTHS = (8, 64, 256)
WARM_SENTENCE = "The quick brown fox jumps over the lazy dog"


@lru_cache(maxsize=1)
def warm_ids() -> tuple[int, ...]:
    """WARM_SENTENCE as phoneme ids, through the engine's own front end."""
    from ._phonemize import phonemize, to_ids

    return tuple(to_ids(phonemize(WARM_SENTENCE, "en-us"))[0])


def prime_text_front_end() -> None:
    """Import the normalizer and start espeak-ng (and make the warm-up ids) ahead of need."""
    from ._normalize import normalize

    normalize("Ready.")
    warm_ids()


def warm(lane: Lane) -> None:
    """Run the lane once per warm-up length on a real utterance (cycled to the length)."""
    lengths = CPU_WARM_LENGTHS if lane.is_cpu else ACCELERATOR_WARM_LENGTHS
    style = np.zeros((1, STYLE_DIM), np.float32)
    ids = warm_ids()
    for n in lengths:
        cycled = list((ids * (n // len(ids) + 1))[:n])
        lane.session.run(None, lane.feed(cycled, style, 1.0))


class BackgroundLanes:
    """CPU throughput lanes, built off the caller's thread, at low priority and while no
    request is running, so they never slow what the latency lane is serving."""

    def __init__(self, pool: Pool, model: Callable[[], Path], *, split: bool) -> None:
        self._pool = pool
        self._model = model
        self._split = split
        self._busy: Callable[[], bool] = lambda: False
        self._stopped = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._build, name="kokoro-warm", daemon=True)

    def start(self, busy: Callable[[], bool], *, background: bool) -> None:
        """Build the lanes (in a thread when `background`); `busy` says a request is live."""
        self._busy = busy
        if background:
            self._thread.start()
        else:
            self._build()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def stop(self, *, wait: bool = True) -> None:
        """Build no more lanes; with `wait`, wait for one being built (onnxruntime aborts
        the process if it is torn down mid-build)."""
        self._stopped.set()
        if wait and self._thread.is_alive():
            self._thread.join()

    def _build(self) -> None:
        _lower_thread_priority()
        try:
            path = self._model()
            for name, threads in throughput_lane_specs():
                if not self._wait_idle():
                    return
                lane = cpu_lane(path, name, threads, "throughput", split=self._split)
                warm(lane)
                self._pool.add(lane)
        finally:
            self._done.set()

    def _wait_idle(self, quiet_s: float = 0.3, patience_s: float = 5.0) -> bool:
        """Wait until no request has been live for `quiet_s` (under steady load, at most
        `patience_s`: the extra lanes pay for themselves then); False once stopped."""
        quiet_since = start = time.monotonic()
        while not self._stopped.is_set():
            if time.monotonic() - start > patience_s:
                return True
            if self._busy():
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return True
            time.sleep(0.05)
        return False


def _lower_thread_priority() -> None:
    """Nice only the calling thread (Linux keeps a nice value per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
