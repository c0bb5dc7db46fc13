"""Fetching and verifying assets: a real HTTP download from a loopback server, the PyPI part
packages, npm, corruption, truncation, concurrent fetches and a cache that cannot be written."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kokoro_engine import AssetError
from kokoro_engine import _assets as assets
from kokoro_engine import _manifest as manifest

VOICE = "af_heart"


class Files(ThreadingHTTPServer):
    """A loopback file server that counts what it served and can be told to lie."""

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.served: list[str] = []
        self.corrupt = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: Files

    def do_GET(self) -> None:
        path = self.server.files.get(self.path.lstrip("/"))
        if path is None:
            self.send_error(404)
            return
        body = path.read_bytes()
        if self.server.corrupt:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.server.served.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def real_cache() -> Path:
    """The cache `make test` filled (`kokoro-nb fetch`): the source of the served bytes."""
    return assets.cache_dir()


@pytest.fixture
def server(real_cache: Path) -> Iterator[Files]:
    files = {
        "model.onnx": real_cache / manifest.MODEL_FILE,
        f"voices/{VOICE}.bin": real_cache / "voices" / f"{VOICE}.bin",
    }
    httpd = Files(files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Files) -> Path:
    monkeypatch.setenv("KOKORO_NB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KOKORO_NB_MODEL_URL", server.url + "model.onnx")
    monkeypatch.setenv("KOKORO_NB_VOICES_URL", server.url + "voices/")
    monkeypatch.delenv("KOKORO_NB_MODEL", raising=False)
    monkeypatch.delenv("KOKORO_NB_VOICES", raising=False)
    monkeypatch.delenv("KOKORO_NB_OFFLINE", raising=False)
    return tmp_path / "cache"


def test_http_download_is_verified_and_cached(
    empty_cache: Path, server: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOKORO_NB_SOURCES", "download")
    path = assets.model_path()
    assert path == empty_cache / manifest.MODEL_FILE
    assert path.stat().st_size == manifest.MODEL_SIZE
    voice = assets.voice_path(VOICE, assets.voices_dir())
    assert voice.stat().st_size == manifest.VOICE_SIZE
    assert assets.model_path() == path  # second time from the cache
    assert server.served.count("/model.onnx") == 1
    assert not list(empty_cache.glob("*.part"))


def test_a_corrupted_download_never_reaches_the_cache(
    empty_cache: Path, server: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOKORO_NB_SOURCES", "download")
    server.corrupt = True
    with pytest.raises(AssetError, match="sha256 mismatch"):
        assets.model_path()
    assert not (empty_cache / manifest.MODEL_FILE).exists()
    assert not list(empty_cache.glob("*.part"))


def test_two_fetches_at_once_download_once(
    empty_cache: Path, server: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOKORO_NB_SOURCES", "download")
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(assets.model_path())) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert server.served.count("/model.onnx") == 1


def test_model_from_the_pypi_part_packages(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch, server: Files
) -> None:
    monkeypatch.setenv("KOKORO_NB_SOURCES", "packages")
    path = assets.model_path()
    assert path.stat().st_size == manifest.MODEL_SIZE
    assert server.served == []


def test_voices_from_npm(empty_cache: Path, monkeypatch: pytest.MonkeyPatch, server: Files) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    monkeypatch.setenv("KOKORO_NB_SOURCES", "npm")
    voice = assets.voice_path("bf_emma", assets.voices_dir())
    assert voice.stat().st_size == manifest.VOICE_SIZE
    assert len(list(voice.parent.glob("*.bin"))) == len(manifest.VOICE_SHA256)
    assert server.served == []


def test_offline_with_nothing_cached_names_every_source(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOKORO_NB_SOURCES", "npm")  # no packages, and npm does not carry the model
    monkeypatch.setenv("KOKORO_NB_OFFLINE", "1")
    with pytest.raises(AssetError) as caught:
        assets.model_path()
    message = str(caught.value)
    for source in ("cache", "PyPI part packages", "download", "KOKORO_NB_MODEL"):
        assert source in message


def test_truncated_and_corrupted_cache_files_are_detected(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch, real_cache: Path
) -> None:
    monkeypatch.setenv("KOKORO_NB_SOURCES", "download")
    folder = assets.voices_dir()
    folder.mkdir(parents=True)
    target = folder / f"{VOICE}.bin"
    spec = manifest.voice_spec(VOICE)
    target.write_bytes((real_cache / "voices" / f"{VOICE}.bin").read_bytes()[:1000])
    with pytest.raises(AssetError, match=r"truncated.*kokoro-nb fetch --force"):
        assets.check(target, spec)
    good = bytearray((real_cache / "voices" / f"{VOICE}.bin").read_bytes())
    target.write_bytes(bytes(good))
    assets.check(target, spec)  # verified, and stamped
    good[5000] ^= 0xFF
    target.write_bytes(bytes(good))  # same size, new mtime: hashed again
    with pytest.raises(AssetError, match="corrupted"):
        assets.check(target, spec)
    # and fetch repairs it
    assert assets.voice_path(VOICE, folder) == target
    assets.check(target, spec)


def test_an_unwritable_cache_gives_an_actionable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("KOKORO_NB_CACHE", str(blocker / "cache"))
    monkeypatch.setenv("KOKORO_NB_SOURCES", "packages")
    monkeypatch.delenv("KOKORO_NB_MODEL", raising=False)
    with pytest.raises(AssetError, match="KOKORO_NB_CACHE"):
        assets.model_path()


def test_explicit_paths_win(
    monkeypatch: pytest.MonkeyPatch, real_cache: Path, tmp_path: Path
) -> None:
    model = real_cache / manifest.MODEL_FILE
    assert assets.model_path(model) == model
    monkeypatch.setenv("KOKORO_NB_MODEL", str(tmp_path / "missing.onnx"))
    with pytest.raises(AssetError, match="does not exist"):
        assets.model_path()
