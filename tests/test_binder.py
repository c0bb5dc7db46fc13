"""binder/ builds a runnable copy: the same steps as Binder, in a fresh virtual environment.

repo2docker (what Binder runs) reads binder/: it installs ``binder/requirements.txt`` with pip
from the repository's root, runs ``binder/postBuild`` once, and starts every session through
``binder/start``. This test does the same in a new virtual environment under a temporary
folder, then speaks a sentence through ``binder/start`` with the packages installed there
(not this checkout's). The installer is uv's pip interface when uv is present (``make`` puts
it there; its cache makes a reinstall take seconds), else pip itself. ``KOKORO_NB_CACHE``
points at the user cache `make assets` filled, so ``kokoro-nb fetch`` downloads nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import tomllib

from kokoro_engine import _assets

from speech import assert_speech

ROOT = Path(__file__).parent.parent
BINDER = ROOT / "binder"
SENTENCE = "Hello from a fresh Binder build."
SPEAK = """
import json, os, sys
import kokoro_engine, kokoro_nb
from kokoro_engine import Engine

engine = Engine()
audio = engine.synthesize(sys.argv[1], voice="af_heart")
audio.save(sys.argv[2])
print(json.dumps({
    "engine": kokoro_engine.__file__,
    "nb": kokoro_nb.__file__,
    "offline": os.environ.get("KOKORO_NB_OFFLINE"),
    "model": engine.status()["model"],
}))
"""


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"  # where `make` installs uv when it is not on PATH
    return shutil.which("uv") or (str(local) if local.is_file() else None)


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["KOKORO_NB_CACHE"] = str(_assets.cache_dir())  # the cache `make assets` filled
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{args[:3]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


# --- the configuration ---------------------------------------------------------------------------


def test_binder_has_what_repo2docker_reads() -> None:
    for name in ("requirements.txt", "runtime.txt", "postBuild", "start"):
        assert (BINDER / name).is_file(), name
    for script in ("postBuild", "start"):
        path = BINDER / script
        assert os.access(path, os.X_OK), f"binder/{script} must be executable"
        assert path.read_text().startswith("#!/bin/bash\n")
    assert "kokoro-nb fetch" in (BINDER / "postBuild").read_text()
    # repo2docker runs start before the server: it must hand over to the command it was given.
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')


def test_runtime_is_a_python_the_package_supports() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match, runtime
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    low, high = re.findall(r"3\.(\d+)", project["requires-python"])
    assert int(low) <= int(match.group(1)) < int(high)


def test_requirements_install_this_checkout_with_the_locked_versions() -> None:
    lines = [
        line.split("#", 1)[0].strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
    ]
    lines = [line for line in lines if line]
    assert "./engine[model]" in lines and ".[server]" in lines
    # pip reads a local path from the directory it runs in (repo2docker: the repository root)
    for line in lines:
        if line.startswith("."):
            assert (ROOT / line.split("[")[0] / "pyproject.toml").is_file(), line
    constraint = next(line for line in lines if line.startswith("-c "))
    pins = (BINDER / constraint.removeprefix("-c ").strip()).read_text()

    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {(p["name"], p["version"]) for p in lock["package"] if "version" in p}
    pinned = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", pins, re.MULTILINE)
    assert len(pinned) > 50
    stale = [f"{name}=={version}" for name, version in pinned if (name, version) not in locked]
    assert not stale, f"binder/constraints.txt disagrees with uv.lock, regenerate it: {stale}"
    for needed in ("onnxruntime", "jupyterlab", "anywidget", "matplotlib", "pandas"):
        assert any(name == needed for name, _ in pinned), needed


# --- the build ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str]:
    """A venv with binder/requirements.txt installed and binder/postBuild run (Binder's build)."""
    venv = tmp_path_factory.mktemp("binder") / "venv"
    env = _env(venv)
    uv = _uv()
    requirements = ["-r", "binder/requirements.txt"]
    if uv:
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], ROOT, env)
        # --no-sources: read pyproject.toml as pip does (uv would make the workspace editable)
        install = [uv, "pip", "install", "--quiet", "--no-sources", "--python", str(venv)]
    else:
        _run([sys.executable, "-m", "venv", str(venv)], ROOT, env)
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*install, *requirements], ROOT, env)
    post_build = _run(["bash", str(BINDER / "postBuild")], ROOT, env)
    return venv, env, post_build


def test_post_build_fetches_the_model_and_voices(
    built: tuple[Path, dict[str, str], str],
) -> None:
    _, _, post_build = built
    cache = _assets.cache_dir()
    assert f"model:  {cache}" in post_build and f"voices: {cache}" in post_build
    assert "all 54" in post_build  # kokoro-nb doctor


def test_a_session_started_by_binder_speaks(
    built: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    venv, env, _ = built
    python = str(venv / "bin" / "python")
    out = tmp_path / "hello.wav"
    printed = _run(
        ["bash", str(BINDER / "start"), python, "-c", SPEAK, SENTENCE, str(out)], tmp_path, env
    )
    report = json.loads(printed.strip().splitlines()[-1])
    for module in ("engine", "nb"):  # the installed packages, not this checkout
        assert Path(report[module]).is_relative_to(venv), report[module]
    assert report["offline"] == "1", "binder/start keeps sessions from downloading"
    assert Path(report["model"]).is_relative_to(_assets.cache_dir())
    samples, rate = soundfile.read(out, dtype="float32")
    assert rate == 24_000
    assert_speech(samples, SENTENCE)


def test_jupyterlab_in_the_build_has_the_widget_front_ends(
    built: tuple[Path, dict[str, str], str],
) -> None:
    venv, _, _ = built
    # JupyterLab loads prebuilt extensions from here: the player (anywidget) and the controls
    # (ipywidgets) render only if both are installed.
    extensions = venv / "share" / "jupyter" / "labextensions"
    for name in ("anywidget", "@jupyter-widgets/jupyterlab-manager"):
        assert (extensions / name / "package.json").is_file(), name
