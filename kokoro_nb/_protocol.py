"""The player's wire protocol in Python: build, validate and reassemble its messages.

player.js's top comment is the reference; this module mirrors it so the kernel side and
the tests (and a fuzzer) share one definition. Kernel → browser: ``start``, ``chunk``
(16-bit PCM in one binary buffer), ``end`` and ``abort``. Browser → kernel: ``ack``,
``stop`` and ``state``. Every message names its stream; chunk messages are numbered.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

import numpy as np

from kokoro_engine import SAMPLE_RATE, pcm16

# Well under the frontends' limits (Jupyter's websocket and VS Code's IPC cope with MiBs,
# but smaller messages keep the wire responsive and the reorder buffer small).
MAX_BUFFER_BYTES = 128 * 1024
MAX_SAMPLES = MAX_BUFFER_BYTES // 2
TITLE_CHARS = 200
TEXT_CHARS = 400
# stopped: the browser's Stop or kokoro_nb.stop(); superseded: a new run of the same cell or a
# --now utterance; error: the engine failed; closed: the widget was closed; interrupted: the kernel was interrupted.
ABORT_REASONS = ("stopped", "superseded", "error", "closed", "interrupted")
BROWSER_STATES = (
    "idle",
    "buffering",
    "blocked",
    "queued",
    "playing",
    "paused",
    "ended",
    "stopped",
)
PLAYING_STATES = ("buffering", "blocked", "queued", "playing")  # audio is on its way or heard

Buffer = Union[bytes, bytearray, memoryview]  # noqa: UP007 (a runtime alias on 3.10)


class ProtocolError(ValueError):
    """A message that does not follow the wire protocol."""


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    stream: int
    rate: int
    title: str = ""
    voice: str = ""
    speed: float = 1.0
    queue: bool = False
    chars: int = 0


@dataclass(frozen=True)
class ChunkMsg:
    stream: int
    seq: int
    offset: int
    piece: int
    text: str
    pcm: bytes = field(repr=False)

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2


@dataclass(frozen=True)
class End:
    stream: int
    count: int
    samples: int
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Abort:
    stream: int
    count: int
    samples: int
    reason: str
    error: str = ""


@dataclass(frozen=True)
class Ack:
    stream: int
    seq: int
    samples: int


@dataclass(frozen=True)
class Stop:
    stream: int


@dataclass(frozen=True)
class State:
    stream: int
    state: str
    position: float = 0.0


Message = Union[Start, ChunkMsg, End, Abort, Ack, Stop, State]  # noqa: UP007


# --- encoding (kernel side) ---------------------------------------------------------------


def short(text: str, limit: int) -> str:
    """At most `limit` characters: titles and captions need not carry a whole book."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TYPES: dict[type, str] = {
    Start: "start",
    ChunkMsg: "chunk",
    End: "end",
    Abort: "abort",
    Ack: "ack",
    Stop: "stop",
    State: "state",
}


def encode(message: Message) -> tuple[dict[str, Any], list[bytes]]:
    """A message as it goes over the wire: its JSON content and its binary buffers.

    ``decode(*encode(m)) == m`` for every valid message (tests/test_nb_reliability.py checks it).
    """
    kind = _TYPES.get(type(message))
    if kind is None:
        raise ProtocolError(f"not a protocol message: {type(message).__name__}")
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    buffers = [fields.pop("pcm")] if isinstance(message, ChunkMsg) else []
    for name, value in fields.items():  # plain JSON values: numpy numbers and mappings are not
        if isinstance(value, Mapping):
            fields[name] = dict(value)
        elif isinstance(value, (bool, np.bool_)):
            fields[name] = bool(value)
        elif isinstance(value, (float, np.floating)):
            fields[name] = float(value)
        elif isinstance(value, (int, np.integer)):
            fields[name] = int(value)
    return {"type": kind, **fields}, buffers


class Transport(Protocol):
    """Where messages go: a widget's comm in a kernel, a recording in tests."""

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None: ...


@dataclass
class Sent:
    content: dict[str, Any]
    buffers: list[bytes]
    at: float = field(default_factory=time.perf_counter)


class RecordingTransport:
    """A test double that records what would go over the wire (jupyter_rfb style)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.sent.append(Sent(dict(content), [bytes(b) for b in buffers or []]))

    def decoded(self) -> list[Message]:
        return [decode(s.content, s.buffers) for s in self.sent]


class StreamWriter:
    """The kernel's side of one stream: numbers chunk messages and tracks sample offsets."""

    def __init__(self, transport: Transport, stream: int, rate: int = SAMPLE_RATE) -> None:
        self.transport = transport
        self.stream = stream
        self.rate = rate
        self.count = 0  # chunk messages sent so far (the next seq)
        self.samples = 0  # samples sent so far (the next offset)
        self.finished = False
        self.sent_at: list[float] = []  # perf_counter() of each chunk message (for profiles)

    def start(
        self, title: str, voice: str, speed: float, queue: bool = False, chars: int = 0
    ) -> None:
        """Announce the stream; `chars` (the text's length) lets the player estimate its length."""
        start = Start(
            self.stream, self.rate, short(title, TITLE_CHARS), voice, float(speed), queue, chars
        )
        self._send(*encode(start))

    def chunk(self, samples: np.ndarray, text: str, piece: int) -> int:
        """Send one engine chunk, split so no buffer exceeds MAX_BUFFER_BYTES; returns parts."""
        data = pcm16(samples)
        parts = 0
        for start in range(0, len(data), MAX_BUFFER_BYTES):
            part = data[start : start + MAX_BUFFER_BYTES]
            message = ChunkMsg(
                self.stream, self.count, self.samples, int(piece), short(text, TEXT_CHARS), part
            )
            self._send(*encode(message))
            self.sent_at.append(time.perf_counter())
            self.count += 1
            self.samples += len(part) // 2
            parts += 1
        return parts

    def end(self, metrics: Mapping[str, Any] | None = None) -> None:
        self._finish(End(self.stream, self.count, self.samples, summary(metrics or {})))

    def abort(self, reason: str, error: str = "") -> None:
        self._finish(Abort(self.stream, self.count, self.samples, reason, short(error, TEXT_CHARS)))

    def _finish(self, message: End | Abort) -> None:
        if not self.finished:  # exactly one end or abort per stream
            self.finished = True
            self._send(*encode(message))

    def _send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.transport.send(content, buffers or [])


def summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The few request metrics the player shows (JSON-safe numbers and strings)."""
    keys = ("ttfa_s", "total_s", "audio_s", "rtf", "provider", "cached")
    return {k: metrics[k] for k in keys if isinstance(metrics.get(k), (int, float, str, bool))}


# --- decoding and validation ---------------------------------------------------------------


def decode(content: Mapping[str, Any], buffers: Sequence[Buffer] = ()) -> Message:
    """Check one message against the protocol and return it typed; ProtocolError if not."""
    if not isinstance(content, Mapping):
        raise ProtocolError(f"a message is a JSON object, not {type(content).__name__}")
    kind = content.get("type")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    if buffers is None:
        buffers = ()
    if not isinstance(buffers, Sequence) or isinstance(buffers, (str, bytes, bytearray)):
        raise ProtocolError(f"buffers come as a list, not {type(buffers).__name__}")
    if kind != "chunk" and buffers:
        raise ProtocolError(f"a {kind} message carries no binary buffers")
    return decoder(content, buffers)


def _int(content: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = content.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolError(
            f"{content.get('type')}.{key} must be an integer ≥ {minimum}, not {value!r}"
        )
    return value


def _str(content: Mapping[str, Any], key: str, default: str = "") -> str:
    value = content.get(key, default)
    if not isinstance(value, str):
        raise ProtocolError(f"{content.get('type')}.{key} must be a string, not {value!r}")
    return value


def _number(content: Mapping[str, Any], key: str, default: float) -> float:
    value = content.get(key, default)
    try:
        # float() of a huge JSON integer overflows; NaN and infinity are no speed or position.
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not isinstance(value, (int, float)) or not math.isfinite(number):
        raise ProtocolError(f"{content.get('type')}.{key} must be a finite number, not {value!r}")
    return number


def _start(content: Mapping[str, Any], _: Sequence[Buffer]) -> Start:
    queue = content.get("queue", False)
    if not isinstance(queue, bool):
        raise ProtocolError(f"start.queue must be true or false, not {queue!r}")
    return Start(
        _int(content, "stream", 1),
        _int(content, "rate", 1),
        _str(content, "title"),
        _str(content, "voice"),
        _number(content, "speed", 1.0),
        queue,
        _int(content, "chars") if "chars" in content else 0,
    )


def _chunk(content: Mapping[str, Any], buffers: Sequence[Buffer]) -> ChunkMsg:
    if len(buffers) != 1:
        raise ProtocolError(f"a chunk carries exactly one buffer, not {len(buffers)}")
    if not isinstance(buffers[0], (bytes, bytearray, memoryview)):
        raise ProtocolError(f"a chunk's buffer holds bytes, not {type(buffers[0]).__name__}")
    try:
        pcm = bytes(buffers[0])  # a non-contiguous memoryview cannot be copied to bytes
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"a chunk's buffer cannot be read: {exc}") from None
    if len(pcm) % 2 or not pcm:
        raise ProtocolError(
            f"chunk PCM must be a non-empty whole number of int16 samples ({len(pcm)} bytes)"
        )
    if len(pcm) > MAX_BUFFER_BYTES:
        raise ProtocolError(f"chunk buffer of {len(pcm)} bytes exceeds {MAX_BUFFER_BYTES}")
    return ChunkMsg(
        _int(content, "stream", 1),
        _int(content, "seq"),
        _int(content, "offset"),
        _int(content, "piece"),
        _str(content, "text"),
        pcm,
    )


def _end(content: Mapping[str, Any], _: Sequence[Buffer]) -> End:
    metrics = content.get("metrics", {})
    if not isinstance(metrics, Mapping):
        raise ProtocolError(f"end.metrics must be an object, not {metrics!r}")
    return End(
        _int(content, "stream", 1), _int(content, "count"), _int(content, "samples"), metrics
    )


def _abort(content: Mapping[str, Any], _: Sequence[Buffer]) -> Abort:
    reason = _str(content, "reason")
    if reason not in ABORT_REASONS:
        raise ProtocolError(f"abort.reason must be one of {ABORT_REASONS}, not {reason!r}")
    stream, count, samples = (
        _int(content, k, m) for k, m in (("stream", 1), ("count", 0), ("samples", 0))
    )
    return Abort(stream, count, samples, reason, _str(content, "error"))


def _ack(content: Mapping[str, Any], _: Sequence[Buffer]) -> Ack:
    return Ack(_int(content, "stream", 1), _int(content, "seq", -1), _int(content, "samples"))


def _stop(content: Mapping[str, Any], _: Sequence[Buffer]) -> Stop:
    return Stop(_int(content, "stream", 1))


def _state(content: Mapping[str, Any], _: Sequence[Buffer]) -> State:
    state = _str(content, "state")
    if state not in BROWSER_STATES:
        raise ProtocolError(f"state.state must be one of {BROWSER_STATES}, not {state!r}")
    return State(_int(content, "stream", 1), state, _number(content, "position", 0.0))


_DECODERS: dict[str, Callable[[Mapping[str, Any], Sequence[Buffer]], Message]] = {
    "start": _start,
    "chunk": _chunk,
    "end": _end,
    "abort": _abort,
    "ack": _ack,
    "stop": _stop,
    "state": _state,
}


# --- reassembly (what the browser does, in Python) ----------------------------------------


class Reassembler:
    """The browser's receiving logic: reorder by seq, drop stale streams, join the audio.

    A message of a newer stream starts that stream (its start may arrive late); one of an
    older stream is stale and dropped. Chunks are released in seq order; each must begin at
    the sample where the previous one ended.
    """

    def __init__(self) -> None:
        self.stream = 0
        self.start: Start | None = None
        self.final: End | Abort | None = None
        self.pending: dict[int, ChunkMsg] = {}
        self.parts: list[bytes] = []
        self.texts: list[str] = []
        self.next_seq = 0
        self.samples = 0
        self.stale = 0

    def feed(self, message: Message) -> None:
        if isinstance(message, (Ack, Stop, State)):
            raise ProtocolError(
                f"{type(message).__name__.lower()} goes from the browser to the kernel"
            )
        if message.stream < self.stream:
            self.stale += 1
            return
        if message.stream > self.stream:
            self.__init__()  # type: ignore[misc]  # a new stream replaces the old one wholesale
            self.stream = message.stream
        if isinstance(message, Start):
            self.start = message
        elif isinstance(message, ChunkMsg):
            self._chunk(message)
        else:
            self._final(message)
        self._drain()

    def _chunk(self, message: ChunkMsg) -> None:
        if message.seq < self.next_seq or message.seq in self.pending:
            raise ProtocolError(f"chunk seq {message.seq} of stream {self.stream} arrived twice")
        if self.final is not None and message.seq >= self.final.count:
            raise ProtocolError(
                f"chunk seq {message.seq} is beyond the announced count {self.final.count}"
            )
        self.pending[message.seq] = message

    def _final(self, message: End | Abort) -> None:
        if self.final is not None:
            raise ProtocolError(f"stream {self.stream} ended twice")
        if any(seq >= message.count for seq in self.pending) or self.next_seq > message.count:
            raise ProtocolError(
                f"stream {self.stream} ended at {message.count} after later chunks arrived"
            )
        self.final = message

    def _drain(self) -> None:
        while self.next_seq in self.pending:
            chunk = self.pending.pop(self.next_seq)
            if chunk.offset != self.samples:
                raise ProtocolError(
                    f"chunk {chunk.seq} starts at sample {chunk.offset}, expected {self.samples}"
                )
            self.parts.append(chunk.pcm)
            self.texts.append(chunk.text)
            self.samples += chunk.samples
            self.next_seq += 1
        if self.complete and self.final is not None and self.samples != self.final.samples:
            raise ProtocolError(
                f"stream {self.stream} announced {self.final.samples} samples, got {self.samples}"
            )

    @property
    def complete(self) -> bool:
        """Every chunk announced by the end (or abort) message has arrived."""
        return self.final is not None and self.next_seq == self.final.count

    def audio(self) -> np.ndarray:
        """The contiguous audio received so far, as int16."""
        return np.frombuffer(b"".join(self.parts), dtype="<i2")
