"""Text front end: written text becomes the words a person would say; Markdown becomes prose."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kokoro_engine._markdown import strip_markdown
from kokoro_engine._normalize import EXPANDED_WORDS, normalize

# (input, expected) for American English, the default language.
EN_US = [
    # integers, negatives, decimals
    ("1,234,567", "one million two hundred thirty-four thousand five hundred sixty-seven"),
    ("-42 degrees", "minus forty-two degrees"),
    ("3.14", "three point one four"),
    ("0.5", "zero point five"),
    (".5", "point five"),
    ("-3.5", "minus three point five"),
    ("Room 101", "Room one hundred one"),
    ("007", "zero zero seven"),
    ("1234567890", "one two three four five six seven eight nine zero"),
    ("mp3", "mp three"),
    ("COVID-19", "COVID-nineteen"),
    # ordinals
    ("1st 22nd 103rd", "first twenty-second one hundred third"),
    ("the 1,000th visitor", "the one thousandth visitor"),
    # currency
    ("$1,234.56", "one thousand two hundred thirty-four dollars and fifty-six cents"),
    ("$5", "five dollars"),
    ("$1", "one dollar"),
    ("$1.00", "one dollar"),
    ("$0.50", "fifty cents"),
    ("$0.01", "one cent"),
    ("$2.5 million", "two point five million dollars"),
    ("$5k", "five thousand dollars"),
    ("$3bn", "three billion dollars"),
    ("-$5", "minus five dollars"),
    ("£5", "five pounds"),
    ("£1.50", "one pound and fifty pence"),
    ("€2.50", "two euros and fifty cents"),
    ("5€", "five euros"),
    ("¥1000", "one thousand yen"),
    ("50¢", "fifty cents"),
    ("It costs $10–$20.", "It costs ten dollars to twenty dollars."),
    # percentages
    ("45%", "forty-five percent"),
    ("3.5%", "three point five percent"),
    ("10-15% cheaper", "ten to fifteen percent cheaper"),
    # times
    ("3:45pm", "three forty-five p m"),
    ("3:45 PM", "three forty-five p m"),
    ("10:00", "ten o'clock"),
    ("15:30", "fifteen thirty"),
    ("15:00", "fifteen hundred"),
    ("3pm", "three p m"),
    ("12:05", "twelve oh five"),
    ("at 3 p.m. Then", "at three p m. Then"),
    ("Meet at 10:00–11:30.", "Meet at ten o'clock to eleven thirty."),
    ("Ratio 16:9", "Ratio sixteen to nine"),
    # dates
    ("2024-03-15", "March fifteenth, twenty twenty-four"),
    ("March 3, 2024", "March third, twenty twenty-four"),
    ("July 4th, 1776", "July fourth, seventeen seventy-six"),
    ("3/15/2024", "March fifteenth, twenty twenty-four"),
    ("born on 4 July 1976.", "born on the fourth of July, nineteen seventy-six."),
    ("the 3rd of March", "the third of March"),
    ("Jan. 5", "January fifth"),
    ("March 3–5", "March third to five"),
    # years and decades
    ("in 1999", "in nineteen ninety-nine"),
    ("in 2005", "in two thousand five"),
    ("since 2024", "since twenty twenty-four"),
    ("in 1900", "in nineteen hundred"),
    ("In March 2024 we", "In March twenty twenty-four we"),
    ("c. 1200", "circa twelve hundred"),
    ("1999 apples", "one thousand nine hundred ninety-nine apples"),
    ("The 2000 people", "The two thousand people"),
    ("1990–2000", "nineteen ninety to two thousand"),
    ("1990-95", "nineteen ninety to ninety-five"),
    ("1990s", "nineteen nineties"),
    ("the 1800s", "the eighteen hundreds"),
    ("'90s", "nineties"),
    ("in his 40s", "in his forties"),
    ("class of '99", "class of ninety-nine"),
    ("500 BC", "five hundred BC"),
    # abbreviations
    ("Dr. Smith", "Doctor Smith"),
    ("Mulholland Dr. The house", "Mulholland Drive. The house"),
    ("Mr. Jones and Mrs. Brown", "Mister Jones and Missus Brown"),
    ("Ms. Green", "Miz Green"),
    ("Mr Smith", "Mister Smith"),
    ("St. Louis", "Saint Louis"),
    ("Main St.", "Main Street."),
    ("e.g., apples", "for example, apples"),
    ("i.e. pears", "that is pears"),
    ("apples, etc. Then", "apples, et cetera. Then"),
    ("apples, etc. and pears", "apples, et cetera and pears"),
    ("red vs. blue", "red versus blue"),
    ("approx. 5", "approximately five"),
    ("No. 7", "number seven"),
    ("#1", "number one"),
    ("see Fig. 3", "see Figure three"),
    ("John Smith Jr. went", "John Smith Junior went"),
    ("the U.S. Army", "the U S Army"),
    # units
    ("5 km", "five kilometers"),
    ("1 km", "one kilometer"),
    ("12.5 kg", "twelve point five kilograms"),
    ("2 lbs", "two pounds"),
    ("8 oz", "eight ounces"),
    ("30 mph", "thirty miles per hour"),
    ("100 km/h", "one hundred kilometers per hour"),
    ("20°C", "twenty degrees Celsius"),
    ("-1 °C", "minus one degree Celsius"),
    ("98.6°F", "ninety-eight point six degrees Fahrenheit"),
    ("16 GB", "sixteen gigabytes"),
    ("1 TB", "one terabyte"),
    ("250 ms", "two hundred fifty milliseconds"),
    ("1 s", "one second"),
    ("2 h", "two hours"),
    ("440 Hz", "four hundred forty hertz"),
    ("5 cm and 3mm", "five centimeters and three millimeters"),
    ("5'11\"", "five feet eleven inches"),
    # URLs and e-mail
    ("https://example.com/path", "example dot com slash path"),
    (
        "See https://www.example.com/a-b_c?x=1.",
        "See example dot com slash a dash b underscore c question mark x equals one.",
    ),
    ("Visit example.com. Or www.python.org!", "Visit example dot com. Or python dot org!"),
    ("a.b@example.org", "a dot b at example dot org"),
    # symbols
    ("Tom & Jerry", "Tom and Jerry"),
    ("1+1=2", "one plus one equals two"),
    ("@home", "at home"),
    ("~5 minutes", "about five minutes"),
    ("2x faster", "two times faster"),
    # ranges, fractions, phone numbers, versions
    ("pages 10–20", "pages ten to twenty"),
    ("Score 3-2", "Score three to two"),
    ("1/2", "one half"),
    ("3/4", "three quarters"),
    ("2/3", "two thirds"),
    ("1 1/2 cups", "one and one half cups"),
    ("½ cup", "one half cup"),
    ("24/7", "twenty-four seven"),
    ("(555) 123-4567", "five five five, one two three, four five six seven"),
    ("+1 555-123-4567", "plus one, five five five, one two three, four five six seven"),
    ("version 3.10.2", "version three point ten point two"),
    # characters and whitespace
    ("\u2018quoted\u2019 \u201cdouble\u201d", "'quoted' \"double\""),
    ("it\u2019s", "it's"),
    ("Hello\u200bworld\ufeff", "Helloworld"),
    ("x\x00y\x07z", "x y z"),
    ("a\n\n\nb\nc", "a\n\nb\nc"),
    ("  lots   of\tspace \n\n\n\n next  ", "lots of space\n\nnext"),
    ("I \u2764\ufe0f you 🎉!", "I you!"),
    ("a🎉b", "a b"),
    ("", ""),
    # pronunciation markup is left alone
    ("Say [Kokoro](/kˈOkəɹO/) now", "Say [Kokoro](/kˈOkəɹO/) now"),
    ("[Dr. 5](/dˈɑktəɹ/) at 5", "[Dr. 5](/dˈɑktəɹ/) at five"),
]

OTHER_LANGUAGES = [
    ("en-gb", "1234", "one thousand two hundred and thirty-four"),
    ("en-gb", "in 2005", "in two thousand and five"),
    ("en-gb", "15/3/2024", "the fifteenth of March, twenty twenty-four"),
    ("en-gb", "March 3", "March the third"),
    ("en", "$1", "one dollar"),
    ("EN_US", "3pm", "three p m"),
    ("es", "1.234,56 euros", "mil doscientos treinta y cuatro coma cincuenta y seis euros"),
    ("es", "el 45%", "el cuarenta y cinco por ciento"),
    ("es", "el 1º y la 2ª", "el primero y la segunda"),
    ("es", "-3", "menos tres"),
    ("es", "€5", "cinco €"),
    ("es", "de 1990–2000", "de mil novecientos noventa a dos mil"),
    ("fr-fr", "le 1er et la 1re", "le premier et la première"),
    ("fr-fr", "3,14 et 50 %", "trois virgule quatorze et cinquante pour cent"),
    ("fr-fr", "1\u202f234", "mille deux cent trente-quatre"),
    ("it", "1.000 e 3,5%", "mille e tre virgola cinque per cento"),
    ("pt-br", "1.234,5 e 12%", "mil duzentos e trinta e quatro vírgula cinco e doze por cento"),
    ("hi", "मेरे पास 5 सेब हैं", "मेरे पास 5 सेब हैं"),
    ("ja", "これは123です\u200b", "これは123です"),
    ("cmn", "我有3个  苹果", "我有3个 苹果"),
]


@pytest.mark.parametrize(("text", "expected"), EN_US)
def test_english(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("lang", "text", "expected"), OTHER_LANGUAGES)
def test_other_languages(lang: str, text: str, expected: str) -> None:
    assert normalize(text, lang) == expected


MARKDOWN = [
    ("# Title\nText", "Title.\nText"),
    ("## Done! ##", "Done!"),
    ("Title\n=====\nText", "Title.\nText"),
    (
        "Some **bold**, *italic*, __strong__, _em_ and ~~old~~ text.",
        "Some bold, italic, strong, em and old text.",
    ),
    ("Use `print(x*y)` here.", "Use print(x*y) here."),
    ("```python\nx = a*b  # [link](http://x)\n```\nAfter.", "x = a*b  # [link](http://x)\nAfter."),
    ("~~~\ncode\n~~~~", "code"),
    ("```\nunclosed\n# kept", "unclosed\n# kept"),
    ('See [the docs](https://example.com/docs "Title") now.', "See the docs now."),
    ("Text [link][ref].", "Text link."),
    ("[](https://only.url)", "https://only.url"),
    ("<https://example.com>", "https://example.com"),
    ("![A cat](cat.png) sits.", "A cat sits."),
    ("- one\n* two\n+ three\n1. four\n2) five\n- [x] six", "one\ntwo\nthree\nfour\nfive\nsix"),
    ("> quoted\n> > nested", "quoted\nnested"),
    (
        "| Name | Age |\n|------|----:|\n| Alice | 30 |\n| Bob | 4 |\nAfter.",
        "Name, Age.\nAlice, 30.\nBob, 4.\nAfter.",
    ),
    ("a | b\n--|--\n1 | 2", "a, b.\n1, 2."),
    ("Above\n\n---\n\nBelow", "Above\n\nBelow"),
    ("Above\n\n* * *\n\nBelow", "Above\n\nBelow"),
    ('<b>bold</b> and <span class="x">in</span>line', "bold and inline"),
    ("one<br>two", "one\ntwo"),
    ("<p>para</p><p>next</p>", "para  next"),
    ("next<script>alert(1)</script>", "next alert(1)"),
    ("H<sub>2</sub>O", "H2O"),
    ("<!-- note --> visible", "note  visible"),
    ("Tom &amp; Jerry &lt;3", "Tom & Jerry <3"),
    ("\\*not emphasis\\*", "*not emphasis*"),
    ("[ref]: https://example.com\nText.", "Text."),
    ("snake_case_name and 2*3*4 and a * b", "snake_case_name and 2*3*4 and a * b"),
    ("Say [Kokoro](/kˈOkəɹO/) **now**", "Say [Kokoro](/kˈOkəɹO/) now"),
    ("Wow![Kokoro](/k/)", "Wow![Kokoro](/k/)"),
    ("plain text, nothing to do.", "plain text, nothing to do."),
]


@pytest.mark.parametrize(("text", "expected"), MARKDOWN)
def test_markdown(text: str, expected: str) -> None:
    assert strip_markdown(text) == expected


def test_markdown_then_normalize() -> None:
    cell = "# Q3 results\n\nRevenue rose **12%** to $1.5 million.\n\n- Dr. Lee joined in 2021"
    expected = (
        "Q three results.\n\nRevenue rose twelve percent to one point five million dollars."
        "\n\nDoctor Lee joined in twenty twenty-one"
    )
    assert normalize(strip_markdown(cell)) == expected


def test_every_table_row_is_distinct() -> None:
    assert len({text for text, _ in EN_US}) == len(EN_US)
    assert len(EN_US) + len(OTHER_LANGUAGES) >= 60


# ------------------------------------------------------------------- properties

LANGS = st.sampled_from(["en-us", "en-gb", "es", "fr-fr", "it", "pt-br", "hi", "ja", "cmn"])
# Text biased towards what the rules look at: digits, separators, symbols, letters.
TRICKY = st.text(
    alphabet=st.sampled_from(list("0123456789 ,.:-/$£€%'\"#@&+=abcdekmpstxyABCDMPST\n\u2013")),
    max_size=40,
)
ANY_TEXT = st.one_of(st.text(max_size=80), TRICKY)
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\ufeff]")

WORD = st.from_regex(r"[A-Za-z]{2,12}", fullmatch=True).filter(
    lambda w: w.lower() not in EXPANDED_WORDS
)
# Anything but letters, marks and invisible format characters, which would fuse words.
SEPARATOR = st.text(
    alphabet=st.characters(exclude_categories=("L", "M", "Cf", "Co", "Cs")),
    min_size=1,
    max_size=5,
)
MARKUP = st.builds(
    "[{}](/{}/)".format,
    st.text(alphabet=st.characters(exclude_characters="[]\n"), min_size=1, max_size=10),
    st.text(alphabet=st.characters(exclude_characters="/()\n"), min_size=1, max_size=10),
)


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize("lang", ["en-us", "es", "fr-fr"])
@pytest.mark.parametrize(
    "text",
    ["1" * 5000, "1" * 5000 + "st", "$" + "1" * 5000, "1" + ",000" * 1500, "1" * 5000 + "º"],
)
def test_huge_numbers_are_read_digit_by_digit(text: str, lang: str) -> None:
    out = normalize(text, lang)
    assert not re.search("[0-9]", out)
    assert len(out.split()) >= 1500


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, LANGS)
def test_normalize_never_fails_and_is_deterministic(text: str, lang: str) -> None:
    out = normalize(text, lang)
    assert isinstance(out, str)
    assert out == normalize(text, lang)
    assert not INVISIBLE.search(out)
    assert out == out.strip()
    assert "\n\n\n" not in out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(WORD, SEPARATOR), min_size=1, max_size=8), LANGS)
def test_every_word_survives(pieces: list[tuple[str, str]], lang: str) -> None:
    text = "".join(word + separator for word, separator in pieces)
    out = words_of(normalize(text, lang))
    missing = {word.lower() for word, _ in pieces} - out
    assert not missing, (text, normalize(text, lang))


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, MARKUP, ANY_TEXT, LANGS)
def test_pronunciation_markup_survives(before: str, markup: str, after: str, lang: str) -> None:
    assert markup in normalize(f"{before} {markup} {after}", lang)
    assert markup in strip_markdown(f"{before} {markup} {after}")


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_strip_markdown_never_fails(text: str) -> None:
    assert strip_markdown(text) == strip_markdown(text)


BLOCK = st.sampled_from(
    [
        "# {}",
        "## {} ##",
        "{}",
        "**{}**",
        "*{}*",
        "_{}_",
        "~~{}~~",
        "`{}`",
        "- {}",
        "1. {}",
        "> {}",
        "[{}](https://example.com)",
        "![{}](a.png)",
        "| {} | x |\n|---|---|",
        "<b>{}</b>",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(BLOCK, WORD), min_size=1, max_size=8))
def test_markdown_keeps_every_word_of_prose(blocks: list[tuple[str, str]]) -> None:
    text = "\n".join(template.format(word) for template, word in blocks)
    assert {word.lower() for _, word in blocks} <= words_of(strip_markdown(text))
