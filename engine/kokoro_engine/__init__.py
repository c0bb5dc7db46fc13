"""kokoro_engine: Kokoro-82M text-to-speech with warm ONNX Runtime sessions and ordered streaming."""

from ._audio import Audio, Chunk, pcm16
from ._engine import Engine, Stream
from ._errors import (
    AssetError,
    EngineClosedError,
    InputError,
    KokoroError,
    PhonemeWarning,
    SynthesisError,
    VoiceError,
)
from ._metrics import RequestLog
from ._phonemize import LANGUAGE_NAMES, voice_language
from ._types import MAX_PHONEME_IDS, SAMPLE_RATE
from ._voices import voice_gender, voices_by_language

__all__ = [
    "LANGUAGE_NAMES",
    "MAX_PHONEME_IDS",
    "SAMPLE_RATE",
    "AssetError",
    "Audio",
    "Chunk",
    "Engine",
    "EngineClosedError",
    "InputError",
    "KokoroError",
    "PhonemeWarning",
    "RequestLog",
    "Stream",
    "SynthesisError",
    "VoiceError",
    "pcm16",
    "strip_markdown",
    "voice_gender",
    "voice_language",
    "voices_by_language",
]


def strip_markdown(text: str) -> str:
    """Markdown to plain prose, keeping [word](/phonemes/) pronunciation markup."""
    from ._markdown import strip_markdown as strip

    return strip(text)
