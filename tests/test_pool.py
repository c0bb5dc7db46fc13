"""Routing and fallback in the real pool, with sessions that really fail."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from kokoro_engine import Engine, SynthesisError
from kokoro_engine._pool import CPU, URGENT, CancelToken, Job, Lane, Pool

from probes import lane_runs
from speech import assert_speech


class RaisingSession:
    """Stands for a GPU session whose kernel crashes: run() raises."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls = 0

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def run(self, *args: Any) -> Any:
        self.calls += 1
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


class NaNSession(RaisingSession):
    """Stands for a provider that returns garbage: non-finite audio."""

    def run(self, *args: Any) -> Any:
        self.calls += 1
        return [np.full(24_000, np.nan, np.float32)]


@pytest.mark.parametrize("faulty", [RaisingSession, NaNSession])
def test_failing_accelerator_falls_back_to_cpu(
    engine: Engine, faulty: type[RaisingSession]
) -> None:
    real = engine.pool.lanes[0].session
    session = faulty(real)
    lane = Lane("faulty-gpu", "FaultyExecutionProvider", session, 0, "latency")
    engine.pool.add(lane, first=True)
    engine.clear_cache()
    try:
        text = "The accelerator fails, and the CPU takes over. Nothing is lost."
        audio = engine.synthesize(text)
    finally:
        engine.pool.remove(lane)
    assert session.calls == 1  # benched after the first failure, not retried per piece
    assert_speech(audio.samples, text)
    first = audio.metrics["pieces"][0]
    assert first["fallback_from"] == "faulty-gpu" and first["provider"] == CPU
    assert audio.metrics["fallbacks"] >= 1
    assert lane.failures == 1 and lane.benched_until > 0


def test_accelerator_lanes_take_every_piece_while_healthy(engine: Engine) -> None:
    real = engine.pool.lanes[0]
    lane = Lane("fake-gpu", "FakeExecutionProvider", real.session, 0, "latency")
    engine.pool.add(lane, first=True)
    engine.clear_cache()
    try:
        audio = engine.synthesize(
            "Every piece goes to the accelerator. The CPU waits as a fallback."
        )
    finally:
        engine.pool.remove(lane)
    assert {p["lane"] for p in audio.metrics["pieces"]} == {"fake-gpu"}


def test_a_pool_whose_every_lane_fails_raises_synthesis_error(engine: Engine) -> None:
    real = engine.pool.lanes[0].session
    pool = Pool(
        [Lane("bad-1", CPU, RaisingSession(real), 1), Lane("bad-2", CPU, RaisingSession(real), 1)],
        cpu_budget=2,
    )
    style = np.zeros((1, 256), np.float32)
    with pytest.raises(SynthesisError, match="every lane failed"):
        pool.run(lambda lane: lane.feed([50, 16, 51], style, 1.0), URGENT, cancel=CancelToken())
    assert all(lane.failures == 1 for lane in pool.lanes)


def test_cpu_lanes_never_oversubscribe_the_cores(engine: Engine) -> None:
    threads = [lane.threads for lane in engine.pool.lanes if lane.is_cpu]
    assert engine.pool.cpu_budget >= max(threads)
    runs_before = lane_runs(engine)
    engine.clear_cache()
    list(engine.stream("One. Two three four. " * 12))
    assert lane_runs(engine) > runs_before
    assert engine.pool._cpu_in_use == 0 and not any(lane.busy for lane in engine.pool.lanes)


def _lanes(engine: Engine) -> tuple[Lane, Lane, Lane]:
    session = engine.pool.lanes[0].session
    return (
        Lane("latency", CPU, session, 2, "latency"),
        Lane("side-1", CPU, session, 1, "throughput"),
        Lane("side-2", CPU, session, 1, "throughput"),
    )


def test_waiting_jobs_are_served_earliest_deadline_first(engine: Engine) -> None:
    latency, _, _ = _lanes(engine)
    pool = Pool([latency], cpu_budget=2)
    holder = pool.acquire(URGENT, cancelled=lambda: False)
    order: list[float] = []
    now = time.perf_counter()
    deadlines = [now + 30, now + 10, now + 20, now + 5]

    def wait_for_lane(deadline: float) -> None:
        lane = pool.acquire(Job(deadline, 1.0), cancelled=lambda: False)
        order.append(deadline)
        pool.release(lane)

    threads = [threading.Thread(target=wait_for_lane, args=(d,)) for d in deadlines]
    for thread in threads:
        thread.start()
    while len(pool._waiting) < len(deadlines):
        time.sleep(0.01)
    pool.release(holder)
    for thread in threads:
        thread.join(10)
    assert order == sorted(deadlines)


def test_urgent_jobs_take_every_core_and_jobs_with_slack_run_beside(engine: Engine) -> None:
    latency, side_1, side_2 = _lanes(engine)
    pool = Pool([latency, side_1, side_2], cpu_budget=2)
    now = time.perf_counter()
    urgent = pool.acquire(Job(now, 3.0), cancelled=lambda: False)
    assert urgent is latency
    pool.release(urgent)
    relaxed = [pool.acquire(Job(now + 60, 3.0), cancelled=lambda: False) for _ in range(2)]
    assert {lane.name for lane in relaxed} == {"side-1", "side-2"}
    assert pool._cpu_in_use == 2  # both cores busy, each with its own piece
    for lane in relaxed:
        pool.release(lane)


def test_an_urgent_job_runs_beside_a_busy_lane_when_that_finishes_sooner(engine: Engine) -> None:
    latency, side_1, side_2 = _lanes(engine)
    pool = Pool([latency, side_1, side_2], cpu_budget=2)
    now = time.perf_counter()
    long_piece = pool.acquire(Job(now + 600, 100.0), cancelled=lambda: False)
    assert long_piece.role == "throughput"  # 100 s of audio, due in 10 minutes
    short = pool.acquire(Job(now, 1.0), cancelled=lambda: False)
    assert short.role == "throughput"  # waiting for every core would take far longer
    pool.release(short)
    pool.release(long_piece)


def test_each_lane_measures_its_own_speed(engine: Engine) -> None:
    engine.clear_cache()
    engine.synthesize("Measured as it runs, every lane knows how fast it is.")
    used = [lane for lane in engine.pool.lanes if lane.runs]
    assert used and all(0 < lane.rate < 5 for lane in used)
    assert 0 < engine.pool.rate() < 5
