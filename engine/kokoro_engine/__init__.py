"""kokoro_engine: Kokoro-82M text-to-speech with warm ONNX Runtime sessions and ordered streaming."""

from ._assets import fetch_all
from ._audio import Audio, Chunk, check_format, pcm16
from ._bench import run_bench
from ._doctor import diagnose
from ._engine import Engine
from ._errors import (
    AssetError,
    EngineClosedError,
    InputError,
    KokoroError,
    PhonemeWarning,
    SynthesisError,
    VoiceError,
)
from ._manifest import VOICE_NAMES
from ._metrics import PieceMetrics, PieceTiming, RequestLog, RequestMetrics, StageMetrics
from ._phonemize import LANGUAGE_NAMES, voice_language
from ._quality import run_quality
from ._stream import Stream
from ._types import MAX_PHONEME_IDS, SAMPLE_RATE
from ._voices import parse_voice, voice_gender, voices_by_language

__all__ = [
    "LANGUAGE_NAMES",
    "MAX_PHONEME_IDS",
    "SAMPLE_RATE",
    "VOICE_NAMES",
    "AssetError",
    "Audio",
    "Chunk",
    "Engine",
    "EngineClosedError",
    "InputError",
    "KokoroError",
    "PhonemeWarning",
    "PieceMetrics",
    "PieceTiming",
    "RequestLog",
    "RequestMetrics",
    "StageMetrics",
    "Stream",
    "SynthesisError",
    "VoiceError",
    "check_format",
    "diagnose",
    "fetch_all",
    "parse_voice",
    "pcm16",
    "run_bench",
    "run_quality",
    "strip_markdown",
    "voice_gender",
    "voice_language",
    "voices_by_language",
]


def strip_markdown(text: str) -> str:
    """Markdown to plain prose, keeping [word](/phonemes/) pronunciation markup."""
    from ._markdown import strip_markdown as strip

    return strip(text)
