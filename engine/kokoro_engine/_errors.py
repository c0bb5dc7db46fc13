"""The exceptions and warnings kokoro_engine raises: each message says what to do next."""

from __future__ import annotations


class KokoroError(Exception):
    """Base of every error the engine raises on purpose."""


class InputError(KokoroError, ValueError):
    """The text, voice, speed or language asked for cannot be spoken as given."""


class VoiceError(InputError):
    """An unknown voice name or a malformed voice blend."""


class AssetError(KokoroError):
    """The model or a voice file is missing, truncated or corrupted."""


class SynthesisError(KokoroError):
    """Inference failed on every session able to run it."""


class EngineClosedError(KokoroError):
    """The engine was closed; create a new Engine."""


class PhonemeWarning(UserWarning):
    """Text produced phoneme symbols the model cannot say; they were left out of the audio."""
