"""Shared fixtures: one real, warm Engine per test session (building one costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kokoro_engine import Engine


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    eng = Engine()
    eng.wait_warm()
    yield eng
    eng.close()
