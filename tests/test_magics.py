"""%%speak, %speak, %kokoro and say() through a real IPython shell and the real engine.

Display output is captured with IPython's CapturingDisplayPublisher; the widget's comm is
the default no-kernel one (the protocol tests cover what it would send).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import soundfile
from hypothesis import given
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import kokoro_nb
from kokoro_nb._magics import SPEAK_USAGE, SpeakMagics, fill, split_options
from kokoro_nb._options import Options, options_table
from kokoro_nb._profile_view import PREROLL_S, ProfileView, timeline
from kokoro_nb._speech import Speech

from probes import free_port
from shell import run

HELLO = "Hello from the test suite."


def spoken(ip: InteractiveShell, source: str, name: str = "s") -> Speech:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phoneme warnings for braces left in on purpose
        run(ip, source)
        speech = ip.user_ns[name]
        speech.wait(300)
    assert isinstance(speech, Speech)
    return speech


# --- %%speak -------------------------------------------------------------------------------


def test_cell_is_filled_from_the_namespace_and_read_as_prose(
    ip: InteractiveShell, outputs: list[dict[str, Any]]
) -> None:
    ip.user_ns.update(who="World", score=0.98765)
    speech = spoken(
        ip, "%%speak -o s\n# Greeting\nHello **{who}**, you scored {score:.2f}; {nobody} stays."
    )
    assert "World" in speech.text and "0.99" in speech.text and "{nobody}" in speech.text
    assert "**" not in speech.text and "#" not in speech.text
    assert speech.state == "done" and speech.audio is not None and speech.audio.duration_s > 1
    # The player, an empty slot, then the slot updated with the finished clip.
    assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]
    assert outputs[1]["data"] == {"text/plain": ""} and outputs[1]["transient"]["display_id"]
    final = outputs[-1]
    assert final["update"] and final["transient"] == outputs[1]["transient"]
    assert '<audio controls src="data:audio/wav;base64,UklGR' in final["data"]["text/html"]
    assert "audio clip" in final["data"]["text/plain"]


def test_the_cell_returns_before_the_audio_is_done(ip: InteractiveShell) -> None:
    run(ip, "%%speak -o s\nThis sentence is being synthesized while the next cell already runs.")
    speech = ip.user_ns["s"]
    assert run(ip, "1 + 1") == 2  # the kernel is free while the worker synthesizes
    speech.wait(300)
    assert speech.state == "done"


def test_config_sets_the_defaults_of_magics_and_say(ip: InteractiveShell) -> None:
    run(ip, '%config SpeakMagics.voice = "bf_emma"')
    run(ip, "%config SpeakMagics.speed = 1.2")
    try:
        line = spoken(ip, f"%speak -o s {HELLO}")
        from_code = kokoro_nb.say(HELLO, display=False)
        from_code.wait(300)
        assert line.options.voice == from_code.options.voice == "bf_emma"
        assert line.options.speed == from_code.options.speed == 1.2
        assert line.metrics["lang"] == "en-gb"
        assert run(ip, "%config SpeakMagics.voice") == "bf_emma"
    finally:
        run(ip, '%config SpeakMagics.voice = "af_heart"')
        run(ip, "%config SpeakMagics.speed = 1.0")


def test_line_magic_keeps_the_text_as_typed(ip: InteractiveShell) -> None:
    speech = spoken(ip, "%speak -s 1.25 -v am_adam -o s It's -5 degrees, isn't it.")
    assert speech.text == "It's -5 degrees, isn't it."
    # A line ending in "?" is an IPython help request unless quoted.
    assert spoken(ip, '%speak -o s "Isn\'t it cold?"').text == "Isn't it cold?"
    assert (speech.options.speed, speech.options.voice) == (1.25, "am_adam")


def test_engine_errors_show_as_one_line(ip: InteractiveShell) -> None:
    result = ip.run_cell(f"%speak -v no_such_voice {HELLO}")
    error = result.error_in_exec
    assert type(error).__name__ == "VoiceError"
    rendered = error._render_traceback_()  # type: ignore[union-attr]
    assert len(rendered) == 1 and "VoiceError: unknown voice 'no_such_voice'" in rendered[0]
    result = ip.run_cell(f"%speak -s 9 {HELLO}")
    assert type(result.error_in_exec).__name__ == "InputError"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("%%speak --bogus\nText.", "unexpected '--bogus'"),
        ("%%speak -s fast\nText.", "invalid float value"),
        ("%%speak\n   ", "nothing to say"),
        ("%speak --after Done", "belongs to the cell magic"),
    ],
)
def test_usage_mistakes_are_usage_errors(ip: InteractiveShell, source: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        run(ip, source)


def test_help(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%speak -h")
    run(ip, "%kokoro help")
    out = capsys.readouterr().out
    assert "--after MESSAGE" in out and "%kokoro serve" in out


def test_after_runs_the_code_then_speaks_the_message(ip: InteractiveShell) -> None:
    result = run(ip, '%%speak --after "Done: the answer is {answer}" -o s\nanswer = 6 * 7\nanswer')
    assert result == 42
    speech = ip.user_ns["s"]
    speech.wait(300)
    assert speech.text == "Done: the answer is 42"


def test_after_speaks_the_error_and_the_cell_still_fails(ip: InteractiveShell) -> None:
    run(ip, "def divide(x):\n    return 1 / x")
    result = ip.run_cell('%%speak --after "Done" -o s\ndivide(0)')
    error = result.error_in_exec
    assert isinstance(error, ZeroDivisionError)
    speech = ip.user_ns["s"]
    speech.wait(300)
    assert speech.text == "The cell failed with Zero Division Error: division by zero."
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error._render_traceback_()))  # type: ignore[attr-defined]
    assert "divide(0)" in shown and "_magics.py" not in shown  # the user's frames only


def test_no_stream_waits_and_save_writes_the_clip(ip: InteractiveShell, tmp_path: Path) -> None:
    target = tmp_path / "clip.wav"
    run(ip, f"%%speak --no-stream --save {target} -o s\n{HELLO}")
    speech = ip.user_ns["s"]
    assert speech.done and speech.audio is not None  # no wait: the cell waited
    data, rate = soundfile.read(target)
    assert rate == 24000 and len(data) == len(speech.audio.samples)
    result = ip.run_cell(f"%%speak --save {tmp_path / 'clip.mp3'}\n{HELLO}")
    assert "use a .wav, .flac or .ogg" in str(result.error_in_exec)


def test_profile_is_shown_with_the_clip(
    ip: InteractiveShell, outputs: list[dict[str, Any]]
) -> None:
    speech = spoken(ip, f"%%speak --profile -o s\n{HELLO}")
    html = outputs[-1]["data"]["text/html"]
    assert "kokoro-profile" in html and "<svg" in html and "<audio" in html
    assert "timeline" in outputs[-1]["data"]["text/plain"]
    assert speech.profile().detail is speech.metrics or speech.profile().detail == speech.metrics


def longer(tag: str) -> str:
    """A text that takes a while, new to the engine's audio cache (so it is really synthesized)."""
    return (
        f"The {tag} cell speaks for a while. It goes on and on, sentence after sentence, "
        "so that the next cell runs long before this one is done."
    )


def run_in(ip: InteractiveShell, source: str, cell_id: str) -> None:
    """Run `source` as the front end's cell `cell_id` (JupyterLab and VS Code send one)."""
    result = ip.run_cell(source, cell_id=cell_id)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec


def in_order(first: Speech, second: Speech) -> bool:
    """`second`'s audio was sent to its player only after all of `first`'s."""
    assert first.writer is not None and second.writer is not None
    return first.writer.sent_at[-1] <= second.writer.sent_at[0]


def test_speech_from_two_cells_plays_whole_and_in_order(ip: InteractiveShell) -> None:
    # Run All: the second cell runs while the first still speaks. It used to stop the first.
    run_in(ip, f"%%speak -o a\n{longer('ordered')}", "cell-1")
    run_in(ip, f"%%speak -o b\n{HELLO}", "cell-2")
    a, b = ip.user_ns["a"], ip.user_ns["b"]
    assert b.state == "queued" and not a.done  # b waits its turn; nothing was stopped
    b.wait(300)
    for speech in (a, b):
        assert speech.state == "done" and speech.metrics["complete"] is True
    assert in_order(a, b)
    assert b.writer is not None and a.writer is not None
    # The browser is told to play b after the players before it, not to silence them.
    assert b.writer.stream == b.player.stream


def test_queue_flag_is_still_accepted(ip: InteractiveShell) -> None:
    run(ip, "%%speak -o a\nThe first one speaks for a while, and nobody interrupts it.")
    run(ip, f"%%speak --queue -o b\n{HELLO}")
    a, b = ip.user_ns["a"], ip.user_ns["b"]
    b.wait(300)
    assert a.state == "done" and b.state == "done" and in_order(a, b)
    assert not b.options.interrupt


def test_rerunning_a_cell_replaces_its_own_speech_only(ip: InteractiveShell) -> None:
    run_in(ip, f"%%speak -o other\n{HELLO}", "cell-other")
    run_in(ip, f"%%speak -o a\n{longer('replaced')}", "cell-1")
    first = ip.user_ns["a"]
    run_in(ip, f"%%speak -o a\n{HELLO}", "cell-1")  # the same cell, run again
    second, other = ip.user_ns["a"], ip.user_ns["other"]
    second.wait(300)
    first.wait(300)
    assert first.state == "stopped" and first.reason == "superseded"
    assert second.state == "done" and other.state == "done"  # the other cell was not touched


def test_several_says_in_one_cell_play_in_order(ip: InteractiveShell) -> None:
    code = (
        "one = kokoro_nb.say('The first sentence of this cell.')\n"
        "two = kokoro_nb.say('And the second one, after it.')"
    )
    ip.user_ns["kokoro_nb"] = kokoro_nb
    run_in(ip, code, "cell-says")
    one, two = ip.user_ns["one"], ip.user_ns["two"]
    two.wait(300)
    one.wait(300)
    assert one.state == "done" and two.state == "done"
    assert in_order(one, two)  # neither cut the other off


def test_now_interrupts_all_speech(ip: InteractiveShell) -> None:
    run_in(ip, f"%%speak -o a\n{longer('interrupted')}", "cell-1")
    run_in(ip, f"%%speak --now -o b\n{HELLO}", "cell-2")
    a, b = ip.user_ns["a"], ip.user_ns["b"]
    b.wait(300)
    a.wait(300)
    assert a.state == "stopped" and a.reason == "superseded" and b.state == "done"


def test_the_interrupt_setting_makes_every_cell_interrupt(ip: InteractiveShell) -> None:
    run(ip, "%config SpeakMagics.interrupt = True")
    try:
        run_in(ip, f"%%speak -o a\n{longer('configured')}", "cell-1")
        run_in(ip, f"%%speak -o b\n{HELLO}", "cell-2")
        a, b = ip.user_ns["a"], ip.user_ns["b"]
        b.wait(300)
        a.wait(300)
        assert a.state == "stopped" and b.state == "done" and b.options.interrupt
    finally:
        run(ip, "%config SpeakMagics.interrupt = False")


def test_stop_stops_everything_queued_too(ip: InteractiveShell) -> None:
    for name in ("a", "b", "c"):
        run_in(ip, f"%%speak -o {name}\n{longer('stopped ' + name)}", f"cell-{name}")
    a, b, c = (ip.user_ns[n] for n in "abc")
    assert kokoro_nb.stop() == 3
    assert kokoro_nb.wait(300)
    assert [s.state for s in (a, b, c)] == ["stopped"] * 3
    assert b.chunks == 0 and c.chunks == 0  # the queued ones never started


def test_say_from_code(ip: InteractiveShell) -> None:
    speech = kokoro_nb.say("Said **from** code.", display=False)
    assert speech.wait(300) is not None
    assert speech.text == "Said from code." and "done" in repr(speech)
    with pytest.raises(Exception, match="unknown voice") as caught:
        kokoro_nb.say(HELLO, voice="zz_nobody", display=False)
    assert len(caught.value._render_traceback_()) == 1  # type: ignore[attr-defined]


# --- %kokoro -------------------------------------------------------------------------------


def test_kokoro_status_voices_profile_and_housekeeping(ip: InteractiveShell) -> None:
    spoken(ip, f"%speak -o s {HELLO}")
    status = run(ip, "%kokoro")
    text = repr(status)
    assert "providers" in text and "SpeakMagics.voice" in text and "rss_mb" in text
    assert "<table>" in status._repr_html_()
    voices = run(ip, "%kokoro voices")
    assert "British English" in repr(voices) and "bf_emma (F)" in repr(voices)
    profile = run(ip, "%kokoro profile -n 5")
    assert isinstance(profile, ProfileView) and 1 <= len(profile.requests) <= 5
    assert "timeline" in repr(profile)
    assert "warm" in run(ip, "%kokoro warmup")
    assert "cleared" in run(ip, "%kokoro clear-cache")
    assert "Stopped" in run(ip, "%kokoro stop")
    assert "synthesized" in run(ip, "%kokoro wait")
    with pytest.raises(UsageError, match="unknown command"):
        run(ip, "%kokoro fly")


def test_kokoro_serve_starts_and_stops_a_server(ip: InteractiveShell) -> None:
    port = free_port()
    try:
        message = run(ip, f"%kokoro serve --port {port}")
    except UsageError as exc:  # the server extra is not installed here
        pytest.skip(str(exc))
    assert f"127.0.0.1:{port}" in message
    assert run(ip, "%kokoro serve --stop") == "Server stopped."
    assert run(ip, "%kokoro serve --stop") == "No server was running."


# --- the small parsers ---------------------------------------------------------------------


def test_fill() -> None:
    class Box:
        value = 3

    ns = {"name": "Ada", "box": Box(), "items": ["a", "b"], "d": {"k": 1}, "x": 2.5}
    assert fill("Hi {name}!", ns) == "Hi Ada!"
    assert (
        fill("{box.value} {items[1]} {items[-1]} {d['k']} {x:.1f} {name!r}", ns)
        == "3 b b 1 2.5 'Ada'"
    )
    assert fill("{missing} {name.nope} {items[9]} {x:bad} {{name}} {a b} {}", ns) == (
        "{missing} {name.nope} {items[9]} {x:bad} {name} {a b} {}"
    )


@given(st.text(alphabet="{}[]!:.'\"ab0 _", max_size=40))
def test_fill_never_raises(text: str) -> None:
    fill(text, {"a": 1, "b": [1], "ab": {"a": 2}})


def test_split_options() -> None:
    assert split_options("-v bf_emma -s 1.2 Hello, it's me") == (
        ["-v", "bf_emma", "-s", "1.2"],
        "Hello, it's me",
    )
    assert split_options('--after "All done, boss" --queue') == (
        ["--after", "All done, boss", "--queue"],
        "",
    )
    assert split_options("--voice=am_adam -- -v is text") == (["--voice=am_adam"], "-v is text")
    assert split_options("-5 degrees") == ([], "-5 degrees")
    with pytest.raises(UsageError):
        split_options("--voice")


def test_every_option_is_a_setting_a_flag_and_a_say_keyword(ip: InteractiveShell) -> None:
    table = options_table()
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    traits = SpeakMagics.class_traits(config=True)
    for option in dataclasses.fields(Options):
        assert f"`{option.name}`" in table
        if option.metadata["config"]:
            assert traits[option.name].default_value == option.default
        flags = option.metadata["flags"]
        for flag in flags:
            assert flag in SPEAK_USAGE and f"`{flag}" in table
        if flags:  # README's %%speak table names each flag by its first spelling
            assert f"| `{flags[0]}" in readme, f"README's option table lacks {flags[0]}"
    with pytest.raises(TypeError, match="unknown speech option"):
        kokoro_nb.say(HELLO, sped=1.2, display=False)


def test_speak_magics_traits_are_configurable() -> None:
    names = set(SpeakMagics.class_traits(config=True))
    assert {"voice", "speed", "lang", "static_max_s", "static_rate", "wait", "preload"} <= names
    assert "interrupt" in names


# --- the profile view ----------------------------------------------------------------------

PIECES = [
    {
        "seq": 0,
        "text": "<script>alert(1)</script>",
        "n_ids": 12,
        "provider": "CPU",
        "queue_wait_s": 0.0,
        "inference_s": 0.5,
        "audio_s": 1.0,
        "rtf": 0.5,
        "cached": False,
        "start_s": 0.0,
        "end_s": 0.5,
    },
    {
        "seq": 1,
        "text": "late & long",
        "n_ids": 40,
        "provider": "CPU",
        "queue_wait_s": 0.4,
        "inference_s": 1.4,
        "audio_s": 2.0,
        "rtf": 0.7,
        "cached": True,
        "start_s": 0.1,
        "end_s": 1.9,
    },
]


def test_timeline_shows_lead_and_stalls() -> None:
    first, second = timeline(PIECES, preroll_s=0.1)
    assert (first.play_at, first.play_end, first.lead_s, first.stall_s) == (
        0.6,
        1.6,
        pytest.approx(0.1),
        0,
    )
    # The second piece is needed at 1.6 s but ready at 1.9 s: playback waits 0.3 s.
    assert second.play_at == pytest.approx(1.9) and second.stall_s == pytest.approx(0.3)
    assert second.lead_s == pytest.approx(-0.3) and second.infer_at == pytest.approx(0.5)


def test_profile_view_escapes_and_has_a_text_form() -> None:
    metrics = {
        "voice": "af_heart",
        "speed": 1.0,
        "ttfa_s": 0.5,
        "audio_s": 3.0,
        "total_s": 1.9,
        "rtf": 0.63,
        "provider": "CPU",
        "pieces": PIECES,
        "chars": 30,
        "cached": False,
    }
    view = ProfileView(metrics, title="<i>mine</i>")
    html = view._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "late &amp; long" in html
    assert "&lt;i&gt;mine&lt;/i&gt;" in html and html.count("<svg") == 1
    text = repr(view)
    late_by = f"{PREROLL_S - 0.4:.3f}"  # piece 1 is ready 0.4 s after piece 0 would end
    assert "stalled 1×" in text and "timeline" in text and late_by in text
    assert "#1   synth |" in text
    many = ProfileView([metrics, {**metrics, "voice": "bf_emma"}])
    assert "bf_emma" in repr(many) and many.detail is not None
    assert "No requests yet" in repr(ProfileView([]))


# --- a real kernel, as nbconvert or papermill would run a notebook ---------------------------


def test_headless_run_keeps_the_player_and_the_static_clip(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "%load_ext kokoro_nb\n%config SpeakMagics.wait = True  # headless: let each cell finish its audio",
        f"%%speak -o s\n{HELLO}",
        "print(s.state, s.chunks > 0)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    speak_outputs = notebook.cells[1].outputs
    kinds = [set(o.get("data", {})) for o in speak_outputs]
    assert "application/vnd.jupyter.widget-view+json" in kinds[0]
    assert any(
        '<audio controls src="data:audio/wav;base64,' in o["data"].get("text/html", "")
        for o in speak_outputs[1:]
    )
    assert notebook.cells[2].outputs[0]["text"].strip() == "done True"
