"""The planner: every word lands in exactly one piece, in order; no piece exceeds 510 ids."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokoro_engine import MAX_PHONEME_IDS
from kokoro_engine._phonemize import espeak, to_ids
from kokoro_engine._planner import PIECE_CAP_IDS, Planner, headroom
from kokoro_engine._segment import clauses, sentences

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", min_size=1, max_size=14)
PUNCT = st.sampled_from(["", "", "", ",", ".", "!", "?", ";", ":", "…", " —"])
TOKEN = st.tuples(WORD, PUNCT).map("".join)
SEPARATOR = st.sampled_from([" ", " ", " ", "\n", "\n\n", "  "])


@st.composite
def texts(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(TOKEN, min_size=1, max_size=120))
    seps = draw(st.lists(SEPARATOR, min_size=len(tokens), max_size=len(tokens)))
    return "".join(t + s for t, s in zip(tokens, seps, strict=True))


def plan(text: str, **kwargs: object) -> list:
    return list(Planner("en-us", **kwargs).pieces(text))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts())
def test_every_word_lands_in_one_piece_in_order(text: str) -> None:
    pieces = plan(text)
    assert " ".join(p.text for p in pieces).split() == text.split()
    assert all(len(p.ids) <= MAX_PHONEME_IDS for p in pieces)
    assert [p.seq for p in pieces] == list(range(len(pieces)))
    assert [p.ids for p in plan(text)] == [p.ids for p in pieces]  # deterministic


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=8, max_value=120), texts())
def test_first_piece_is_short_and_pieces_grow(first: int, text: str) -> None:
    pieces = plan(text, first_piece_ids=first)
    assert " ".join(p.text for p in pieces).split() == text.split()
    if len(pieces) > 1:
        # The first piece closes once it holds `first` ids (a single word may overshoot).
        longest_word = max(len(w) for w in text.split()) * 3
        assert len(pieces[0].ids) <= 2 * first + longest_word + 20


def test_a_long_unpunctuated_text_is_cut_under_the_limit() -> None:
    text = " ".join(["word"] * 600)
    pieces = plan(text)
    assert len(pieces) > 3
    assert all(len(p.ids) <= MAX_PHONEME_IDS for p in pieces)
    assert sum(len(p.text.split()) for p in pieces) == 600


def test_a_word_longer_than_a_piece_is_sliced_not_dropped() -> None:
    word = "supercalifragilistic" * 1000  # 20,000 characters, no spaces
    pieces = plan(f"Before {word} after.")
    assert all(len(p.ids) <= MAX_PHONEME_IDS for p in pieces)
    assert " ".join(p.text for p in pieces).split() == ["Before", word, "after."]


def test_sentence_and_clause_cuts() -> None:
    assert sentences("One. Two! Three? “Four.” Five") == [
        "One.",
        "Two!",
        "Three?",
        "“Four.”",
        "Five",
    ]
    assert clauses("a, b; c: d — e") == ["a,", "b;", "c:", "d", "— e"]
    assert sentences("Say [New York](/nˈu jˈɔɹk/). Then stop.") == [
        "Say [New York](/nˈu jˈɔɹk/).",
        "Then stop.",
    ]


def test_boundaries_set_the_pauses() -> None:
    pieces = plan(
        "First sentence here. Second one.\n\nA new paragraph starts here.", first_piece_ids=4
    )
    assert pieces[-1].boundary == "paragraph"
    assert any(p.boundary == "paragraph" for p in pieces[:-1])


def test_syllabic_consonants_are_spoken_not_dropped() -> None:
    # espeak writes "certainly" with a syllabic n (n + U+0329), a mark outside the vocabulary.
    phonemes = espeak("Certainly, the button is uncertain.", "en-us")
    assert "\u0329" not in phonemes and phonemes.count("ᵊn") == 3
    assert to_ids(phonemes)[1] == ""


def test_each_piece_fits_the_audio_ahead_of_it() -> None:
    # Short sentences (~12 ids): every cut can fall where the deadline wants it.
    text = " ".join(["The cat sat.", "A dog ran.", "We all ate."] * 40)
    first, headroom = 24, 0.5
    pieces = plan(text, first_piece_ids=first, headroom=headroom)
    before = 0
    for piece in pieces:
        assert piece.ids_before == before
        if piece.seq:
            assert len(piece.ids) <= max(first, headroom * before), piece
        before += len(piece.ids)
    assert len(pieces[-1].ids) > 3 * first  # and they do grow once there is audio ahead


def test_a_long_sentence_is_cut_at_its_clauses_when_its_deadline_is_near() -> None:
    text = (
        "Short opening here. Then a long sentence follows, with many clauses, each of them "
        "spoken in turn, so that the listener never waits, and the player never runs dry."
    )
    pieces = plan(text, first_piece_ids=16, headroom=0.6)
    assert len(pieces) > 3
    assert " ".join(p.text for p in pieces).split() == text.split()
    assert all(p.boundary in ("clause", "sentence", "paragraph", "word") for p in pieces)


def test_pieces_never_grow_past_the_cap() -> None:
    text = " ".join(f"Sentence number {n} is here, and it goes on." for n in range(200))
    pieces = plan(text, headroom=float("inf"))
    assert max(len(p.ids) for p in pieces[:-1]) <= PIECE_CAP_IDS
    assert max(len(p.ids) for p in pieces) > PIECE_CAP_IDS // 2


def test_headroom_follows_the_measured_speed() -> None:
    assert headroom(0.25) > headroom(0.35) > headroom(0.5) > 0
    assert headroom(0.9) == float("inf")  # too slow to keep up: fewest, largest pieces
