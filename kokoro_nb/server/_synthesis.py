"""Synthesis for POST /v1/audio/speech: one engine Stream per request, answered whole or streamed."""

from __future__ import annotations

import base64
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from kokoro_engine import KokoroError, Stream

from ._encode import (
    FORMATS,
    SLICE_SAMPLES,
    STREAMABLE,
    SoundfileStream,
    StreamEncoder,
    WholeEncoder,
    stream_encoder,
)
from ._errors import from_kokoro
from ._schema import SpeechRequest, check_request
from ._state import ServerState

# Formats streamed unless the request says otherwise: their headers need no length, so the
# streamed file is exactly as valid as a whole one. WAV and FLAC come whole by default.
STREAM_BY_DEFAULT = frozenset({"mp3", "opus", "pcm"})


class RequestSynthesis:
    """One request's engine Stream and encoder; its blocking steps run in worker threads."""

    def __init__(
        self, state: ServerState, body: SpeechRequest, stream: Stream, live: bool, t0: float
    ) -> None:
        self.state, self.stream, self.live, self.t0 = state, stream, live, t0
        self.fmt = body.response_format
        self.sse = body.stream_format == "sse"
        self.encoder: StreamEncoder | None = stream_encoder(self.fmt) if live else None
        self.whole: WholeEncoder | None = None if live else WholeEncoder(self.fmt)
        # Costly encoders go in slices; PCM and WAV cost nothing, so whole chunks go out.
        self.slice = SLICE_SAMPLES if isinstance(self.encoder, SoundfileStream) else 0
        self.pending: deque[np.ndarray] = deque()
        self.ttfb: float | None = None
        self.done = False
        self.failed = False  # an engine error, not a departed client, ended it
        self.closed = False
        self.finished_encoder = False

    def next_samples(self) -> np.ndarray | None:
        chunk = next(self.stream, None)
        return None if chunk is None else chunk.samples

    def add_next(self) -> bool:
        """Encode the next chunk into the whole clip; False once there are no more."""
        assert self.whole is not None
        samples = self.next_samples()
        if samples is not None:
            self.whole.add(samples)
        return samples is not None

    def pull(self) -> bytes | None:
        """The bytes for the next slice of audio; the encoder's tail after the last; then None."""
        assert self.encoder is not None
        if not self.pending:
            samples = self.next_samples()
            if samples is not None:
                self.pending = _slices(samples, self.slice)
        if self.pending:
            return self.encoder.encode(self.pending.popleft())
        if self.finished_encoder:
            return None
        self.finished_encoder = True
        return self.encoder.finish()

    def headers(self) -> dict[str, str]:
        """Engine timings, so a client can tell server overhead from synthesis time."""
        m = self.stream.metrics
        out = {"x-kokoro-voice": str(m.get("voice")), "cache-control": "no-store"}
        if m.get("ttfa_s") is not None:
            out["x-kokoro-ttfa-seconds"] = f"{m['ttfa_s']:.4f}"
        if m.get("total_s") is not None:
            out["x-kokoro-synthesis-seconds"] = f"{m['total_s']:.4f}"
            out["x-kokoro-audio-seconds"] = f"{m['audio_s']:.4f}"
            out["x-kokoro-provider"] = str(m.get("provider"))
        return out

    def complete(self) -> None:
        self.done = True
        total = time.perf_counter() - self.t0
        ttfb = self.ttfb if self.ttfb is not None else total
        self.state.metrics.finished(self.fmt, self.live, self.stream.metrics, ttfb, total)

    def close(self) -> None:
        """Stop synthesis if the audio did not go out complete (the client left).

        Called on the event loop once no worker thread holds this request: a cancelled
        `run` waits for its thread before the cancellation lands."""
        if self.closed:
            return
        self.closed = True
        if not self.done and not self.failed:
            self.state.metrics.disconnects.inc()
        self.stream.close()
        if isinstance(self.encoder, SoundfileStream):
            self.encoder.close()
        if self.whole is not None:
            self.whole.close()
        self.state.metrics.in_flight.dec()


async def synthesize_request(state: ServerState, body: SpeechRequest, request: Request) -> Response:
    """Check the request, start its engine Stream, and answer whole or streamed by format."""
    t0 = time.perf_counter()
    request.state.response_format = body.response_format
    voice = check_request(body, state.max_input_chars)
    engine = state.require_engine()
    live = _streams(body)
    stream = await state.run(engine.stream, body.input, voice, body.speed, body.lang)
    state.metrics.in_flight.inc()
    synthesis = RequestSynthesis(state, body, stream, live, t0)
    try:
        # The first chunk comes before the status line, so text the engine cannot speak
        # still gets a 4xx rather than a 200 cut short.
        first = await state.run(synthesis.pull if live else synthesis.add_next)
    except KokoroError as exc:
        synthesis.failed = True
        synthesis.close()
        raise from_kokoro(exc, during_synthesis=True) from exc
    except BaseException as exc:
        synthesis.failed = isinstance(exc, Exception)  # not a cancellation: a departed client
        synthesis.close()
        raise
    if live:
        return _StreamedSynthesis(synthesis, first)
    return await _whole_response(synthesis, request)


def _slices(samples: np.ndarray, size: int) -> deque[np.ndarray]:
    if not size or len(samples) <= size:
        return deque([samples])
    return deque(samples[i : i + size] for i in range(0, len(samples), size))


def _streams(body: SpeechRequest) -> bool:
    if body.response_format not in STREAMABLE:
        return False
    if body.stream_format == "sse":
        return True
    return body.response_format in STREAM_BY_DEFAULT if body.stream is None else body.stream


async def _whole_response(synthesis: RequestSynthesis, request: Request) -> Response:
    assert synthesis.whole is not None
    try:
        while await synthesis.state.run(synthesis.add_next):
            if await request.is_disconnected():
                return Response(status_code=499)  # nobody is listening; close() counts it
        data = await synthesis.state.run(synthesis.whole.finish)
        synthesis.ttfb = time.perf_counter() - synthesis.t0
        synthesis.complete()
    except KokoroError as exc:
        synthesis.failed = True
        raise from_kokoro(exc, during_synthesis=True) from exc
    finally:
        synthesis.close()
    return Response(data, media_type=FORMATS[synthesis.fmt][0], headers=synthesis.headers())


class _StreamedSynthesis(StreamingResponse):
    """A StreamingResponse that always ends its request's synthesis, even when the client
    left before the body generator ever ran (then no `finally` of its own would)."""

    def __init__(self, synthesis: RequestSynthesis, first: bytes | None) -> None:
        media = "text/event-stream" if synthesis.sse else FORMATS[synthesis.fmt][0]
        super().__init__(_body(synthesis, first), media_type=media, headers=synthesis.headers())
        self.synthesis = synthesis

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.synthesis.close()


async def _body(synthesis: RequestSynthesis, first: bytes | None) -> AsyncIterator[bytes]:
    """Audio bytes as synthesized. A client that leaves cancels this generator (Starlette
    watches for http.disconnect), and `finally` stops the engine's remaining pieces."""
    try:
        data = first
        while data is not None:
            if data:
                if synthesis.ttfb is None:
                    synthesis.ttfb = time.perf_counter() - synthesis.t0
                yield _sse_delta(data) if synthesis.sse else data
            data = await synthesis.state.run(synthesis.pull)
        if synthesis.sse:
            yield _sse_done(synthesis.stream.metrics)
        synthesis.complete()
    except Exception as exc:
        # The status line is gone: the connection ends without its last chunk, which
        # clients report as an incomplete body rather than taking a cut clip as whole.
        synthesis.failed = True
        synthesis.state.metrics.errors.labels("server_error", type(exc).__name__).inc()
        raise
    finally:
        synthesis.close()


def _sse_delta(data: bytes) -> bytes:
    event = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")}
    return f"data: {json.dumps(event)}\n\n".encode()


def _sse_done(metrics: Mapping[str, Any]) -> bytes:
    chars = int(metrics.get("chars") or 0)
    usage = {"input_tokens": chars, "output_tokens": 0, "total_tokens": chars}
    return f"data: {json.dumps({'type': 'speech.audio.done', 'usage': usage})}\n\n".encode()
