"""The OpenAI audio API's shapes for the speech server: request body, voice names, error bodies."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from kokoro_engine import (
    AssetError,
    EngineClosedError,
    InputError,
    KokoroError,
    SynthesisError,
    VoiceError,
)

from ._server import MAX_INPUT_CHARS
from ._server_encode import FORMATS

DEFAULT_VOICE = "af_heart"
# OpenAI's voices → the Kokoro voice closest in kind (sex, accent, register). Five have a
# Kokoro namesake trained to sound like them; the rest go to well-graded voices.
OPENAI_VOICES = {
    "alloy": "af_alloy",
    "echo": "am_echo",
    "fable": "bm_fable",
    "onyx": "am_onyx",
    "nova": "af_nova",
    "shimmer": "af_bella",
    "coral": "af_heart",
    "sage": "af_sarah",
    "ash": "am_fenrir",
    "ballad": "bm_george",
    "verse": "am_puck",
    "marin": "af_kore",
    "cedar": "am_michael",
}
# Model names clients send; all run the same Kokoro-82M. Names starting "kokoro" also pass.
MODELS = ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")


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


class ApiError(Exception):
    """An error answered with OpenAI's body: {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = (
            status,
            message,
            kind,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def check_request(body: SpeechRequest, max_chars: int = MAX_INPUT_CHARS) -> str:
    """Validate what the engine does not (model, format, length); return the Kokoro voice."""
    model = body.model.strip().lower()
    if model not in MODELS and not model.startswith("kokoro"):
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


def from_kokoro(exc: KokoroError, *, during_synthesis: bool = False) -> ApiError:
    """The HTTP answer for an engine error.

    Arguments the engine rejects up front are a bad request (400); text it accepted but
    could not speak is unprocessable (422); missing assets, a closed engine or failed
    inference are the server's fault (5xx), so clients may retry.
    """
    message = str(exc)
    if isinstance(exc, VoiceError):
        return ApiError(400, message, param="voice", code="invalid_value")
    if isinstance(exc, InputError):
        status = 422 if during_synthesis else 400
        return ApiError(status, message, param=_param_of(message), code="invalid_value")
    if isinstance(exc, EngineClosedError | AssetError):
        return ApiError(503, message, kind="server_error", code="engine_unavailable")
    if isinstance(exc, SynthesisError):
        return ApiError(500, message, kind="server_error", code="synthesis_failed")
    return ApiError(500, message, kind="server_error")


def _param_of(message: str) -> str:
    lowered = message.lower()
    if "speed" in lowered:
        return "speed"
    if "lang" in lowered:
        return "lang"
    return "input"


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """FastAPI's 422 validation detail as OpenAI's 400 invalid_request_error."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = loc[-1] if loc else None
    if first.get("type") == "json_invalid":
        return ApiError(400, "The request body is not valid JSON.", code="invalid_json")
    where = f" for '{param}'" if param else ""
    message = f"Invalid value{where}: {first.get('msg', 'invalid request')}"
    if param is None and first.get("type") == "missing":
        message = "The request needs a JSON body with at least 'input'."
    return ApiError(400, message, param=param, code=first.get("type"))
