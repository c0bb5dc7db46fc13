"""Running the speech app under uvicorn: in the foreground (CLI) or a daemon thread (notebook).

Imports nothing heavy at the top: `bind` runs before the web stack and the engine are loaded.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._settings import HEALTH_TIMEOUT_S

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from kokoro_engine import Engine


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread
    app: FastAPI
    host: str
    port: int
    url: str


_running: _Running | None = None
_lock = threading.Lock()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, opened here so a taken port is a clear KokoroError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only turns Nagle off (TCP_NODELAY) on accepted sockets whose
    # proto is IPPROTO_TCP, and with Nagle on, a small first audio chunk after the headers
    # waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from kokoro_engine import KokoroError

        raise KokoroError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another port with --port"
        ) from None
    sock.listen(2048)
    return sock


def base_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: loopback is one address that answers
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_foreground(host: str, port: int, engine_kwargs: dict[str, Any]) -> None:
    """Serve until Ctrl-C (uvicorn handles the signals and shuts down gracefully).

    The port opens first and the engine builds in a thread while FastAPI and uvicorn import.
    """
    started = time.perf_counter()
    sock = bind(host, port)  # a taken port fails now, before seconds of warm-up
    builder = _Builder(engine_kwargs)  # onnxruntime builds while FastAPI imports
    import uvicorn

    from ._app import build_app

    app = build_app(builder.wait, started=started)
    url = base_url(*sock.getsockname()[:2])
    print(f"kokoro-nb: OpenAI speech API at {url}/v1/audio/speech (warming up…)", flush=True)
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5)
    # uvicorn shuts down gracefully on Ctrl-C, then re-raises it: that is the normal end here.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


def serve_background(engine: Engine, host: str, port: int) -> str:
    """Serve `engine` from a daemon thread; its base URL once /health answers."""
    import uvicorn

    from ._app import build_app

    global _running
    with _lock:
        running = _running
        if running is not None and running.thread.is_alive():
            return _reuse(running, engine, host, port)
        sock = bind(host, port)
        app = build_app(engine)
        # Quiet: access lines would land in the notebook's output on every request.
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="kokoro-server", daemon=True
        )
        thread.start()
        bound_port = sock.getsockname()[1]
        url = base_url(host, bound_port)
        try:
            _wait_healthy(url, thread)
        except BaseException:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise
        _running = _Running(server, thread, app, host, bound_port, url)
        return url


def _reuse(running: _Running, engine: Engine, host: str, port: int) -> str:
    if port not in (0, running.port) or host != running.host:
        from kokoro_engine import KokoroError

        raise KokoroError(
            f"a speech server is already running at {running.url}; stop it first "
            "(%kokoro serve --stop, or kokoro_nb.server.stop()) to serve on another address"
        )
    running.app.state.kokoro.engine = engine  # same server, now on the engine asked for
    return running.url


def _wait_healthy(url: str, thread: threading.Thread) -> None:
    from kokoro_engine import KokoroError

    host, port = url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise KokoroError(f"the speech server at {url} stopped while starting; see its log")
        if _health_ok(host.strip("[]"), int(port)):
            return
        time.sleep(0.02)
    raise KokoroError(
        f"the speech server at {url} did not answer /health within {HEALTH_TIMEOUT_S:.0f} s"
    )


def _health_ok(host: str, port: int) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def stop_serving(timeout: float = 10.0) -> bool:
    """Stop the background server; False if none was running."""
    global _running
    with _lock:
        running, _running = _running, None
        if running is None or not running.thread.is_alive():
            return False
        running.server.should_exit = True
        running.thread.join(timeout)
        return True


class _Builder:
    """Builds the Engine in a thread, started at once; `wait()` hands it over (or raises)."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self._kwargs = kwargs
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, name="kokoro-build", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            from kokoro_engine import Engine

            self._engine = Engine(**self._kwargs)
        except BaseException as exc:  # re-raised in wait(), where the app reports it
            self._error = exc

    def wait(self) -> Engine:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._engine is not None
        return self._engine
