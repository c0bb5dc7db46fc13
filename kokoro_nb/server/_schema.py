"""The OpenAI speech request: its body, the checks the engine does not make, voice names."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from ._encode import FORMATS
from ._errors import ApiError
from ._settings import DEFAULT_VOICE, MAX_INPUT_CHARS, MODELS, OPENAI_VOICES, known_model


class SpeechRequest(BaseModel):
    """The body of POST /v1/audio/speech; unknown fields are ignored, as OpenAI's are optional."""

    model_config = ConfigDict(extra="ignore")

    model: str = "kokoro"
    input: str
    voice: str = DEFAULT_VOICE
    speed: float = 1.0
    response_format: str = "mp3"
    lang: str | None = Field(None, validation_alias=AliasChoices("lang", "lang_code", "language"))
    stream: bool | None = None  # None: stream the formats whose header needs no length
    stream_format: str = "audio"
    instructions: str | None = None  # gpt-4o-mini-tts steering: Kokoro has no such input

    @field_validator("response_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_object(cls, value: Any) -> Any:
        # Newer OpenAI clients may send {"id": "..."} for a voice.
        return value.get("id") if isinstance(value, dict) else value


def check_request(body: SpeechRequest, max_chars: int = MAX_INPUT_CHARS) -> str:
    """Validate what the engine does not (model, format, length); return the Kokoro voice."""
    if not known_model(body.model):
        raise ApiError(
            404,
            f"The model '{body.model}' does not exist here; use one of {', '.join(MODELS)}.",
            param="model",
            code="model_not_found",
        )
    if body.response_format not in FORMATS:
        raise ApiError(
            400,
            f"Unsupported response_format '{body.response_format}'; "
            f"use one of {', '.join(FORMATS)}.",
            param="response_format",
            code="invalid_value",
        )
    if body.stream_format not in ("audio", "sse"):
        raise ApiError(
            400,
            "stream_format must be 'audio' or 'sse'.",
            param="stream_format",
            code="invalid_value",
        )
    if len(body.input) > max_chars:
        raise ApiError(
            400,
            f"input is {len(body.input)} characters; at most {max_chars} per request.",
            param="input",
            code="string_above_max_length",
        )
    return kokoro_voice(body.voice)


def kokoro_voice(spec: str) -> str:
    """Map OpenAI names to Kokoro voices, part by part, so blends may mix both kinds."""
    parts = []
    for part in spec.split(","):
        name, sep, weight = part.strip().partition(":")
        name = OPENAI_VOICES.get(name.strip().lower(), name.strip())
        parts.append(f"{name}{sep}{weight.strip()}")
    return ",".join(parts)
