"""The streaming player widget: kernel side of player.js (streams out, acks and stop in)."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ._protocol import Ack, ProtocolError, State, Stop, StreamWriter, Transport, decode

_HERE = Path(__file__).parent


class Player(anywidget.AnyWidget):
    """Plays streams of 16-bit PCM chunks gaplessly in the browser (Web Audio).

    One player can carry many streams one after another (each new one replaces the last);
    ``open_stream()`` hands out the writer for the next one. Messages from the browser
    (ack, stop, state) are recorded per stream; a stop calls the stream's stop callback.
    Closing the widget (``close()``, or the front end closing its comm) calls the close
    callback of every stream still open: nobody is left to hear them.
    """

    _esm = _HERE / "player.js"
    _css = _HERE / "player.css"
    player_id = traitlets.Unicode("").tag(sync=True)

    def __init__(self, transport: Transport | None = None, **kwargs: Any) -> None:
        super().__init__(player_id=uuid.uuid4().hex, **kwargs)
        # A test double may stand in for the comm (see _protocol.RecordingTransport).
        self._transport = transport
        self._lock = threading.Lock()
        self._streams = 0
        self._on_stop: dict[int, Callable[[], None]] = {}
        self._on_close: dict[int, Callable[[], None]] = {}
        self._closed = False
        self.acks: dict[int, Ack] = {}
        self.states: dict[int, State] = {}
        self.errors: list[str] = []
        self.on_msg(self._from_browser)
        if self.comm is not None:  # the front end closed the widget (its model was destroyed)
            self.comm.on_close(lambda _msg: self._closed_now())

    # --- kernel → browser ----------------------------------------------------------------

    def open_stream(
        self,
        on_stop: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> StreamWriter:
        """A writer for a new stream; `on_stop` runs when the browser's Stop is pressed,
        `on_close` (default: `on_stop`) when the widget is closed while the stream is open."""
        on_close = on_close or on_stop
        with self._lock:
            self._streams += 1
            stream = self._streams
            closed = self._closed
            if on_stop is not None:
                self._on_stop[stream] = on_stop
            if on_close is not None and not closed:
                self._on_close[stream] = on_close
        if closed and on_close is not None:
            on_close()  # a queued utterance whose player was closed before its turn
        return StreamWriter(self, stream)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the widget; streams still open are stopped (their callbacks say "closed")."""
        super().close()
        self._closed_now()

    def _closed_now(self) -> None:
        # getattr: ipywidgets' __del__ calls close() even when __init__ failed half-way.
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            self._closed = True
            callbacks = list(self._on_close.values())
            self._on_close.clear()
        for callback in callbacks:
            with contextlib.suppress(Exception):  # closing a widget never raises into a cell
                callback()

    @property
    def stream(self) -> int:
        """The newest stream's number (0 before the first)."""
        return self._streams

    def send(self, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        if getattr(self, "_closed", False):
            return  # closed widgets drop messages instead of raising
        if self._transport is not None:
            self._transport.send(content, buffers)
        elif self.comm is not None:  # closed widgets drop messages instead of raising
            super().send(content, buffers)

    # --- browser → kernel ----------------------------------------------------------------

    def _from_browser(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        try:
            message = decode(content, buffers)
        except ProtocolError as exc:
            # A stray or malformed message must not break a cell; keep the last few to inspect.
            self.errors = [*self.errors[-19:], str(exc)]
            return
        self.receive(message)

    def receive(self, message: Any) -> None:
        """Handle one decoded browser message (tests call this to play the browser's part)."""
        if isinstance(message, Ack):
            self.acks[message.stream] = message
        elif isinstance(message, State):
            self.states[message.stream] = message
        elif isinstance(message, Stop):
            with self._lock:
                on_stop = self._on_stop.get(message.stream)
            if on_stop is not None:
                on_stop()

    def forget(self, stream: int) -> None:
        """Drop a finished stream's stop callback (it holds the request alive)."""
        with self._lock:
            self._on_stop.pop(stream, None)
            self._on_close.pop(stream, None)

    def __repr__(self) -> str:
        # The text frontends without widgets (and saved notebooks) show in its place.
        return "Kokoro player (streams from a live kernel; the clip below plays without one)"
