"""The notebook layer when things go wrong: interrupts, closed players, gone tabs, a second
cell, bad input, markup as text and garbage on the widget's wire.

Everything runs on the real engine. Interrupts go through a real kernel (jupyter_client),
a gone tab through real JupyterLab and headless Chromium; the rest through a real IPython
shell whose widget comms are recorded instead of sent. Nothing asserts a duration: waits
have generous deadlines and the checks are about what happened, in which order.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

import kokoro_engine
import kokoro_nb
from kokoro_engine import pcm16
from kokoro_nb._controls import Controls, runs_table
from kokoro_nb._kernel_engine import set_engine
from kokoro_nb._options import Options
from kokoro_nb._player import Player
from kokoro_nb._protocol import (
    ABORT_REASONS,
    BROWSER_STATES,
    TITLE_CHARS,
    Abort,
    Ack,
    ChunkMsg,
    End,
    Message,
    ProtocolError,
    Reassembler,
    Start,
    State,
    Stop,
    decode,
    encode,
    short,
)
from kokoro_nb._speech import Speech, _Outputs, conductor, say, wait
from kokoro_nb._static_audio import StaticAudio

from shell import RecordingComm, channel, run

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Long enough that nobody finishes it by accident (about a minute of audio), and worded
# apart from every other test's text so the engine's audio cache never answers for it.
LONG = " ".join(
    f"Harbor note {n}: the {colour} ferry left the pier while gulls circled the old crane."
    for n, colour in enumerate(
        ["red", "blue", "green", "grey", "white", "black", "amber", "violet", "silver", "olive"] * 2
    )
)
AGAIN = "The engine still speaks."  # said after each fault (cached after the first time)
MARKUP = '<img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script> & <b>b</b>'


def deadline_loop(what: str, timeout: float = 300) -> Iterator[None]:
    """Yields until the caller breaks out; fails (not a timing assertion: a hang) at `timeout`."""
    end = time.monotonic() + timeout
    while True:
        yield
        if time.monotonic() > end:
            pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(0.02)


# --- a real kernel: KeyboardInterrupt while a cell waits ----------------------------------


class Kernel:
    """A kernel of this venv driven as a frontend would: execute, read iopub, interrupt."""

    def __init__(self, connection_file: Path | None = None) -> None:
        from jupyter_client.blocking import BlockingKernelClient
        from jupyter_client.manager import KernelManager, start_new_kernel

        self.manager: KernelManager | None = None
        if connection_file is None:
            self.manager, self.client = start_new_kernel(kernel_name="python3")
        else:  # a kernel someone else runs (JupyterLab's): talk to it, never shut it down
            self.client = BlockingKernelClient()
            self.client.load_connection_file(str(connection_file))
            self.client.start_channels()
            self.client.wait_for_ready(timeout=60)

    def interrupt(self) -> None:
        assert self.manager is not None
        self.manager.interrupt_kernel()

    def submit(self, code: str) -> str:
        return str(self.client.execute(code))

    def messages(self, msg_id: str, until_idle: bool = True, timeout: float = 300) -> Iterator[Any]:
        """iopub messages of one execution (widget messages from its worker included)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            message = self.client.get_iopub_msg(timeout=max(0.1, end - time.monotonic()))
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if until_idle and kind == "status" and content["execution_state"] == "idle":
                return
            yield message
        pytest.fail(f"no idle status for {msg_id} within {timeout} s")

    def reply(self, msg_id: str, timeout: float = 300) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            message = self.client.get_shell_msg(timeout=max(0.1, end - time.monotonic()))
            if message["parent_header"].get("msg_id") == msg_id:
                return dict(message["content"])
        pytest.fail(f"no reply for {msg_id} within {timeout} s")

    def run(self, code: str) -> tuple[dict[str, Any], list[Any]]:
        msg_id = self.submit(code)
        seen = list(self.messages(msg_id))
        return self.reply(msg_id), seen

    def json(self, code: str) -> dict[str, Any]:
        """Run `code`, which prints one JSON object last; that object."""
        reply, seen = self.run(code)
        assert reply["status"] == "ok", reply
        text = "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream")
        return dict(json.loads(text.strip().splitlines()[-1]))

    def close(self) -> None:
        self.client.stop_channels()
        if self.manager is not None:
            self.manager.shutdown_kernel(now=True)


def is_chunk(message: Any) -> bool:
    data = message["content"].get("data", {}) if message["msg_type"] == "comm_msg" else {}
    return data.get("method") == "custom" and data.get("content", {}).get("type") == "chunk"


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    try:
        reply, _ = k.run(
            "%load_ext kokoro_nb\nimport json, kokoro_nb\n_ = kokoro_nb.get_engine().wait_warm(300)"
        )
        assert reply["status"] == "ok", reply
        yield k
    finally:
        k.close()


REPORT = """
import json, kokoro_nb
engine = kokoro_nb.get_engine()
runs = lambda: sum(lane["runs"] for lane in engine.pool.describe())
before = runs()
kokoro_nb.wait(300)  # the worker ends within one piece; then nothing more may run
row = engine.recent.rows[-1]
print(json.dumps({{
    "state": {v}.state, "reason": {v}.reason, "chunks": {v}.chunks,
    "stopped_after": {v}.stopped_after, "complete": {v}.metrics.get("complete"),
    "error": repr({v}.error), "chars": len({v}.text), "row_chars": row["chars"],
    "row_complete": row["complete"], "row_pieces": len(row["pieces"]),
    "audio_s": {v}.audio.duration_s if {v}.audio is not None else 0.0,
    "lanes": len(engine.pool.lanes), "runs_after_stop": runs() - before,
}}))
"""


def test_interrupting_a_waiting_cell_stops_synthesis_and_the_next_cell_speaks(
    kernel: Kernel,
) -> None:
    msg_id = kernel.submit(f"%%speak --wait -o s\n{LONG}")
    stream = kernel.messages(msg_id)
    for message in stream:  # the first chunk is on its way to the browser: synthesis runs
        if is_chunk(message):
            break
    kernel.interrupt()
    errors = [m["content"] for m in stream if m["msg_type"] == "error"]
    reply = kernel.reply(msg_id)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    # What the notebook shows: one line, not a stack through the magic's frames.
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1
    shown = ANSI.sub("", errors[0]["traceback"][0])
    assert re.fullmatch(r"KeyboardInterrupt: speech stopped after \d+ chunk\(s\)", shown), shown

    report = kernel.json(REPORT.format(v="s"))  # -o s was bound before the cell blocked
    assert report["state"] == "stopped" and report["reason"] == "interrupted"
    assert report["error"] == "None"
    # Within one piece: at most the chunk already on its way is delivered after the stop ...
    assert report["stopped_after"] >= 1 and report["chunks"] <= report["stopped_after"] + 1
    # ... and no lane starts another piece of it (each may finish the one it was running).
    assert report["runs_after_stop"] <= report["lanes"]
    assert report["audio_s"] < 0.5 * len(LONG) / 14.5  # far from the ~60 s of the whole text
    # The engine's own record: this request, marked incomplete.
    assert report["complete"] is False and report["row_complete"] is False
    assert report["row_chars"] == report["chars"] and report["row_pieces"] == report["chunks"]

    reply, seen = kernel.run("%%speak --wait -o t\nThe engine is still here after the interrupt.")
    assert reply["status"] == "ok", reply
    after = kernel.json(REPORT.format(v="t"))
    assert after["state"] == "done" and after["complete"] is True and after["audio_s"] > 1
    assert not [m for m in seen if m["msg_type"] == "error"]


def test_interrupting_a_queued_cell_stops_only_that_cell(kernel: Kernel) -> None:
    first = "The lighthouse keeper counted the waves and the stars above the bay."
    reply, _ = kernel.run(f"%%speak -o a\n{first}")
    assert reply["status"] == "ok"
    msg_id = kernel.submit("%%speak --queue --wait -o b\nThe queued cell waits for its turn.")
    stream = kernel.messages(msg_id)
    for message in stream:  # its player and output slot are shown; then it waits for `a`
        data = message["content"].get("data", {}) if message["msg_type"] == "display_data" else {}
        if data.get("text/plain") == "":
            break
    kernel.interrupt()
    list(stream)
    assert kernel.reply(msg_id)["ename"] == "KeyboardInterrupt"
    report = kernel.json(
        "kokoro_nb.wait(300)\nprint(json.dumps({'a': [a.state, a.metrics.get('complete')],"
        " 'b': [b.state, b.reason, b.chunks]}))"
    )
    assert report["b"] == ["stopped", "interrupted", 0]
    assert report["a"] == ["done", True]  # the speech already playing was not touched


# --- a real IPython shell, widget comms recorded ------------------------------------------


def speech_of(ip: InteractiveShell, name: str) -> Speech:
    speech = ip.user_ns[name]
    assert isinstance(speech, Speech)
    return speech


def wait_for_chunk(channel: RecordingComm) -> None:
    for _ in deadline_loop("the first chunk message"):
        if any(isinstance(m, ChunkMsg) for m in channel.decoded()):
            return


def close_from_kernel(player: Player, channel: RecordingComm) -> None:
    player.close()


def close_from_frontend(player: Player, channel: RecordingComm) -> None:
    channel.handle_close({"content": {"data": {}}})  # JupyterLab destroyed the widget model


@pytest.mark.parametrize("close", [close_from_kernel, close_from_frontend])
def test_closing_the_player_mid_stream_stops_the_stream_quietly(
    ip: InteractiveShell,
    comms: list[RecordingComm],
    outputs: list[dict[str, Any]],
    close: Callable[[Player, RecordingComm], None],
) -> None:
    text = LONG.replace("Harbor", "Closing" if close is close_from_kernel else "Closed")
    run(ip, f"%%speak -o s\n{text}")
    s = speech_of(ip, "s")
    wire = channel(s.player)
    wait_for_chunk(wire)
    assert s.player is not None
    close(s.player, wire)  # nothing raises here ...
    s.wait(300)  # ... nor here
    assert s.state == "stopped" and s.reason == "closed" and s.traceback == ""
    assert s.stopped_after is not None and s.chunks <= s.stopped_after + 1
    assert s.metrics["complete"] is False
    if close is close_from_kernel:
        # Nothing is sent on a closed comm: the close is the last thing the kernel published.
        assert wire.published[-1][0] == "comm_close"
    # The output slot still gets the audio that was made, as a static clip.
    assert "<audio controls" in outputs[-1]["data"]["text/html"] and "closed" in repr(
        outputs[-1]["data"]["text/plain"]
    )
    run(ip, f"%%speak --wait -o t\n{AGAIN}")  # the same words each time: from the cache
    assert speech_of(ip, "t").state == "done"


@pytest.mark.browser
def test_a_tab_closed_mid_stream_leaves_a_clean_kernel_and_markup_stays_text(
    tmp_path: Path,
) -> None:
    """Real JupyterLab and Chromium: the player shows markup as text; closing the tab while
    that stream plays leaves the kernel's speech to end cleanly, and the kernel speaks again."""
    from _lab import CHROMIUM, Lab, LabPage, launch

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser`")
    sync_api = pytest.importorskip("playwright.sync_api")
    nbformat = pytest.importorskip("nbformat")
    text = f"{MARKUP}. " + ". ".join(LONG.replace("Harbor", "Tab").split(". ")[:2]) + "."
    cells = [
        "%load_ext kokoro_nb\nimport json, kokoro_nb\n_ = kokoro_nb.get_engine().wait_warm(300)",
        f"%%speak --raw -o gone\n{text}",  # --raw: the markup is not stripped as markdown
    ]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    document = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in cells], metadata={"kernelspec": kernelspec}
    )
    notebook = tmp_path / "tab.ipynb"
    nbformat.write(document, notebook)  # with a kernelspec, or Lab asks which kernel to use
    with Lab(tmp_path) as lab, sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            tab = LabPage(browser.new_page(viewport={"width": 1000, "height": 800}), lab)
            tab.open(lab.add_notebook(notebook))
            tab.run_cell(0)
            tab.run_cell(1)
            player = tab.wait_for(
                "Object.values(window.__kokoroPlayers).map(p => p.snapshot())"
                ".filter(p => p.received > 0)[0].id",
                what="the first chunk in the page",
            )
            dom = tab.js(
                f"(() => {{ const el = document.querySelector('[data-kokoro-player=\"{player}\"]');"
                " const text = el.querySelector('.kp-text');"
                " return { pwned: window.__pwned === undefined ? null : window.__pwned,"
                " tags: el.querySelectorAll('img, script, b').length,"
                " textChildren: text.childElementCount, text: text.textContent,"
                f" title: window.__kokoroPlayers['{player}'].s.title,"
                f" complete: window.__kokoroPlayers['{player}'].s.complete,"
                " pageImgs: document.querySelectorAll('img[src=\"x\"]').length }; })()"
            )
            tab.page.close()  # the tab is gone mid-stream; the kernel is not told
        finally:
            browser.close()
        # The user's markup reached the player as a string and stayed one.
        assert dom["pwned"] is None and dom["tags"] == 0 and dom["pageImgs"] == 0, dom
        assert dom["title"] == short(text, TITLE_CHARS) and dom["textChildren"] == 0, dom
        assert "<" in dom["text"], dom  # the spoken piece's text, markup shown as typed
        (session,) = lab.api("GET", "/api/sessions")
        runtime = lab.home / "jupyter_runtime_dir"
        kernel = Kernel(runtime / f"kernel-{session['kernel']['id']}.json")
        try:
            report = kernel.json(
                "gone.wait(300)\nprint(json.dumps({'state': gone.state, 'error': repr(gone.error),"
                " 'traceback': gone.traceback, 'player_errors': gone.player.errors,"
                " 'complete': gone.metrics.get('complete'), 'sent': gone.writer.count}))"
            )
            reply, _ = kernel.run(f"%%speak --wait -o again\n{AGAIN}")
            assert reply["status"] == "ok", reply
            after = kernel.json("print(json.dumps({'state': again.state}))")
        finally:
            kernel.close()
    # Nobody listens any more; the kernel neither knows nor minds: the speech ends cleanly.
    assert report["state"] == "done" and report["complete"] is True, report
    assert report["error"] == "None" and report["traceback"] == "", report
    assert report["player_errors"] == [] and report["sent"] > 1, report
    assert after["state"] == "done"
    if dom["complete"]:  # a fast machine: the stream was whole before the tab closed
        pytest.skip("synthesis finished before the tab closed: not a mid-stream close")


def test_closing_the_controls_stops_their_speech(engine: Any, comms: list[RecordingComm]) -> None:
    set_engine(engine)
    panel = Controls(LONG.replace("Harbor", "Panel"), live=False)
    speech = panel.speak()
    assert speech is not None
    wait_for_chunk(channel(panel.player))
    panel.close()
    speech.wait(300)
    assert speech.state == "stopped" and speech.reason == "closed" and panel.player.closed
    assert panel.comm is None and panel.speed.comm is None  # the whole panel went away


def test_a_queued_speech_whose_player_closed_never_runs(
    ip: InteractiveShell, comms: list[RecordingComm]
) -> None:
    run(ip, f"%%speak -o a\n{LONG.replace('Harbor', 'Holding')}")
    run(ip, "%%speak --queue -o b\nThis one never gets to speak.")
    a, b = speech_of(ip, "a"), speech_of(ip, "b")
    assert b.player is not None
    b.player.close()  # while it still waits for `a`
    a.stop()  # now its turn comes, with nobody left to hear it
    b.wait(300)
    assert b.state == "stopped" and b.reason == "closed" and b.chunks == 0


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def test_a_now_cell_supersedes_the_first_and_loses_nothing_of_its_own(
    ip: InteractiveShell, comms: list[RecordingComm], engine: Any
) -> None:
    # Cells queue by default now; --now is what stops the speech already going.
    first_text = LONG.replace("Harbor", "Superseded")
    second_text = "The second cell speaks every word; none may be dropped or repeated."
    run(ip, f"%%speak -o a\n{first_text}")
    a = speech_of(ip, "a")
    first = channel(a.player)
    wait_for_chunk(first)
    run(ip, f"%%speak --now -o b\n{second_text}")
    b = speech_of(ip, "b")
    audio = b.wait(300)
    a.wait(300)
    assert a.state == "stopped" and a.reason == "superseded"
    # The first request is in the engine's log, marked incomplete.
    assert a.metrics["complete"] is False
    row = next(r for r in reversed(engine.recent.rows) if r["chars"] == len(first_text))
    assert row["complete"] is False
    old = first.decoded()
    assert isinstance(old[-1], Abort) and old[-1].reason == "superseded"
    assert old[-1].count == sum(isinstance(m, ChunkMsg) for m in old)  # no half-sent chunk
    # The second stream is whole: every piece in order, every sample, every word.
    assert b.state == "done" and b.metrics["complete"] is True and audio is not None
    browser = Reassembler()
    for message in channel(b.player).decoded():
        browser.feed(message)
    assert browser.complete and isinstance(browser.final, End) and browser.stale == 0
    assert browser.audio().tobytes() == pcm16(audio.samples)
    pieces = [p["seq"] for p in b.metrics["pieces"]]
    assert pieces == list(range(len(pieces)))
    spoken = words(" ".join(dict.fromkeys(browser.texts)))  # split pieces repeat their text
    assert spoken == words(second_text)


def test_a_queued_cell_loses_nothing_and_leaves_the_first_whole(
    ip: InteractiveShell, comms: list[RecordingComm]
) -> None:
    run(ip, "%%speak -o a\nFirst in line.")
    run(ip, "%%speak --queue -o b\nSecond in line.")
    a, b = speech_of(ip, "a"), speech_of(ip, "b")
    b.wait(300)
    for speech in (a, b):
        assert speech.state == "done" and speech.metrics["complete"] is True
        assert speech.audio is not None
        browser = Reassembler()
        for message in channel(speech.player).decoded():
            browser.feed(message)
        assert browser.complete and browser.audio().tobytes() == pcm16(speech.audio.samples)


def test_an_interrupt_while_the_cell_sets_up_leaves_no_speech_behind(
    ip: InteractiveShell,
) -> None:
    class Interrupting(CapturingDisplayPublisher):
        def publish(self, *args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt  # Ctrl-C lands while the player is being displayed

    saved, ip.display_pub = ip.display_pub, Interrupting()
    try:
        result = ip.run_cell("%%speak -o s\nThis utterance is interrupted before it starts.")
    finally:
        ip.display_pub = saved
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert len(result.error_in_exec._render_traceback_()) == 1  # type: ignore[attr-defined]
    # Its engine stream was closed and nothing waits on it: wait() returns at once.
    assert wait(60) and not conductor.live()
    run(ip, f"%%speak --wait -o t\n{AGAIN}")
    assert speech_of(ip, "t").state == "done"


# --- errors: one readable line -------------------------------------------------------------

BAD_CELLS = [
    ("%speak -v af_hart Hello.", "VoiceError: unknown voice 'af_hart'; did you mean af_heart"),
    ("%speak -s 0 Hello.", "InputError: speed 0.0 is out of range"),
    ("%speak -s nan Hello.", "InputError: speed nan is out of range"),
    ("%speak -s inf Hello.", "InputError: speed inf is out of range"),
    ("%speak -s fast Hello.", "UsageError: %%speak: argument -s/--speed: invalid float value"),
    ("%speak -l klingon Hello.", "InputError: unknown language 'klingon'; use one of: en-us"),
    ("%%speak\n   \n\t", "UsageError: %speak: nothing to say"),
    ("%%speak\n---\n![](figure.png)", "InputError: nothing to say"),  # markup, no words
    ('%speak -v "af_heart:0.7,," Hello.', "VoiceError: voice blend 'af_heart:0.7,,' has an empty"),
    ("%speak -v af_heart:-1,am_adam:2 Hello.", "VoiceError: voice blend 'af_heart:-1,am_adam:2'"),
    ("%speak -v af_heart:x Hello.", "VoiceError: voice blend 'af_heart:x': weight 'x' is not"),
    ("%speak --save {tmp}/clip.mp3 Hello.", "InputError: cannot save 'clip.mp3': use a .wav"),
    ("%speak --save {tmp}/nowhere/clip.wav Hello.", "InputError: cannot save to '"),
    ("%speak --save {tmp} Hello.", "InputError: cannot save"),
    ("%speak --save {tmp}/sub.wav Hello.", "InputError: cannot save to '"),  # a folder
]


@pytest.mark.parametrize(("source", "line"), BAD_CELLS)
def test_mistakes_show_as_one_readable_line(
    ip: InteractiveShell,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    source: str,
    line: str,
) -> None:
    (tmp_path / "sub.wav").mkdir()
    capsys.readouterr()
    result = ip.run_cell(source.replace("{tmp}", str(tmp_path)))
    assert not result.success
    captured = capsys.readouterr()
    shown = [x for x in ANSI.sub("", captured.out + captured.err).splitlines() if x.strip()]
    assert len(shown) == 1, shown  # no stack, no blank-line-separated second part
    assert shown[0].startswith(line), shown
    assert "Traceback" not in shown[0] and "File " not in shown[0]


def test_bad_input_does_not_stop_the_speech_already_playing(
    ip: InteractiveShell, comms: list[RecordingComm]
) -> None:
    run(ip, "%%speak -o a\nThe good cell keeps talking.")
    assert not ip.run_cell("%speak -v zz_nobody Hello.").success
    # The player made for the failed cell was never shown; it is closed, not left behind.
    assert comms[-1].published[-1][0] == "comm_close"
    a = speech_of(ip, "a")
    a.wait(300)
    assert a.state == "done"


def test_a_queued_mistake_fails_in_its_own_cell_at_once(
    ip: InteractiveShell, comms: list[RecordingComm]
) -> None:
    # Queuing is the default now, so a queued cell is checked when it runs, not when its
    # turn comes (minutes later, after a long speech): it fails as one line, at once.
    run(ip, f"%%speak -o a\n{LONG.replace('Harbor', 'Ahead')}")
    result = ip.run_cell('%%speak -o s -v "<img src=x onerror=alert(1)>"\nHello.')
    assert isinstance(result.error_in_exec, kokoro_engine.VoiceError)
    assert len(result.error_in_exec._render_traceback_()) == 1  # type: ignore[attr-defined]
    a = speech_of(ip, "a")
    assert a.state in ("queued", "running", "done") and not a.reason  # it goes on
    a.stop()


def test_an_error_in_the_output_is_one_escaped_line(
    ip: InteractiveShell, outputs: list[dict[str, Any]]
) -> None:
    # What a speech that fails mid-stream shows in its cell's output slot.
    _Outputs(None).error("VoiceError: unknown voice '<img src=x onerror=alert(1)>'")
    final = outputs[-1]["data"]
    assert len(final["text/plain"].splitlines()) == 1
    assert final["text/plain"].startswith("VoiceError: ")
    assert (
        "<img" not in final["text/html"]
        and "&lt;img src=x onerror=alert(1)&gt;" in (final["text/html"])
    )


def test_a_save_that_fails_after_synthesis_keeps_the_clip(
    ip: InteractiveShell, outputs: list[dict[str, Any]], tmp_path: Path
) -> None:
    target = tmp_path / "gone" / "clip.wav"
    target.parent.mkdir()
    run(ip, f"%%speak -o a\n{LONG.replace('Harbor', 'Saving')}")
    run(ip, f"%%speak --queue -o s --save {target}\nThe folder disappears before this is saved.")
    target.parent.rmdir()  # the check when the cell ran passed; the disk changed since
    speech_of(ip, "a").stop()  # let the queued one run
    s = speech_of(ip, "s")
    with pytest.raises(Exception):  # noqa: B017 - whatever the sound library raises
        s.wait(300)
    assert s.state == "failed" and s.audio is not None and s.audio.duration_s > 1
    html = outputs[-1]["data"]["text/html"]
    assert "<audio controls" in html and "not saved: " in html


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"voice": "af_hart"}, kokoro_engine.VoiceError),
        ({"voice": "af_heart:0.5,"}, kokoro_engine.VoiceError),
        ({"voice": "af_heart:-0.5,am_adam:1"}, kokoro_engine.VoiceError),
        ({"speed": 0.0}, kokoro_engine.InputError),
        ({"speed": math.inf}, kokoro_engine.InputError),
        ({"speed": math.nan}, kokoro_engine.InputError),
        ({"lang": "tlh"}, kokoro_engine.InputError),
        ({"text": " \n "}, kokoro_engine.InputError),
        ({"save": "clip.mp3"}, kokoro_engine.InputError),
        ({"save": "/no/such/folder/clip.wav"}, kokoro_engine.InputError),
    ],
)
def test_say_raises_the_engines_own_errors(
    ip: InteractiveShell, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    assert kokoro_nb.say is say  # the public name
    text = kwargs.pop("text", "Hello.")
    with pytest.raises(error) as caught:
        say(text, display=False, **kwargs)  # kokoro_nb.say
    assert isinstance(caught.value, kokoro_engine.KokoroError)
    assert len(caught.value._render_traceback_()) == 1  # type: ignore[attr-defined]


# --- user text shown as HTML is escaped -------------------------------------------------------


def test_player_js_never_parses_strings_as_html() -> None:
    source = (Path(kokoro_nb.__file__).parent / "player.js").read_text()
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)  # comments may say anything
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "DOMParser",
        "createContextualFragment",
        "eval(",
        "new Function",
        'setAttribute("on',
    ):
        assert sink not in code, f"player.js uses {sink}"
    # Every piece of text the player shows is assigned as textContent.
    assert code.count(".textContent =") >= 4


def test_markup_in_outputs_is_escaped(
    ip: InteractiveShell, outputs: list[dict[str, Any]], tmp_path: Path
) -> None:
    # A file name is user text that reaches the output: "saved to <path>".
    name = "<img src=x onerror=alert(1)>.wav"
    cell = f'%%speak --wait -o s --save "{tmp_path / name}"\nThis file has an odd name.'
    run(ip, cell)
    assert speech_of(ip, "s").state == "done" and (tmp_path / name).exists()
    html = outputs[-1]["data"]["text/html"]  # the static clip and its caption
    assert "<img" not in html and "<script" not in html and "&lt;img src=x" in html
    run(ip, "%config SpeakMagics.static_max_s = 0")  # no clip: the note alone
    try:
        run(ip, cell)  # the same words: the engine's cache answers
    finally:
        run(ip, "%config SpeakMagics.static_max_s = 60.0")
    html = outputs[-1]["data"]["text/html"]
    assert html.startswith("<small>") and "<img" not in html and "&lt;img src=x" in html


def test_static_audio_escapes_its_caption() -> None:
    clip = StaticAudio(np.zeros(2400, np.float32), caption=MARKUP)
    html = clip._repr_html_()
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html


def test_controls_escape_status_lines_and_run_tables(engine: Any) -> None:
    set_engine(engine)
    panel = Controls(MARKUP, live=False)
    try:
        panel._say_status(f"VoiceError: unknown voice {MARKUP!r}", error=True)
        assert "<img" not in panel.status.value and "&lt;img" in panel.status.value
        runs = [Speech(MARKUP, Options(voice=MARKUP, speed=1.0))]
        runs[0].state = "<script>alert(1)</script>"
        runs[0].metrics = {"ttfa_s": 0.1, "audio_s": 1.0, "total_s": 0.4, "rtf": 0.4}
        table = runs_table(runs)
        assert "<img" not in table and "<script" not in table and "&lt;script&gt;" in table
    finally:
        panel.player.close()
        panel.close()


# --- the widget's wire: decode(encode(m)) == m, garbage → ProtocolError ------------------------

ints = st.integers(0, 2**53)
texts = st.text(max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), finite, texts)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Start,
        st.integers(1, 2**53),
        st.integers(1, 10**6),
        texts,
        texts,
        finite,
        st.booleans(),
        ints,
    ),
    st.builds(
        ChunkMsg,
        st.integers(1, 2**53),
        ints,
        ints,
        ints,
        texts,
        st.binary(min_size=2, max_size=128).map(lambda b: b[: len(b) // 2 * 2]),
    ),
    st.builds(End, st.integers(1, 2**53), ints, ints, st.dictionaries(texts, json_scalars)),
    st.builds(Abort, st.integers(1, 2**53), ints, ints, st.sampled_from(ABORT_REASONS), texts),
    st.builds(Ack, st.integers(1, 2**53), st.integers(-1, 2**53), ints),
    st.builds(Stop, st.integers(1, 2**53)),
    st.builds(State, st.integers(1, 2**53), st.sampled_from(BROWSER_STATES), finite),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_decode_inverts_encode_through_json(message: Message) -> None:
    content, buffers = encode(message)
    assert decode(content, buffers) == message
    # The wire is JSON (plus raw buffers): the round trip survives serialization too.
    assert decode(json.loads(json.dumps(content)), [memoryview(b) for b in buffers]) == message


json_values = st.recursive(
    json_scalars | st.floats() | st.integers(),  # NaN, infinity and huge integers included
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
KEYS = ["type", "stream", "seq", "offset", "piece", "text", "count", "samples", "reason",
        "state", "position", "speed", "rate", "title", "voice", "queue", "chars", "metrics",
        "error"]  # fmt: skip
garbage_content = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(KEYS),
        json_values | st.sampled_from(["chunk", "end", "abort", "ack", "stop", "state", "start"]),
    ),
    messages.map(lambda m: encode(m)[0]).flatmap(  # a valid message with one field spoiled
        lambda content: st.tuples(st.sampled_from(sorted(content)), json_values).map(
            lambda kv: {**content, kv[0]: kv[1]}
        )
    ),
)
garbage_buffers = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.binary(max_size=8),
            st.binary(max_size=8).map(lambda b: memoryview(b)),
            st.binary(max_size=8).map(bytearray),
            json_values,
        ),
        max_size=3,
    ),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(garbage_content, garbage_buffers)
def test_garbage_is_a_protocol_error_never_a_crash(content: Any, buffers: Any) -> None:
    try:
        message = decode(content, buffers)
    except ProtocolError as exc:
        assert str(exc)  # says what is wrong
    else:
        assert encode(message)[0]["type"] == content["type"]


@pytest.mark.parametrize(
    ("content", "buffers"),
    [
        ({"type": "state", "stream": 1, "state": "playing", "position": 10**400}, []),
        ({"type": "state", "stream": 1, "state": "playing", "position": math.inf}, []),
        ({"type": "start", "stream": 1, "rate": 24000, "speed": -math.inf}, []),
        ({"type": "chunk", "stream": 1, "seq": 0, "offset": 0, "piece": 0}, ["abcd"]),
        ({"type": "chunk", "stream": 1, "seq": 0, "offset": 0, "piece": 0}, [12]),
        ({"type": "chunk", "stream": 1, "seq": 0, "offset": 0, "piece": 0}, b"\x00\x00"),
        ({"type": "stop", "stream": 1}, "x"),
    ],
)
def test_decode_regressions(content: dict[str, Any], buffers: Any) -> None:
    # The first five crashed decode (OverflowError, TypeError) or passed as valid before.
    with pytest.raises(ProtocolError):
        decode(content, buffers)


def test_garbage_from_the_browser_never_reaches_the_kernel_as_an_exception(
    comms: list[RecordingComm],
) -> None:
    player = Player()
    wire = channel(player)
    stopped: list[int] = []
    writer = player.open_stream(on_stop=lambda: stopped.append(1))
    for content, buffers in [
        ({"type": "state", "stream": 1, "state": "playing", "position": 10**400}, []),
        ({"type": "ack", "stream": writer.stream, "seq": "7", "samples": 0}, []),
        ({"type": "chunk"}, ["not bytes"]),
        ("just a string", []),
        ({"type": "stop", "stream": writer.stream}, []),  # and a good one still works
    ]:
        wire.from_frontend(content, buffers)
    assert len(player.errors) == 4 and stopped == [1]
    assert all(isinstance(e, str) and e for e in player.errors)
    player.close()


def test_encode_refuses_what_is_not_a_message() -> None:
    with pytest.raises(ProtocolError):
        encode({"type": "stop", "stream": 1})  # type: ignore[arg-type]
