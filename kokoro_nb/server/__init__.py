"""OpenAI-compatible speech server on one warm Engine: from the command line or inside the kernel.

This module stays light (no FastAPI import at the top), so `run()` can open its port and start
building the engine before the web stack has even been imported.

>>> url = start_background(engine, port=0)      # %kokoro serve
>>> openai.OpenAI(base_url=url + "/v1", api_key="-").audio.speech.create(
...     model="tts-1", voice="alloy", input="Hello.")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kokoro_engine import Engine

__all__ = ["create_app", "run", "start_background", "stop_background"]

MAX_INPUT_CHARS = 4096  # OpenAI's own limit: clients already split longer texts


def create_app(
    engine: Engine | Callable[[], Engine],
    *,
    max_input_chars: int = MAX_INPUT_CHARS,
    cors: bool = True,
) -> FastAPI:
    """The speech API on `engine`, or on the Engine a zero-argument factory builds at startup.

    A given Engine stays the caller's (the app never closes it); one the app builds is closed
    at shutdown, and /health answers 503 until it is ready. `cors` lets web pages from any
    origin call the API, as browser-based OpenAI clients need.
    """
    from ._server_app import build_app

    return build_app(engine, max_input_chars=max_input_chars, cors=cors)


def run(
    host: str = "127.0.0.1", port: int = 8880, engine_kwargs: dict[str, Any] | None = None
) -> None:
    """Serve until interrupted (Ctrl-C). The port opens at once; /health turns 200 once warm."""
    from ._server_threads import bind

    started = time.perf_counter()
    sock = bind(host, port)  # a taken port fails now, before seconds of warm-up
    builder = _Builder(engine_kwargs or {})  # onnxruntime builds while FastAPI imports
    from ._server_app import build_app
    from ._server_threads import serve_foreground

    serve_foreground(build_app(builder.wait, started=started), sock)


def start_background(engine: Engine, host: str = "127.0.0.1", port: int = 8880) -> str:
    """Serve `engine` from a daemon thread of this process; the base URL once /health answers.

    While one runs, asking again for its port (or port 0) returns its URL and serves the
    engine given; another address raises KokoroError.
    """
    from ._server_threads import serve_background

    return serve_background(lambda: create_app(engine), engine, host, port)


def stop_background() -> bool:
    """Stop the background server; False if none was running."""
    from ._server_threads import stop_serving

    return stop_serving()


class _Builder:
    """Builds the Engine in a thread, started at once; `wait()` hands it over (or raises)."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self._kwargs = kwargs
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, name="kokoro-build", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            from kokoro_engine import Engine

            self._engine = Engine(**self._kwargs)
        except BaseException as exc:  # re-raised in wait(), where the app reports it
            self._error = exc

    def wait(self) -> Engine:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._engine is not None
        return self._engine
