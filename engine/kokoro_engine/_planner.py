"""Planning pieces: phonemized text cut into model calls that are ready before they are heard.

Cuts fall at paragraph and sentence ends first, then clauses, then words; a word longer
than a piece is sliced, and no piece exceeds 510 ids. The first piece is short so the first
audio comes early. Each later piece is sized by its deadline: it may hold at most
`headroom` times the audio planned ahead of it, because it must be synthesized while that
audio plays (the engine sets `headroom` from this machine's measured speed). A sentence
bigger than that is cut at its clauses. Pieces never grow past `cap_ids`, so lanes stay
balanced and no single call needs a huge buffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import _segment as segment
from ._phonemize import phonemize, to_ids, warn_unknown
from ._types import MAX_PHONEME_IDS

# Silence put back after a unit, by what ends it (seconds).
PAUSES = {"paragraph": 0.6, "sentence": 0.35, "clause": 0.12, "word": 0.0, "end": 0.0}
# Audio per phoneme id at speed 1, pauses included (measured: 0.060 s over the Harvard
# sentences for af_heart and bm_george); a little low, so deadlines err early.
SECONDS_PER_ID = 0.055
PIECE_CAP_IDS = 256
# The first piece's budget: the opening sentence is cut at its clauses, and inside a clause
# longer than twice this. Smaller starts sooner but costs intelligibility (word error on
# streamed paragraphs, paired, vs 32: 16 ids +0.028 and +0.015); larger was not clearly
# better (64 ids: −0.002 to −0.017 over four voices, each within noise) and starts ~0.3 s
# later on 2 cores (docs/benchmarks.md).
FIRST_PIECE_IDS = 32


def headroom(rate: float) -> float:
    """How much audio a piece may hold per second of audio ahead of it, on lanes that take
    `rate` seconds per second of audio: half of what would just finish in time, so a machine
    twice as busy as measured still keeps up. A machine that cannot keep up anyway gets the
    fewest, largest pieces (each call has a fixed cost)."""
    if rate >= 0.6:
        return float("inf")
    return 0.5 * (1.0 - rate) / rate


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
    ids_before: int = 0  # phoneme ids planned ahead of this piece in its text

    @property
    def pause_s(self) -> float:
        return PAUSES[self.boundary]

    @property
    def offset_s(self) -> float:
        """Roughly when this piece starts in the audio, at speed 1: its deadline."""
        return self.ids_before * SECONDS_PER_ID

    @property
    def audio_s(self) -> float:
        """Roughly how much audio this piece makes, at speed 1."""
        return len(self.ids) * SECONDS_PER_ID


@dataclass
class Planner:
    """Turns a text into pieces, lazily, so a long text needs memory for one piece at a time."""

    lang: str
    is_phonemes: bool = False
    first_piece_ids: int = FIRST_PIECE_IDS
    growth: float = 2.0  # a piece's target is at most this many times the one before
    headroom: float = 1.0  # a piece holds at most this many times the audio ahead of it
    cap_ids: int = PIECE_CAP_IDS
    max_ids: int = MAX_PHONEME_IDS
    _unknown: set[str] = field(default_factory=set)

    def pieces(self, text: str) -> Iterator[Piece]:
        target = self.first_piece_ids
        batch: list[Unit] = []
        seq = before = 0

        def close() -> Piece:
            nonlocal target, batch, seq, before
            piece = self._piece(seq, batch, before)
            seq, batch, before = seq + 1, [], before + len(piece.ids)
            target = self._target(target, before)
            return piece

        for whole in self._units(text, first=True):
            for unit in self._within(whole, target) if seq else (whole,):
                if batch and self._too_big(batch, unit, target):
                    yield close()
                batch.append(unit)
                if unit.boundary == "paragraph" or (
                    seq == 0 and len(batch) == 1 and self._ids(unit) >= target
                ):
                    yield close()
        if batch:
            yield close()

    def _target(self, last: int, before: int) -> int:
        """The next piece's size: its deadline's worth of ids, grown gently, capped."""
        by_deadline = self.headroom * before
        if by_deadline >= self.cap_ids:
            return min(int(last * self.growth), self.cap_ids)
        return max(self.first_piece_ids, min(int(last * self.growth), int(by_deadline)))

    def _within(self, unit: Unit, target: int) -> Iterator[Unit]:
        """A sentence too big for the piece it would start, cut at its clauses."""
        parts = segment.clauses(unit.text) if self._ids(unit) > target else []
        if len(parts) < 2:
            yield unit
            return
        for index, part in enumerate(parts):
            yield from self._fit(part, unit.boundary if index == len(parts) - 1 else "clause")

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

    def _piece(self, seq: int, batch: list[Unit], before: int) -> Piece:
        joined = _join(batch, batch[-1].boundary)
        ids, unknown = to_ids(joined.phonemes)
        if unknown:
            warn_unknown(joined.text, self.lang, unknown, is_phonemes=self.is_phonemes)
        return Piece(seq, joined.text, joined.phonemes, ids, joined.boundary, unknown, before)


def _join(units: Iterable[Unit], boundary: str) -> Unit:
    units = list(units)
    text = " ".join(u.text for u in units if u.text)
    phonemes = " ".join(u.phonemes for u in units if u.phonemes)
    return Unit(text, phonemes, boundary)
