"""The controls widget with the real engine: grouping, blends, the speak button, live re-synthesis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from kokoro_nb._controls import Controls, controls, runs_table
from kokoro_nb._kernel_engine import set_engine
from kokoro_nb._speech import Speech, conductor

TEXT = "Controls let you hear each voice."


@pytest.fixture
def panel(engine: Any) -> Iterator[Controls]:
    set_engine(engine)
    widget = controls(TEXT, live=False)
    yield widget
    conductor.stop_all()
    widget.close()


def finished(panel: Controls, runs: int, timeout: float = 300) -> Speech:
    """The last run once `runs` have finished (the worker records each as it ends)."""
    deadline = time.monotonic() + timeout
    while len(panel.runs) < runs:
        assert time.monotonic() < deadline, "no run finished"
        time.sleep(0.05)
    return panel.runs[-1]


def test_voices_are_grouped_by_language(panel: Controls) -> None:
    assert {"American English", "British English", "Japanese"} <= set(panel.language.options)
    assert panel.voice.value == "af_heart"
    panel.language.value = "British English"
    values = [value for _, value in panel.voice.options]
    assert values and all(v.startswith("b") for v in values)
    assert panel.voice.value == values[0]
    assert ("heart (female)", "af_heart") not in panel.voice.options


def test_blend_adds_a_weighted_second_voice(panel: Controls) -> None:
    assert panel.voice_spec == "af_heart" and panel.voice2.disabled
    panel.blend.value = True
    panel.voice2.value = "am_adam"
    panel.weight.value = 0.3
    assert not panel.voice2.disabled
    assert panel.voice_spec == "af_heart:0.70,am_adam:0.30"
    panel.button.click()
    run = finished(panel, 1)
    assert run.state == "done" and run.options.voice == "af_heart:0.70,am_adam:0.30"


def test_speak_button_plays_in_the_panel_and_records_metrics(panel: Controls) -> None:
    panel.speed.value = 1.1
    panel.button.click()
    run = finished(panel, 1)
    assert run.player is panel.player and run.options.speed == 1.1
    assert "af_heart" in panel.table.value and "1.10" in panel.table.value
    assert "done" in panel.status.value
    assert run.metrics["ttfa_s"] is not None


def test_live_changes_are_debounced_into_one_run(engine: Any) -> None:
    set_engine(engine)
    panel = controls(TEXT, live=True)
    try:
        for speed in (0.9, 1.0, 1.2, 1.3):  # a slider dragged: many changes, one run
            panel.speed.value = speed
        run = finished(panel, 1)
        time.sleep(2 * panel.debounce_s)  # any stray timer would have fired by now
        assert len(panel.runs) == 1 and run.options.speed == 1.3
        panel.voice.value = "af_bella"
        assert finished(panel, 2).options.voice == "af_bella"
    finally:
        conductor.stop_all()
        panel.close()


def test_empty_text_and_stop(panel: Controls) -> None:
    panel.text.value = "   "
    assert panel.speak() is None and "Type something" in panel.status.value
    panel.text.value = (
        "A sentence long enough to stop in the middle, and then a second one to be sure."
    )
    speech = panel.speak()
    assert speech is not None
    panel.stop_button.click()
    speech.wait(300)
    assert speech.state in ("stopped", "done")  # done only if it finished before the click


def test_runs_table_escapes_text(panel: Controls) -> None:
    panel.button.click()
    run = finished(panel, 1)
    run.options = run.options.__class__(voice="<b>x</b>")
    assert "&lt;b&gt;x&lt;/b&gt;" in runs_table([run])


def test_speak_ui_magic_returns_the_controls(ip: InteractiveShell) -> None:
    widget = ip.run_line_magic("speak", "--ui -v bf_emma Hello there")
    assert isinstance(widget, Controls)
    assert widget.text.value == "Hello there" and widget.voice.value == "bf_emma"
    assert widget.language.value == "British English"
    widget.close()
