"""OpenAI-compatible speech server on one warm Engine: from the command line or inside the kernel.

>>> url = start(engine, port=0)      # what %kokoro serve does
>>> openai.OpenAI(base_url=url + "/v1", api_key="-").audio.speech.create(
...     model="tts-1", voice="alloy", input="Hello.")
>>> stop()

This package stays light to import (FastAPI and uvicorn load on first use), so `serve()` can
open its port and start building the engine before the web stack has even been imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._lifecycle import serve_background, serve_foreground, stop_serving
from ._settings import HOST, MAX_INPUT_CHARS, PORT

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kokoro_engine import Engine

__all__ = ["create_app", "serve", "start", "stop"]


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
    from ._app import build_app

    return build_app(engine, max_input_chars=max_input_chars, cors=cors)


def serve(host: str = HOST, port: int = PORT, engine_kwargs: dict[str, Any] | None = None) -> None:
    """Serve until interrupted (Ctrl-C), building an Engine(**engine_kwargs) of its own.

    The port opens at once; /health answers 503 while the engine warms up, then 200.
    """
    serve_foreground(host, port, engine_kwargs or {})


def start(engine: Engine, host: str = HOST, port: int = PORT) -> str:
    """Serve `engine` from a daemon thread of this process; the base URL once /health answers.

    While one runs, asking again for its port (or port 0) returns its URL and serves the
    engine given; another address raises KokoroError.
    """
    return serve_background(engine, host, port)


def stop() -> bool:
    """Stop the server `start` began; False if none was running."""
    return stop_serving()
