"""Errors as one readable line: the engine's own errors show without a stack trace in a notebook."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kokoro_engine import KokoroError


def error_line(exc: BaseException) -> str:
    """An exception as one readable line: its type and the first line of its message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def shorten_traceback(exc: BaseException) -> BaseException:
    """Make IPython show `exc` as one line instead of a stack trace (type unchanged)."""
    line = error_line(exc)
    exc._render_traceback_ = lambda: [f"\x1b[0;31m{line}\x1b[0m"]  # type: ignore[attr-defined]
    return exc


def is_kokoro_error(exc: BaseException) -> bool:
    return isinstance(exc, KokoroError)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Let the engine's errors (bad voice, speed, text) raised inside show as one line.

    The user's mistake is in their input, not in our frames, so the stack would only hide
    the message. Other exceptions pass unchanged. Usable as a decorator too.
    """
    try:
        yield
    except Exception as exc:
        if is_kokoro_error(exc):
            raise shorten_traceback(exc) from None
        raise
