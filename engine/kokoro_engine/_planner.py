"""Planning pieces: phonemized text cut into model calls of at most 510 phoneme ids.

Cuts fall at paragraph and sentence ends first, then clauses, then words; a word longer
than a piece is sliced. The first piece is kept short so the first audio comes early, and
each later piece may grow (by `growth`) so synthesis stays ahead of playback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import _segment as segment
from ._phonemize import phonemize, to_ids, warn_unknown
from ._types import MAX_PHONEME_IDS

# Silence put back after a unit, by what ends it (seconds).
PAUSES = {"paragraph": 0.6, "sentence": 0.35, "clause": 0.12, "word": 0.0, "end": 0.0}


@dataclass
class Unit:
    """A stretch of text that is never cut further: its phonemes fit one piece."""

    text: str
    phonemes: str
    boundary: str


@dataclass
class Piece:
    """One model call: text, phonemes and ids, and the pause that follows its audio."""

    seq: int
    text: str
    phonemes: str
    ids: list[int]
    boundary: str
    unknown: str = ""

    @property
    def pause_s(self) -> float:
        return PAUSES[self.boundary]


@dataclass
class Planner:
    """Turns a text into pieces, lazily, so a long text needs memory for one piece at a time."""

    lang: str
    is_phonemes: bool = False
    first_piece_ids: int = 32
    growth: float = 2.0
    max_ids: int = MAX_PHONEME_IDS
    _unknown: set[str] = field(default_factory=set)

    def pieces(self, text: str) -> Iterator[Piece]:
        target = float(self.first_piece_ids)
        batch: list[Unit] = []
        seq = 0
        for unit in self._units(text, first=True):
            if batch and self._too_big(batch, unit, int(target)):
                yield self._piece(seq, batch)
                seq, batch, target = seq + 1, [], min(target * self.growth, self.max_ids)
            batch.append(unit)
            if unit.boundary == "paragraph" or (
                seq == 0 and len(batch) == 1 and self._ids(unit) >= target
            ):
                yield self._piece(seq, batch)
                seq, batch, target = seq + 1, [], min(target * self.growth, self.max_ids)
        if batch:
            yield self._piece(seq, batch)

    # --- units --------------------------------------------------------------------------

    def _units(self, text: str, *, first: bool) -> Iterator[Unit]:
        for paragraph in segment.paragraphs(text):
            sentences = segment.sentences(paragraph)
            for index, sentence in enumerate(sentences):
                boundary = "paragraph" if index == len(sentences) - 1 else "sentence"
                if first:
                    yield from self._first_sentence(sentence, boundary)
                    first = False
                else:
                    yield from self._fit(sentence, boundary)
        # The last unit's pause is dropped by the caller; "paragraph" closes the last piece.

    def _first_sentence(self, sentence: str, boundary: str) -> Iterator[Unit]:
        """Cut the opening sentence finely, so the first piece can be short."""
        parts = segment.clauses(sentence)
        for index, clause in enumerate(parts):
            last = index == len(parts) - 1
            end = boundary if last else "clause"
            head, rest = "", clause
            if index == 0 and self._count(clause) > 2 * self.first_piece_ids:
                head, rest = self._head(clause)
            if head:  # a one-word clause has no head: it would plan an empty first piece
                yield from self._fit(head, "word")
                if rest:
                    yield from self._fit(rest, end)
            else:
                yield from self._fit(clause, end)

    def _head(self, clause: str) -> tuple[str, str]:
        words = segment.words(clause)
        taken: list[str] = []
        for word in words[:-1]:
            taken.append(word)
            if self._count(" ".join(taken)) >= self.first_piece_ids:
                break
        return " ".join(taken), " ".join(words[len(taken) :])

    def _fit(self, text: str, boundary: str) -> Iterator[Unit]:
        """`text` as one unit if it fits, else cut at clauses, then words, then inside a word."""
        unit = self._unit(text, boundary)
        if self._ids(unit) <= self.max_ids:
            yield unit
            return
        parts = segment.clauses(text)
        if len(parts) > 1:
            for index, part in enumerate(parts):
                yield from self._fit(part, boundary if index == len(parts) - 1 else "clause")
            return
        yield from self._by_words(segment.words(text), boundary)

    def _by_words(self, words: list[str], boundary: str) -> Iterator[Unit]:
        group: list[Unit] = []
        for word in words:
            unit = self._unit(word, "word")
            if self._ids(unit) > self.max_ids:
                if group:
                    yield _join(group, "word")
                    group = []
                yield from self._slices(unit)
                continue
            if group and self._ids(_join([*group, unit], "word")) > self.max_ids:
                yield _join(group, "word")
                group = []
            group.append(unit)
        if group:
            yield _join(group, boundary)

    def _slices(self, unit: Unit) -> Iterator[Unit]:
        """A word too long for one piece: its phonemes in slices; its text goes with the first."""
        size = self.max_ids
        for start in range(0, len(unit.phonemes), size):
            text = unit.text if start == 0 else ""
            yield Unit(text, unit.phonemes[start : start + size], "word")

    # --- helpers ------------------------------------------------------------------------

    def _unit(self, text: str, boundary: str) -> Unit:
        phonemes = " ".join(text.split()) if self.is_phonemes else phonemize(text, self.lang)
        return Unit(text, phonemes, boundary)

    def _count(self, text: str) -> int:
        return self._ids(self._unit(text, "word"))

    def _ids(self, unit: Unit) -> int:
        return len(to_ids(unit.phonemes)[0])

    def _too_big(self, batch: list[Unit], unit: Unit, target: int) -> bool:
        return self._ids(_join([*batch, unit], unit.boundary)) > target

    def _piece(self, seq: int, batch: list[Unit]) -> Piece:
        joined = _join(batch, batch[-1].boundary)
        ids, unknown = to_ids(joined.phonemes)
        if unknown:
            warn_unknown(joined.text, self.lang, unknown, is_phonemes=self.is_phonemes)
        return Piece(seq, joined.text, joined.phonemes, ids, joined.boundary, unknown)


def _join(units: Iterable[Unit], boundary: str) -> Unit:
    units = list(units)
    text = " ".join(u.text for u in units if u.text)
    phonemes = " ".join(u.phonemes for u in units if u.phonemes)
    return Unit(text, phonemes, boundary)
