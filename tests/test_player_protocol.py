"""The player's wire protocol without a browser: a recording transport (or comm) stands in for it.

Pure protocol properties (splitting, reordering, stale streams, validation) run on
synthetic audio; the end-to-end checks drive the real engine through a Player widget whose
messages are recorded and reassembled as the browser would.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import random
import re
import shutil
import subprocess
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kokoro_engine import pcm16
from kokoro_nb._kernel_engine import set_engine
from kokoro_nb._options import Options
from kokoro_nb._player import Player
from kokoro_nb._profile_view import PREROLL_S
from kokoro_nb._protocol import (
    MAX_BUFFER_BYTES,
    Abort,
    Ack,
    ChunkMsg,
    End,
    ProtocolError,
    Reassembler,
    RecordingTransport,
    Start,
    State,
    Stop,
    StreamWriter,
    decode,
)
from kokoro_nb._speech import speak
from kokoro_nb._static_audio import StaticAudio, resample, wav_bytes

from shell import RecordingComm

PARAGRAPH = (
    "The first sentence is short. The second one takes a little longer to say out loud. "
    "A third follows it, and then a fourth. The fifth sentence ends the paragraph."
)


def tone(seconds: float, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def write_stream(
    transport: RecordingTransport, stream: int, parts: list[np.ndarray]
) -> StreamWriter:
    writer = StreamWriter(transport, stream)
    writer.start("Some text", "af_heart", 1.0, chars=9)
    for piece, samples in enumerate(parts):
        writer.chunk(samples, f"piece {piece}", piece)
    writer.end({"ttfa_s": 0.5, "audio_s": 1.0, "total_s": 0.4, "pieces": [{"seq": 0}]})
    return writer


# --- encoding ------------------------------------------------------------------------------


def test_a_stream_is_start_numbered_chunks_and_end() -> None:
    transport = RecordingTransport()
    parts = [tone(0.5), tone(1.0), tone(0.25)]
    write_stream(transport, 1, parts)
    messages = transport.decoded()
    assert isinstance(messages[0], Start) and messages[0].chars == 9
    chunks = [m for m in messages if isinstance(m, ChunkMsg)]
    assert [c.seq for c in chunks] == [0, 1, 2]
    assert [c.offset for c in chunks] == [0, 12000, 36000]
    end = messages[-1]
    assert isinstance(end, End) and end.count == 3 and end.samples == 42000
    assert set(end.metrics) == {"ttfa_s", "audio_s", "total_s"}  # a summary, not the piece list


def test_large_chunks_are_split_under_the_buffer_limit() -> None:
    transport = RecordingTransport()
    long_piece = tone(12.0)  # 288,000 samples = 576,000 bytes
    write_stream(transport, 1, [long_piece])
    buffers = [b for sent in transport.sent for b in sent.buffers]
    assert len(buffers) == 5
    assert all(len(b) <= MAX_BUFFER_BYTES for b in buffers)
    chunks = [m for m in transport.decoded() if isinstance(m, ChunkMsg)]
    assert {c.piece for c in chunks} == {0} and {c.text for c in chunks} == {"piece 0"}
    assert b"".join(c.pcm for c in chunks) == pcm16(long_piece)


def test_pcm16_is_little_endian_clipped_and_rounded() -> None:
    data = pcm16(np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5], np.float32))
    assert np.frombuffer(data, "<i2").tolist() == [0, 32767, -32767, 32767, -32767, 16384]


def test_a_stream_ends_exactly_once() -> None:
    transport = RecordingTransport()
    writer = StreamWriter(transport, 3)
    writer.chunk(tone(0.1), "x", 0)
    writer.abort("stopped")
    writer.end()
    writer.abort("error", "late")
    finals = [m for m in transport.decoded() if isinstance(m, (End, Abort))]
    assert finals == [Abort(3, 1, 2400, "stopped", "")]


# --- reassembly (the browser's rules) -----------------------------------------------------------


def test_reassembler_restores_the_audio_from_any_order() -> None:
    transport = RecordingTransport()
    parts = [tone(0.3), tone(3.5), tone(0.2)]
    write_stream(transport, 1, parts)
    messages = transport.decoded()
    random.Random(4).shuffle(messages)
    browser = Reassembler()
    for message in messages:
        browser.feed(message)
    assert browser.complete and browser.start is not None
    assert browser.audio().tobytes() == pcm16(np.concatenate(parts))


def test_messages_of_an_older_stream_are_stale() -> None:
    transport = RecordingTransport()
    write_stream(transport, 1, [tone(0.2)])
    old = transport.decoded()
    transport.sent.clear()
    write_stream(transport, 2, [tone(0.4)])
    new = transport.decoded()
    browser = Reassembler()
    browser.feed(new[1])  # a chunk of stream 2 before its start: it begins stream 2
    for message in old:
        browser.feed(message)
    for message in new[:1] + new[2:]:
        browser.feed(message)
    assert browser.stream == 2 and browser.stale == len(old)
    assert browser.complete and browser.samples == 9600


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 150_000), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    stop_after=st.integers(0, 6),
)
def test_any_delivery_order_reassembles_exactly(
    lengths: list[int], seed: int, stop_after: int
) -> None:
    """Fuzz: split, shuffle, interleave a stale stream, maybe abort; the audio always survives."""
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(-1, 1, n).astype(np.float32) for n in lengths]
    transport = RecordingTransport()
    write_stream(transport, 1, [tone(0.05)])
    writer = StreamWriter(transport, 2)
    writer.start("t", "v", 1.0)
    for piece, samples in enumerate(parts[:stop_after] if stop_after < len(parts) else parts):
        writer.chunk(samples, "t", piece)
    if stop_after < len(parts):
        writer.abort("stopped")
        sent = parts[:stop_after]
    else:
        writer.end()
        sent = parts
    messages = transport.decoded()
    order = list(range(len(messages)))
    random.Random(seed).shuffle(order)
    browser = Reassembler()
    for index in order:
        browser.feed(messages[index])
    assert browser.stream == 2 and browser.complete
    expected = pcm16(np.concatenate(sent)) if sent else b""
    assert browser.audio().tobytes() == expected


def test_reassembler_rejects_broken_streams() -> None:
    chunk = ChunkMsg(1, 0, 0, 0, "x", b"\x00\x00")
    browser = Reassembler()
    browser.feed(chunk)
    with pytest.raises(ProtocolError, match="twice"):
        browser.feed(chunk)
    with pytest.raises(ProtocolError, match="expected 0"):
        Reassembler().feed(ChunkMsg(1, 0, 5, 0, "x", b"\x00\x00"))
    with pytest.raises(ProtocolError, match="announced 3 samples"):
        browser.feed(End(1, 1, 3))
    with pytest.raises(ProtocolError, match="browser to the kernel"):
        browser.feed(Ack(1, 0, 1))


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "buffers", "problem"),
    [
        ([], [], "JSON object"),
        ({"type": "nope"}, [], "unknown message type"),
        (
            {"type": "chunk", "stream": 1, "seq": 0, "offset": 0, "piece": 0, "text": ""},
            [],
            "exactly one buffer",
        ),
        (
            {"type": "chunk", "stream": 1, "seq": 0, "offset": 0, "piece": 0, "text": ""},
            [b"\x00"],
            "whole number",
        ),
        (
            {"type": "chunk", "stream": 1, "seq": 0, "offset": 0, "piece": 0, "text": ""},
            [bytes(MAX_BUFFER_BYTES + 2)],
            "exceeds",
        ),
        (
            {"type": "chunk", "stream": 1, "seq": -1, "offset": 0, "piece": 0},
            [b"\x00\x00"],
            "seq must be",
        ),
        (
            {"type": "chunk", "stream": 0, "seq": 0, "offset": 0, "piece": 0},
            [b"\x00\x00"],
            "stream must be",
        ),
        (
            {"type": "chunk", "stream": 1, "seq": True, "offset": 0, "piece": 0},
            [b"\x00\x00"],
            "seq must be",
        ),
        ({"type": "start", "stream": 1, "rate": 24000, "queue": "yes"}, [], "queue must be"),
        ({"type": "start", "stream": 1, "rate": 24000, "speed": float("nan")}, [], "speed must be"),
        (
            {"type": "end", "stream": 1, "count": 0, "samples": 0},
            [b"\x00\x00"],
            "no binary buffers",
        ),
        (
            {"type": "end", "stream": 1, "count": 0, "samples": 0, "metrics": []},
            [],
            "metrics must be",
        ),
        (
            {"type": "abort", "stream": 1, "count": 0, "samples": 0, "reason": "bored"},
            [],
            "reason must be",
        ),
        ({"type": "ack", "stream": 1, "seq": -2, "samples": 0}, [], "seq must be"),
        ({"type": "state", "stream": 1, "state": "dancing"}, [], "state must be"),
        ({"type": "stop"}, [], "stream must be"),
    ],
)
def test_decode_rejects_what_the_protocol_forbids(
    content: Any, buffers: list[bytes], problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        decode(content, buffers)


def test_decode_accepts_the_browsers_messages() -> None:
    assert decode({"type": "ack", "stream": 2, "seq": -1, "samples": 0}) == Ack(2, -1, 0)
    assert decode({"type": "stop", "stream": 2}) == Stop(2)
    assert decode({"type": "state", "stream": 2, "state": "playing", "position": 1.5}) == State(
        2, "playing", 1.5
    )


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "stream",
                "seq",
                "offset",
                "piece",
                "text",
                "count",
                "samples",
                "reason",
                "state",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-3, 3),
            st.text(max_size=5),
            st.sampled_from(["chunk", "end", "abort", "ack", "stop", "state", "start"]),
        ),
    ),
    st.lists(st.binary(max_size=6), max_size=2),
)
def test_decode_never_fails_other_than_with_protocol_error(
    content: dict[str, Any], buffers: list[bytes]
) -> None:
    with contextlib.suppress(ProtocolError):
        decode(content, buffers)


# --- the widget's real comm path ------------------------------------------------------------------


def test_player_sends_chunks_as_binary_widget_messages(comms: list[RecordingComm]) -> None:
    player = Player()
    assert player.player_id and player._esm.startswith("/*")  # the module, inlined: no CDN
    writer = player.open_stream()
    writer.start("Hi", "af_heart", 1.0)
    writer.chunk(tone(0.5), "Hi", 0)
    writer.end()
    sent = comms[-1].custom()
    assert [content["type"] for content, _ in sent] == ["start", "chunk", "end"]
    assert len(sent[1][1]) == 1 and len(sent[1][1][0]) == 24000
    browser = Reassembler()
    for content, buffers in sent:
        browser.feed(decode(content, buffers))
    assert browser.complete and browser.audio().tobytes() == pcm16(tone(0.5))


def test_player_hears_the_browser(comms: list[RecordingComm]) -> None:
    stopped = threading.Event()
    player = Player()
    writer = player.open_stream(on_stop=stopped.set)
    channel = comms[-1]
    channel.from_frontend({"type": "ack", "stream": writer.stream, "seq": 4, "samples": 100})
    channel.from_frontend(
        {"type": "state", "stream": writer.stream, "state": "blocked", "position": 0}
    )
    channel.from_frontend({"type": "nonsense"})  # recorded, never raised into the kernel
    channel.from_frontend({"type": "stop", "stream": writer.stream + 1})  # not this stream
    assert not stopped.is_set()
    channel.from_frontend({"type": "stop", "stream": writer.stream})
    assert stopped.is_set()
    assert player.acks[writer.stream] == Ack(writer.stream, 4, 100)
    assert player.states[writer.stream].state == "blocked"
    assert player.errors == ["unknown message type 'nonsense'"]


# --- end to end with the real engine ------------------------------------------------------------


@pytest.fixture
def engine_ready(engine: Any) -> Any:
    set_engine(engine)
    return engine


class StoppingTransport(RecordingTransport):
    """Presses the browser's Stop as soon as the first chunk message goes out."""

    def __init__(self) -> None:
        super().__init__()
        self.player: Player | None = None

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        super().send(content, buffers)
        if content["type"] == "chunk" and content["seq"] == 0 and self.player is not None:
            self.player.receive(Stop(content["stream"]))


def test_engine_stream_reaches_the_browser_intact(engine_ready: Any) -> None:
    transport = RecordingTransport()
    speech = speak(PARAGRAPH, Options(), player=Player(transport=transport), display=False)
    audio = speech.wait(300)
    assert speech.state == "done" and audio is not None
    browser = Reassembler()
    for message in transport.decoded():
        browser.feed(message)
    assert browser.complete and isinstance(browser.final, End)
    assert browser.audio().tobytes() == pcm16(audio.samples)
    assert browser.final.metrics["audio_s"] == pytest.approx(audio.duration_s, abs=0.01)
    assert browser.texts[0] and browser.texts[0] in PARAGRAPH


def test_browser_stop_closes_the_engine_stream(engine_ready: Any) -> None:
    transport = StoppingTransport()
    player = Player(transport=transport)
    transport.player = player
    text = PARAGRAPH.replace("first", "opening")  # not cached: synthesis is really under way
    speech = speak(text, Options(), player=player, display=False)
    speech.wait(300)
    messages = transport.decoded()
    assert speech.state == "stopped" and speech.reason == "stopped"
    assert speech.metrics["complete"] is False
    assert speech.chunks == 1  # the stream ended right after the first chunk
    final = messages[-1]
    assert isinstance(final, Abort) and final.reason == "stopped"
    assert final.count == sum(isinstance(m, ChunkMsg) for m in messages)


def test_an_interrupting_utterance_supersedes_and_the_next_one_waits(engine_ready: Any) -> None:
    first_t, second_t, third_t = RecordingTransport(), RecordingTransport(), RecordingTransport()
    first = speak(
        PARAGRAPH.replace("first", "initial"),
        Options(),
        player=Player(transport=first_t),
        display=False,
    )
    second = speak(
        "Second.", Options(interrupt=True), player=Player(transport=second_t), display=False
    )
    third = speak("Third.", Options(), player=Player(transport=third_t), display=False)
    third.wait(300)
    assert first.state == "stopped" and first.reason == "superseded"
    assert isinstance(first_t.decoded()[-1], Abort)
    assert second.state == third.state == "done"
    assert second_t.sent[-1].at <= third_t.sent[0].at  # the queued one waited for its turn
    interrupting, queued = second_t.decoded()[0], third_t.decoded()[0]
    assert isinstance(interrupting, Start) and not interrupting.queue  # the page falls silent
    assert isinstance(queued, Start) and queued.queue  # plays after the players before it


# --- the static clip kept in the output ------------------------------------------------------


def test_static_audio_is_a_playable_wav_data_uri() -> None:
    clip = StaticAudio(tone(1.5), caption="af_heart <voice> & co")
    html = clip._repr_html_()
    assert html.count("<audio controls") == 1 and "&lt;voice&gt; &amp; co" in html
    data = base64.b64decode(clip.data_uri().split(",", 1)[1])
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.getnframes() == 36000
    assert "1.5 s" in repr(clip)


def test_static_audio_is_capped_and_may_be_resampled() -> None:
    clip = StaticAudio(tone(5.0), max_s=2.0, target_rate=16000)
    samples, rate = clip.embedded()
    assert clip.truncated and rate == 16000 and len(samples) == 32000
    assert abs(samples[-1]) < 1e-3  # faded out, not cut mid-wave
    assert "first 2 s of 5.0 s" in clip.note() and "static_max_s" in clip.note()
    with wave.open(io.BytesIO(wav_bytes(samples, rate))) as wav:
        assert wav.getframerate() == 16000 and wav.getnframes() == 32000


def test_resampling_keeps_a_tone_and_removes_what_would_alias() -> None:
    low = resample(tone(1.0), 24000, 16000)
    assert len(low) == 16000 and 0.25 < np.abs(low).max() < 0.35
    t = np.arange(24000) / 24000
    high = (0.3 * np.sin(2 * np.pi * 10000 * t)).astype(np.float32)  # above 16 kHz's Nyquist
    assert np.abs(resample(high, 24000, 16000)[100:-100]).max() < 0.03


# --- player.js itself, in Node with a fake AudioContext -------------------------------------------

NODE = shutil.which("node")
HARNESS = r"""
import { pathToFileURL } from "node:url";
const input = JSON.parse(await new Promise((ok) => {
  let data = ""; process.stdin.on("data", (c) => (data += c)); process.stdin.on("end", () => ok(data));
}));
class FakeContext {
  constructor() { this.state = "running"; this.sampleRate = 24000; this.currentTime = input.clock; this.destination = {}; }
  addEventListener() {}
  resume() { return Promise.resolve(); }
  createGain() { return { gain: { setTargetAtTime() {} }, connect() {} }; }
  createBuffer(channels, n, rate) { const data = new Float32Array(n); return { duration: n / rate, getChannelData: () => data }; }
  createBufferSource() {
    return { connect() {}, start(when, offset) { this.when = when; started.push({ when, offset }); },
             stop() { stopped.push(this.when); } };
  }
}
const started = [], stopped = [], sent = [], snapshots = [];
globalThis.AudioContext = FakeContext;
let wall = 0; // the page's clock (ms): moves only with "advance", like the audio clock
globalThis.performance = { now: () => wall };
const model = { get: (k) => ({ player_id: "p1" })[k], on(e, f) { this.handler = f; }, off() {}, send(m) { sent.push(m); } };
const widget = (await import(pathToFileURL(input.module).href)).default;
const cleanup = widget.initialize({ model });
const ctx = () => globalThis.__kokoroHub.ctx;
for (const step of input.steps) {
  if (step.advance) {
    wall += step.advance * 1000;
    if (ctx()) ctx().currentTime += step.advance;
  } else if (step.tick) globalThis.__kokoroPlayers.p1.tick();
  else if (step.snapshot) snapshots.push(globalThis.__kokoroPlayers.p1.snapshot());
  else model.handler(step.content, step.buffers.map((b) => Uint8Array.from(Buffer.from(b, "base64"))));
}
cleanup();
console.log(JSON.stringify({ snapshots, sent, started, stopped }));
"""


# An audio context running for a while (a page open for some time): player.js gives a context
# that has only just started a longer lead, because its clock has not settled.
SETTLED_CLOCK_S = 5.0


def run_player_js(steps: list[dict[str, Any]], clock: float = SETTLED_CLOCK_S) -> dict[str, Any]:
    """Feed `steps` to player.js in Node; the fake audio context's clock starts at `clock`."""
    module = Path(__file__).parent.parent / "kokoro_nb" / "player.js"
    payload = json.dumps({"module": str(module), "steps": steps, "clock": clock})
    done = subprocess.run(
        [NODE or "node", "--input-type=module", "-e", HARNESS],
        input=payload,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))


def steps_of(transport: RecordingTransport) -> list[dict[str, Any]]:
    return [
        {"content": sent.content, "buffers": [base64.b64encode(b).decode() for b in sent.buffers]}
        for sent in transport.sent
    ]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_player_js_reorders_drops_stale_and_schedules_gaplessly() -> None:
    old, new = RecordingTransport(), RecordingTransport()
    write_stream(old, 1, [tone(0.3)])
    write_stream(new, 2, [tone(0.5), tone(3.0), tone(0.4)])
    stream2 = steps_of(new)
    shuffled = [stream2[0], *random.Random(1).sample(stream2[1:], len(stream2) - 1)]
    result = run_player_js([*shuffled[:2], *steps_of(old), *shuffled[2:], {"snapshot": True}])
    snap = result["snapshots"][0]
    assert snap["stream"] == 2 and snap["stale"] == len(old.sent) and snap["complete"]
    assert sorted(snap["arrival"]) == list(range(4)) and snap["gaps"] == 0
    scheduled = snap["scheduled"]
    assert [s["seq"] for s in scheduled] == [0, 1, 2, 3]
    assert sum(s["samples"] for s in scheduled) == 3.9 * 24000
    for before, after in itertools.pairwise(scheduled):
        assert after["when"] == pytest.approx(before["when"] + before["duration"], abs=1e-9)
    assert scheduled[0]["when"] == pytest.approx(SETTLED_CLOCK_S + PREROLL_S)  # the start lead
    acks = [m for m in result["sent"] if m["type"] == "ack"]
    assert acks[-1] == {"type": "ack", "stream": 2, "seq": 3, "samples": 93600}


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_player_js_shifts_the_timeline_for_a_late_chunk_and_stops_on_abort() -> None:
    transport = RecordingTransport()
    writer = StreamWriter(transport, 1)
    writer.start("t", "v", 1.0)
    writer.chunk(tone(1.0), "one", 0)
    early = steps_of(transport)
    transport.sent.clear()
    writer.chunk(tone(1.0), "two", 1)
    writer.abort("superseded")
    late = steps_of(transport)
    result = run_player_js([*early, {"advance": 2.5}, *late, {"snapshot": True}])
    snap = result["snapshots"][0]
    first, second = snap["scheduled"]
    # waited for the late chunk: it came at 2.5 s, the first one ended at the start lead + 1 s
    assert second["stall"] == pytest.approx(2.5 + 0.02 - (PREROLL_S + 1.0), abs=1e-3)
    assert second["when"] == pytest.approx(first["when"] + first["duration"] + second["stall"])
    assert snap["stallCount"] == 1
    assert snap["state"] == "stopped" and snap["final"]["reason"] == "superseded"
    assert len(result["stopped"]) == 2  # both sources were halted


def paced(chunks: int, every_s: float, chars: int, end: bool = True) -> list[dict[str, Any]]:
    """A stream of one-second chunks, one every `every_s` of wall time, snapshot after each."""
    transport = RecordingTransport()
    writer = StreamWriter(transport, 1)
    writer.start("t", "v", 1.0, chars=chars)
    steps = steps_of(transport)
    for piece in range(chunks):
        transport.sent.clear()
        writer.chunk(tone(1.0), "one second", piece)
        steps += [{"advance": every_s}, *steps_of(transport), {"snapshot": True}]
    if end:
        transport.sent.clear()
        writer.end()
        steps += [*steps_of(transport), {"snapshot": True}]
    return steps


def test_player_js_start_lead_is_the_profile_views() -> None:
    source = (Path(__file__).parent.parent / "kokoro_nb" / "player.js").read_text()
    lead = re.search(r"^const START_LEAD_S = ([\d.]+);", source, re.M)
    assert lead is not None and float(lead.group(1)) == PREROLL_S


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_player_js_starts_at_once_when_synthesis_outpaces_playback() -> None:
    snaps = run_player_js(paced(6, 0.4, chars=round(20 / 0.062)))["snapshots"]
    first = snaps[0]  # one chunk in, made at 2.5x real time: no reason to wait
    assert first["state"] == "playing" and len(first["scheduled"]) == 1
    assert first["scheduled"][0]["when"] == pytest.approx(SETTLED_CLOCK_S + PREROLL_S)
    assert first["preroll"] == pytest.approx(PREROLL_S)
    assert snaps[-1]["stallCount"] == 0


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_player_js_holds_a_slow_stream_until_it_can_play_through() -> None:
    # 20 s of speech made at 0.8× real time: a fixed short pre-roll would stall on every
    # chunk; the player waits until the audio in hand covers the predicted shortfall.
    snaps = run_player_js(paced(20, 1.25, chars=round(20 / 0.062)))["snapshots"]
    waited = [i for i, snap in enumerate(snaps) if not snap["scheduled"]]
    assert 3 <= len(waited) < 19, waited  # neither at once nor only at the end
    assert waited == list(range(len(waited)))
    assert snaps[len(waited)]["state"] == "playing"
    held_s = snaps[len(waited)]["samples"] / 24000
    assert snaps[len(waited)]["preroll"] == pytest.approx(1.25 * (held_s - 1) + PREROLL_S)
    last = snaps[-1]
    assert last["stallCount"] == 0 and len(last["scheduled"]) == 20
    for before, after in itertools.pairwise(last["scheduled"]):
        assert after["when"] == pytest.approx(before["when"] + before["duration"], abs=1e-9)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_player_js_rebuffers_once_instead_of_stuttering() -> None:
    # Fast at first (it starts at once), then one chunk every 2 s: it runs dry once, then
    # holds until it can play to the end, rather than stalling before every chunk.
    transport = RecordingTransport()
    writer = StreamWriter(transport, 1)
    writer.start("t", "v", 1.0, chars=round(10 / 0.062))
    writer.chunk(tone(1.0), "one second", 0)
    steps = [{"advance": 0.2}, *steps_of(transport)]
    for piece in range(1, 10):
        transport.sent.clear()
        writer.chunk(tone(1.0), "one second", piece)
        steps += [{"advance": 2.0}, *steps_of(transport), {"snapshot": True}]
    snaps = run_player_js(steps)["snapshots"]
    counts = [len(snap["scheduled"]) for snap in snaps]
    assert counts[0] == 1 and counts[-1] == 10  # held after running dry, then all of it
    assert 2 <= counts.count(1) < 9, counts
    last = snaps[-1]
    assert last["stallCount"] == 1 and last["rebuffers"] == 1
    for before, after in itertools.pairwise(last["scheduled"][1:]):
        assert after["when"] == pytest.approx(before["when"] + before["duration"], abs=1e-9)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_player_js_gives_a_context_that_just_started_a_longer_lead() -> None:
    # Chromium: a start 30 ms ahead on a brand-new context was already in the past.
    transport = RecordingTransport()
    write_stream(transport, 1, [tone(1.0)])
    fresh = run_player_js([*steps_of(transport), {"snapshot": True}], clock=0.0)
    settled = run_player_js([*steps_of(transport), {"snapshot": True}])
    assert fresh["snapshots"][0]["scheduled"][0]["when"] == pytest.approx(0.1)
    lead = settled["snapshots"][0]["scheduled"][0]["when"] - SETTLED_CLOCK_S
    assert lead == pytest.approx(PREROLL_S) and PREROLL_S < 0.1
