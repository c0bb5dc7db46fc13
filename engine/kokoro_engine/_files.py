"""Cache files written whole or not at all, and the JSON stamps that say what a cached file is."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed onto it when the block succeeds (removed if
    not): readers see the old file or the whole new one, never a half-written one."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def save_onnx(model: Any, target: Path) -> None:
    """Write an ONNX model to `target` atomically."""
    import onnx

    with replacing(target) as temp:
        onnx.save(model, str(temp))


def read_stamp(path: Path) -> Any:
    """The JSON in a stamp file, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_stamp(path: Path, record: Any) -> None:
    """Write a stamp atomically (OSError when the folder is read-only)."""
    with replacing(path) as temp:
        temp.write_text(json.dumps(record, indent=1))
