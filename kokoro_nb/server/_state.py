"""What the speech routes share: the engine (once built), metrics and the worker-thread limiter."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from kokoro_engine import Engine

from ._errors import ApiError
from ._metrics import ServerMetrics


class ServerState:
    """One app's engine (given, or built by a factory at startup), metrics and thread limiter."""

    def __init__(
        self, engine: Engine | Callable[[], Engine], max_input_chars: int, started: float
    ) -> None:
        self.factory = None if isinstance(engine, Engine) else engine
        self.engine: Engine | None = engine if isinstance(engine, Engine) else None
        self.max_input_chars = max_input_chars
        self.metrics = ServerMetrics()
        self.started = started
        self.ready_s: float | None = 0.0 if self.engine else None
        self.failure: str | None = None
        self.limiter: anyio.CapacityLimiter | None = None
        self.metrics.ready.set(1 if self.engine else 0)

    def build(self) -> None:
        """Build the engine this app owns (run in a thread, so /health answers meanwhile)."""
        assert self.factory is not None
        try:
            self.engine = self.factory()
        except Exception as exc:  # reported by /health and every request
            self.failure = f"{type(exc).__name__}: {exc}"
            print(f"kokoro-nb: error: the engine could not be built: {exc}", file=sys.stderr)
            return
        self.ready_s = round(time.perf_counter() - self.started, 3)
        self.metrics.ready.set(1)
        print(f"kokoro-nb: speech server ready ({self.ready_s} s after start)", flush=True)

    def require_engine(self) -> Engine:
        if self.engine is None:
            reason = self.failure or "the engine is still warming up; retry shortly"
            raise ApiError(503, reason, kind="server_error", code="engine_unavailable")
        return self.engine

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Blocking engine and encoder work off the event loop (onnxruntime drops the GIL)."""
        return await anyio.to_thread.run_sync(func, *args, limiter=self.limiter)
