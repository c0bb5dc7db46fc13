"""Properties of the text front end on arbitrary unicode: the segmenter and the planner never
crash, never drop or reorder a word, never exceed 510 ids a piece, and always agree with
themselves. (Normalizer properties live in test_normalize.py; planner properties on
ASCII words and punctuation in test_planner.py.)"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokoro_engine import MAX_PHONEME_IDS
from kokoro_engine._normalize import normalize
from kokoro_engine._planner import Planner
from kokoro_engine._segment import clauses, paragraphs, sentences, words

# What users paste: emoji (with skin tones and joiners), right-to-left and mixed scripts,
# zero-width and direction marks, control characters, markup, digits and punctuation.
ODD = list(
    "🍕👍🏽👩‍💻🇫🇷✨ שלום مرحبا русский 日本語 ελληνικά हिन्दी Ωé"
    "\u200b\u200c\u200d\u2060\ufeff\u202e\u202c\u200f\u200e"
    "\x00\x07\x1b\x7f\t\r<>&\"'`/\\[](){}.,;:!?…—–-0123456789$%"
)
UNICODE = st.text(
    alphabet=st.one_of(st.sampled_from(ODD), st.characters(exclude_categories=("Cs",))),
    max_size=60,
)
WORDY = st.lists(
    st.one_of(UNICODE, st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True)), min_size=1, max_size=12
).map(" ".join)
SPACES = st.sampled_from([" ", "\n", "\n\n", "\t", "  \n \n  ", "\u3000"])
LANGS = st.sampled_from(["en-us", "es", "fr-fr", "ja"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(UNICODE, SPACES), max_size=10).map(lambda p: "".join(a + b for a, b in p))
)
def test_segmenting_never_loses_a_word(text: str) -> None:
    """paragraphs → sentences → clauses → words gives back the text's words, in order."""
    out = [
        word
        for paragraph in paragraphs(text)
        for sentence in sentences(paragraph)
        for clause in clauses(sentence)
        for word in clause.split()
    ]
    assert out == text.split()
    assert words(text) == words(text)
    assert [s for p in paragraphs(text) for s in sentences(p)] == [
        s for p in paragraphs(text) for s in sentences(p)
    ]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(WORDY, LANGS)
@pytest.mark.filterwarnings("ignore::kokoro_engine.PhonemeWarning")  # symbols left out: by design
def test_planning_arbitrary_unicode_keeps_every_word_under_the_limit(text: str, lang: str) -> None:
    """What the engine plans for any text: all words, in order, ≤ 510 ids, same every time."""
    spoken = normalize(text, lang)
    pieces = list(Planner(lang).pieces(spoken))
    assert " ".join(p.text for p in pieces).split() == spoken.split()
    assert all(len(p.ids) <= MAX_PHONEME_IDS for p in pieces)
    assert [p.seq for p in pieces] == list(range(len(pieces)))
    again = list(Planner(lang).pieces(spoken))
    assert [(p.text, p.ids, p.boundary) for p in again] == [
        (p.text, p.ids, p.boundary) for p in pieces
    ]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["x", "ab", "🍕", "шш", "a\u200bb", "1"]), st.integers(300, 3000))
def test_long_runs_without_spaces_are_sliced_not_dropped(unit: str, times: int) -> None:
    """One huge "word" (no spaces): sliced under the limit, its text kept, no empty piece."""
    text = normalize(unit * times, "en-us")
    pieces = list(Planner("en-us").pieces(text))
    assert " ".join(p.text for p in pieces).split() == text.split()
    assert all(0 < len(p.ids) <= MAX_PHONEME_IDS for p in pieces)
