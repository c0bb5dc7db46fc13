"""The speech server on loopback: the official openai client, plain HTTP, streaming, errors, load."""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import psutil
import pytest
import soundfile
from fastapi.testclient import TestClient

from kokoro_engine import AssetError, Engine, InputError, KokoroError, SynthesisError
from kokoro_nb.server import create_app, start, stop
from kokoro_nb.server._lifecycle import bind

from probes import free_port, lane_runs
from speech import assert_speech, spectral_similarity

TEXT = "Hello from the speech server. It speaks the OpenAI audio API."
PARAGRAPHS = "\n\n".join(
    f"Paragraph {n} of a long reading that nobody waits to hear." for n in range(1, 41)
)


@pytest.fixture(scope="module")
def url(engine: Engine) -> Iterator[str]:
    base = start(engine, port=0)
    yield base
    stop()


@pytest.fixture(scope="module")
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as session:
        yield session


def decode(data: bytes, fmt: str) -> np.ndarray:
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    assert rate == 24_000 and samples.ndim == 1
    return samples


def _below_4k(samples: np.ndarray) -> np.ndarray:
    """The clip resampled to 8 kHz (FFT truncation), for comparing lossy against lossless."""
    spectrum = np.fft.rfft(samples)
    return np.fft.irfft(spectrum[: len(samples) // 6 + 1], n=len(samples) // 3).astype(np.float32)


def metric(http: httpx.Client, name: str) -> float:
    """Sum of a Prometheus sample family's values (all label sets)."""
    text = http.get("/metrics").text
    values = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return sum(float(v) for v in values)


# --- the official client ------------------------------------------------------------------


def test_openai_client_gets_the_engines_audio(client: openai.OpenAI, engine: Engine) -> None:
    reference = engine.synthesize(TEXT, voice="af_alloy").samples
    response = client.audio.speech.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="wav"
    )
    samples = decode(response.content, "wav")
    assert_speech(samples, TEXT)
    assert len(samples) == len(reference)
    assert np.abs(samples - reference).max() < 3 / 32768  # the same clip, as 16-bit PCM


def test_openai_client_default_mp3_is_speech(client: openai.OpenAI) -> None:
    response = client.audio.speech.create(model="kokoro", voice="af_heart", input=TEXT)
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert_speech(decode(response.content, "mp3"), TEXT)


def test_openai_streaming_response_arrives_before_synthesis_ends(
    client: openai.OpenAI, engine: Engine
) -> None:
    text = "Streaming starts early. Then a second sentence follows. A third one closes it."
    finished_before = len(engine.recent)
    reads: list[bytes] = []
    synthesis_done_at_first_read = None
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=text, response_format="pcm"
    ) as response:
        for data in response.iter_bytes():
            if not reads:
                synthesis_done_at_first_read = len(engine.recent) > finished_before
            reads.append(data)
    assert synthesis_done_at_first_read is False  # the request was still being synthesized
    assert len(reads) > 1
    assert engine.recent.rows[-1]["complete"] is True
    assert len(engine.recent.rows[-1]["pieces"]) >= 2
    assert_speech(decode(b"".join(reads), "pcm"), text)


def test_openai_client_lists_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= ids


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"voice": "nobody"}, openai.BadRequestError, "voice"),
        ({"speed": 9.0}, openai.BadRequestError, "speed"),
        ({"input": ""}, openai.BadRequestError, "input"),
        ({"input": "x" * 5000}, openai.BadRequestError, "input"),
        ({"response_format": "aac"}, openai.BadRequestError, "response_format"),
        ({"input": "Hi.", "voice": ""}, openai.BadRequestError, "voice"),
        ({"model": "whisper-1"}, openai.NotFoundError, "model"),
        ({"voice": "af_heart:0.5,am_nobody:0.5"}, openai.BadRequestError, "voice"),
    ],
)
def test_openai_client_raises_typed_errors(
    client: openai.OpenAI, kwargs: dict[str, object], error: type[Exception], param: str
) -> None:
    args: dict[str, object] = {"model": "tts-1", "voice": "alloy", "input": "Hi.", **kwargs}
    with pytest.raises(error) as caught:
        client.audio.speech.create(**args)
    body = caught.value.body  # type: ignore[attr-defined]
    assert body["param"] == param and body["message"] and body["type"]


# --- plain HTTP -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "pcm"])
def test_every_format_decodes(http: httpx.Client, engine: Engine, fmt: str, stream: bool) -> None:
    reference = engine.synthesize(TEXT, voice="bf_emma").samples
    body = {"input": TEXT, "voice": "bf_emma", "response_format": fmt, "stream": stream}
    response = http.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    samples = decode(response.content, fmt)
    # MP3 adds the encoder's delay and padding (a few dozen ms), and drops what lies above
    # ~8 kHz; nothing else changes the length or the sound.
    assert abs(len(samples) - len(reference)) <= (2400 if fmt == "mp3" else 0)
    assert spectral_similarity(_below_4k(samples), _below_4k(reference)) > 0.95
    if fmt == "wav" and stream:
        assert response.content[4:8] == b"\xff\xff\xff\xff"  # a header that streams


def test_defaults_stream_only_formats_without_a_length_header(http: httpx.Client) -> None:
    chunked = {}
    for fmt in ("mp3", "opus", "pcm", "wav", "flac"):
        response = http.post("/v1/audio/speech", json={"input": TEXT, "response_format": fmt})
        chunked[fmt] = "content-length" not in response.headers
    assert chunked == {"mp3": True, "opus": True, "pcm": True, "wav": False, "flac": False}


def test_sse_events_carry_the_audio(http: httpx.Client, engine: Engine) -> None:
    reference = engine.synthesize(TEXT, voice="af_heart").samples
    body = {"input": TEXT, "response_format": "pcm", "stream_format": "sse"}
    response = http.post("/v1/audio/speech", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    assert events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(audio) == 2 * len(reference)


def test_blends_and_openai_names_mix(http: httpx.Client) -> None:
    for voice, used in [
        ("af_heart:0.7,am_adam:0.3", "af_heart:0.7,am_adam:0.3"),
        ("nova:0.5, onyx:0.5", "af_nova:0.5,am_onyx:0.5"),
        ("shimmer", "af_bella"),
    ]:
        body = {"input": "Two voices at once.", "voice": voice, "response_format": "wav"}
        response = http.post("/v1/audio/speech", json=body)
        assert response.status_code == 200, response.text
        assert response.headers["x-kokoro-voice"] == used
        assert_speech(decode(response.content, "wav"), "Two voices at once.")


def test_lang_and_speed_reach_the_engine(http: httpx.Client, engine: Engine) -> None:
    body = {"input": "Tomato and schedule.", "voice": "af_heart", "lang": "en-gb", "speed": 1.5}
    response = http.post("/v1/audio/speech", json={**body, "response_format": "pcm"})
    assert response.status_code == 200
    row = engine.recent.rows[-1]
    assert (row["lang"], row["speed"]) == ("en-gb", 1.5)


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{not json", 400, None),
        (b'{"voice": "af_heart"}', 400, "input"),
        (b'{"input": "Hi.", "speed": "fast"}', 400, "speed"),
        (b'{"input": 42}', 400, "input"),
        (b'{"input": "Hi.", "lang": "xx-nowhere"}', 400, "lang"),
        (b"[]", 400, None),
    ],
)
def test_bad_bodies_get_openai_error_json(
    http: httpx.Client, content: bytes, status: int, param: str | None
) -> None:
    response = http.post(
        "/v1/audio/speech", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_browsers_may_call_it_from_other_origins(http: httpx.Client) -> None:
    preflight = http.options(
        "/v1/audio/speech",
        headers={
            "origin": "http://localhost:8888",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "http://localhost:8888")


def test_unknown_routes_and_methods_answer_json(http: httpx.Client) -> None:
    assert http.get("/v1/nothing").json()["error"]["code"] == "not_found"
    assert http.get("/v1/audio/speech").status_code == 405
    assert "error" in http.get("/v1/audio/speech").json()


def test_info_endpoints(http: httpx.Client) -> None:
    health = http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    voices = http.get("/v1/audio/voices").json()
    assert "af_heart" in voices["voices"] and voices["aliases"]["alloy"] == "af_alloy"
    assert all(alias in voices["voices"] for alias in voices["aliases"].values())
    assert http.get("/v1/models/tts-1").json()["id"] == "tts-1"
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "kokoro_speech_requests_total",
        "kokoro_speech_errors_total",
        "kokoro_speech_time_to_first_byte_seconds_bucket",
        "kokoro_speech_real_time_factor_bucket",
        "process_resident_memory_bytes",
    ):
        assert name in metrics.text
    assert 'provider="CPUExecutionProvider"' in metrics.text
    assert metric(http, "kokoro_engine_ready") == 1


# --- disconnects and load ---------------------------------------------------------------------


def test_disconnect_mid_stream_stops_synthesis(http: httpx.Client, engine: Engine) -> None:
    gone_before = metric(http, "kokoro_speech_disconnects_total")
    runs_before = lane_runs(engine)
    body = {"input": PARAGRAPHS, "voice": "am_michael", "response_format": "pcm"}
    with http.stream("POST", "/v1/audio/speech", json=body) as response:
        first = next(response.iter_raw())
        assert first
    # the connection is closed here, 40 pieces (one per paragraph) from the end
    deadline = time.monotonic() + 60
    while metric(http, "kokoro_speech_disconnects_total") == gone_before:
        assert time.monotonic() < deadline, "the server never noticed the client leaving"
        time.sleep(0.05)
    while any(lane.busy for lane in engine.pool.lanes):
        assert time.monotonic() < deadline, "synthesis went on after the client left"
        time.sleep(0.05)
    row = engine.recent.rows[-1]
    assert row["complete"] is False and row["chars"] == len(PARAGRAPHS)
    assert lane_runs(engine) - runs_before < 20  # of 40 pieces
    assert metric(http, "kokoro_speech_in_flight") == 0


def test_sixteen_concurrent_clients(url: str, http: httpx.Client, engine: Engine) -> None:
    process = psutil.Process()
    errors_before = metric(http, "kokoro_speech_errors_total")
    gone_before = metric(http, "kokoro_speech_disconnects_total")
    rss = [process.memory_info().rss / 2**20]
    for round_ in range(2):
        results = _load(url, clients=16, per_client=1, round_=round_)
        rss.append(process.memory_info().rss / 2**20)
        assert [r for r in results if isinstance(r, BaseException)] == []
        for text, samples in results:  # type: ignore[misc]
            assert_speech(samples, text)
    assert metric(http, "kokoro_speech_errors_total") == errors_before
    assert metric(http, "kokoro_speech_disconnects_total") == gone_before
    assert metric(http, "kokoro_speech_in_flight") == 0
    print(f"RSS MB before, after round 1, after round 2: {[round(r) for r in rss]}")
    # Recorded, loosely bounded: the engine's audio cache (256 MB cap) legitimately grows.
    assert rss[2] - rss[1] < 200


def _load(url: str, clients: int, per_client: int, round_: int) -> list[object]:
    """Each client sends its requests in turn; formats and streaming vary across clients."""
    results: list[object] = []
    lock = threading.Lock()
    formats = ["pcm", "wav", "mp3", "opus"]

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as session:
            for i in range(per_client):
                text = f"Client {n}, request {i}, round {round_ + 1}."
                fmt = formats[(n + i) % len(formats)]
                body = {"input": text, "voice": "af_sky", "response_format": fmt}
                body["stream"] = (n % 2) == 0
                try:
                    response = session.post("/v1/audio/speech", json=body)
                    response.raise_for_status()
                    outcome: object = (text, decode(response.content, fmt))
                except BaseException as exc:
                    outcome = exc
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == clients * per_client
    return results


# --- an engine still warming, or failing: a stand-in engine, in process ---------------------


class _FailingStream:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.metrics = {"voice": "af_heart"}

    def __iter__(self) -> _FailingStream:
        return self

    def __next__(self) -> object:
        raise self.error

    def close(self) -> None:
        pass


class _FailingEngine:
    """Accepts every request, then fails while synthesizing its first piece."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.voices = ["af_heart"]

    def status(self) -> dict[str, object]:
        return {"warm": True, "providers": ["stand-in"], "variants": {}}

    def stream(self, *args: object) -> _FailingStream:
        return _FailingStream(self.error)

    def close(self) -> None:
        pass


def test_health_is_503_until_the_engine_is_warm() -> None:
    release = threading.Event()

    def build() -> Engine:
        release.wait(30)
        return _FailingEngine(SynthesisError("x"))  # type: ignore[return-value]

    with TestClient(create_app(build)) as local:
        assert local.get("/health").status_code == 503
        assert local.get("/health").json()["status"] == "warming"
        early = local.post("/v1/audio/speech", json={"input": "Too early."})
        assert early.status_code == 503 and early.json()["error"]["type"] == "server_error"
        release.set()
        _wait_ready(local)


def _wait_ready(local: TestClient) -> None:
    deadline = time.monotonic() + 30
    while local.get("/health").status_code != 200:
        assert time.monotonic() < deadline, local.get("/health").json()
        time.sleep(0.02)


def test_an_engine_that_cannot_be_built_is_reported() -> None:
    def build() -> Engine:
        raise AssetError("the model file is truncated")

    with TestClient(create_app(build)) as local:
        deadline = time.monotonic() + 30
        while (health := local.get("/health").json())["status"] == "warming":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert health["status"] == "failed" and "truncated" in health["error"]
        answer = local.post("/v1/audio/speech", json={"input": "Hello."})
        assert answer.status_code == 503 and "truncated" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InputError("no speakable text"), 422, "invalid_request_error"),
        (SynthesisError("every session failed"), 500, "server_error"),
        (RuntimeError("a bug"), 500, "server_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_failures_while_synthesizing_answer_json(
    error: Exception, status: int, kind: str, stream: bool
) -> None:
    app = create_app(lambda: _FailingEngine(error))  # type: ignore[arg-type,return-value]
    with TestClient(app, raise_server_exceptions=False) as local:
        _wait_ready(local)
        body = {"input": "Hello.", "response_format": "pcm", "stream": stream}
        answer = local.post("/v1/audio/speech", json=body)
        assert answer.status_code == status
        assert answer.json()["error"]["type"] == kind
        assert local.get("/health").status_code == 200
        assert metric(local, "kokoro_speech_disconnects_total") == 0
        assert metric(local, "kokoro_speech_in_flight") == 0


# --- lifecycle ------------------------------------------------------------------------------


def test_background_server_lifecycle(url: str, engine: Engine) -> None:
    port = int(url.rsplit(":", 1)[1])
    assert start(engine, port=port) == url
    assert start(engine, port=0) == url
    with pytest.raises(KokoroError, match="already running"):
        start(engine, port=free_port())
    assert stop() is True
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")
    assert stop() is False
    again = start(engine, port=0)  # the module fixture stops this one
    assert httpx.get(f"{again}/health").status_code == 200


def test_taken_port_is_a_clear_error(engine: Engine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stop()
        with pytest.raises(KokoroError, match="cannot listen"):
            start(engine, port=taken.getsockname()[1])


def test_listening_socket_lets_asyncio_turn_nagle_off() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is TCP; with Nagle on, a small
    # first audio chunk waits for the client's delayed ACK (~40 ms) after the headers.
    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


def test_run_serves_from_the_command_line_until_interrupted() -> None:
    port = free_port()
    code = f"from kokoro_nb.server import serve; serve(port={port})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        statuses = _poll_health(f"http://127.0.0.1:{port}", proc)
        assert statuses[-1] == 200 and set(statuses[:-1]) <= {503}
        body = {"input": "Served from a separate process.", "response_format": "wav"}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/audio/speech", json=body, timeout=120)
        assert_speech(decode(response.content, "wav"), body["input"])
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "ready" in output


def _poll_health(url: str, proc: subprocess.Popen[str]) -> list[int]:
    statuses: list[int] = []
    deadline = time.monotonic() + 120
    while not statuses or statuses[-1] != 200:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the server never became healthy"
        try:
            statuses.append(httpx.get(f"{url}/health", timeout=5).status_code)
        except httpx.TransportError:
            time.sleep(0.05)
    return statuses
