"""The session pool: warm ONNX Runtime sessions as lanes, routing, a core budget, fallback.

Routing policy, stated once:
- Accelerator lanes (CUDA, CoreML, ...) take every piece while healthy; CPU lanes are then
  only the fallback, because a slow CPU piece would hold up in-order delivery.
- Every piece comes as a `Job` with a deadline (when its audio will be needed) and an
  estimate of the audio it makes. Waiting jobs are served earliest deadline first, across
  all requests, so a new request's first piece goes ahead of far-off pieces of a long one.
- On the CPU, a job whose slack lets a *throughput* lane (a session of few threads) finish
  it in time runs there, beside other pieces; a job without that slack takes the *latency*
  lane (one session using all the cores), or a throughput lane if that finishes sooner than
  waiting for every core. Each lane's speed is measured as it runs (seconds of inference
  per second of audio), so the choice follows this machine and its load.
- A CPU lane runs only when its threads fit the core budget, so concurrent sessions never
  oversubscribe the cores. Busy or benched lanes are skipped.
- A lane that raises or returns empty or non-finite audio is benched for a cool-down and the
  piece is retried on a CPU lane; the piece's metrics record the fallback.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ._errors import InputError, SynthesisError
from ._feeds import Feeds
from ._types import SAMPLE_RATE, FloatArray

ACCELERATORS = (
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "ROCMExecutionProvider",
    "OpenVINOExecutionProvider",
    "TensorrtExecutionProvider",
)
# Providers chosen without being asked for. TensorRT builds an engine per input shape,
# and every Kokoro call has a new shape, so it is used only on request.
AUTO_ACCELERATORS = ACCELERATORS[:5]
CPU = "CPUExecutionProvider"
COOL_DOWN_S = 30.0
# Seconds of inference per second of audio for a lane using every core, until measured
# (2-core x86: 0.31-0.36 for the int8 graph); a lane with fewer threads is assumed slower
# in proportion.
DEFAULT_RATE = 0.35
RATE_MEMORY = 0.3  # weight of the newest run in a lane's measured rate
SLACK_SAFETY = 1.5  # a throughput lane is used when it would finish in 1/1.5 of the slack


@dataclass(frozen=True)
class Job:
    """What the scheduler knows of a piece: when its audio is needed, and how much it makes."""

    deadline: float  # time.perf_counter() by which the piece should be done
    audio_s: float  # estimated seconds of audio


URGENT = Job(deadline=0.0, audio_s=1.0)  # as soon as possible (warm-ups, tests)


class Session(Protocol):
    """What the pool needs of a session: onnxruntime.InferenceSession fits."""

    def run(self, output_names: Any, input_feed: dict[str, Any], run_options: Any = ...) -> Any: ...
    def get_inputs(self) -> Any: ...


class Cancelled(Exception):
    """The request was cancelled while this piece waited or ran."""


@dataclass
class Lane:
    """One warm session and what routing needs to know of it."""

    name: str
    provider: str
    session: Session
    threads: int = 0  # CPU cores it occupies (0 for accelerators)
    role: str = "throughput"  # "latency" or "throughput"
    busy: bool = False
    benched_until: float = 0.0
    runs: int = 0
    failures: int = 0
    last_error: str = ""
    rate: float = 0.0  # measured seconds of inference per second of audio; 0: not yet
    free_at: float = 0.0  # when the piece it runs should be done (time.perf_counter())
    feed: Feeds = field(init=False, repr=False)  # built from the session's declared inputs

    def __post_init__(self) -> None:
        self.feed = Feeds(self.session)

    @property
    def is_cpu(self) -> bool:
        return self.provider == CPU

    def healthy(self, now: float) -> bool:
        return now >= self.benched_until

    def predict(self, audio_s: float, cores: int) -> float:
        """Seconds this lane should take for `audio_s` of audio."""
        guess = DEFAULT_RATE * max(1.0, cores / self.threads) if self.threads else DEFAULT_RATE
        return (self.rate or guess) * audio_s

    def measured(self, inference_s: float, audio_s: float) -> None:
        if audio_s > 0:
            new = inference_s / audio_s
            self.rate = new if not self.rate else (1 - RATE_MEMORY) * self.rate + RATE_MEMORY * new


@dataclass
class Result:
    audio: FloatArray
    lane: Lane
    queue_wait_s: float
    inference_s: float
    fallback_from: str = ""
    error: str = ""


class Pool:
    """Lanes plus the scheduler that hands them out."""

    def __init__(self, lanes: Sequence[Lane] = (), cpu_budget: int | None = None) -> None:
        self.lanes: list[Lane] = list(lanes)
        self.cpu_budget = cpu_budget or os.cpu_count() or 1
        self._cpu_in_use = 0
        self._cond = threading.Condition()
        self._waiting: list[tuple[float, int]] = []
        self._tickets = itertools.count()

    def add(self, lane: Lane, *, first: bool = False) -> None:
        with self._cond:
            self.lanes.insert(0, lane) if first else self.lanes.append(lane)
            self._cond.notify_all()

    def remove(self, lane: Lane) -> None:
        with self._cond:
            self.lanes.remove(lane)

    # --- scheduling ---------------------------------------------------------------------

    def rate(self) -> float:
        """How fast the fastest lane synthesizes (seconds per second of audio): what a
        planner can count on for the next piece."""
        with self._cond:
            lanes = [lane for lane in self.lanes if lane.role == "latency"] or self.lanes
            return min((lane.predict(1.0, self.cpu_budget) for lane in lanes), default=DEFAULT_RATE)

    def acquire(
        self,
        job: Job,
        *,
        cancelled: Callable[[], bool],
        exclude: frozenset[str] = frozenset(),
        cpu_only: bool = False,
    ) -> Lane:
        """Block until a lane is free for this job (earliest deadline first), then mark it busy."""
        ticket = (job.deadline, next(self._tickets))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            try:
                while True:
                    if cancelled():
                        raise Cancelled
                    lane = self._waiting[0] == ticket and self._choose(job, exclude, cpu_only)
                    if lane:
                        lane.busy = True
                        lane.free_at = time.perf_counter() + self._predict(lane, job)
                        self._cpu_in_use += lane.threads
                        return lane
                    if not self._any_usable(exclude, cpu_only):
                        raise SynthesisError("no session can run this piece: every lane failed")
                    self._cond.wait(timeout=0.1)
            finally:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._cond.notify_all()

    def release(self, lane: Lane) -> None:
        with self._cond:
            lane.busy = False
            self._cpu_in_use -= lane.threads
            self._cond.notify_all()

    def _choose(self, job: Job, exclude: frozenset[str], cpu_only: bool) -> Lane | None:
        healthy_at = time.monotonic()
        usable = [
            lane for lane in self.lanes if lane.healthy(healthy_at) and lane.name not in exclude
        ]
        accelerators = [lane for lane in usable if not lane.is_cpu]
        if accelerators and not cpu_only:
            free = [lane for lane in accelerators if not lane.busy]
            return free[0] if free else None
        cpu = [lane for lane in usable if lane.is_cpu]
        free = [
            lane
            for lane in cpu
            if not lane.busy and lane.threads <= self.cpu_budget - self._cpu_in_use
        ]
        now = time.perf_counter()
        side = [lane for lane in free if lane.role == "throughput"]
        if side and now + SLACK_SAFETY * self._predict(side[0], job) <= job.deadline:
            return side[0]  # time enough to run beside other pieces
        if not free:
            return None
        # Urgent: the free lane that should finish first (a loaded machine can make one
        # thread as fast as all of them) ...
        fastest = min(free, key=lambda lane: self._predict(lane, job))
        whole = [lane for lane in cpu if lane.role == "latency"]
        if not whole or whole[0] in free or fastest.role == "latency":
            return fastest
        # ... unless waiting for every core to come free finishes sooner still.
        every_core_free = max((lane.free_at for lane in cpu if lane.busy), default=now)
        finish_waiting = max(every_core_free, now) + self._predict(whole[0], job)
        return fastest if now + self._predict(fastest, job) <= finish_waiting else None

    def _predict(self, lane: Lane, job: Job) -> float:
        return lane.predict(job.audio_s, self.cpu_budget)

    def _any_usable(self, exclude: frozenset[str], cpu_only: bool) -> bool:
        return any(
            lane.name not in exclude and (lane.is_cpu or not cpu_only) for lane in self.lanes
        )

    # --- running ------------------------------------------------------------------------

    def run(
        self, feeds: Callable[[Lane], dict[str, Any]], job: Job, *, cancel: CancelToken
    ) -> Result:
        """Run one piece, falling back to CPU lanes when a lane fails."""
        exclude: set[str] = set()
        fallback_from = error = ""
        while True:
            start = time.perf_counter()
            try:
                lane = self.acquire(
                    job,
                    cancelled=cancel.is_set,
                    exclude=frozenset(exclude),
                    cpu_only=bool(exclude),
                )
            except SynthesisError as exc:
                raise SynthesisError(f"{exc} (last: {error})" if error else str(exc)) from None
            waited = time.perf_counter() - start
            try:
                audio, took = self._run_on(lane, feeds(lane), cancel)
                return Result(audio, lane, waited, took, fallback_from, error)
            except (Cancelled, InputError):
                raise
            except Exception as exc:  # a failing provider must not lose the piece
                error = f"{lane.name}: {type(exc).__name__}: {exc}"[:300]
                fallback_from = fallback_from or lane.name
                self._record_failure(lane, error)
                exclude.add(lane.name)
            finally:
                self.release(lane)

    def _run_on(
        self, lane: Lane, feed: dict[str, Any], cancel: CancelToken
    ) -> tuple[FloatArray, float]:
        options = cancel.run_options()
        start = time.perf_counter()
        try:
            outputs = lane.session.run(None, feed, options)
        except Exception:
            if cancel.is_set():
                raise Cancelled from None
            raise
        finally:
            cancel.forget(options)
        took = time.perf_counter() - start
        audio = np.asarray(outputs[0], dtype=np.float32).ravel()
        if audio.size == 0 or not np.isfinite(audio).all():
            raise SynthesisError(
                f"{lane.provider} returned {'empty' if audio.size == 0 else 'non-finite'} audio"
            )
        lane.runs += 1
        lane.measured(took, audio.size / SAMPLE_RATE)
        return audio, took

    def _record_failure(self, lane: Lane, error: str) -> None:
        """Bench a failing accelerator; a CPU lane is only skipped for this piece, since the
        CPU is the last resort and a piece-specific failure must not take it away from others."""
        with self._cond:
            lane.failures += 1
            lane.last_error = error
            if not lane.is_cpu:
                lane.benched_until = time.monotonic() + COOL_DOWN_S
            self._cond.notify_all()

    def describe(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "lane": lane.name,
                "provider": lane.provider,
                "role": lane.role,
                "threads": lane.threads,
                "busy": lane.busy,
                "benched_s": round(max(lane.benched_until - now, 0.0), 1),
                "runs": lane.runs,
                "rate": round(lane.rate, 3) if lane.rate else None,
                "failures": lane.failures,
                "last_error": lane.last_error,
            }
            for lane in self.lanes
        ]


class CancelToken:
    """A request's cancel flag; setting it also aborts runs already inside onnxruntime."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._live: set[Any] = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        with self._lock:
            for options in self._live:
                options.terminate = True

    def run_options(self) -> Any:
        import onnxruntime as ort

        options = ort.RunOptions()
        with self._lock:
            if self._event.is_set():
                raise Cancelled
            self._live.add(options)
        return options

    def forget(self, options: Any) -> None:
        with self._lock:
            self._live.discard(options)
