"""The Engine: warm sessions resident in the process, text in, ordered audio chunks out."""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import _assets as assets
from . import _sessions as sessions
from ._audio import Audio, Chunk, fade, trim_silence
from ._errors import EngineClosedError, InputError
from ._metrics import RequestLog, finish, rss_mb
from ._phonemize import check_espeak_data, language
from ._planner import Piece, Planner
from ._pool import CPU, Cancelled, CancelToken, Lane, Pool
from ._types import SAMPLE_RATE, FloatArray
from ._variants import ensure_variant
from ._voices import VoiceBank, parse_blend

MIN_SPEED, MAX_SPEED = 0.5, 2.0
# Warm-up lengths (phoneme ids). The CPU pays its first-run cost once, whatever the shape;
# accelerators pick kernels per shape, so they warm over short, typical and long pieces.
CPU_WARM_LENGTHS = (24,)
ACCELERATOR_WARM_LENGTHS = (8, 64, 256)
# "The quick brown fox jumps over the lazy dog" as ids: warm-up on a real utterance.
_WARM_IDS = [
    81,
    83,
    16,
    53,
    65,
    156,
    102,
    53,
    16,
    44,
    123,
    156,
    43,
    135,
    56,
    16,
    48,
    156,
    69,
    158,
    53,
    61,
    16,
    82,
    156,
    138,
    55,
    58,
    61,
    16,
    156,
    57,
    135,
    64,
    85,
    16,
    81,
    83,
    16,
    54,
    156,
    47,
    102,
    68,
    102,
    16,
    46,
    156,
    69,
    158,
    92,
]
# Pieces of a request that go to the latency lane before it fans out to throughput lanes:
# until then playback has too little lead for a one-thread piece to finish in time.
LATENCY_PIECES = 2


def default_variant(provider: str) -> str:
    """The variant each provider runs unless told otherwise (docs/variants.md has the figures)."""
    if provider == CPU:
        return os.environ.get("KOKORO_NB_CPU_VARIANT", "int8")
    return "fp32"  # integer kernels are CPU-only: on accelerators int8 means Memcpy everywhere


class Engine:
    """Kokoro-82M text-to-speech with warm ONNX Runtime sessions.

    >>> eng = Engine()
    >>> audio = eng.synthesize("Hello.", voice="af_heart")
    """

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        voices: str | os.PathLike[str] | None = None,
        variant: str | None = None,
        providers: list[str] | None = None,
        provider_options: dict[str, dict[str, str]] | None = None,
        fetch: bool = True,
        normalize: bool = True,
        first_piece_ids: int = 32,
        growth: float = 2.0,
        audio_cache_mb: float = 256,
        history: int = 256,
        background_warmup: bool = True,
        split: bool = True,
    ) -> None:
        self._closed = False
        self._split = split and os.environ.get("KOKORO_NB_SPLIT", "1") != "0"
        self.normalize = normalize
        self.first_piece_ids = first_piece_ids
        self.growth = growth
        self._model_int8 = assets.model_path(model, fetch=fetch)
        self._explicit_model = model is not None or bool(os.environ.get("KOKORO_NB_MODEL"))
        self._bank = VoiceBank(assets.voices_dir(voices), fetch=fetch)
        check_espeak_data()  # before any session: without its data espeak-ng exits the process
        self._providers = sessions.choose_providers(providers)
        self._provider_options = provider_options or {}
        self._variant_asked = variant
        self.variants: dict[str, str] = {}
        self.recent = RequestLog(history)
        self._audio_cache = _AudioCache(int(audio_cache_mb * 2**20))
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="kokoro-piece")
        self._live: set[CancelToken] = set()
        self._live_lock = threading.Lock()
        self.pool = Pool()
        self.load_s: dict[str, float] = {}
        # Text front-end imports and espeak's start-up overlap the session build
        # (onnxruntime builds without holding the GIL): a shorter cold start.
        primer = threading.Thread(target=_prime_text_front_end, daemon=True)
        primer.start()
        self._build_first_lanes()
        primer.join()
        self._warm_thread = threading.Thread(
            target=self._build_rest, name="kokoro-warm", daemon=True
        )
        self._warm_done = threading.Event()
        if background_warmup:
            self._warm_thread.start()
            # onnxruntime aborts the process if it is torn down mid-build: wait at exit.
            atexit.register(_stop_warming, weakref.ref(self))
        else:
            self._build_rest()

    # --- construction -------------------------------------------------------------------

    def _model_for(self, provider: str) -> tuple[Path, str]:
        variant = self._variant_asked or default_variant(provider)
        if self._explicit_model or variant == "int8":
            return self._model_int8, "int8" if not self._explicit_model else "custom"
        return ensure_variant(self._model_int8, variant, assets.cache_dir()), variant

    def _build_first_lanes(self) -> None:
        for provider in self._providers:
            start = time.perf_counter()
            path, self.variants[provider] = self._model_for(provider)
            if provider == CPU:
                lane = sessions.latency_lane(path, split=self._split)
            else:
                options = self._provider_options.get(provider)
                lane = sessions.accelerator_lane(path, provider, options, split=self._split)
            lane.feeds["build"] = sessions.Feeds(lane.session)
            self._warm(lane, CPU_WARM_LENGTHS if lane.is_cpu else ACCELERATOR_WARM_LENGTHS)
            self.pool.add(lane)
            self.load_s[provider] = round(time.perf_counter() - start, 3)

    def _build_rest(self) -> None:
        """Throughput lanes, built off the caller's thread, at low priority and while no
        request is running, so they never slow what the latency lane is serving."""
        _lower_thread_priority()
        try:
            path, _ = self._model_for(CPU)
            for name, threads in sessions.throughput_lane_specs():
                if not self._wait_idle():
                    return
                lane = sessions.cpu_lane(path, name, threads, "throughput", split=self._split)
                lane.feeds["build"] = sessions.Feeds(lane.session)
                self._warm(lane, CPU_WARM_LENGTHS)
                self.pool.add(lane)
        finally:
            self._warm_done.set()

    def _wait_idle(self, quiet_s: float = 0.3, patience_s: float = 5.0) -> bool:
        """Wait until no request has been live for `quiet_s` (under steady load, at most
        `patience_s`: the extra lanes pay for themselves then); False once the engine closes."""
        quiet_since = start = time.monotonic()
        while not self._closed:
            if time.monotonic() - start > patience_s:
                return True
            if self._live:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return True
            time.sleep(0.05)
        return False

    def _warm(self, lane: Lane, lengths: tuple[int, ...]) -> None:
        style = np.zeros((1, 256), np.float32)
        for n in lengths:
            ids = (_WARM_IDS * (n // len(_WARM_IDS) + 1))[:n]
            lane.session.run(None, lane.feeds["build"](ids, style, 1.0))

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Block until every lane is built and warmed (they are built in the background)."""
        return self._warm_done.wait(timeout)

    def warmup(self) -> None:
        """Warm every lane again over representative lengths (e.g. after a long idle)."""
        self.wait_warm()
        for lane in list(self.pool.lanes):
            self._warm(lane, CPU_WARM_LENGTHS if lane.is_cpu else ACCELERATOR_WARM_LENGTHS)

    # --- the public calls ---------------------------------------------------------------

    @property
    def voices(self) -> list[str]:
        return self._bank.names

    def stream(
        self,
        text: str,
        voice: str = "af_heart",
        speed: float = 1.0,
        lang: str | None = None,
        *,
        is_phonemes: bool = False,
        normalize: bool | None = None,
    ) -> Stream:
        """Start synthesizing `text`; iterate the returned Stream for ordered chunks."""
        self._check_open()
        request = self._request(text, voice, speed, lang, is_phonemes, normalize)
        return Stream(self, request)

    def synthesize(
        self,
        text: str,
        voice: str = "af_heart",
        speed: float = 1.0,
        lang: str | None = None,
        *,
        is_phonemes: bool = False,
        normalize: bool | None = None,
    ) -> Audio:
        """The whole clip for `text` (same audio as joining a stream's chunks)."""
        with self.stream(
            text, voice, speed, lang, is_phonemes=is_phonemes, normalize=normalize
        ) as stream:
            parts = [chunk.samples for chunk in stream]
        samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return Audio(samples, SAMPLE_RATE, stream.metrics, text)

    def status(self) -> dict[str, Any]:
        """Providers, variants, lanes (warm state), memory and cache sizes."""
        return {
            "providers": list(self._providers),
            "available_providers": sessions.available_providers(),
            "variants": dict(self.variants),
            "model": str(self._model_int8),
            "voices_dir": str(self._bank.folder),
            "warm": self._warm_done.is_set(),
            "closed": self._closed,
            "lanes": self.pool.describe(),
            "load_s": dict(self.load_s),
            "rss_mb": round(rss_mb(), 1),
            "caches": {
                **self._bank.cache_info(),
                "audio_mb": round(self._audio_cache.bytes / 2**20, 2),
                "audio_items": len(self._audio_cache),
            },
            "requests": len(self.recent),
        }

    def clear_cache(self) -> None:
        self._audio_cache.clear()
        self._bank.clear()

    def close(self) -> None:
        """Stop every live stream and release the sessions."""
        if self._closed:
            return
        self._closed = True
        with self._live_lock:
            for token in self._live:
                token.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._warm_thread.is_alive():
            self._warm_thread.join()
        self.pool.lanes.clear()
        self._audio_cache.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Engine(providers={self._providers}, variants={self.variants}, lanes={len(self.pool.lanes)})"

    # --- requests -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("this Engine was closed; create a new one")

    def _request(
        self,
        text: Any,
        voice: Any,
        speed: Any,
        lang: str | None,
        is_phonemes: bool,
        normalize: bool | None,
    ) -> Request:
        if not isinstance(text, str):
            raise InputError(f"text must be a str, not {type(text).__name__}")
        if not text.strip():
            raise InputError("nothing to say: the text is empty")
        speed = _check_speed(speed)
        blend = parse_blend(voice)
        for name, _ in blend:
            self._bank.table(name)  # unknown voices fail now, not in the middle of a stream
        code = language(lang, blend[0][0])
        do_normalize = self.normalize if normalize is None else normalize
        return Request(
            text, voice.replace(" ", ""), speed, code, is_phonemes, do_normalize and not is_phonemes
        )

    def _prepare(self, request: Request) -> Iterator[Piece]:
        start = time.perf_counter()
        text = request.text
        if request.normalize:
            from ._normalize import normalize

            text = normalize(text, request.lang)
        request.metrics["stages"]["normalize_s"] = round(time.perf_counter() - start, 4)
        planner = Planner(request.lang, request.is_phonemes, self.first_piece_ids, self.growth)
        return planner.pieces(text)

    def _synthesize_piece(self, request: Request, piece: Piece) -> Chunk:
        key = (tuple(piece.ids), request.voice, request.speed, self.variants.get(CPU))
        started = time.perf_counter() - request.t0
        cached = self._audio_cache.get(key)
        info: dict[str, Any] = {
            "queue_wait_s": 0.0,
            "inference_s": 0.0,
            "provider": "cache",
            "post_s": 0.0,
        }
        if cached is None:
            cached, info = self._infer(request, piece)
            self._audio_cache.put(key, cached)
        pause = np.zeros(round(piece.pause_s / request.speed * SAMPLE_RATE), np.float32)
        samples = np.concatenate([cached, pause]) if pause.size else cached
        end = time.perf_counter() - request.t0
        metrics = {
            "seq": piece.seq,
            "text": piece.text,
            "n_ids": len(piece.ids),
            **info,
            "audio_s": round(len(samples) / SAMPLE_RATE, 4),
            "cached": info["provider"] == "cache",
            "start_s": round(started, 4),
            "end_s": round(end, 4),
        }
        metrics["rtf"] = (
            round(metrics["inference_s"] / metrics["audio_s"], 4) if metrics["audio_s"] else None
        )
        return Chunk(piece.seq, samples, piece.text, SAMPLE_RATE, metrics)

    def _infer(self, request: Request, piece: Piece) -> tuple[FloatArray, dict[str, Any]]:
        if not piece.ids:
            return np.zeros(0, np.float32), {
                "queue_wait_s": 0.0,
                "inference_s": 0.0,
                "provider": "none",
                "post_s": 0.0,
            }
        style = self._bank.style(request.voice, len(piece.ids))

        def feeds(lane: Lane) -> dict[str, Any]:
            return lane.feeds["build"](piece.ids, style, request.speed)

        result = self.pool.run(feeds, first=piece.seq < LATENCY_PIECES, cancel=request.cancel)
        post = time.perf_counter()
        speech = fade(trim_silence(result.audio))
        info = {
            "queue_wait_s": round(result.queue_wait_s, 4),
            "inference_s": round(result.inference_s, 4),
            "provider": result.lane.provider,
            "lane": result.lane.name,
            "post_s": round(time.perf_counter() - post, 4),
        }
        if result.fallback_from:
            info.update(fallback_from=result.fallback_from, error=result.error)
        return speech, info

    def _track(self, token: CancelToken, live: bool) -> None:
        with self._live_lock:
            (self._live.add if live else self._live.discard)(token)


class Request:
    """One call's validated arguments, cancel token and growing metrics."""

    def __init__(
        self, text: str, voice: str, speed: float, lang: str, is_phonemes: bool, normalize: bool
    ) -> None:
        self.text, self.voice, self.speed, self.lang = text, voice, speed, lang
        self.is_phonemes, self.normalize = is_phonemes, normalize
        self.cancel = CancelToken()
        self.t0 = time.perf_counter()
        self.metrics: dict[str, Any] = {
            "voice": voice,
            "speed": speed,
            "lang": lang,
            "chars": len(text),
            "ttfa_s": None,
            "stages": {"normalize_s": 0.0, "phonemize_s": 0.0},
            "pieces": [],
        }


class Stream:
    """Ordered chunks of one request, each yielded as soon as it is ready.

    Synthesis starts when the stream is created. Closing it (``close()``, leaving a ``with``
    block, breaking out of a loop and dropping it) cancels the remaining pieces.
    """

    def __init__(self, engine: Engine, request: Request) -> None:
        self._engine = engine
        self._request = request
        self.metrics = request.metrics
        self._ready: deque[Future[Chunk]] = deque()
        self._cond = threading.Condition()
        self._planned_all = False
        self._error: BaseException | None = None
        # Pieces planned ahead of the consumer: enough to keep every lane busy, and no more,
        # so a very long text streams in bounded memory.
        self._window = threading.Semaphore(len(engine.pool.lanes) + 4)
        self._closed = False
        self._caller_closed = False
        self._exhausted = False  # the producer planned the text's last piece
        self._ending = threading.Lock()  # a second closer waits until the record is complete
        engine._track(request.cancel, True)
        self._producer = threading.Thread(target=self._produce, name="kokoro-plan", daemon=True)
        self._producer.start()

    def _produce(self) -> None:
        request, engine = self._request, self._engine
        try:
            pieces = engine._prepare(request)
            while not request.cancel.is_set():
                start = time.perf_counter()
                piece = next(pieces, None)
                request.metrics["stages"]["phonemize_s"] += time.perf_counter() - start
                if piece is None:
                    self._exhausted = True
                    break
                while not self._window.acquire(timeout=0.1):
                    if request.cancel.is_set():
                        return
                try:
                    future = engine._executor.submit(engine._synthesize_piece, request, piece)
                except RuntimeError:  # the engine closed (its executor shut down) meanwhile
                    if engine._closed:
                        return
                    raise
                with self._cond:
                    self._ready.append(future)
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced to the consumer in order
            with self._cond:
                self._error = exc
        finally:
            request.metrics["stages"]["phonemize_s"] = round(
                request.metrics["stages"]["phonemize_s"], 4
            )
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
        if not complete and self._engine._closed and not self._caller_closed:
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
            self._engine._track(self._request.cancel, False)
            finish(self.metrics)
            self.metrics["complete"] = complete
            self._engine.recent.add(self.metrics)

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


def _prime_text_front_end() -> None:
    from ._normalize import normalize
    from ._phonemize import espeak

    espeak(normalize("Ready."), "en-us")


def _stop_warming(ref: weakref.ref[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine._closed = True
        engine._warm_thread.join()


def _lower_thread_priority() -> None:
    """Nice only the calling thread (Linux keeps a nice value per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)


def _check_speed(speed: Any) -> float:
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise InputError(
            f"speed must be a number between {MIN_SPEED} and {MAX_SPEED}, not {speed!r}"
        ) from None
    if not math.isfinite(value) or not MIN_SPEED <= value <= MAX_SPEED:
        raise InputError(
            f"speed {speed!r} is out of range: use a number from {MIN_SPEED} to {MAX_SPEED} (1.0 is normal)"
        )
    return value


class _AudioCache:
    """Finished piece audio by (ids, voice, speed, variant), least recently used out first."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap = cap_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[Any, ...], FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[Any, ...]) -> FloatArray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: FloatArray) -> None:
        if value.nbytes > self.cap:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.cap:
                _, old = self._items.popitem(last=False)
                self.bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
