"""Text to Kokoro phoneme ids: espeak-ng through phonemizer, language codes, the vocabulary."""

from __future__ import annotations

import json
import logging
import re
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ._errors import AssetError, InputError, PhonemeWarning

# Voice name prefix → espeak-ng language (docs/architecture.md).
VOICE_PREFIX_LANG = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "p": "pt-br",
    "j": "ja",
    "z": "cmn",
}
LANGUAGE_NAMES = {
    "en-us": "American English",
    "en-gb": "British English",
    "es": "Spanish",
    "fr-fr": "French",
    "hi": "Hindi",
    "it": "Italian",
    "pt-br": "Brazilian Portuguese",
    "ja": "Japanese",
    "cmn": "Mandarin Chinese",
}
_ALIASES = {
    "en": "en-us",
    "english": "en-us",
    "american": "en-us",
    "british": "en-gb",
    "en-uk": "en-gb",
    "spanish": "es",
    "es-es": "es",
    "fr": "fr-fr",
    "french": "fr-fr",
    "hindi": "hi",
    "italian": "it",
    "it-it": "it",
    "pt": "pt-br",
    "portuguese": "pt-br",
    "japanese": "ja",
    "jp": "ja",
    "ja-jp": "ja",
    "zh": "cmn",
    "zh-cn": "cmn",
    "chinese": "cmn",
    "mandarin": "cmn",
}
# espeak symbols outside Kokoro's vocabulary that have a close sound inside it.
_NEAREST = str.maketrans(
    {"¿": "", "¡": "", "«": '"', "»": '"', "‹": "", "›": ""}
    | {"ɬ": "l", "ʏ": "y", "ɘ": "ə", "ɵ": "ə", "ɞ": "ɜ", "ʉ": "u", "ɫ": "l", "ɧ": "ʃ"}
)
# espeak marks a syllabic consonant with a combining U+0329 ("n̩" in "certainly"), which the
# vocabulary lacks; Kokoro's training transcriptions write that syllable as "ᵊn".
_SYLLABIC = re.compile("(.)\u0329")
# Custom pronunciation markup: [word](/phonemes/).
PRONUNCIATION = re.compile(r"\[([^\[\]]+)\]\(/([^/()]+)/\)")
_espeak_lock = threading.Lock()  # espeak-ng keeps process-global state


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, int]:
    text = resources.files("kokoro_engine").joinpath("vocab.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def language(code: str | None, voice: str) -> str:
    """The espeak language for an explicit `code`, else the one the voice was made for."""
    if code is None:
        return voice_language(voice)
    if not isinstance(code, str):
        raise InputError(f"language must be a code such as 'en-us', not {code!r}")
    key = code.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in LANGUAGE_NAMES:
        raise InputError(
            f"unknown language {code!r}; use one of: "
            + ", ".join(f"{c} ({n})" for c, n in LANGUAGE_NAMES.items())
        )
    return key


def voice_language(voice: str) -> str:
    """The language a voice (or the first voice of a blend) was made for; en-us if unknown."""
    return VOICE_PREFIX_LANG.get(voice.strip()[:1].lower(), "en-us")


# Files espeak-ng reads at start-up: when one is missing it calls exit(), taking the whole
# process (a Jupyter kernel) down, so they are checked before it is started.
_ESPEAK_CORE = ("phontab", "phonindex", "phondata", "intonations")
ESPEAK_REPAIR = "reinstall it: `pip install --force-reinstall espeakng-loader`"


def check_espeak_data(lang: str | None = None) -> Path:
    """The espeak-ng data folder; AssetError if it lacks a start-up file or `lang`'s dictionary."""
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path())
    needed = [*_ESPEAK_CORE, *([f"{lang.split('-')[0]}_dict"] if lang else [])]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise AssetError(
            f"espeak-ng data in {folder} is missing {', '.join(missing)}; {ESPEAK_REPAIR}"
        )
    return folder


@lru_cache(maxsize=16)
def _backend(lang: str) -> Any:
    import espeakng_loader
    from phonemizer.backend import EspeakBackend
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    data = check_espeak_data(lang)
    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(str(data))
    quiet = logging.getLogger("kokoro_engine.espeak")
    quiet.setLevel(logging.ERROR)  # phonemizer warns about word counts on every clause
    return EspeakBackend(
        lang,
        preserve_punctuation=True,
        with_stress=True,
        language_switch="remove-flags",
        logger=quiet,
    )


@lru_cache(maxsize=4096)
def espeak(text: str, lang: str) -> str:
    """IPA for plain text, punctuation kept (cached: the same sentences come back often)."""
    if not text.strip():
        return ""
    with _espeak_lock:
        try:
            out = _backend(lang).phonemize([text], strip=True, njobs=1)[0]
        except RuntimeError as exc:  # missing espeak data for the language
            raise InputError(f"espeak-ng cannot phonemize {lang!r}: {exc}") from exc
    return " ".join(_SYLLABIC.sub("ᵊ\\1", out).translate(_NEAREST).split())


def phonemize(text: str, lang: str) -> str:
    """IPA for text that may hold [word](/phonemes/) overrides, which are used verbatim."""
    pieces: list[str] = []
    position = 0
    for match in PRONUNCIATION.finditer(text):
        pieces.append(espeak(text[position : match.start()], lang))
        pieces.append(match.group(2).strip())
        position = match.end()
    pieces.append(espeak(text[position:], lang))
    return " ".join(p for p in pieces if p)


@dataclass(frozen=True)
class Unknown:
    """Phoneme symbols the model has no id for, and the words they came from."""

    symbols: str
    words: tuple[str, ...]


def to_ids(phonemes: str) -> tuple[list[int], str]:
    """Ids for the known symbols, and the unknown symbols (left out) as a string."""
    vocab = vocabulary()
    ids = [vocab[s] for s in phonemes if s in vocab]
    unknown = "".join(sorted({s for s in phonemes if s not in vocab}))
    return ids, unknown


def warn_unknown(text: str, lang: str, symbols: str, *, is_phonemes: bool) -> None:
    """Say which symbols were left out and which words they came from."""
    if is_phonemes:
        words = [w for w in text.split() if any(s in w for s in symbols)]
    else:
        words = [w for w in text.split() if any(s in phonemize(w, lang) for s in symbols)]
    warnings.warn(
        f"left out phoneme symbol(s) {' '.join(repr(s) for s in symbols)} the model cannot say, "
        f"from: {', '.join(words[:8]) or text[:40]!r}",
        PhonemeWarning,
        stacklevel=4,
    )
