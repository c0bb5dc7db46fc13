"""Normalization: rewrite written text as the words a person would say, before espeak-ng reads it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from num2words import num2words

__all__ = ["EXPANDED_WORDS", "normalize", "protect_markup", "restore_markup"]


# --------------------------------------------------------------------------- languages


@dataclass(frozen=True)
class _Lang:
    code: str
    n2w: str | None  # num2words language; None leaves digits to espeak-ng, which reads them
    english: bool = False
    us: bool = False
    decimal_comma: bool = False
    point: str = "point"
    minus: str = "minus"
    percent: str = "percent"
    to: str = "to"


_EN_US = _Lang("en-us", "en", english=True, us=True)
_EN_GB = _Lang("en-gb", "en", english=True)
_ES = _Lang(
    "es", "es", decimal_comma=True, point="coma", minus="menos", percent="por ciento", to="a"
)
_FR = _Lang(
    "fr-fr", "fr", decimal_comma=True, point="virgule", minus="moins", percent="pour cent", to="à"
)
_IT = _Lang(
    "it", "it", decimal_comma=True, point="virgola", minus="meno", percent="per cento", to="a"
)
_PT = _Lang(
    "pt-br",
    "pt_BR",
    decimal_comma=True,
    point="vírgula",
    minus="menos",
    percent="por cento",
    to="a",
)
_OTHER = _Lang("", None)

# Longest prefix first; "en" alone means American English, as the voices' "a" prefix does.
_LANG_PREFIXES: tuple[tuple[str, _Lang], ...] = (
    ("en-gb", _EN_GB),
    ("en-uk", _EN_GB),
    ("en", _EN_US),
    ("es", _ES),
    ("fr", _FR),
    ("it", _IT),
    ("pt", _PT),
)


def _language(lang: str) -> _Lang:
    key = lang.strip().lower().replace("_", "-")
    for prefix, language in _LANG_PREFIXES:
        if key.startswith(prefix):
            return language
    return _OTHER


# ------------------------------------------------------------- pronunciation markup

# `[word](/phonemes/)`: the phonemes go to the model verbatim, so nothing may touch them.
_MARKUP = re.compile(r"\[[^\[\]\n]+\]\(/[^/()\n]+/\)")
# Private-use characters stand in for protected spans; any the user typed are not words.
_SENTINELS = re.compile("[\ue000-\ue01f]")
_PLACEHOLDER = re.compile("\ue000([\ue010-\ue019]+)\ue001")


def _placeholder(index: int) -> str:
    return "\ue000" + "".join(chr(0xE010 + int(d)) for d in str(index)) + "\ue001"


def protect_markup(text: str) -> tuple[str, list[str]]:
    """Swap each `[word](/phonemes/)` span for an opaque placeholder; return text and spans."""
    spans: list[str] = []
    parts: list[str] = []
    pos = 0
    for match in _MARKUP.finditer(text):
        parts.append(_SENTINELS.sub(" ", text[pos : match.start()]))
        parts.append(_placeholder(len(spans)))
        spans.append(match.group())
        pos = match.end()
    parts.append(_SENTINELS.sub(" ", text[pos:]))
    return "".join(parts), spans


def restore_markup(text: str, spans: Sequence[str]) -> str:
    """Put back the spans `protect_markup` took out, byte for byte."""

    def span(match: re.Match[str]) -> str:
        index = int("".join(str(ord(c) - 0xE010) for c in match.group(1)))
        return spans[index] if index < len(spans) else ""

    return _PLACEHOLDER.sub(span, text)


# --------------------------------------------------------------------- characters

_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2212": "-",
        "\u2012": "\u2013",
        "\u2044": "/",
        "\u2028": "\n",
        "\u2029": "\n\n",
        "\x85": "\n",
        "\x0b": "\n",
        "\x0c": "\n",
        "½": " 1/2",
        "⅓": " 1/3",
        "⅔": " 2/3",
        "¼": " 1/4",
        "¾": " 3/4",
        "⅕": " 1/5",
        "⅛": " 1/8",
        "⅜": " 3/8",
        "⅝": " 5/8",
        "⅞": " 7/8",
    }
)
# Format characters (zero-width, soft hyphen, bidi marks, BOM) sit inside words: delete them.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
# Control characters and lone surrogates separate rather than join: make them spaces.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_EMOJI = re.compile(
    "[^\\S\n]*[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe00-\ufe0f\u20e3"
    "\u231a\u231b\u2328\u23cf\u23e9-\u23fa\U000e0020-\U000e007f]+[^\\S\n]*"
)
_DIGIT_GROUP_SPACE = re.compile("(?<=[0-9])[\u00a0\u202f\u2009](?=[0-9]{3}(?![0-9]))")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _DIGIT_GROUP_SPACE.sub("", text).translate(_CHAR_MAP)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    return _EMOJI.sub(_drop_emoji, text)


def _drop_emoji(match: re.Match[str]) -> str:
    # A space keeps the neighbours apart, except before punctuation, where it would dangle.
    end = match.end()
    following = match.string[end] if end < len(match.string) else ""
    return "" if following in ("", ".", ",", "!", "?", ";", ":", ")") else " "


_SPACES = re.compile(r"[^\S\n]+")
_LINE_EDGES = re.compile(r" ?\n ?")
_PARAGRAPHS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    return _PARAGRAPHS.sub("\n\n", text).strip()


# ----------------------------------------------------------------------- numbers


@lru_cache(maxsize=8192)
def _n2w(value: int, lang: _Lang, to: str = "cardinal") -> str:
    if lang.n2w is None:
        return str(value)
    try:
        words: str = num2words(value, lang=lang.n2w, to=to)
    except Exception:  # num2words raises many types past its range; never fail the text
        if to != "cardinal":
            return _n2w(value, lang)
        return _digit_words(str(value), lang)
    # Commas in num2words' output would become pauses; "and" is British, not American.
    words = words.replace(",", "")
    return words.replace(" and ", " ") if lang.us else words


def _digit_words(digits: str, lang: _Lang) -> str:
    return " ".join(_n2w(int(d), lang) for d in digits if "0" <= d <= "9")


_MAX_PLAIN_DIGITS = 9  # longer runs without separators are codes or phone numbers
# Past this no language has number names (and int() refuses strings of 4,300 digits).
_MAX_NAMED_DIGITS = 36


def _integer_words(digits: str, lang: _Lang, grouped: bool = False) -> str:
    plain_limit = _MAX_NAMED_DIGITS if grouped else _MAX_PLAIN_DIGITS
    if len(digits) > plain_limit or (not grouped and len(digits) > 1 and digits[0] == "0"):
        return _digit_words(digits, lang)
    return _n2w(int(digits), lang)


def _ordinal_words(digits: str, lang: _Lang) -> str:
    if len(digits) > _MAX_NAMED_DIGITS:
        return _digit_words(digits, lang)
    return _n2w(int(digits), lang, "ordinal")


_DOT_GROUPS = re.compile(r"[0-9]{1,3}(?:\.[0-9]{3})+")


def _split_number(text: str, lang: _Lang) -> tuple[str, str, bool]:
    """Integer digits, fraction digits, and whether the integer was written with separators."""
    if lang.decimal_comma:
        if _DOT_GROUPS.fullmatch(text):
            return text.replace(".", ""), "", True
        whole, _, frac = text.partition("," if "," in text else ".")
        return whole.replace(".", ""), frac, "." in whole
    whole, _, frac = text.partition(".")
    return whole.replace(",", ""), frac, "," in whole


def _number_words(text: str, lang: _Lang) -> str:
    sign = ""
    if text.startswith("-"):
        sign, text = lang.minus + " ", text[1:]
    whole, frac, grouped = _split_number(text, lang)
    words = _integer_words(whole, lang, grouped) if whole else ""
    if frac:
        words = f"{words} {lang.point} {_fraction_digits(frac, lang)}".strip()
    return sign + words


def _fraction_digits(frac: str, lang: _Lang) -> str:
    # English reads decimals digit by digit; the Romance languages say short ones as a number.
    if lang.decimal_comma and len(frac) <= 2 and frac[0] != "0":
        return _n2w(int(frac), lang)
    return _digit_words(frac, lang)


def _year_words(year: int, lang: _Lang) -> str:
    if not lang.english:
        return _n2w(year, lang)
    return _n2w(year, lang, "year").replace("oh-", "oh ")


def _plural(words: str) -> str:
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words if words.endswith("s") else words + "s"


# ------------------------------------------------------------------------ rules

_Speak = Callable[[re.Match[str], _Lang], str]
_Rule = tuple[re.Pattern[str], _Speak]


def _pad(match: re.Match[str], spoken: str) -> str:
    """Keep words from fusing with letters or digits the match touched ("5km" -> "five km")."""
    if spoken == match.group():
        return spoken
    text, start, end = match.string, match.start(), match.end()
    if start and text[start - 1].isalnum() and spoken[:1].isalnum():
        spoken = " " + spoken
    if end < len(text) and text[end].isalnum() and spoken[-1:].isalnum():
        spoken += " "
    return spoken


def _apply_rule(text: str, rule: _Rule, lang: _Lang) -> str:
    pattern, speak = rule
    return pattern.sub(lambda m: _pad(m, speak(m, lang)), text)


def _apply(text: str, rules: Sequence[_Rule], lang: _Lang) -> str:
    for rule in rules:
        text = _apply_rule(text, rule, lang)
    return text


_ENDS_LINE = re.compile(r"[^\S\n]*(?:\n|$)")
_CAPITAL_NEXT = re.compile(r"\s+[\"'(]?[A-Z]")


def _period(match: re.Match[str], capital: bool = False) -> str:
    """The full stop an abbreviation swallowed, where it also ended the sentence."""
    text, end = match.string, match.end()
    if _ENDS_LINE.match(text, end) or (capital and _CAPITAL_NEXT.match(text, end)):
        return "."
    return ""


# ---------------------------------------------------------------- URLs and e-mail

_URL_CHARS = "[^\\s<>\"'`\ue000-\ue01f]"
_TLDS = "com|org|net|edu|gov|io|dev|ai|app|info|uk|de|fr|jp|xyz|ly|gg|tv"
_URL = re.compile(
    rf"(?:\b(?:https?|ftp)://|\bwww\.){_URL_CHARS}+"
    rf"|(?<![A-Za-z0-9.-])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:{_TLDS})\b(?:/{_URL_CHARS}*)?"
)
# The look-behinds start a match only where a run of address characters starts: trying
# every position inside a long run would cost quadratic time.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_URL_TRAIL = re.compile(r"[.,;:!?)\]}]+$")
_SCHEME = re.compile(r"^(?:(?:https?|ftp)://)?(?:www\.)?", re.IGNORECASE)
_URL_SYMBOL = re.compile(r"[./\-_@:?=&#%~+]")
_URL_WORDS = {
    ".": "dot",
    "/": "slash",
    "-": "dash",
    "_": "underscore",
    "@": "at",
    ":": "colon",
    "?": "question mark",
    "=": "equals",
    "&": "and",
    "#": "hash",
    "%": "percent",
    "~": "tilde",
    "+": "plus",
}


def _spell_address(address: str) -> str:
    spoken = _URL_SYMBOL.sub(lambda s: f" {_URL_WORDS[s.group()]} ", address)
    return " ".join(spoken.split())


def _say_url(match: re.Match[str], lang: _Lang) -> str:
    url, trail = match.group(), ""
    if tail := _URL_TRAIL.search(url):
        url, trail = url[: tail.start()], tail.group()
    return _spell_address(_SCHEME.sub("", url).rstrip("/")) + trail


def _say_email(match: re.Match[str], lang: _Lang) -> str:
    return _spell_address(match.group())


# ----------------------------------------------------------------- abbreviations

# A capitalized word after "Dr."/"St." is a name unless it is one of these sentence openers.
_OPENERS = frozenset(
    {
        *("The", "A", "An", "I", "It", "He", "She", "We", "They", "You", "This", "That"),
        *("These", "Those", "There", "Then", "But", "And", "Or", "So", "If", "In", "On", "At"),
        *("To", "For", "My", "Our", "Its", "His", "Her", "Their", "Your", "As", "When"),
        *("After", "Before"),
    }
)
_LATIN = re.compile(r"(?<![\w.])(?:(?P<eg>[Ee]\.\s?[Gg]\.)|(?P<ie>[Ii]\.\s?[Ee]\.))")
_ETC = re.compile(r"(?<![\w.])([Ee]tc)\.")
_VERSUS = re.compile(r"\b(?:vs|Vs|VS)\b\.?")
_APPROX = re.compile(r"\b[Aa]pprox\b\.?")
_MONTH_ABBR = re.compile(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)(?:\.|(?=\s+[0-9]))")
_SUFFIXES = {"Jr": "Junior", "Sr": "Senior"}
_SUFFIX = re.compile(r"\b(Jr|Sr)\.")
_DR_ST = re.compile(r"(?P<prev>\b[A-Z][a-z]+ )?\b(?P<abbr>Dr|St)\.(?=(?P<next>\s+[A-Z][a-z]*)?)")
_NUMBER_SIGN = re.compile(r"\b(No|no|NO|Nos|nos)\.\s?(?=[0-9])|#\s?(?=[0-9])")
_REFERENCE = re.compile(r"\b(Figs|Fig|fig|Vol|vol|Ch|ch|Sec|sec|Eq|eq|pp|p)\.\s?(?=[0-9])")
# "A.M." after a number is a time, which the time rules read (keeping its full stop).
_INITIALISM = re.compile(r"(?<![0-9])(?<![0-9] )\b(?:[A-Z]\.){2,}")
_MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
_BEFORE_NUMBER = {
    "Fig": "Figure",
    "fig": "figure",
    "Figs": "Figures",
    "Vol": "Volume",
    "vol": "volume",
    "Ch": "Chapter",
    "ch": "chapter",
    "Sec": "Section",
    "sec": "section",
    "Eq": "Equation",
    "eq": "equation",
    "pp": "pages",
    "p": "page",
}
_TITLES = {"Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor", "Mt": "Mount"}
_TITLE = re.compile(r"\b(Mrs|Mr|Ms|Prof|Mt)(?:\.|(?=\s+[A-Z]))")


def _say_title(match: re.Match[str], lang: _Lang) -> str:
    return _TITLES[match.group(1)]


def _say_suffix(match: re.Match[str], lang: _Lang) -> str:
    return _SUFFIXES[match.group(1)] + _period(match)


def _say_dr_st(match: re.Match[str], lang: _Lang) -> str:
    title, place = ("Doctor", "Drive") if match["abbr"] == "Dr" else ("Saint", "Street")
    prev, following = match["prev"] or "", (match["next"] or "").strip()
    if following and following not in _OPENERS:
        return prev + title
    if (prev and prev.strip() not in _OPENERS) or match["abbr"] == "St":
        return prev + place + _period(match, capital=True)
    return prev + title + _period(match)


def _say_latin(match: re.Match[str], lang: _Lang) -> str:
    return "for example" if match["eg"] else "that is"


def _say_etc(match: re.Match[str], lang: _Lang) -> str:
    return "et cetera" + _period(match, capital=True)


def _say_versus(match: re.Match[str], lang: _Lang) -> str:
    return "versus"


def _say_approx(match: re.Match[str], lang: _Lang) -> str:
    return "approximately"


def _say_month_abbr(match: re.Match[str], lang: _Lang) -> str:
    abbr = match.group(1)[:3]
    month = next(m for m in _MONTHS if m.startswith(abbr))
    return month + (_period(match) if match.group().endswith(".") else "")


def _say_number_sign(match: re.Match[str], lang: _Lang) -> str:
    plural = (match.group(1) or "").lower() == "nos"
    return "numbers " if plural else "number "


def _say_reference(match: re.Match[str], lang: _Lang) -> str:
    return _BEFORE_NUMBER[match.group(1)] + " "


def _say_initialism(match: re.Match[str], lang: _Lang) -> str:
    return " ".join(match.group().replace(".", "")) + _period(match)


# ------------------------------------------------------------------------- dates


def _date(month: int, day: int, year: str | None, lang: _Lang, day_first: bool) -> str:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return ""
    name, nth = _MONTHS[month - 1], _n2w(day, lang, "ordinal")
    if day_first:
        spoken = f"the {nth} of {name}"
    else:
        spoken = f"{name} {nth}" if lang.us else f"{name} the {nth}"
    return spoken if year is None else f"{spoken}, {_any_year_words(year, lang)}"


def _any_year_words(year: str, lang: _Lang) -> str:
    if len(year) != 2:
        return _year_words(int(year), lang)
    if year == "00":
        return "two thousand"
    return f"oh {_n2w(int(year), lang)}" if year[0] == "0" else _n2w(int(year), lang)


_MONTH_NAMES = "|".join(_MONTHS)
_ISO_DATE = re.compile(r"(?<![0-9-])([0-9]{4})-([0-9]{2})-([0-9]{2})(?![0-9])")
_SLASH_DATE = re.compile(r"(?<![0-9/.])([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}|[0-9]{2})(?![0-9/])")
_MONTH_DAY = re.compile(
    rf"\b({_MONTH_NAMES})\s+([0-9]{{1,2}})(?:st|nd|rd|th)?(?:,?\s+([0-9]{{4}}))?"
    r"(?![0-9:A-Za-z]|[.,][0-9])"
)
_DAY_MONTH = re.compile(
    rf"(?<![0-9.,])(?P<the>\bthe\s+)?([0-9]{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?"
    rf"({_MONTH_NAMES})\b(?:,?\s+([0-9]{{4}})(?![0-9]))?"
)


def _say_iso_date(match: re.Match[str], lang: _Lang) -> str:
    year, month, day = match.groups()
    return _date(int(month), int(day), year, lang, day_first=False) or match.group()


def _say_slash_date(match: re.Match[str], lang: _Lang) -> str:
    first, second, year = match.groups()
    month, day = (int(first), int(second)) if lang.us else (int(second), int(first))
    return _date(month, day, year, lang, day_first=not lang.us) or match.group()


def _say_month_day(match: re.Match[str], lang: _Lang) -> str:
    name, day, year = match.groups()
    month = _MONTHS.index(name) + 1
    return _date(month, int(day), year, lang, day_first=False) or match.group()


def _say_day_month(match: re.Match[str], lang: _Lang) -> str:
    _, day, name, year = match.groups()
    month = _MONTHS.index(name) + 1
    return _date(month, int(day), year, lang, day_first=True) or match.group()


# -------------------------------------------------------------- phones, ranges

_PHONE = re.compile(
    r"(?<![0-9+])(?:\+([0-9]{1,3})[ .-]?)?(?:\(([0-9]{3})\) ?|([0-9]{3})[ .-])"
    r"([0-9]{3})[ .-]([0-9]{4})(?![0-9])"
)
_FEET_INCHES = re.compile(r"(?<![0-9])([0-9])'\s?([0-9]{1,2})\"")
_YEAR = r"(?:1[1-9][0-9]{2}|20[0-9]{2})"
_YEAR_RANGE = re.compile(
    rf"(?<![0-9.,])({_YEAR})\s?[–—-]\s?({_YEAR}|[0-9]{{2}})(?![0-9]|[.,:][0-9])"
)
_RANGE = re.compile(r"(?<=[0-9])(?:\s?[–—]\s?|-)(?=[$£€¥₹]?[0-9])")
# Outside English a hyphen between numbers is as often a date or a code as a range.
_DASH_RANGE = re.compile(r"(?<=[0-9])\s?[–—]\s?(?=[$£€¥₹]?[0-9])")


def _say_phone(match: re.Match[str], lang: _Lang) -> str:
    country, bracketed, area, exchange, line = match.groups()
    groups = [_digit_words(g, lang) for g in (bracketed or area, exchange, line)]
    if country:
        groups.insert(0, "plus " + _digit_words(country, lang))
    return ", ".join(groups)


def _say_feet_inches(match: re.Match[str], lang: _Lang) -> str:
    feet, inches = match.groups()
    foot_word = "foot" if feet == "1" else "feet"
    inch_word = "inch" if int(inches) == 1 else "inches"
    return f"{_n2w(int(feet), lang)} {foot_word} {_n2w(int(inches), lang)} {inch_word}"


def _say_year_range(match: re.Match[str], lang: _Lang) -> str:
    first, second = match.groups()
    if len(second) == 2:
        if int(second) <= int(first[2:]):
            return match.group()
        return f"{_year_words(int(first), lang)} {lang.to} {_any_year_words(second, lang)}"
    return f"{_year_words(int(first), lang)} {lang.to} {_year_words(int(second), lang)}"


def _say_range(match: re.Match[str], lang: _Lang) -> str:
    return f" {lang.to} "


# ------------------------------------------------------------------------- times

_AMPM = r"(?:\s?(?P<ampm>[AaPp])\.?\s?[Mm]\b\.?)"
_TIME = re.compile(
    rf"(?<![0-9:.,])([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?{_AMPM}?(?![0-9]|:[0-9])"
)
_HOUR_AMPM = re.compile(rf"(?<![0-9:.,])(1[0-2]|0?[1-9]){_AMPM}")
_RATIO = re.compile(r"(?<![0-9:.,])([0-9]+):([0-9]+)(?![0-9]|[:.,][0-9])")


def _ampm(match: re.Match[str]) -> str:
    if not match["ampm"]:
        return ""
    letter = " a m" if match["ampm"] in "Aa" else " p m"
    return letter + (_period(match, capital=True) if match.group().endswith(".") else "")


def _clock(hour: int, minute: int, ampm: bool, lang: _Lang) -> str:
    hour_words = _n2w(hour, lang)
    if minute == 0:
        if ampm:
            return hour_words
        return f"{hour_words} o'clock" if 1 <= hour <= 12 else f"{hour_words} hundred"
    if minute < 10:
        return f"{hour_words} oh {_n2w(minute, lang)}"
    return f"{hour_words} {_n2w(minute, lang)}"


def _say_time(match: re.Match[str], lang: _Lang) -> str:
    spoken = _clock(int(match.group(1)), int(match.group(2)), bool(match["ampm"]), lang)
    if seconds := match.group(3):
        unit = "second" if int(seconds) == 1 else "seconds"
        spoken += f" and {_n2w(int(seconds), lang)} {unit}"
    return spoken + _ampm(match)


def _say_hour(match: re.Match[str], lang: _Lang) -> str:
    return _n2w(int(match.group(1)), lang) + _ampm(match)


def _say_ratio(match: re.Match[str], lang: _Lang) -> str:
    left, right = match.groups()
    return f"{_integer_words(left, lang)} {lang.to} {_integer_words(right, lang)}"


# ---------------------------------------------------------------------- currency

_EN_CORE = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?"
_EN_NUM = rf"(?<![0-9.,]){_EN_CORE}(?![0-9]|[.,][0-9])"
_EN_SIGNED = rf"(?:(?<![\w.,-])-)?{_EN_NUM}"
_CURRENCIES: dict[str, tuple[str, str, str, str]] = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "", ""),
    "₹": ("rupee", "rupees", "paisa", "paise"),
    "¢": ("cent", "cents", "", ""),
}
_SCALES = {
    "k": "thousand",
    "K": "thousand",
    "m": "million",
    "M": "million",
    "mn": "million",
    "B": "billion",
    "bn": "billion",
    "T": "trillion",
}
_MONEY = re.compile(
    rf"(?P<sign>(?<![\w.,-])-)?(?P<cur>[$£€¥₹])\s?(?P<num>{_EN_NUM})"
    r"(?:(?P<suffix>[kKmMBT]|bn|mn)\b|\s(?P<scale>thousand|million|billion|trillion)\b)?"
)
_MONEY_AFTER = re.compile(rf"(?P<sign>(?<![\w.,-])-)?(?P<num>{_EN_NUM})\s?(?P<cur>[$£€¥₹¢])")


def _money(amount: str, symbol: str, lang: _Lang) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    whole, frac, grouped = _split_number(amount, lang)
    if frac and (len(frac) > 2 or not sub_one):
        return f"{_number_words(amount, lang)} {many}"
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = []
    if whole.strip("0") or not cents:
        unit = one if whole.lstrip("0") == "1" else many
        parts.append(f"{_integer_words(whole, lang, grouped)} {unit}")
    if cents:
        parts.append(f"{_n2w(cents, lang)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _say_money(match: re.Match[str], lang: _Lang) -> str:
    sign = lang.minus + " " if match["sign"] else ""
    scale = _SCALES.get(match["suffix"] or "") or match["scale"]
    if scale:
        many = _CURRENCIES[match["cur"]][1]
        return f"{sign}{_number_words(match['num'], lang)} {scale} {many}"
    return sign + _money(match["num"], match["cur"], lang)


def _say_money_after(match: re.Match[str], lang: _Lang) -> str:
    sign = lang.minus + " " if match["sign"] else ""
    return sign + _money(match["num"], match["cur"], lang)


# ------------------------------------------------------------------ years, decades

_DECADE = re.compile(r"(?<![0-9])((?:1[1-9]|20)[0-9]0)s\b")
_SHORT_DECADE = re.compile(r"(?<![\w'])'?([0-9])0s\b")
_SHORT_YEAR = re.compile(r"(?<![\w'])'([0-9]{2})(?![\w'])")
_YEAR_WORDS = (
    "in|since|by|from|until|till|through|during|circa|around|before|after|year|early|late|mid|"
    "spring|summer|autumn|fall|winter"
)
_YEAR_IN_CONTEXT = re.compile(
    rf"(\b(?i:{_YEAR_WORDS})[ -]|\b(?:{_MONTH_NAMES}),? |\bc(?:a)?\. ?)"
    rf"({_YEAR})(?![0-9A-Za-z]|[.,:/][0-9])"
)
_YEAR_ERA = re.compile(r"(?<![0-9.,])([0-9]{1,4})\s?(BCE|BC|AD|CE)\b")


def _say_decade(match: re.Match[str], lang: _Lang) -> str:
    return _plural(_year_words(int(match.group(1)), lang))


def _say_short_decade(match: re.Match[str], lang: _Lang) -> str:
    tens = int(match.group(1))
    return "two thousands" if tens == 0 else _plural(_n2w(tens * 10, lang))


def _say_short_year(match: re.Match[str], lang: _Lang) -> str:
    return _any_year_words(match.group(1), lang)


def _say_year_in_context(match: re.Match[str], lang: _Lang) -> str:
    context = match.group(1)
    if context.startswith("c") and "." in context:
        context = "circa "
    return context + _year_words(int(match.group(2)), lang)


def _say_year_era(match: re.Match[str], lang: _Lang) -> str:
    return f"{_year_words(int(match.group(1)), lang)} {match.group(2)}"


# ---------------------------------------------------------- percentages and units

_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "km": ("kilometer", "kilometers"),
    "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "µm": ("micrometer", "micrometers"),
    "μm": ("micrometer", "micrometers"),
    "nm": ("nanometer", "nanometers"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "mL": ("milliliter", "milliliters"),
    "ml": ("milliliter", "milliliters"),
    "L": ("liter", "liters"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "℃": ("degree Celsius", "degrees Celsius"),
    "℉": ("degree Fahrenheit", "degrees Fahrenheit"),
    "TB": ("terabyte", "terabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "ms": ("millisecond", "milliseconds"),
    "µs": ("microsecond", "microseconds"),
    "μs": ("microsecond", "microseconds"),
    "ns": ("nanosecond", "nanoseconds"),
    "s": ("second", "seconds"),
    "sec": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "kW": ("kilowatt", "kilowatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
}
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_UNIT = re.compile(rf"(?P<num>{_EN_SIGNED})\s?(?P<unit>{_UNIT_NAMES})(?![A-Za-z0-9])")
_EN_PERCENT = re.compile(rf"(?P<num>{_EN_SIGNED})\s?%")


def _say_unit(match: re.Match[str], lang: _Lang) -> str:
    one, many = _UNITS[match["unit"]]
    number = match["num"]
    return f"{_number_words(number, lang)} {one if number.lstrip('-') == '1' else many}"


def _say_percent(match: re.Match[str], lang: _Lang) -> str:
    return f"{_number_words(match['num'], lang)} {lang.percent}"


# ------------------------------------------------------------ ordinals, fractions

_EN_ORDINAL = re.compile(
    r"(?<![0-9.,])([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:st|nd|rd|th|ST|ND|RD|TH)\b"
)
_MIXED = re.compile(r"(?<![0-9.,/])([0-9]+) ([0-9]{1,3})/([0-9]{1,4})(?![0-9/]|[.,][0-9])")
_FRACTION = re.compile(r"(?<![0-9.,/])([0-9]{1,3})/([0-9]{1,4})(?![0-9/]|[.,][0-9])")
_MAX_DENOMINATOR = 1000  # past this "over" reads better than an ordinal


def _say_ordinal(match: re.Match[str], lang: _Lang) -> str:
    return _ordinal_words(match.group(1).replace(",", ""), lang)


def _fraction(numerator: int, denominator: int, lang: _Lang) -> str:
    top, bottom = _n2w(numerator, lang), _n2w(denominator, lang)
    if numerator == denominator or (numerator, denominator) == (24, 7):
        return f"{top} {bottom}"  # "fifty-fifty", "twenty-four seven"
    improper = numerator > denominator and denominator not in (2, 4)
    if denominator < 2 or denominator > _MAX_DENOMINATOR or improper:
        return f"{top} over {bottom}"
    names = {2: ("half", "halves"), 4: ("quarter", "quarters")}
    ordinal = _n2w(denominator, lang, "ordinal")
    one, many = names.get(denominator, (ordinal, ordinal + "s"))
    return f"{top} {one if numerator == 1 else many}"


def _say_mixed(match: re.Match[str], lang: _Lang) -> str:
    top, bottom = int(match.group(2)), int(match.group(3))
    if not 0 < top < bottom:
        return match.group()
    return f"{_integer_words(match.group(1), lang)} and {_fraction(top, bottom, lang)}"


def _say_fraction(match: re.Match[str], lang: _Lang) -> str:
    return _fraction(int(match.group(1)), int(match.group(2)), lang)


# ------------------------------------------------------------- plain numbers

_SYMBOL_WORDS = {
    "&": "and",
    "+": "plus",
    "=": "equals",
    "@": "at",
    "%": "percent",
    "×": "times",
    "°": "degrees",
    "≈": "approximately",
    "℃": "degrees Celsius",
    "℉": "degrees Fahrenheit",
}
_TIMES = re.compile(r"(?<![\w.])([0-9]+(?:\.[0-9]+)?)x\b")
_VERSION = re.compile(r"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9]|\.[0-9])")
_EN_NUMBER = re.compile(rf"{_EN_SIGNED}|(?<![\w.,])-?\.[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_ABOUT = re.compile(r"~\s?(?=[0-9])")
_SYMBOL = re.compile(f"[{''.join(_SYMBOL_WORDS)}]")


def _say_times(match: re.Match[str], lang: _Lang) -> str:
    return f"{_number_words(match.group(1), lang)} times"


def _say_version(match: re.Match[str], lang: _Lang) -> str:
    parts = match.group().split(".")
    return f" {lang.point} ".join(_integer_words(p, lang) for p in parts)


def _say_number(match: re.Match[str], lang: _Lang) -> str:
    return _number_words(match.group(), lang)


def _say_digits(match: re.Match[str], lang: _Lang) -> str:
    return _integer_words(match.group(), lang)


def _say_about(match: re.Match[str], lang: _Lang) -> str:
    return "about "


def _say_symbol(match: re.Match[str], lang: _Lang) -> str:
    return f" {_SYMBOL_WORDS[match.group()]} "


# Order matters: each rule sees only what earlier rules left as digits and symbols.
_ENGLISH_RULES: tuple[_Rule, ...] = (
    (_EMAIL, _say_email),
    (_URL, _say_url),
    (_LATIN, _say_latin),
    (_ETC, _say_etc),
    (_VERSUS, _say_versus),
    (_APPROX, _say_approx),
    (_TITLE, _say_title),
    (_SUFFIX, _say_suffix),
    (_DR_ST, _say_dr_st),
    (_MONTH_ABBR, _say_month_abbr),
    (_NUMBER_SIGN, _say_number_sign),
    (_REFERENCE, _say_reference),
    (_INITIALISM, _say_initialism),
    (_ISO_DATE, _say_iso_date),
    (_SLASH_DATE, _say_slash_date),
    (_PHONE, _say_phone),
    (_FEET_INCHES, _say_feet_inches),
    (_YEAR_RANGE, _say_year_range),
    (_RANGE, _say_range),
    (_MONTH_DAY, _say_month_day),
    (_DAY_MONTH, _say_day_month),
    (_TIME, _say_time),
    (_HOUR_AMPM, _say_hour),
    (_RATIO, _say_ratio),
    (_MONEY, _say_money),
    (_MONEY_AFTER, _say_money_after),
    (_DECADE, _say_decade),
    (_SHORT_DECADE, _say_short_decade),
    (_SHORT_YEAR, _say_short_year),
    (_YEAR_ERA, _say_year_era),
    (_EN_PERCENT, _say_percent),
    (_UNIT, _say_unit),
    (_YEAR_IN_CONTEXT, _say_year_in_context),
    (_EN_ORDINAL, _say_ordinal),
    (_MIXED, _say_mixed),
    (_FRACTION, _say_fraction),
    (_TIMES, _say_times),
    (_VERSION, _say_version),
    (_ABOUT, _say_about),
    (_EN_NUMBER, _say_number),
    (_DIGITS, _say_digits),
    (_SYMBOL, _say_symbol),
)


# ------------------------------------------------- Spanish, French, Italian, Portuguese

_R_CORE = r"(?:[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]+)?|[0-9]+(?:[.,][0-9]+)?)"
_R_NUM = rf"(?<![0-9.,]){_R_CORE}(?![0-9]|[.,][0-9])"
_R_SIGNED = rf"(?:(?<![\w.,-])-)?{_R_NUM}"
_R_MONEY = re.compile(rf"([$£€¥₹])\s?({_R_NUM})")
_R_PERCENT = re.compile(rf"(?P<num>{_R_SIGNED})\s?%")
_R_NUMBER = re.compile(_R_SIGNED)
_INDICATOR_ORDINAL = re.compile(r"(?<![0-9.,])([0-9]+)\.?([ºª])")
_FRENCH_ORDINAL = re.compile(
    r"(?<![0-9.,])([0-9]+)(ères|ère|ers|er|res|re|èmes|ème|emes|eme|es|e)\b"
)


def _say_money_swapped(match: re.Match[str], lang: _Lang) -> str:
    # espeak-ng names the symbol itself; it only needs the amount first, as it is spoken.
    return f"{match.group(2)} {match.group(1)}"


def _say_indicator_ordinal(match: re.Match[str], lang: _Lang) -> str:
    words = _ordinal_words(match.group(1), lang)
    return re.sub(r"o\b", "a", words) if match.group(2) == "ª" else words


def _say_french_ordinal(match: re.Match[str], lang: _Lang) -> str:
    words = _ordinal_words(match.group(1), lang)
    suffix = match.group(2)
    if words == "premier" and suffix.startswith(("r", "è")):
        words = "première"
    return words + "s" if suffix.endswith("s") else words


_ROMANCE_COMMON: tuple[_Rule, ...] = (
    (_R_MONEY, _say_money_swapped),
    (_DASH_RANGE, _say_range),
    (_R_PERCENT, _say_percent),
)
_ROMANCE_TAIL: tuple[_Rule, ...] = (
    (_R_NUMBER, _say_number),
    (_DIGITS, _say_digits),
)
_RULES: dict[str, tuple[_Rule, ...]] = {
    "en-us": _ENGLISH_RULES,
    "en-gb": _ENGLISH_RULES,
    "es": (*_ROMANCE_COMMON, (_INDICATOR_ORDINAL, _say_indicator_ordinal), *_ROMANCE_TAIL),
    "it": (*_ROMANCE_COMMON, (_INDICATOR_ORDINAL, _say_indicator_ordinal), *_ROMANCE_TAIL),
    "pt-br": (*_ROMANCE_COMMON, (_INDICATOR_ORDINAL, _say_indicator_ordinal), *_ROMANCE_TAIL),
    "fr-fr": (*_ROMANCE_COMMON, (_FRENCH_ORDINAL, _say_french_ordinal), *_ROMANCE_TAIL),
}


# ---------------------------------------------------------------------- public


def _letters(words: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", words)}


EXPANDED_WORDS: frozenset[str] = frozenset(
    _letters(" ".join([*_TITLES, *_UNITS, *_SCALES, *_BEFORE_NUMBER]))
    | _letters("Jr Sr Dr St etc vs approx e g i No Nos Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct")
    | _letters("Nov Dec am pm a p st nd rd th s x c ca http https ftp www")
)
"""Lower-case words that `normalize` may replace by their spoken form (abbreviations, unit
symbols, "am"/"pm", URL schemes) instead of keeping them as written."""


def normalize(text: str, lang: str = "en-us") -> str:
    """Rewrite `text` as the words a person would say, for espeak-ng in language `lang`.

    `lang` is an espeak-ng code ("en-us", "en-gb", "es", "fr-fr", "it", "pt-br", "hi", "ja",
    "cmn"). English gets the full treatment (numbers, money, dates, times, units,
    abbreviations, URLs, symbols); Spanish, French, Italian and Portuguese get numbers,
    decimals, ordinals and percentages through num2words; every language gets the character
    clean-up. `[word](/phonemes/)` spans come back byte for byte. A blank line (paragraph
    break) stays "\\n\\n", a single newline stays "\\n", other whitespace collapses.
    """
    language = _language(lang)
    protected, spans = protect_markup(text)
    spoken = _apply(_clean(protected), _RULES.get(language.code, ()), language)
    return restore_markup(_tidy(spoken), spans)
