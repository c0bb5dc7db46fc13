"""The speech server's FastAPI app: its routes, and OpenAI-style answers for every failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from kokoro_engine import Engine, KokoroError, voice_language

from ._errors import ApiError, from_kokoro, validation_error
from ._schema import SpeechRequest
from ._settings import MAX_INPUT_CHARS, MODELS, OPENAI_VOICES, SPEECH_THREADS, known_model
from ._state import ServerState
from ._synthesis import synthesize_request


def build_app(
    engine: Engine | Callable[[], Engine],
    *,
    max_input_chars: int = MAX_INPUT_CHARS,
    cors: bool = True,
    started: float | None = None,
) -> FastAPI:
    """See kokoro_nb.server.create_app; `started` (perf_counter) is when ready_s counts from."""
    state = ServerState(engine, max_input_chars, started or time.perf_counter())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        state.limiter = anyio.CapacityLimiter(SPEECH_THREADS)
        if state.factory is not None:
            threading.Thread(target=state.build, name="kokoro-build", daemon=True).start()
        yield
        if state.factory is not None and state.engine is not None:
            state.engine.close()

    app = FastAPI(title="kokoro-nb speech", version="1", lifespan=lifespan)
    app.state.kokoro = state
    if cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["*"],
        )
    _add_error_handlers(app, state)
    _add_info_routes(app, state)

    @app.post("/v1/audio/speech", response_model=None)
    async def speech(body: SpeechRequest, request: Request) -> Response:
        return await synthesize_request(state, body, request)

    return app


def _add_error_handlers(app: FastAPI, state: ServerState) -> None:
    """Every failure answers OpenAI's JSON error body, so its clients raise typed errors."""

    def answer(error: ApiError, request: Request) -> JSONResponse:
        if request.url.path == "/v1/audio/speech":
            fmt = getattr(request.state, "response_format", "unknown")
            state.metrics.failed(fmt, None, error.status, error.kind, error.code)
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return answer(exc, request)

    @app.exception_handler(KokoroError)
    async def kokoro_error(request: Request, exc: KokoroError) -> JSONResponse:
        return answer(from_kokoro(exc), request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(validation_error(list(exc.errors())), request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = "not_found" if exc.status_code == 404 else None
        return answer(ApiError(exc.status_code, str(exc.detail), kind=kind, code=code), request)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        message = f"internal error: {type(exc).__name__}: {exc}"
        return answer(ApiError(500, message, kind="server_error"), request)


def _add_info_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health")
    def health() -> JSONResponse:
        if state.engine is None:
            status = "failed" if state.failure else "warming"
            return JSONResponse({"status": status, "error": state.failure}, status_code=503)
        info = state.engine.status()
        body = {
            "status": "ok",
            "ready_s": state.ready_s,
            "all_lanes_warm": info["warm"],  # throughput lanes keep warming after ready
            "providers": info["providers"],
            "variants": info["variants"],
            "voices": len(state.engine.voices),
        }
        return JSONResponse(body)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model(m) for m in MODELS]}

    @app.get("/v1/models/{model}")
    def model(model: str) -> dict[str, Any]:
        if not known_model(model):
            raise ApiError(404, f"The model '{model}' does not exist here.", code="model_not_found")
        return _model(model)

    @app.get("/v1/audio/voices")
    def voices() -> dict[str, Any]:
        names = state.require_engine().voices
        return {
            "voices": names,
            "data": [{"id": n, "name": n, "language": voice_language(n)} for n in names],
            "aliases": OPENAI_VOICES,
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(state.metrics.render(), media_type=state.metrics.content_type)


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "kokoro-nb"}
