"""Readings tests take of the machine and the engine: a free loopback port, pieces run so far."""

from __future__ import annotations

import socket

from kokoro_engine import Engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lane_runs(engine: Engine) -> int:
    """Pieces the engine's lanes have run since it started, on every lane together."""
    return sum(lane.runs for lane in engine.pool.lanes)
