"""The kernel's one shared Engine: built lazily on first use (or preloaded), then reused."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kokoro_engine import Engine

_lock = threading.RLock()
_engine: Engine | None = None
_options: dict[str, Any] = {}


def get_engine(**options: Any) -> Engine:
    """The kernel's Engine, built on first call (a few seconds) and shared afterwards.

    Options (``variant=``, ``providers=``, ...) go to ``kokoro_engine.Engine``; passing
    different ones than the running engine was built with replaces it.
    """
    global _engine, _options
    with _lock:  # a preload thread and a cell may ask at once: build exactly one
        if _engine is not None and (not options or options == _options):
            return _engine
        if _engine is not None:
            _engine.close()
            _engine = None
        from kokoro_engine import Engine

        _engine = Engine(**options)
        _options = dict(options)
        return _engine


def set_engine(engine: Engine) -> None:
    """Use an Engine you built yourself (a GPU one, a custom model) for all speech."""
    global _engine, _options
    with _lock:
        _engine, _options = engine, {}


def loaded_engine() -> Engine | None:
    """The engine if it has been built, without building it."""
    return _engine


def preload() -> threading.Thread:
    """Build the engine on a background thread so the first %%speak need not wait for it."""

    def build() -> None:
        # A failure is reported when a cell asks for the engine, with its own message.
        with contextlib.suppress(Exception):
            get_engine()

    thread = threading.Thread(target=build, name="kokoro-preload", daemon=True)
    thread.start()
    return thread
