"""OpenAI-style error answers: ApiError, and the HTTP answer for engine and validation errors."""

from __future__ import annotations

from typing import Any

from kokoro_engine import (
    AssetError,
    EngineClosedError,
    InputError,
    KokoroError,
    SynthesisError,
    VoiceError,
)


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
