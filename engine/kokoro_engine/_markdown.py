"""Markdown stripping: keep a notebook cell's prose and drop the markup so it is not read aloud."""

from __future__ import annotations

import html
import re

from ._normalize import protect_markup, restore_markup

__all__ = ["strip_markdown"]

# Code and escaped characters are parked behind private-use placeholders so that the
# emphasis and link rules cannot eat their asterisks, underscores or brackets.
_VAULT_CHARS = re.compile("[\ue020-\ue03f]")
_VAULT_TOKEN = re.compile("\ue020([\ue030-\ue039]+)\ue021")


class _Vault:
    def __init__(self) -> None:
        self.items: list[str] = []

    def park(self, text: str) -> str:
        token = "".join(chr(0xE030 + int(d)) for d in str(len(self.items)))
        self.items.append(text)
        return f"\ue020{token}\ue021"

    def restore(self, text: str) -> str:
        def item(match: re.Match[str]) -> str:
            index = int("".join(str(ord(c) - 0xE030) for c in match.group(1)))
            return self.items[index] if index < len(self.items) else ""

        # Parked text may hold tokens parked before it (an escape inside inline code).
        for _ in range(3):
            text = _VAULT_TOKEN.sub(item, text)
        return text


# ------------------------------------------------------------------------ blocks

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+|$)(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_DEFINITION = re.compile(
    r"^ {0,3}\[[^\]]+\]:[ \t]+<?(?:https?://|www\.|/|#|\.)\S*>?(?:[ \t]+[\"'(].*)?$"
)
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|[0-9]{1,3}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_SENTENCE_END = (".", "!", "?", ":", ";")


def _as_sentence(text: str) -> str:
    # A heading or a table row is a unit of its own: a full stop gives it its pause.
    text = text.strip()
    return text if not text or text.endswith(_SENTENCE_END) else text + "."


def _table_row(line: str) -> str:
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return _as_sentence(", ".join(cell for cell in cells if cell))


def _is_table_rule(lines: list[str], index: int) -> bool:
    line = lines[index]
    return "|" in line and bool(_TABLE_RULE.match(line)) and index > 0 and "|" in lines[index - 1]


def _prose_line(line: str) -> str:
    if _RULE.match(line) or _DEFINITION.match(line):
        return ""
    if heading := _HEADING.match(line):
        return _as_sentence(heading.group(1))
    line = _QUOTE.sub("", line)
    return _BULLET.sub("", line)


def _prose_block(lines: list[str]) -> list[str]:
    out: list[str] = []
    in_table = False
    for index, line in enumerate(lines):
        if _is_table_rule(lines, index):
            out[-1], in_table = _table_row(lines[index - 1]), True
            continue
        in_table = in_table and "|" in line
        if in_table:
            out.append(_table_row(line))
        elif _SETEXT.match(line) and out and out[-1].strip():
            out[-1] = _as_sentence(out[-1])
        else:
            out.append(_prose_line(line))
    return out


# ------------------------------------------------------------------------ inline

_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
# The tempered dot stops at the next "<!--": unclosed comments would otherwise cost n².
_COMMENT = re.compile(r"<!--((?:(?!<!--).)*?)-->", re.DOTALL)
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^<>\s]+|[^<>\s@]+@[^<>\s]+)>")
_IMAGE = re.compile(r"!\[([^\[\]\n]*)\]\((?:[^()\n]|\([^()\n]*\))*\)")
_LINK = re.compile(r"\[([^\[\]\n]+)\]\((?:[^()\n]|\([^()\n]*\))*\)")
_EMPTY_LINK = re.compile(r"\[\]\(<?([^()\s>]*)>?(?:\s[^()\n]*)?\)")
_REF_LINK = re.compile(r"\[([^\[\]\n]+)\]\[[^\[\]\n]*\]")
_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|li|ul|ol|td|th|tr|table|thead|tbody|h[1-6]|blockquote|pre|hr|section|"
    r"article|header|footer|details|summary|dl|dt|dd|script|style|noscript|iframe|nav|main|"
    r"aside|figure|figcaption|form|svg|canvas|video|audio)\b[^<>]*>",
    re.IGNORECASE,
)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_EMPHASIS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"),
    re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)"),
    re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"),
    re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"),
    re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"),
)


def _inline(text: str, vault: _Vault) -> str:
    text = _CODE_SPAN.sub(lambda m: vault.park(m.group(2).strip() or m.group(2)), text)
    text = _COMMENT.sub(lambda m: m.group(1), text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _EMPTY_LINK.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _BREAK_TAG.sub("\n", text)
    text = _BLOCK_TAG.sub(" ", text)
    text = _TAG.sub("", text)
    for pattern in _EMPHASIS:
        text = pattern.sub(r"\1", text)
    return html.unescape(text)


# ------------------------------------------------------------------------ public


def _segments(lines: list[str]) -> list[tuple[bool, list[str]]]:
    """Split lines into (is_code, lines) runs; the fence lines themselves are dropped."""
    segments: list[tuple[bool, list[str]]] = [(False, [])]
    fence = ""
    for line in lines:
        opening = _FENCE.match(line)
        if not fence and opening:
            fence = opening.group(1)
            segments.append((True, []))
        elif fence and _FENCE.match(line) and line.strip().startswith(fence):
            if line.strip().strip(fence[0]) == "":
                fence = ""
                segments.append((False, []))
            else:
                segments[-1][1].append(line)
        else:
            segments[-1][1].append(line)
    return [segment for segment in segments if segment[1]]


def _render(segment: tuple[bool, list[str]], vault: _Vault) -> str:
    is_code, lines = segment
    if is_code:
        return vault.park("\n".join(lines))
    lines = [_ESCAPE.sub(lambda m: vault.park(m.group(1)), line) for line in lines]
    return _inline("\n".join(_prose_block(lines)), vault)


_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def strip_markdown(text: str) -> str:
    """Drop Markdown and HTML markup from `text`, keeping every word of its prose.

    Headings, emphasis, list markers, block quotes, rules and tags go; link and image text,
    inline code and the inside of fenced code blocks stay (the fence lines go). Table rows
    become comma-separated sentences and headings end with a full stop, so each is read as
    a unit. `[word](/phonemes/)` pronunciation spans are kept byte for byte.
    """
    protected, spans = protect_markup(text)
    protected = _VAULT_CHARS.sub(" ", protected.replace("\r\n", "\n").replace("\r", "\n"))
    vault = _Vault()
    parts = [_render(segment, vault) for segment in _segments(protected.split("\n"))]
    joined = _BLANK_LINES.sub("\n\n", "\n".join(parts))
    return restore_markup(vault.restore(joined), spans).strip()
