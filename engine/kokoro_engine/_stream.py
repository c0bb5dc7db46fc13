"""One request as a stream: its validated arguments, and its chunks delivered in order."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from typing import NoReturn, Protocol

from ._audio import Chunk
from ._errors import EngineClosedError
from ._metrics import RequestMetrics, finish
from ._planner import Piece
from ._pool import Cancelled, CancelToken


class Request:
    """One call's validated arguments, planning settings, cancel token and growing metrics."""

    def __init__(
        self,
        text: str,
        voice: str,
        speed: float,
        lang: str,
        *,
        is_phonemes: bool,
        normalize: bool,
        first_piece_ids: int,
        growth: float,
    ) -> None:
        self.text, self.voice, self.speed, self.lang = text, voice, speed, lang
        self.is_phonemes, self.normalize = is_phonemes, normalize
        self.first_piece_ids, self.growth = first_piece_ids, growth
        self.cancel = CancelToken()
        self.t0 = time.perf_counter()
        self.metrics: RequestMetrics = {
            "voice": voice,
            "speed": speed,
            "lang": lang,
            "chars": len(text),
            "ttfa_s": None,
            "stages": {"normalize_s": 0.0, "phonemize_s": 0.0},
            "pieces": [],
        }


class Synthesis(Protocol):
    """What a Stream needs of the engine: pieces planned, each synthesized, a record kept."""

    @property
    def closed(self) -> bool: ...

    @property
    def lanes(self) -> int:
        """How many lanes can run pieces at once."""
        ...

    def plan(self, request: Request) -> Iterator[Piece]: ...

    def submit(self, request: Request, piece: Piece) -> Future[Chunk]:
        """Start synthesizing `piece`; RuntimeError once the engine has closed."""
        ...

    def begin(self, request: Request) -> None: ...

    def end(self, request: Request) -> None:
        """The request is over and its metrics are complete."""
        ...


class Stream:
    """Ordered chunks of one request, each yielded as soon as it is ready.

    Synthesis starts when the stream is created. Closing it (``close()``, leaving a ``with``
    block, breaking out of a loop and dropping it) cancels the remaining pieces.
    """

    def __init__(self, synthesis: Synthesis, request: Request) -> None:
        self._synthesis = synthesis
        self._request = request
        self.metrics = request.metrics
        self._ready: deque[Future[Chunk]] = deque()
        self._cond = threading.Condition()
        self._planned_all = False
        self._error: BaseException | None = None
        # Pieces planned ahead of the consumer: enough to keep every lane busy, and no more,
        # so a very long text streams in bounded memory.
        self._window = threading.Semaphore(synthesis.lanes + 4)
        self._closed = False
        self._caller_closed = False
        self._exhausted = False  # the producer planned the text's last piece
        self._ending = threading.Lock()  # a second closer waits until the record is complete
        synthesis.begin(request)
        self._producer = threading.Thread(target=self._produce, name="kokoro-plan", daemon=True)
        self._producer.start()

    def _produce(self) -> None:
        request, synthesis = self._request, self._synthesis
        stages = request.metrics["stages"]
        try:
            pieces = synthesis.plan(request)
            while not request.cancel.is_set():
                start = time.perf_counter()
                piece = next(pieces, None)
                stages["phonemize_s"] += time.perf_counter() - start
                if piece is None:
                    self._exhausted = True
                    break
                while not self._window.acquire(timeout=0.1):
                    if request.cancel.is_set():
                        return
                try:
                    future = synthesis.submit(request, piece)
                except RuntimeError:  # the engine closed (its executor shut down) meanwhile
                    if synthesis.closed:
                        return
                    raise
                with self._cond:
                    self._ready.append(future)
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced to the consumer in order
            with self._cond:
                self._error = exc
        finally:
            stages["phonemize_s"] = round(stages["phonemize_s"], 4)
            with self._cond:
                self._planned_all = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Chunk]:
        return self

    def __next__(self) -> Chunk:
        future = self._next_future()
        if future is None:
            self._stop(delivered_all=self._exhausted and not self._closed)
        try:
            chunk = future.result()
        except (Cancelled, CancelledError):  # CancelledError: engine.close() dropped the piece
            self._stop(delivered_all=False)
        except BaseException:
            self.close()
            raise
        finally:
            self._window.release()
        if self.metrics["ttfa_s"] is None:
            self.metrics["ttfa_s"] = round(time.perf_counter() - self._request.t0, 4)
        self.metrics["pieces"].append(chunk.metrics)
        return chunk

    def _next_future(self) -> Future[Chunk] | None:
        with self._cond:
            while not self._ready and not self._planned_all and not self._closed:
                self._cond.wait(0.1)
            if self._ready and not self._closed:
                return self._ready.popleft()
            if self._error is not None and not self._closed:
                error, self._error = self._error, None
                self.close()
                raise error
            return None

    def _stop(self, *, delivered_all: bool) -> NoReturn:
        """End the iteration: quietly when done or closed by its caller, with an
        EngineClosedError when the engine was closed under it (else it would look complete)."""
        complete = delivered_all or not self._request.cancel.is_set()
        self._end(complete=complete)
        if not complete and self._synthesis.closed and not self._caller_closed:
            raise EngineClosedError(
                "the Engine was closed while this text was being spoken; "
                f"{len(self.metrics['pieces'])} piece(s) had been delivered"
            )
        raise StopIteration

    def close(self) -> None:
        """Stop synthesizing what is left; chunks already yielded stay valid."""
        self._caller_closed = True
        self._end(complete=False)

    def _end(self, *, complete: bool) -> None:
        """Finish the request once, whichever thread gets here first (consumer or closer).

        A thread that arrives second returns only after the first has written the
        request's record, so whoever reads the metrics next sees them whole.
        """
        with self._ending:
            with self._cond:
                if self._closed:
                    return
                self._closed = True
                for future in self._ready:
                    future.cancel()
                self._ready.clear()
                self._cond.notify_all()
            self._request.cancel.set()
            finish(self.metrics)
            self.metrics["complete"] = complete
            self._synthesis.end(self._request)

    @property
    def text(self) -> str:
        """The text this stream speaks, as it was given."""
        return self._request.text

    @property
    def cancelled(self) -> bool:
        return self._request.cancel.is_set() and not self.metrics.get("complete", False)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._request.cancel.set()
