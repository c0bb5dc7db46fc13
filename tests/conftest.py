"""Shared fixtures: one real, warm Engine per test session (building one costs seconds), a real
IPython shell with kokoro_nb loaded on it, its display output, and recorded widget comms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import comm
import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from kokoro_engine import Engine
from kokoro_nb._kernel_engine import set_engine
from kokoro_nb._speech import conductor

from shell import RecordingComm


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    eng = Engine()
    eng.wait_warm()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def ip(engine: Engine) -> Iterator[InteractiveShell]:
    """The shell with kokoro_nb loaded on the session's engine; speech stopped and done after."""
    set_engine(engine)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kokoro_nb")
    yield shell
    conductor.stop_all()
    conductor.wait_all(120)
    shell.run_line_magic("unload_ext", "kokoro_nb")


@pytest.fixture
def outputs(ip: InteractiveShell) -> Iterator[list[dict[str, Any]]]:
    """What the test's cells display, captured instead of published."""
    publisher = CapturingDisplayPublisher()
    saved, ip.display_pub = ip.display_pub, publisher
    yield publisher.outputs
    ip.display_pub = saved


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    """Every widget made in the test gets a recording comm (``shell.channel(player)`` finds it)."""
    made: list[RecordingComm] = []

    def create(**kwargs: Any) -> RecordingComm:
        made.append(RecordingComm(**kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create)
    yield made
