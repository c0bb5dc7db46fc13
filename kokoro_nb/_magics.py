"""IPython magics: %%speak / %speak to say a cell or a line, %kokoro for status and settings.

The top layer of the notebook side. Defaults are traitlets on ``SpeakMagics``
(``%config SpeakMagics.voice = "bf_emma"``), made from ``_options.Options``; ``say()`` reads
the same defaults from code.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import html
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from traitlets import Bool, HasTraits, MetaHasTraits

from kokoro_engine import LANGUAGE_NAMES, voice_gender, voices_by_language

from ._errors import one_line_errors
from ._options import (
    Options,
    add_arguments,
    from_arguments,
    from_traits,
    merge,
    option_traits,
    set_defaults_source,
    usage_lines,
)
from ._speech import Speech, conductor, speak, unwatch_cells, watch_cells

_active: SpeakMagics | None = None

# %%speak's own flags, besides the options' (the options' come from _options.Options)
_MAGIC_FLAGS = [
    (("-o", "--out"), "VAR", "store the Speech handle in VAR (VAR.wait() returns the Audio)"),
    (("--after",), "MESSAGE", "run the cell's code, then say MESSAGE (or the error if it failed)"),
    (("--raw",), "", "say the text exactly: no {name} filling, no markdown stripping"),
    (("--queue",), "", "(the default now: speech from another cell plays after the speech before)"),
    (("--ui",), "", "voice, speed and blend controls"),
    (("-h", "--help"), "", "this help"),
]

SPEAK_USAGE = "\n".join(
    [
        "%%speak [options]             the cell is the text",
        '%speak [options] text to say   (quote a question: %speak "Ready?")',
        "%speak --ui [text]            voice, speed and blend controls",
        "",
        "Speaks the cell body (or the rest of the line). {name} is filled from your variables",
        "(unknown names stay as written); markdown markup is not read aloud. The cell returns at",
        "once and the audio streams into a player below it; the finished clip is kept in the output",
        "as a plain <audio> element, so the saved notebook still plays without a kernel.",
        "Speech from different cells plays in order; re-running a cell replaces its own speech;",
        "--now (or %config SpeakMagics.interrupt = True) stops all speech first; %kokoro stop",
        "stops everything.",
        "",
        *usage_lines(),
        *(
            f"  {(', '.join(flags) + (f' {metavar}' if metavar else '')).ljust(18)}  {text}"
            for flags, metavar, text in _MAGIC_FLAGS
        ),
        "",
    ]
)

KOKORO_USAGE = """\
%kokoro [status]            engine: providers, variant, warm sessions, memory; settings
%kokoro voices              the voices, by language
%kokoro warmup              load the model now and warm every session
%kokoro profile [-n N]      recent requests and the last one's per-piece timeline
%kokoro clear-cache         drop cached audio and voice tables
%kokoro stop                stop all speech
%kokoro wait                wait until all speech is synthesized
%kokoro serve [--host H] [--port P]   an OpenAI-compatible speech server on this engine
%kokoro serve --stop
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as IPython usage errors instead of exiting."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


def _speak_parser() -> _Parser:
    p = _Parser(prog="%%speak", add_help=False)
    add_arguments(p)
    for flags, metavar, _ in _MAGIC_FLAGS:
        if metavar:
            p.add_argument(*flags, metavar=metavar)
        else:
            p.add_argument(*flags, action="store_true")
    return p


def _flag_names() -> tuple[set[str], set[str]]:
    """(flags that take a value, flags that do not), as %%speak's parser knows them."""
    takes: set[str] = set()
    bare: set[str] = set()
    for action in _speak_parser()._actions:
        (bare if action.nargs == 0 else takes).update(action.option_strings)
    return takes, bare


_VALUE_OPTIONS, _FLAG_OPTIONS = _flag_names()
_TOKEN = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|\S+)""")


def split_options(line: str) -> tuple[list[str], str]:
    """Leading options of a magic line as argv, and the rest of the line verbatim.

    The text after the options is kept exactly as typed (quotes, apostrophes, a "-5"),
    which shlex-splitting the whole line would mangle.
    """
    argv: list[str] = []
    pos = 0
    while True:
        match = _TOKEN.match(line, pos)
        if match is None:
            break
        token = match.group(1)
        name = token.split("=", 1)[0]
        if token == "--":
            pos = match.end()
            break
        if name not in _VALUE_OPTIONS | _FLAG_OPTIONS:
            break
        argv.append(token)
        pos = match.end()
        if name in _VALUE_OPTIONS and "=" not in token:
            value = _TOKEN.match(line, pos)
            if value is None:
                raise UsageError(f"{name} needs a value")
            argv.append(_unquote(value.group(1)))
            pos = value.end()
    return argv, line[pos:].strip()


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        try:
            return shlex.split(token)[0]
        except ValueError:
            return token[1:-1]
    return token


def _unquote_text(text: str) -> str:
    """The line magic's text without one pair of enclosing quotes.

    IPython reads a line that ends in "?" as a help request, so a question has to be
    quoted: %speak "Is it raining?"
    """
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


_FIELD = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[-?\d+\]|\['[^'\]]*'\]|\[\"[^\"\]]*\"\])*)(![rsa])?(:[^{}]*)?\}"
)
_PART = re.compile(r"\.([A-Za-z_]\w*)|\[(-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def fill(text: str, namespace: Mapping[str, Any]) -> str:
    """Fill {name}, {obj.attr}, {seq[0]} and {x:.2f} from `namespace`; never raises.

    Anything that does not resolve (an unknown name, a failing attribute or format) is
    left as written, so braces in ordinary prose survive. ``{{`` and ``}}`` are literal.
    """

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole in ("{{", "}}"):
            return whole[0]
        try:
            value = _resolve(match.group(1), namespace)
            conversion = match.group(2)
            if conversion == "!r":
                value = repr(value)
            elif conversion == "!a":
                value = ascii(value)
            elif conversion == "!s":
                value = str(value)
            return format(value, (match.group(3) or ":")[1:])
        except Exception:
            return whole

    return _FIELD.sub(replace, text)


def _resolve(path: str, namespace: Mapping[str, Any]) -> Any:
    head = re.match(r"[A-Za-z_]\w*", path)
    assert head is not None
    value = namespace[head.group(0)]
    for part in _PART.finditer(path, head.end()):
        attr, index, key1, key2 = part.groups()
        if attr is not None:
            value = getattr(value, attr)
        elif index is not None:
            value = value[int(index)]
        else:
            value = value[key1 if key1 is not None else key2]
    return value


def _show_from(exc: BaseException, filename: str, shell: Any) -> None:
    """Let IPython show `exc`'s traceback from the cell's own code on, without the magic's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    if tb is None or hasattr(exc, "_render_traceback_"):
        return
    user_tb = tb

    def render() -> list[str]:
        return list(shell.InteractiveTB.structured_traceback(type(exc), exc, user_tb))

    exc._render_traceback_ = render  # type: ignore[attr-defined]


def _spoken_error(exc: BaseException) -> str:
    """An error as a sentence worth hearing: 'ZeroDivisionError' → 'Zero Division Error'."""
    if isinstance(exc, KeyboardInterrupt):
        return "The cell was interrupted."
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type(exc).__name__)
    message = str(exc).strip().splitlines()
    detail = f": {message[0][:200]}" if message else ""
    return f"The cell failed with {name}{detail}."


# The speech options as configurable traitlets (voice, speed, interrupt, ...), made from Options.
_OptionTraits = MetaHasTraits("_OptionTraits", (HasTraits,), option_traits())


@magics_class
class SpeakMagics(Magics, _OptionTraits):  # type: ignore[misc,valid-type]
    """%%speak, %speak and %kokoro. Set defaults with %config SpeakMagics.<name> = value."""

    fill_names = Bool(True, help="Fill {name} in %%speak text from the user namespace.").tag(
        config=True
    )
    preload = Bool(True, help="Start loading the model when the extension is loaded.").tag(
        config=True
    )

    def options(self, **changes: Any) -> Options:
        """The settings, with `changes` (None leaves a setting as it is)."""
        return merge(from_traits(self), **changes)

    # --- %%speak / %speak ------------------------------------------------------------------

    @line_cell_magic
    def speak(self, line: str, cell: str | None = None) -> Any:
        """Speak the cell (or the rest of the line); see %%speak -h."""
        argv, rest = split_options(line)
        args = _speak_parser().parse_args(argv)
        if args.help:
            print(SPEAK_USAGE)
            return None
        if cell is not None and rest:
            raise UsageError(
                f"%%speak: unexpected {rest!r} on the magic line; the text goes in the cell"
            )
        text = _unquote_text(rest) if cell is None else cell
        if args.ui:
            from ._controls import controls

            return controls(text, voice=args.voice or self.voice, speed=args.speed or self.speed)
        if args.after is not None:
            if cell is None:
                raise UsageError(
                    "--after belongs to the cell magic: %%speak --after 'Done' above the code"
                )
            return self._after(cell, args)
        self._say(text, args)
        return None

    def _options_from(self, args: argparse.Namespace) -> Options:
        markdown = False if args.raw else None
        return self.options(**from_arguments(args), markdown=markdown)

    def _say(self, text: str, args: argparse.Namespace) -> Speech:
        if not args.raw and self.fill_names and self.shell is not None:
            text = fill(text, self.shell.user_ns)
        if not text.strip():
            raise UsageError("%speak: nothing to say (the text is empty)")

        def bind(speech: Speech) -> None:
            # Before a --wait or --no-stream cell blocks: interrupted, it still has its handle.
            if args.out and self.shell is not None:
                self.shell.user_ns[args.out] = speech

        with one_line_errors():
            return speak(text, self._options_from(args), on_start=bind)

    def _after(self, cell: str, args: argparse.Namespace) -> Any:
        message = args.after
        if self.fill_names and self.shell is not None:
            message = fill(message, self.shell.user_ns)
        try:
            value = self._run(cell)
        except BaseException as exc:
            # Speaking is a courtesy; the cell's own error is what must reach the user.
            with contextlib.suppress(Exception):
                self._say(_spoken_error(exc), argparse.Namespace(**{**vars(args), "raw": True}))
            raise
        self._say(message, args)
        return value

    def _run(self, cell: str) -> Any:
        """Run the cell's code like IPython would, returning its last expression's value."""
        shell = self.shell
        assert shell is not None
        code = shell.transform_cell(cell)  # type: ignore[no-untyped-call]
        filename = shell.compile.cache(code, shell.execution_count, raw_code=cell)
        try:
            tree = ast.parse(code, filename)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, filename, "exec"), shell.user_global_ns, shell.user_ns)
            if last is None:
                return None
            expression = ast.Expression(last.value)
            return eval(compile(expression, filename, "eval"), shell.user_global_ns, shell.user_ns)
        except Exception as exc:
            _show_from(exc, filename, shell)
            raise

    # --- %kokoro ---------------------------------------------------------------------------

    @line_magic
    def kokoro(self, line: str) -> Any:
        """Engine status and housekeeping; see %kokoro help."""
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%kokoro: {exc}") from None
        command, rest = (argv[0], argv[1:]) if argv else ("status", [])
        handler = {
            "status": self._status,
            "voices": self._voices,
            "warmup": self._warmup,
            "profile": self._profile,
            "clear-cache": self._clear_cache,
            "stop": self._stop,
            "wait": self._wait,
            "serve": self._serve,
        }.get(command)
        if command in ("help", "-h", "--help"):
            print(KOKORO_USAGE)
            return None
        if handler is None:
            raise UsageError(f"%kokoro: unknown command {command!r}\n{KOKORO_USAGE}")
        with one_line_errors():
            return handler(rest)

    def _status(self, argv: Sequence[str]) -> Table:
        from ._kernel_engine import loaded_engine

        rows: list[tuple[str, Any]] = []
        engine = loaded_engine()
        if engine is None:
            rows.append(("engine", "not loaded yet (loads on first use, or %kokoro warmup)"))
        else:
            for key, value in engine.status().items():
                rows.append((key, value))
        rows.append(("speaking now", len(conductor.live())))
        for name in sorted(self.class_traits(config=True)):
            rows.append((f"SpeakMagics.{name}", getattr(self, name)))
        return Table("Kokoro status", ("", "value"), rows)

    def _voices(self, argv: Sequence[str]) -> Table:
        from ._kernel_engine import get_engine

        rows = [
            (LANGUAGE_NAMES.get(code, code), ", ".join(f"{v} ({_gender(v)})" for v in names))
            for code, names in voices_by_language(get_engine().voices).items()
        ]
        return Table("Voices", ("language", "voices"), rows)

    def _warmup(self, argv: Sequence[str]) -> str:
        from ._kernel_engine import get_engine

        start = time.perf_counter()
        engine = get_engine()
        engine.warmup()
        return f"Kokoro warm in {time.perf_counter() - start:.1f} s: {engine!r}"

    def _profile(self, argv: Sequence[str]) -> Any:
        from ._kernel_engine import loaded_engine
        from ._profile_view import ProfileView

        parser = _Parser(prog="%kokoro profile", add_help=False)
        parser.add_argument("-n", type=int, default=20)
        args = parser.parse_args(list(argv))
        engine = loaded_engine()
        rows = engine.recent.rows[-args.n :] if engine is not None and args.n > 0 else []
        return ProfileView(rows, title=f"Recent requests ({len(rows)})")

    def _clear_cache(self, argv: Sequence[str]) -> str:
        from ._kernel_engine import loaded_engine

        engine = loaded_engine()
        if engine is not None:
            engine.clear_cache()
        return "Kokoro caches cleared."

    def _stop(self, argv: Sequence[str]) -> str:
        return f"Stopped {conductor.stop_all()} utterance(s)."

    def _wait(self, argv: Sequence[str]) -> str:
        conductor.wait_all()
        return "All speech synthesized."

    def _serve(self, argv: Sequence[str]) -> str:
        parser = _Parser(prog="%kokoro serve", add_help=False)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8880)
        parser.add_argument("--stop", action="store_true")
        args = parser.parse_args(list(argv))
        try:
            from kokoro_nb.server import start, stop
        except ImportError as exc:
            raise UsageError(
                f"%kokoro serve is not available here ({exc}); it needs the server extra: "
                "pip install 'kokoro-nb[server]'"
            ) from None
        if args.stop:
            return "Server stopped." if stop() else "No server was running."
        from ._kernel_engine import get_engine

        url = start(get_engine(), host=args.host, port=args.port)
        return f"Kokoro speech server at {url} (OpenAI-compatible: POST {url.rstrip('/')}/v1/audio/speech)"


def _gender(voice: str) -> str:
    return {"female": "F", "male": "M"}.get(voice_gender(voice) or "", "?")


class Table:
    """A small two-column table: HTML in notebooks, aligned text in terminals (all escaped)."""

    def __init__(
        self, title: str, header: tuple[str, str], rows: Sequence[tuple[str, Any]]
    ) -> None:
        self.title, self.header, self.rows = title, header, list(rows)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            f"<tr><td style='text-align:left'>{html.escape(str(k))}</td>"
            f"<td style='text-align:left'>{html.escape(_plain(v))}</td></tr>"
            for k, v in self.rows
        )
        return f"<b>{html.escape(self.title)}</b><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        width = max((len(str(k)) for k, _ in self.rows), default=0)
        return "\n".join(
            [self.title, *(f"{str(k).ljust(width)}  {_plain(v)}" for k, v in self.rows)]
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(_plain(v) for v in value)
    return str(value)


def load_ipython_extension(ipython: Any) -> None:
    """%load_ext kokoro_nb: register the magics and start loading the model."""
    global _active
    magics = SpeakMagics(shell=ipython)
    ipython.register_magics(magics)
    _active = magics
    set_defaults_source(magics.options)
    watch_cells(ipython)
    if magics.preload:
        from ._kernel_engine import preload

        preload()


def unload_ipython_extension(ipython: Any) -> None:
    global _active
    conductor.stop_all()
    set_defaults_source(None)
    unwatch_cells(ipython)
    if _active is not None and _active in getattr(ipython, "configurables", []):
        ipython.configurables.remove(_active)
    _active = None
