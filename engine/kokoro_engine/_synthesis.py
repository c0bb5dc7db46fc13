"""Pieces to chunks: planning a request, and synthesizing each piece on the pool (or from the cache)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ._audio import Chunk, fade, trim_silence
from ._cache import AudioCache
from ._metrics import PieceMetrics, PieceTiming, RequestLog
from ._planner import Piece, Planner, headroom
from ._pool import CPU, CancelToken, Job, Lane, Pool
from ._stream import Request
from ._types import SAMPLE_RATE, FloatArray
from ._voices import VoiceBank


class Synthesizer:
    """The engine's side of every Stream (see _stream.Synthesis): plans, runs, records."""

    def __init__(
        self,
        pool: Pool,
        bank: VoiceBank,
        cache: AudioCache,
        recent: RequestLog,
        variants: dict[str, str],
    ) -> None:
        self.pool, self.bank, self.cache, self.recent = pool, bank, cache, recent
        self._variants = variants  # filled as lanes are built; the CPU's keys the cache
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="kokoro-piece")
        self._live: set[CancelToken] = set()
        self._live_lock = threading.Lock()
        self._closed = False

    # --- what a Stream calls --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lanes(self) -> int:
        return len(self.pool.lanes)

    @property
    def busy(self) -> bool:
        """Whether any request is live."""
        return bool(self._live)

    def plan(self, request: Request) -> Iterator[Piece]:
        start = time.perf_counter()
        text = request.text
        if request.normalize:
            from ._normalize import normalize

            text = normalize(text, request.lang)
        request.metrics["stages"]["normalize_s"] = round(time.perf_counter() - start, 4)
        planner = Planner(
            request.lang,
            request.is_phonemes,
            request.first_piece_ids,
            request.growth,
            headroom(self.pool.rate()),
        )
        return planner.pieces(text)

    def submit(self, request: Request, piece: Piece) -> Future[Chunk]:
        return self._executor.submit(self._piece, request, piece)

    def begin(self, request: Request) -> None:
        with self._live_lock:
            self._live.add(request.cancel)

    def end(self, request: Request) -> None:
        with self._live_lock:
            self._live.discard(request.cancel)
        self.recent.add(request.metrics)

    # --- the engine's own calls -------------------------------------------------------------

    def close(self) -> None:
        """Cancel every live request and drop the pieces not yet started."""
        self._closed = True
        with self._live_lock:
            for token in self._live:
                token.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # --- one piece --------------------------------------------------------------------------

    def _piece(self, request: Request, piece: Piece) -> Chunk:
        key = (tuple(piece.ids), request.voice, request.speed, self._variants.get(CPU))
        started = time.perf_counter() - request.t0
        cached = self.cache.get(key)
        info = _untimed("cache")
        if cached is None:
            cached, info = self._infer(request, piece)
            self.cache.put(key, cached)
        pause = np.zeros(round(piece.pause_s / request.speed * SAMPLE_RATE), np.float32)
        samples = np.concatenate([cached, pause]) if pause.size else cached
        end = time.perf_counter() - request.t0
        audio_s = round(len(samples) / SAMPLE_RATE, 4)
        metrics: PieceMetrics = {
            "seq": piece.seq,
            "text": piece.text,
            "n_ids": len(piece.ids),
            **info,
            "audio_s": audio_s,
            "cached": info["provider"] == "cache",
            "start_s": round(started, 4),
            "end_s": round(end, 4),
            "rtf": round(info["inference_s"] / audio_s, 4) if audio_s else None,
        }
        return Chunk(piece.seq, samples, piece.text, SAMPLE_RATE, metrics)

    def _infer(self, request: Request, piece: Piece) -> tuple[FloatArray, PieceTiming]:
        if not piece.ids:
            return np.zeros(0, np.float32), _untimed("none")
        style = self.bank.style(request.voice, len(piece.ids))

        def feeds(lane: Lane) -> dict[str, Any]:
            return lane.feed(piece.ids, style, request.speed)

        # Audio plays from about the request's start, so a piece is due when the audio
        # planned ahead of it would have played.
        job = Job(request.t0 + piece.offset_s / request.speed, piece.audio_s / request.speed)
        result = self.pool.run(feeds, job, cancel=request.cancel)
        post = time.perf_counter()
        speech = fade(trim_silence(result.audio))
        info: PieceTiming = {
            "queue_wait_s": round(result.queue_wait_s, 4),
            "inference_s": round(result.inference_s, 4),
            "provider": result.lane.provider,
            "lane": result.lane.name,
            "post_s": round(time.perf_counter() - post, 4),
        }
        if result.fallback_from:
            info["fallback_from"] = result.fallback_from
            info["error"] = result.error
        return speech, info


def _untimed(provider: str) -> PieceTiming:
    """The timing of a piece no lane ran: from the cache, or empty."""
    return {"queue_wait_s": 0.0, "inference_s": 0.0, "provider": provider, "post_s": 0.0}
