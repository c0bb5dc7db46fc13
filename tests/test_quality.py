"""The quality bench: its word error rate on hand-made strings, and a small real run end to end."""

from __future__ import annotations

import sys
from contextlib import ExitStack

import numpy as np
import pytest

from kokoro_engine import Engine, KokoroError
from kokoro_engine._quality import (
    Recognizer,
    RecognizerMissingError,
    Speak,
    SpeechPath,
    edit_distance,
    harvard_sentences,
    quality_report,
    render,
    to_recognizer_rate,
    word_error_rate,
    words,
)


def test_words_normalize_case_punctuation_numbers_and_hyphens() -> None:
    assert words("It's easy, the MAN'S fall!") == ["it's", "easy", "the", "man's", "fall"]
    assert words("sold 50 bonds on well-oiled wheels") == [
        "sold", "fifty", "bonds", "on", "well", "oiled", "wheels",
    ]  # fmt: skip
    assert words("1,000 and 5.5 'quoted'") == [
        "one", "thousand", "and", "five", "point", "five", "quoted",
    ]  # fmt: skip
    assert words(" ... ") == []


def test_edit_distance_counts_substitutions_deletions_insertions() -> None:
    assert edit_distance([], []) == 0
    assert edit_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert edit_distance(["a", "b", "c"], ["a", "x", "c"]) == 1  # substitution
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1  # deletion
    assert edit_distance(["a", "b", "c"], ["a", "b", "x", "c"]) == 1  # insertion
    assert edit_distance(["a", "b"], []) == 2
    assert edit_distance([], ["a", "b"]) == 2
    assert edit_distance(list("kitten"), list("sitting")) == 3


def test_word_error_rate_on_hand_made_strings() -> None:
    ref = "The birch canoe slid on the smooth planks."
    assert word_error_rate(ref, "the birch canoe slid on the smooth planks") == 0.0
    assert word_error_rate(ref, "the birch canoe slid on smooth planks") == 1 / 8
    assert word_error_rate(ref, "a birch can do slid on the smooth planks") == 3 / 8
    assert word_error_rate("The girl sold fifty bonds.", "the girl sold 50 bonds") == 0.0
    assert word_error_rate("two words", "") == 1.0
    assert word_error_rate("one", "many extra words here") == 4.0  # insertions count too
    with pytest.raises(KokoroError, match="reference"):
        word_error_rate("!?", "anything")


def test_harvard_lists_one_to_six_ship_with_the_engine() -> None:
    sentences = harvard_sentences()
    assert len(sentences) == 60
    assert sentences[0] == "The birch canoe slid on the smooth planks."
    assert sentences[-1] == "Both lost their lives in the raging storm."
    assert all(s.endswith(".") for s in sentences)


def test_resampling_keeps_a_tone_and_the_duration() -> None:
    t = np.arange(24_000 * 2) / 24_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = to_recognizer_rate(tone)
    assert out.dtype == np.float32 and len(out) == 32_000
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(32_000) / 16_000)
    assert np.max(np.abs(out - expected)) < 1e-3
    # A tone above the new Nyquist frequency is removed, not folded back to an audible one.
    high = np.sin(2 * np.pi * 10_000 * t).astype(np.float32)
    assert np.max(np.abs(to_recognizer_rate(high))) < 1e-3


def test_groups_that_cannot_line_up_are_refused() -> None:
    def silent(text: str) -> np.ndarray:
        return np.zeros(2400, np.float32)

    paths = {"two": SpeechPath(silent, group=2), "three": SpeechPath(silent, group=3)}
    with pytest.raises(KokoroError, match="must divide 3"):
        quality_report(paths, ["One.", "Two.", "Three."])


def test_a_small_real_run_scores_every_path() -> None:
    sentences = harvard_sentences()[:4]
    with ExitStack() as stack:
        engine = stack.enter_context(Engine(audio_cache_mb=0))

        def split(text: str) -> np.ndarray:
            return engine.synthesize(text).samples

        def streamed(text: str) -> np.ndarray:
            return np.concatenate([chunk.samples for chunk in engine.stream(text)])

        paths: dict[str, Speak | SpeechPath] = {
            "split int8": split,
            "streamed": SpeechPath(streamed, group=2),
        }
        report = quality_report(paths, sentences, worst=2, recheck=2)
    assert report["recognizer"]["repeat_identical"] == report["recognizer"]["repeats"] == 2
    control = "split int8 +5 ms (control)"
    assert list(report["paths"]) == ["split int8", control, "streamed"]
    words_in = sum(len(words(s)) for s in sentences)
    for path in report["paths"].values():
        assert path["words"] == words_in
        assert path["wer"] < 0.5, path["worst"]  # a broken path or recognizer scores near 1
        assert path["audio_s"] > 4
        low, high = path["wer_ci95"]
        assert low <= path["wer"] <= high
    first, late = report["paths"]["split int8"], report["paths"][control]
    assert first["vs_first"]["delta"] == 0.0 and first["synth_rtf"] > 0
    assert late["synth_rtf"] is None  # the control re-uses audio: nothing was synthesized
    assert late["audio_s"] == pytest.approx(first["audio_s"] + 4 * 0.005, abs=0.011)  # rounded
    table = render(report)
    assert "split int8" in table and "worst of streamed" in table


def test_a_path_that_speaks_noise_scores_badly() -> None:
    rng = np.random.default_rng(1)

    def noise(text: str) -> np.ndarray:
        return (0.1 * rng.standard_normal(24_000 * 2)).astype(np.float32)

    report = quality_report({"noise": noise}, harvard_sentences()[:2], recheck=0)
    assert report["paths"]["noise"]["wer"] > 0.8


def test_without_pocketsphinx_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # how Python marks a module absent
    with pytest.raises(RecognizerMissingError, match="pip install 'pocketsphinx"):
        Recognizer()
