"""Every notebook in notebooks/ runs top to bottom in a real kernel and shows what it promises."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "notebooks are committed without outputs"
    )
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def test_quickstart(tmp_path: Path) -> None:
    notebook = execute("quickstart.ipynb", tmp_path)
    shown = outputs(notebook)
    assert not [o for o in shown if o.output_type == "error"]
    audio = [
        o for o in shown if "text/html" in o.get("data", {}) and "<audio" in o["data"]["text/html"]
    ]
    assert len(audio) >= 2, "the quickstart plays audio"
    assert (tmp_path / "blend.wav").stat().st_size > 10_000
    assert any("kokoro-requests" in o.get("data", {}).get("text/html", "") for o in shown)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
