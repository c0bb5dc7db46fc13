"""The `kokoro-nb` command line as a user runs it: a real process, real files, readable errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from kokoro_engine import VOICE_NAMES

from speech import assert_speech

CLI = [sys.executable, "-m", "kokoro_nb._cli"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, timeout=300)


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg"])
def test_speak_writes_audio(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out.{suffix}"
    text = "The command line speaks this sentence into a file."
    result = run("speak", text, "-o", str(out), "--voice", "bf_emma")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "RTF" in result.stdout
    samples, rate = soundfile.read(out, dtype="float32")
    assert rate == 24_000
    assert_speech(samples, text)


def test_speak_reads_stdin(tmp_path: Path) -> None:
    out = tmp_path / "stdin.wav"
    result = run("speak", "-", "-o", str(out), "--json", stdin="Text from standard input.")
    assert result.returncode == 0, result.stderr
    assert '"ttfa_s"' in result.stdout
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["speak", "hi", "-o", "x.wav", "-v", "af_hart"], "did you mean af_heart"),
        (["speak", "hi", "-o", "x.wav", "-s", "9"], "0.5 to 2.0"),
        (["speak", "hi", "-o", "x.mp4"], ".wav, .flac or .ogg"),
        (["speak", " ", "-o", "x.wav"], "empty"),
        (["speak", "hi", "-o", "x.wav", "-l", "xx"], "unknown language"),
    ],
)
def test_errors_are_one_line_without_traceback(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_voices_lists_every_voice_with_its_language() -> None:
    result = run("voices")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(VOICE_NAMES)
    assert any(line.startswith("bf_emma") and "British English" in line for line in lines)


def test_doctor_reports_what_was_found() -> None:
    result = run("doctor")
    assert result.returncode == 0, result.stdout
    assert "model:" in result.stdout and "voices: all 54" in result.stdout
    assert "CPUExecutionProvider" in result.stdout


def test_help_names_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("speak", "voices", "fetch", "doctor", "bench", "demo", "serve"):
        assert command in result.stdout
