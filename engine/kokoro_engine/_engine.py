"""The Engine: warm sessions resident in the process, text in, ordered audio chunks out."""

from __future__ import annotations

import atexit
import functools
import inspect
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec

import numpy as np

from . import _assets as assets
from . import _sessions as sessions
from ._audio import Audio
from ._cache import AudioCache
from ._errors import EngineClosedError, InputError
from ._metrics import RequestLog, rss_mb
from ._phonemize import check_espeak_data, language
from ._planner import FIRST_PIECE_IDS
from ._pool import CPU, Pool
from ._stream import Request, Stream
from ._synthesis import Synthesizer
from ._types import SAMPLE_RATE
from ._variants import ensure_variant
from ._voices import VoiceBank, parse_voice
from ._warmup import BackgroundLanes, prime_text_front_end, warm

MIN_SPEED, MAX_SPEED = 0.5, 2.0
_P = ParamSpec("_P")


def default_variant(provider: str) -> str:
    """The variant each provider runs unless told otherwise (docs/variants.md has the figures)."""
    if provider == CPU:
        return os.environ.get("KOKORO_NB_CPU_VARIANT", "int8")
    return "fp32"  # integer kernels are CPU-only: on accelerators int8 means Memcpy everywhere


def _whole_clip(
    stream: Callable[Concatenate[Engine, _P], Stream],
) -> Callable[Concatenate[Engine, _P], Audio]:
    """Engine.synthesize: the arguments of Engine.stream, the whole clip back.

    Made from stream rather than written out again, so the two can never take different
    arguments; the signature shown by help() and IDEs is stream's, returning Audio.
    """

    @functools.wraps(stream)
    def synthesize(self: Engine, /, *args: _P.args, **kwargs: _P.kwargs) -> Audio:
        with stream(self, *args, **kwargs) as chunks:
            parts = [chunk.samples for chunk in chunks]
        samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return Audio(samples, SAMPLE_RATE, chunks.metrics, chunks.text)

    synthesize.__name__, synthesize.__qualname__ = "synthesize", "Engine.synthesize"
    synthesize.__doc__ = "The whole clip for `text` (same audio as joining a stream's chunks)."
    synthesize.__signature__ = inspect.signature(stream).replace(return_annotation="Audio")  # type: ignore[attr-defined]
    return synthesize


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
        first_piece_ids: int = FIRST_PIECE_IDS,
        growth: float = 2.0,
        audio_cache_mb: float = 256,
        history: int = 256,
        background_warmup: bool = True,
        split: bool = True,
    ) -> None:
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
        self._audio_cache = AudioCache(int(audio_cache_mb * 2**20))
        self.pool = Pool()
        self._synthesis = Synthesizer(
            self.pool, self._bank, self._audio_cache, self.recent, self.variants
        )
        self.load_s: dict[str, float] = {}
        # Text front-end imports and espeak's start-up overlap the session build
        # (onnxruntime builds without holding the GIL): a shorter cold start.
        primer = threading.Thread(target=prime_text_front_end, daemon=True)
        primer.start()
        self._build_first_lanes()
        primer.join()
        self._more_lanes = BackgroundLanes(
            self.pool, lambda: self._model_for(CPU)[0], split=self._split
        )
        if background_warmup:
            # onnxruntime aborts the process if it is torn down mid-build: wait at exit.
            atexit.register(_stop_warming, weakref.ref(self))
        self._more_lanes.start(lambda: self._synthesis.busy, background=background_warmup)

    # --- construction -------------------------------------------------------------------

    def _model_for(self, provider: str) -> tuple[Path, str]:
        if self._explicit_model:
            return self._model_int8, "custom"
        variant = self._variant_asked or default_variant(provider)
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
            warm(lane)
            self.pool.add(lane)
            self.load_s[provider] = round(time.perf_counter() - start, 3)

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Block until every lane is built and warmed (they are built in the background)."""
        return self._more_lanes.wait(timeout)

    def warmup(self) -> None:
        """Warm every lane again over representative lengths (e.g. after a long idle)."""
        self.wait_warm()
        for lane in list(self.pool.lanes):
            warm(lane)

    # --- the public calls ---------------------------------------------------------------

    @property
    def voices(self) -> list[str]:
        return self._bank.names

    def check(
        self, text: str, voice: str = "af_heart", speed: float = 1.0, lang: str | None = None
    ) -> None:
        """Raise the InputError or VoiceError that `stream` would, without synthesizing."""
        self._request(text, voice, speed, lang, False, None)

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
        return Stream(self._synthesis, request)

    synthesize = _whole_clip(stream)

    def status(self) -> dict[str, Any]:
        """Providers, variants, lanes (warm state), memory and cache sizes."""
        return {
            "providers": list(self._providers),
            "available_providers": sessions.available_providers(),
            "variants": dict(self.variants),
            "model": str(self._model_int8),
            "voices_dir": str(self._bank.folder),
            "warm": self._more_lanes.done,
            "closed": self._synthesis.closed,
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
        if self._synthesis.closed:
            return
        self._more_lanes.stop(wait=False)
        self._synthesis.close()
        self._more_lanes.stop()
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
        if self._synthesis.closed:
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
        blend = parse_voice(voice)
        for name, _ in blend:
            self._bank.table(name)  # unknown voices fail now, not in the middle of a stream
        code = language(lang, blend[0][0])
        do_normalize = self.normalize if normalize is None else normalize
        return Request(
            text,
            voice.replace(" ", ""),
            speed,
            code,
            is_phonemes=is_phonemes,
            normalize=do_normalize and not is_phonemes,
            first_piece_ids=self.first_piece_ids,
            growth=self.growth,
        )


def _stop_warming(ref: weakref.ref[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine._more_lanes.stop()


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
