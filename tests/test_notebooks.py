"""Every notebook in notebooks/ runs top to bottom in a real kernel and shows what it promises.

Each notebook is executed once (nbclient, the real model) and its outputs are inspected:
players and controls were displayed as widgets, clips are speech, tables have the rows
they should, figures were drawn. Notebooks are committed without outputs.

Two things are injected, as papermill or nbconvert users would: ``SpeakMagics.wait = True``
after ``%load_ext kokoro_nb`` (headless, each speaking cell waits for its synthesis instead
of being superseded by the next cell), and ``QUICK = True`` after the profiling notebook's
``parameters`` cell (fewer repeats and shorter sweeps).
"""

from __future__ import annotations

import base64
import io
import re
import wave
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import soundfile
from nbclient import NotebookClient

from speech import assert_speech

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"
HEADLESS = "%config SpeakMagics.wait = True  # injected by the test: each cell waits for its audio"
CLIP = re.compile(r'<audio controls[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"')


# --- running a notebook ----------------------------------------------------------------------


def execute(name: str, workdir: Path, parameters: str | None = None) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), (
        "notebooks are committed without outputs"
    )
    for i, cell in enumerate(list(notebook.cells)):
        if cell.cell_type != "code":
            continue
        if cell.source.startswith("%load_ext kokoro_nb"):
            notebook.cells.insert(i + 1, _injected(HEADLESS, "injected-headless"))
        if parameters and "parameters" in cell.metadata.get("tags", []):
            notebook.cells.insert(i + 1, _injected(parameters, "injected-parameters"))
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    errors = [
        f"{cell.id}: {out.ename}: {out.evalue}"
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors, errors
    return notebook


def _injected(source: str, cell_id: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id
    return cell


# --- reading what the cells produced -----------------------------------------------------------


def cell(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    found = [c for c in notebook.cells if c.get("id") == cell_id]
    assert found, f"no cell {cell_id!r}"
    return found[0]


def data(c: nbformat.NotebookNode, mime: str) -> list[Any]:
    return [out["data"][mime] for out in c.outputs if mime in out.get("data", {})]


def text(c: nbformat.NotebookNode) -> str:
    """Everything the cell printed, and the plain text of what it displayed."""
    parts = [out.get("text", "") for out in c.outputs if out.output_type == "stream"]
    return "".join(parts) + "\n".join(data(c, "text/plain"))


def widget_models(notebook: nbformat.NotebookNode, c: nbformat.NotebookNode) -> list[dict]:
    """The saved state of every widget the cell displayed."""
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [state[view["model_id"]] for view in data(c, WIDGET)]


def players(notebook: nbformat.NotebookNode, c: nbformat.NotebookNode) -> int:
    return sum(
        model["model_name"] == "AnyModel" and bool(model["state"].get("player_id"))
        for model in widget_models(notebook, c)
    )


def clips(c: nbformat.NotebookNode) -> list[tuple[np.ndarray, int]]:
    """The finished clips embedded as <audio> data URIs: (samples, rate) each."""
    found = []
    for html in data(c, "text/html"):
        for encoded in CLIP.findall(html):
            with wave.open(io.BytesIO(base64.b64decode(encoded))) as wav:
                pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
                found.append((pcm.astype(np.float32) / 32768, wav.getframerate()))
    return found


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, chunk: str) -> None:
        if self._cell is not None:
            self._cell.append(chunk)


def tables(c: nbformat.NotebookNode) -> list[list[list[str]]]:
    """The body rows of every HTML table the cell displayed (each row: its cells' text)."""
    parser = _Tables()
    for html in data(c, "text/html"):
        parser.feed(html)
    return parser.tables


def figures(c: nbformat.NotebookNode) -> int:
    return len(data(c, "image/png"))


def column(rows: list[list[str]], index: int) -> list[float]:
    return [float(row[index]) for row in rows]


# --- quickstart --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    workdir = tmp_path_factory.mktemp("quickstart")
    yield execute("quickstart.ipynb", workdir), workdir


def test_quickstart_every_speak_cell_streams_to_a_player_and_keeps_the_clip(
    quickstart: tuple[Any, Path],
) -> None:
    notebook, _ = quickstart
    speaking = [c for c in notebook.cells if c.cell_type == "code" and "%%speak" in c.source]
    speaking.append(cell(notebook, "say"))
    assert len(speaking) >= 8
    for c in speaking:
        assert players(notebook, c) == 1, f"{c.id}: no player displayed"
        found = clips(c)
        assert len(found) == 1, f"{c.id}: no finished clip in the output"
        samples, rate = found[0]
        assert rate == 24_000
        spoken = _spoken_text(c)
        assert_speech(samples, spoken)


# What the cells say with their numbers read out (assert_speech paces words per second).
SPOKEN = {
    "say": "Loaded one thousand two hundred rows. Accuracy is ninety-three point seven percent.",
    "fill": "The model reached ninety-four percent accuracy.",
}


def _spoken_text(c: nbformat.NotebookNode) -> str:
    first, _, body = c.source.partition("\n")
    after = re.search(r'--after "([^"]+)"', first)
    if after:
        return after.group(1)
    return SPOKEN.get(c.id, body)


def test_quickstart_saves_the_clip_to_a_file(quickstart: tuple[Any, Path]) -> None:
    notebook, workdir = quickstart
    samples, rate = soundfile.read(workdir / "hello.wav", dtype="float32")
    assert rate == 24_000
    assert_speech(samples, "This sentence also goes into a file.")
    assert "hello.wav:" in text(cell(notebook, "saved-file"))
    assert "saved to hello.wav" in text(cell(notebook, "save"))


def test_quickstart_fills_names_and_speaks_after_the_slow_cell(
    quickstart: tuple[Any, Path],
) -> None:
    notebook, _ = quickstart
    after = cell(notebook, "after")
    assert "the cell's result" in "".join(data(after, "text/plain"))
    ((samples, _),) = clips(after)
    assert len(samples) / 24_000 < 4, "--after says its message, not the cell's code"


def test_quickstart_shows_voices_controls_profile_status_and_recent_requests(
    quickstart: tuple[Any, Path],
) -> None:
    notebook, _ = quickstart
    (voices,) = tables(cell(notebook, "list-voices"))
    languages = {row[0] for row in voices}
    assert {"American English", "British English", "French", "Japanese"} <= languages
    assert sum(row[1].count("_") for row in voices) == 54

    (panel,) = widget_models(notebook, cell(notebook, "controls"))
    assert "kokoro-controls" in panel["state"]["_dom_classes"]

    profile = "".join(data(cell(notebook, "profile"), "text/html"))
    assert "kokoro-profile" in profile and "<svg" in profile

    assert "CPUExecutionProvider" in text(cell(notebook, "status"))
    printed = text(cell(notebook, "engine"))
    assert "piece 0:" in printed and "piece 1:" in printed

    (recent,) = tables(cell(notebook, "recent"))
    assert len(recent) >= 10, "every speaking cell is a row of the request log"


# --- voices ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield execute("voices.ipynb", tmp_path_factory.mktemp("voices"))


def test_voices_gallery_has_every_voice_with_its_language_and_a_sample(voices: Any) -> None:
    from kokoro_engine import LANGUAGE_NAMES, voice_language

    (by_language,) = tables(cell(voices, "by-language"))
    assert len(by_language) == len(LANGUAGE_NAMES)
    assert sum(int(row[-1]) for row in by_language) == 54

    gallery = cell(voices, "gallery")
    (rows,) = tables(gallery)
    samples = clips(gallery)
    assert len(rows) == len(samples) == 54
    for row, (audio, rate) in zip(rows, samples, strict=True):
        name, language = row[0], row[1]
        assert language == LANGUAGE_NAMES[voice_language(name)]
        assert rate == 16_000 and 0.4 < len(audio) / rate < 6, name
        loudness = np.sqrt(np.mean(audio**2))
        assert loudness > 0.01, f"{name}: the sample is silent"


def test_voices_blend_explorer_and_walk(voices: Any) -> None:
    (panel,) = widget_models(voices, cell(voices, "explorer"))
    assert "kokoro-controls" in panel["state"]["_dom_classes"]
    spoken = text(cell(voices, "explorer-speak"))
    assert "af_heart:0.50,bm_george:0.50" in spoken and "Audio(" in spoken

    walk = cell(voices, "walk-show")
    assert figures(walk) == 1
    (rows,) = tables(walk)
    assert len(rows) == len(clips(walk)) == 5
    pitch = [float(row[2].removesuffix(" Hz")) for row in rows]
    assert pitch[0] > pitch[-1], "from af_heart towards am_michael the voice gets lower"


# --- profiling ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profiling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield execute("profiling.ipynb", tmp_path_factory.mktemp("profiling"), "QUICK = True")


def test_profiling_variants_and_providers(profiling: Any) -> None:
    shown = cell(profiling, "variants-show")
    assert figures(shown) == 1
    (rows,) = tables(shown)
    measured = {(row[1], row[2]): row for row in rows}  # (provider, variant); row[0] is the index
    assert {("CPU", "int8"), ("CPU", "fp32")} <= set(measured)
    for row in measured.values():
        ttfa, rtf = float(row[4]), float(row[5])
        assert ttfa > 0 and rtf > 0
    assert "Lowest real-time factor here" in text(shown)


def test_profiling_first_piece_sweep(profiling: Any) -> None:
    shown = cell(profiling, "first-piece-show")
    assert figures(shown) == 1
    (rows,) = tables(shown)
    assert len(rows) == 4
    ids_used = column(rows, 2)
    assert ids_used == sorted(ids_used) and ids_used[0] < ids_used[-1]
    assert all(t > 0 for t in column(rows, 3))


def test_profiling_text_length_and_concurrency(profiling: Any) -> None:
    length = cell(profiling, "length-show")
    assert figures(length) == 1
    (rows,) = tables(length)
    assert len(rows) == 3
    audio = column(rows, 4)
    assert audio == sorted(audio), "more sentences, more audio"

    concurrency = cell(profiling, "concurrency-show")
    assert figures(concurrency) == 1
    (rows,) = tables(concurrency)
    assert column(rows, 1) == [1, 2, 4]
    assert all(float(row[-1]) == 0 for row in rows), "no request failed"
    assert all(x > 0 for x in column(rows, 4))


def test_profiling_stages(profiling: Any) -> None:
    shown = cell(profiling, "stages-show")
    assert figures(shown) == 1
    (rows,) = tables(shown)
    assert len(rows) == 2
    for row in rows:
        normalize, phonemize, _, inference, post = (float(x) for x in row[1:6])
        assert inference > normalize + phonemize + post, "inference is most of the work"
    profile = "".join(data(cell(profiling, "stages-profile"), "text/html"))
    assert "<svg" in profile
    (percentiles,) = tables(cell(profiling, "recent-summary"))
    assert [row[0] for row in percentiles] == ["ttfa_s", "total_s", "rtf"]


def test_profiling_memory(profiling: Any) -> None:
    shown = cell(profiling, "memory-show")
    assert figures(shown) == 1
    (rows,) = tables(shown)
    assert len(rows) == 5
    assert all(float(row[2]) > 0 for row in rows[:4])
    assert "60 requests: 12 synthesized, 48 from the cache" in text(shown)


# --- every notebook --------------------------------------------------------------------------


def test_every_notebook_is_executed_by_a_test() -> None:
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == {
        "quickstart.ipynb",
        "profiling.ipynb",
        "voices.ipynb",
    }


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    assert "widgets" not in notebook.metadata
