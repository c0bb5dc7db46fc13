"""The engine end to end on the real model and voices: synthesize, stream, blends, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from kokoro_engine import (
    SAMPLE_RATE,
    Engine,
    EngineClosedError,
    InputError,
    VoiceError,
    parse_voice,
)

from probes import lane_runs
from speech import assert_speech, spectral_similarity

PARAGRAPH = (
    "The sun had not yet risen when Mara left the village. She carried a lantern and a letter. "
    "The road was quiet, and frost still clung to the fences. A dog barked twice in the distance. "
    "By seven she had reached the crossroads, where she stopped to read the map again."
)


def test_synthesize_speaks_a_sentence(engine: Engine) -> None:
    audio = engine.synthesize("Hello there, this is a test of the engine.", voice="af_heart")
    assert audio.sample_rate == SAMPLE_RATE
    assert_speech(audio.samples, "Hello there, this is a test of the engine.")
    metrics = audio.metrics
    assert metrics["provider"] == "CPUExecutionProvider"
    assert metrics["ttfa_s"] > 0 and metrics["total_s"] >= metrics["ttfa_s"]
    assert metrics["audio_s"] == pytest.approx(audio.duration_s, abs=0.01)
    assert metrics["rtf"] == pytest.approx(metrics["total_s"] / metrics["audio_s"], rel=0.01)
    assert [p["seq"] for p in metrics["pieces"]] == list(range(len(metrics["pieces"])))


def test_stream_is_ordered_and_matches_synthesize(engine: Engine) -> None:
    engine.clear_cache()
    chunks = list(engine.stream(PARAGRAPH, voice="am_adam"))
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert len(chunks) >= 3
    assert " ".join(c.text for c in chunks).split() == PARAGRAPH.split()
    streamed = np.concatenate([c.samples for c in chunks])
    assert_speech(streamed, PARAGRAPH)
    engine.clear_cache()
    whole = engine.synthesize(PARAGRAPH, voice="am_adam")
    assert whole.metrics["cached"] is False
    assert len(whole.samples) == pytest.approx(len(streamed), rel=0.03)
    assert spectral_similarity(whole.samples, streamed) > 0.95


def test_first_chunk_comes_before_the_last_piece_is_done(engine: Engine) -> None:
    engine.clear_cache()
    stream = engine.stream(PARAGRAPH + " " + PARAGRAPH, voice="af_heart")
    first = next(stream)
    got_first_at = stream.metrics["ttfa_s"]
    rest = list(stream)
    assert first.seq == 0 and rest
    assert got_first_at < rest[-1].metrics["end_s"]
    assert stream.metrics["pieces"][0]["n_ids"] <= 2 * engine.first_piece_ids + 20


def test_closing_a_stream_stops_the_remaining_work(engine: Engine) -> None:
    engine.clear_cache()
    runs_before = lane_runs(engine)
    long_text = " ".join([PARAGRAPH] * 6)
    with engine.stream(long_text, voice="af_heart") as stream:
        next(stream)
    runs = lane_runs(engine) - runs_before
    request = engine._request(long_text, "af_heart", 1.0, None, False, None)
    planned = sum(1 for _ in engine._synthesis.plan(request))
    assert stream.metrics["complete"] is False
    assert runs < planned / 2


def test_voice_blend_differs_from_both_voices(engine: Engine) -> None:
    text = "A blend of two voices."
    a = engine.synthesize(text, voice="af_heart").samples
    b = engine.synthesize(text, voice="am_adam").samples
    mix = engine.synthesize(text, voice="af_heart:0.5,am_adam:0.5").samples
    assert_speech(mix, text)
    assert not np.array_equal(mix[: len(a)], a[: len(mix)])
    assert not np.array_equal(mix[: len(b)], b[: len(mix)])


def test_parse_voice_normalizes_and_merges_blend_weights() -> None:
    assert parse_voice("af_heart") == [("af_heart", 1.0)]
    blend = dict(parse_voice(" af_heart:3, am_adam:1 ,af_heart:0 "))
    assert blend == pytest.approx({"af_heart": 0.75, "am_adam": 0.25})
    for bad, words in [("", "no voice"), ("a:x", "not a number"), ("a:0,b:0", "add up to 0")]:
        with pytest.raises(VoiceError, match=words):
            parse_voice(bad)


def test_speed_changes_duration(engine: Engine) -> None:
    text = "Speed changes how long this sentence takes to say."
    slow = engine.synthesize(text, speed=0.7).duration_s
    fast = engine.synthesize(text, speed=1.4).duration_s
    assert fast < slow * 0.75


def test_cache_hits_are_marked(engine: Engine) -> None:
    text = "Cached sentences are marked as cached."
    engine.synthesize(text)
    again = engine.synthesize(text)
    assert again.metrics["cached"] is True
    assert all(p["provider"] == "cache" for p in again.metrics["pieces"])


def test_languages_from_voice_prefix(engine: Engine) -> None:
    for voice, text in [
        ("ef_dora", "Hola, ¿cómo estás?"),
        ("ff_siwis", "Bonjour tout le monde."),
        ("bf_emma", "Good morning."),
    ]:
        audio = engine.synthesize(text, voice=voice)
        assert audio.metrics["lang"] in {"es", "fr-fr", "en-gb"}
        assert_speech(audio.samples, text)


def test_custom_pronunciation_and_phoneme_input(engine: Engine) -> None:
    audio = engine.synthesize("Say [Kokoro](/kˈOkəɹO/) twice: [Kokoro](/kˈOkəɹO/).")
    assert_speech(audio.samples, "Say Kokoro twice Kokoro")
    phonemes = engine.synthesize("həlˈoʊ wˈɜːld", is_phonemes=True)
    assert_speech(phonemes.samples, "hello world")


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"text": "   "}, InputError, "empty"),
        ({"text": "hi", "voice": "af_hart"}, VoiceError, "af_heart"),
        ({"text": "hi", "voice": "af_heart:0.5,am_adam:-1"}, VoiceError, "≥ 0"),
        ({"text": "hi", "voice": "af_heart:x"}, VoiceError, "not a number"),
        ({"text": "hi", "speed": 0}, InputError, "0.5 to 2.0"),
        ({"text": "hi", "speed": float("nan")}, InputError, "0.5 to 2.0"),
        ({"text": "hi", "speed": 100}, InputError, "0.5 to 2.0"),
        ({"text": "hi", "lang": "klingon"}, InputError, "en-us"),
        ({"text": b"bytes"}, InputError, "str"),
    ],
)
def test_bad_input_raises_our_errors(engine: Engine, kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        engine.synthesize(**kwargs)


def test_threads_share_one_engine(engine: Engine) -> None:
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = [
                c.seq
                for c in engine.stream(f"Thread number {i} is speaking. It says two sentences.")
            ]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(seqs == list(range(len(seqs))) for seqs in results.values()) and len(results) == 4


def test_status_and_recent_requests(engine: Engine) -> None:
    engine.synthesize("Status check.")
    status = engine.status()
    assert status["warm"] and status["providers"][-1] == "CPUExecutionProvider"
    assert {lane["role"] for lane in status["lanes"]} >= {"latency"}
    assert status["rss_mb"] > 50
    assert len(engine.recent) >= 1
    assert "<table" in engine.recent._repr_html_()
    assert engine.recent.summary()["count"]["requests"] >= 1


def test_closed_engine_refuses_work() -> None:
    eng = Engine(background_warmup=False)
    eng.close()
    with pytest.raises(EngineClosedError):
        eng.synthesize("hi")


def test_the_split_graph_speaks_exactly_as_the_single_graph(engine: Engine) -> None:
    # Same piece, same lane threads: the default (split) path must not trade any audio for
    # speed (cropping frames changed every frame through the decoder's instance norms).
    single = Engine(split=False, background_warmup=False, audio_cache_mb=0)
    try:
        text = "The birch canoe slid on the smooth planks."
        engine.clear_cache()
        ours, theirs = engine.synthesize(text), single.synthesize(text)
    finally:
        single.close()
    assert ours.samples.shape == theirs.samples.shape
    assert np.abs(ours.samples - theirs.samples).max() < 1e-4
