"""How to speak: every speech option defined once, and the defaults that %config sets.

``Options`` is the one definition (name, type, default, help, %%speak flag). The magics'
traitlets, the %%speak parser, ``say()``'s keywords and the docs table are all made from
it, so a new option is one new field here. This module imports nothing of the notebook
layer: everything else reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import traitlets


def option(
    default: Any,
    help: str,
    *flags: str,
    config: bool = True,
    metavar: str = "",
    flag_help: str = "",
) -> Any:
    """A field of ``Options``: `flags` are its %%speak flags (a bool's flag flips its default;
    `flag_help` says what the flag does when that differs from `help`); `config` makes it a
    ``%config SpeakMagics.<name>`` setting."""
    meta = {
        "help": help,
        "flags": flags,
        "config": config,
        "metavar": metavar,
        "flag_help": flag_help or help,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Options:
    """How to speak: the defaults come from ``SpeakMagics`` (``%config SpeakMagics.voice=...``)."""

    voice: str = option(
        "af_heart",
        "a voice (af_heart) or a blend (af_heart:0.7,am_adam:0.3)",
        "-v",
        "--voice",
        metavar="VOICE",
    )
    speed: float = option(1.0, "speaking speed, 0.5 … 2.0", "-s", "--speed", metavar="SPEED")
    lang: str | None = option(
        None,
        "language (default: from the voice), e.g. en-gb, fr-fr, ja",
        "-l",
        "--lang",
        metavar="LANG",
    )
    stream: bool = option(
        True,
        "stream audio as it is synthesized (off: the whole clip first)",
        "--no-stream",
        flag_help="synthesize the whole clip first, then play it (the cell waits)",
    )
    interrupt: bool = option(
        False, "stop all speech and speak now, instead of queuing after it", "--now"
    )
    wait: bool = option(
        False, "return only when synthesis is done (nbconvert, papermill)", "--wait"
    )
    save: str | None = option(
        None,
        "also write the clip to PATH (.wav, .flac or .ogg)",
        "--save",
        config=False,
        metavar="PATH",
    )
    profile: bool = option(
        False, "show per-piece timings and a synthesis/playback timeline", "--profile"
    )
    markdown: bool = option(True, "read markdown as prose (markup is not spoken)")
    static_max_s: float = option(60.0, "seconds of audio kept in the saved output (0: none)")
    static_rate: int = option(0, "sample rate of the saved <audio> (0: the model's 24000)")


FIELDS = dataclasses.fields(Options)
NAMES = tuple(f.name for f in FIELDS)


def merge(options: Options, **changes: Any) -> Options:
    """`options` with the given fields replaced (None leaves a field as it is)."""
    unknown = set(changes) - set(NAMES)
    if unknown:
        raise TypeError(f"unknown speech option(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(options, **{k: v for k, v in changes.items() if v is not None})


# --- the defaults: %config SpeakMagics.<name> when the extension is loaded -----------------

_source: Callable[[], Options] | None = None


def set_defaults_source(source: Callable[[], Options] | None) -> None:
    """Where ``current()`` reads the defaults (the loaded magics), or None for the built-in ones."""
    global _source
    _source = source


def current(**changes: Any) -> Options:
    """The defaults %config set (or the built-in ones outside IPython), with `changes`."""
    return merge(_source() if _source is not None else Options(), **changes)


# --- what is made from the definition -------------------------------------------------------

_TRAITS: Mapping[str, Callable[[Any, str], traitlets.TraitType[Any, Any]]] = {
    "str": lambda d, h: traitlets.Unicode(d, help=h),
    "str | None": lambda d, h: traitlets.Unicode(d, allow_none=True, help=h),
    "float": lambda d, h: traitlets.Float(d, help=h),
    "int": lambda d, h: traitlets.Int(d, help=h),
    "bool": lambda d, h: traitlets.Bool(d, help=h),
}
_TYPES: Mapping[str, Callable[[str], Any]] = {
    "str": str,
    "str | None": str,
    "float": float,
    "int": int,
}


def option_traits() -> dict[str, traitlets.TraitType[Any, Any]]:
    """A configurable traitlet per setting (``SpeakMagics`` inherits them)."""
    return {
        f.name: _TRAITS[str(f.type)](f.default, _sentence(f.metadata["help"])).tag(config=True)
        for f in FIELDS
        if f.metadata["config"]
    }


def from_traits(owner: Any) -> Options:
    """The settings `owner` (a ``SpeakMagics``) holds, as Options."""
    values: dict[str, Any] = {
        f.name: getattr(owner, f.name) for f in FIELDS if f.metadata["config"]
    }
    if values.get("lang") == "":  # %config SpeakMagics.lang = "" means: from the voice
        values["lang"] = None
    return Options(**values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The %%speak flag of every option that has one; unset flags parse as None."""
    for f in FIELDS:
        flags = f.metadata["flags"]
        if not flags:
            continue
        if str(f.type) == "bool":
            action = "store_false" if f.default else "store_true"
            parser.add_argument(*flags, dest=f.name, action=action, default=None)
        else:
            parser.add_argument(
                *flags, dest=f.name, type=_TYPES[str(f.type)], metavar=f.metadata["metavar"]
            )


def from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The options a parsed %%speak line set (the others stay at their defaults)."""
    return {f.name: getattr(args, f.name) for f in FIELDS if f.metadata["flags"]}


def usage_lines() -> list[str]:
    """'  -v, --voice VOICE   a voice …' for every option with a flag (for %%speak -h)."""
    lines = []
    for f in FIELDS:
        flags = f.metadata["flags"]
        if flags:
            name = ", ".join(flags) + (f" {f.metadata['metavar']}" if f.metadata["metavar"] else "")
            lines.append(f"  {name.ljust(18)}  {f.metadata['flag_help']}")
    return lines


def options_table() -> str:
    """The options as a markdown table: setting, %%speak flag, default, what it does."""
    rows = [
        "| `SpeakMagics.` setting / `say()` keyword | `%%speak` flag | default | |",
        "|---|---|---|---|",
    ]
    for f in FIELDS:
        setting = f"`{f.name}`" if f.metadata["config"] else f"`{f.name}` (per call)"
        flag = " ".join(f"`{x}`" for x in f.metadata["flags"])
        rows.append(f"| {setting} | {flag} | `{f.default!r}` | {f.metadata['help']} |")
    return "\n".join(rows)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."
