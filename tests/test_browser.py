"""The player in a real JupyterLab and headless Chromium: order, gapless schedule, stop, reopen, autoplay.

Everything is asserted from the page (``window.__kokoroPlayers``) against what the kernel
says it sent. No timing is asserted; the first-audio latency is written to
``artifacts/browser_timing.json`` for the record.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _lab import CHROMIUM, Lab, LabPage, launch

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).parent / "notebooks"
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
FRAME_S = 1 / 24000  # one sample: the scheduling tolerance

if not Path(CHROMIUM).exists():  # pragma: no cover - the Makefile's `browser` target installs it
    pytest.skip(f"{CHROMIUM} is missing: run `make browser`", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def page(lab: Lab, playwright: Any) -> Iterator[LabPage]:
    browser = launch(playwright, autoplay=True)
    tab = LabPage(browser.new_page(viewport={"width": 1100, "height": 900}), lab)
    tab.open(lab.add_notebook(NOTEBOOKS / "player.ipynb"))
    tab.run_cell(1)  # %load_ext kokoro_nb
    yield tab
    browser.close()


def kernel_json(page: LabPage, index: int) -> dict[str, Any]:
    page.run_cell(index)
    text = page.text_output(index)
    assert text.strip(), f"cell {index} printed nothing"
    return dict(json.loads(text.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def played(page: LabPage) -> dict[str, Any]:
    """Run the paragraph cell; the page's record of the stream once it has played out."""
    started = page.js("performance.now()")
    outputs = page.run_cell(2)
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    player_id = page.wait_for(
        "Object.values(window.__kokoroPlayers).map(p => p.snapshot()).filter(p => p.stream > 0)[0].id",
        what="the player to start a stream",
    )
    page.wait_for(
        f"window.__kokoroPlayers['{player_id}'].snapshot().position > 1.0", what="playback"
    )
    # The kernel answers while the stream plays: the %%speak cell has long returned.
    before = page.js("performance.now()")
    assert page.run_cell(3)[0]["data"]["text/plain"] == "42"
    responsive_s = (page.js("performance.now()") - before) / 1000
    shot = page.page.locator(f'[data-kokoro-player="{player_id}"]')
    ARTIFACTS.mkdir(exist_ok=True)
    shot.screenshot(path=str(ARTIFACTS / "player.png"))
    page.wait_for(
        f"window.__kokoroPlayers['{player_id}'].snapshot().complete", timeout=600, what="all chunks"
    )
    page.wait_for(
        f"window.__kokoroPlayers['{player_id}'].snapshot().state === 'ended'", timeout=600
    )
    snapshot = page.player(player_id)
    kernel = kernel_json(page, 4)
    timing = {
        "cell_round_trip_while_playing_s": round(responsive_s, 3),
        "cell_to_first_audio_s": round((snapshot["firstAudioAt"] - started) / 1000, 3),
        "first_message_to_first_audio_ms": snapshot["firstAudioMs"],
        "preroll_s": snapshot["preroll"],  # what the adaptive pre-roll chose
        "rebuffers": snapshot["rebuffers"],
        "stalls": snapshot["stallCount"],
        "stall_s": snapshot["stalls"],
        "audio_s": snapshot["samples"] / 24000,
    }
    (ARTIFACTS / "browser_timing.json").write_text(json.dumps(timing, indent=2))
    return {"player": snapshot, "kernel": kernel, "id": player_id}


def test_every_chunk_arrives_in_order(played: dict[str, Any]) -> None:
    player, kernel = played["player"], played["kernel"]
    assert kernel["state"] == "done"
    assert kernel["player"] == player["id"]
    assert player["final"]["kind"] == "end"
    assert player["received"] == player["final"]["count"] == kernel["messages"]
    assert sorted(player["arrival"]) == list(range(kernel["messages"]))
    assert player["gaps"] == 0 and player["stale"] == 0
    assert kernel["acked"] == kernel["messages"] - 1  # the browser's ack reached the kernel


def test_scheduled_audio_is_as_long_as_the_engines_and_gapless(played: dict[str, Any]) -> None:
    player, kernel = played["player"], played["kernel"]
    scheduled = player["scheduled"]
    assert [s["seq"] for s in scheduled] == list(range(kernel["messages"]))
    total = sum(s["samples"] for s in scheduled)
    assert total == player["samples"] == player["final"]["samples"]
    assert abs(total - kernel["samples"]) <= 0.02 * kernel["samples"]
    for before, after in itertools.pairwise(scheduled):
        assert after["offset"] == before["offset"] + before["samples"]  # no gap in the samples
        # ... nor in time: each chunk starts where the last ends, unless the timeline had to
        # wait for a late chunk (a stall, recorded as such).
        gap = after["when"] - (before["when"] + before["duration"])
        assert abs(gap - after["stall"]) <= 2 * FRAME_S, (before, after)


def test_download_is_the_whole_clip_as_wav(page: LabPage, played: dict[str, Any]) -> None:
    button = page.page.locator(f'[data-kokoro-player="{played["id"]}"] .kp-download')
    with page.page.expect_download() as download:
        button.click()
    data = Path(download.value.path()).read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert len(data) == 44 + 2 * played["kernel"]["samples"]
    assert download.value.suggested_filename.endswith(".wav")


def test_stop_in_the_browser_stops_the_kernel_stream(page: LabPage, played: dict[str, Any]) -> None:
    page.run_cell(5)  # a second paragraph
    player_id = page.wait_for(
        "Object.values(window.__kokoroPlayers).map(p => p.snapshot())"
        f".filter(p => p.id !== '{played['player']['id']}' && p.received > 0)[0].id",
        what="the second player's first chunk",
    )
    if page.player(player_id)["final"] is not None:  # a fast accelerator can finish first
        pytest.skip("the whole paragraph was synthesized before Stop could be pressed")
    page.page.locator(f'[data-kokoro-player="{player_id}"] .kp-stop').click()
    page.wait_for(f"window.__kokoroPlayers['{player_id}'].snapshot().complete", what="the abort")
    snapshot = page.player(player_id)
    kernel = kernel_json(page, 6)
    assert snapshot["final"]["kind"] == "abort" and snapshot["final"]["reason"] == "stopped"
    assert snapshot["state"] == "stopped"
    assert kernel["state"] == "stopped" and kernel["complete"] is False
    assert snapshot["received"] == snapshot["final"]["count"] == kernel["messages"]
    text = page.js("__panel().content.widgets[5].model.sharedModel.getSource()")
    estimated_samples = len(text) / 14.5 * 24000  # ~14.5 characters a second at speed 1
    assert kernel["samples"] < 0.6 * estimated_samples  # stopped well before the end


def test_saved_notebook_reopens_with_static_audio(
    page: LabPage, lab: Lab, played: dict[str, Any]
) -> None:
    page.wait_for(
        "__panel().content.widgets[2].model.outputs.toJSON()"
        ".some(o => o.data && String(o.data['text/html'] || '').includes('<audio'))",
        what="the static audio output",
    )
    page.save()
    saved = nbformat.read(lab.root / "player.ipynb", as_version=4)
    htmls = [o.get("data", {}).get("text/html", "") for o in saved.cells[2].outputs]
    assert any('<audio controls src="data:audio/wav;base64,' in h for h in htmls)
    lab.shutdown_kernels()
    page.open("player.ipynb")
    audio = page.wait_for(
        "Array.from(__panel().content.widgets[2].node.querySelectorAll('audio'))"
        ".map(a => ({src: a.getAttribute('src').slice(0, 30), controls: a.controls}))",
        what="the <audio> element after reopening",
    )
    assert len(audio) == 1 and audio[0]["controls"]
    assert audio[0]["src"].startswith("data:audio/wav;base64,UklGR")  # "RIFF": a WAV file
    if (ARTIFACTS / "player.png").exists():
        shutil.copy(ARTIFACTS / "player.png", ARTIFACTS / "player-latest.png")


def test_suspended_audio_shows_a_play_button_and_keeps_buffering(lab: Lab, playwright: Any) -> None:
    browser = launch(
        playwright, autoplay=False
    )  # Chromium's default policy: no sound before a gesture
    try:
        tab = LabPage(browser.new_page(viewport={"width": 1100, "height": 700}), lab)
        tab.open(lab.add_notebook(NOTEBOOKS / "autoplay_blocked.ipynb"))
        assert tab.js("navigator.userActivation.hasBeenActive") is False
        tab.run_cell(0)
        tab.run_cell(1)
        player_id = tab.wait_for(
            "Object.values(window.__kokoroPlayers).map(p => p.snapshot()).filter(p => p.stream > 0)[0].id",
            what="the player",
        )
        blocked = tab.wait_for(
            f"(s => s.complete && s.state === 'blocked' && s)(window.__kokoroPlayers['{player_id}'].snapshot())",
            what="a complete stream held by the autoplay policy",
        )
        assert blocked["context"] == "suspended" and blocked["scheduled"] == []
        kernel = kernel_json(tab, 2)
        assert kernel["acked"] == kernel["messages"] - 1 == blocked["received"] - 1
        # Playwright's own queries count as user gestures (they would unlock the audio), so
        # find the button through the DevTools protocol and press it with a real mouse click.
        box = tab.js(
            f"(() => {{ const b = document.querySelector('[data-kokoro-player=\"{player_id}\"] .kp-unlock');"
            " b.scrollIntoView({block: 'center'}); const r = b.getBoundingClientRect();"
            " const p = b.closest('.kokoro-player').getBoundingClientRect();"
            " return !b.closest('.kp-blocked').hidden && r.width > 0 &&"
            " {x: r.x + r.width / 2, y: r.y + r.height / 2,"
            " clip: {x: p.x, y: p.y, width: p.width, height: p.height, scale: 1}}; })()"
        )
        assert box, "the play button is not shown"
        tab.page.wait_for_timeout(600)  # the button fades in (no flash when audio may start)
        shot = tab.cdp.send("Page.captureScreenshot", {"format": "png", "clip": box["clip"]})
        (ARTIFACTS / "player-blocked.png").write_bytes(base64.b64decode(shot["data"]))
        assert tab.player(player_id)["state"] == "blocked"
        tab.page.mouse.click(box["x"], box["y"])  # a real user gesture
        playing = tab.wait_for(
            f"(s => s.context === 'running' && s.scheduled.length && s)(window.__kokoroPlayers['{player_id}'].snapshot())",
            what="playback after the click",
        )
        assert sum(s["samples"] for s in playing["scheduled"]) == kernel["samples"]
    finally:
        browser.close()
