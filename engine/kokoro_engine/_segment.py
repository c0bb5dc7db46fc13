"""Cutting text into paragraphs, sentences, clauses and words without losing a character of it.

Every cut falls on whitespace, so joining the pieces' words gives back the input's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
# A sentence ends at . ! ? … (or CJK 。！？) plus closing quotes/brackets, before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：])\s+|\s+(?=[—–-]\s)")
# A word is whitespace-free text, or a [several words](/phonemes/) pronunciation span.
_WORD = re.compile(r"\[[^\[\]]+\]\(/[^/()]+/\)|\S+")


def paragraphs(text: str) -> Iterator[str]:
    for block in _PARAGRAPH.split(text):
        if block.strip():
            yield block.strip()


def sentences(paragraph: str) -> list[str]:
    return _split(paragraph, _SENTENCE_END)


def clauses(sentence: str) -> list[str]:
    return _split(sentence, _CLAUSE_END)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts: list[str] = []
    for part in pattern.split(text):
        part = part.strip()
        if not part:
            continue
        if parts and _inside_markup(parts[-1]):
            parts[-1] = f"{parts[-1]} {part}"  # never cut inside [words](/phonemes/)
        else:
            parts.append(part)
    return parts


def _inside_markup(text: str) -> bool:
    return text.count("[") > text.count("](/") or text.rfind("](/") > text.rfind("/)")
