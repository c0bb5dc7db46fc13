"""One utterance's life off the cell's thread: engine stream → player → finished clip in the output.

``say()`` returns at once with a ``Speech`` handle; a worker thread pulls chunks from the
engine and sends them to the player, so the kernel stays free to handle the browser's Stop
(the kernel only reads comm messages when idle) and to run the next cell while audio plays.
Speech from different cells plays in order, like a playlist; re-running a cell replaces
that cell's own speech; ``interrupt`` (``--now``) stops everything first (see ``_Conductor``).
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from kokoro_engine import SAMPLE_RATE

from ._errors import error_line, is_kokoro_error, one_line_errors, shorten_traceback
from ._kernel_engine import get_engine
from ._options import Options, current
from ._profile_view import ProfileView
from ._protocol import PLAYING_STATES
from ._static_audio import StaticAudio

if TYPE_CHECKING:
    from kokoro_engine import Audio, RequestMetrics, Stream

    from ._player import Player
    from ._protocol import StreamWriter

SAVE_SUFFIXES = (".wav", ".flac", ".ogg")  # what Audio.save writes
Cell = tuple[str | None, int | None]  # (which cell, which run of it); None: not known


class Speech:
    """A handle on one utterance: its state, its audio when done, and a way to stop it.

    States: ``queued`` → ``running`` → ``done`` | ``stopped`` | ``failed``. `on_done` runs
    (on the worker thread) when synthesis ends, whatever the state; `cell` says which cell
    (and which run of it) spoke, so re-running that cell replaces this speech.
    """

    def __init__(
        self,
        text: str,
        options: Options,
        player: Player | None = None,
        *,
        on_done: Callable[[Speech], None] | None = None,
        cell: Cell = (None, None),
    ) -> None:
        self.text = text
        self.options = options
        self.player = player
        self.cell = cell
        self._on_done = on_done
        self.state = "queued"
        self.reason = ""  # why it stopped: stopped | superseded
        self.error: BaseException | None = None
        self.traceback = ""
        self.audio: Audio | None = None
        self.metrics: dict[str, Any] = {}
        self.chunks = 0  # engine chunks received
        self.stopped_after: int | None = None  # chunks received when stop() was asked for
        self.created = time.perf_counter()
        self.writer: StreamWriter | None = None
        self._stream: Stream | None = None
        self._ahead: list[Speech] = []  # speech that must finish synthesizing first
        self._outputs: _Outputs | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------

    def open(self) -> None:
        """Start the engine stream now (on the caller's thread, so bad input raises here)."""
        o = self.options
        self._stream = get_engine().stream(self.text, voice=o.voice, speed=o.speed, lang=o.lang)

    def check(self) -> None:
        """Raise now what ``open()`` would raise, without starting synthesis.

        A queued speech opens its stream only when the speech ahead has been synthesized
        (its first pieces would otherwise jump ahead of that speech's later ones), but a
        mistake in it must still fail in its own cell at once.
        """
        o = self.options
        get_engine().check(self.text, voice=o.voice, speed=o.speed, lang=o.lang)

    def start(self) -> None:
        # A copy of the caller's context: ipykernel 7 routes a thread's output by it, so what
        # the worker displays lands in the cell that spoke.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="kokoro-speech", daemon=True
        )
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        """Stop synthesis and the player; a speech already synthesized falls silent."""
        if self._done.is_set():
            self._hush(reason)
            return
        if self._stop.is_set():
            return
        self.reason = reason
        self.stopped_after = self.chunks
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()  # wakes the worker if it waits for the next chunk

    @property
    def done(self) -> bool:
        """Synthesis has ended (its audio may still be playing in the browser)."""
        return self._done.is_set()

    @property
    def audible(self) -> bool:
        """Still synthesizing, or its player says it is playing (or about to)."""
        if not self._done.is_set():
            return True
        player, writer = self.player, self.writer
        if player is None or writer is None or player.closed or player.stream != writer.stream:
            return False  # a newer stream on the same player already replaced it
        state = player.states.get(writer.stream)
        return state is not None and state.state in PLAYING_STATES

    def _hush(self, reason: str) -> None:
        # Its stream has ended, so no abort may follow; a new, empty stream on the same
        # player replaces it (the browser halts the old audio) and is aborted at once.
        if self.audible and self.player is not None:
            self.player.open_stream().abort(reason)

    def _abandon(self, reason: str, close_player: bool = False) -> None:
        """Stop a speech whose setup or wait was cut short (its worker may not exist yet).

        With `close_player`, a player made for it and never shown is closed too (else every
        cell with a typo would leave a widget behind in the front end).
        """
        self.stop(reason)
        if self._thread is None:
            if self._stream is not None:
                self._stream.close()
            self.state = "stopped"
            self._done.set()
        if close_player and self._outputs is None and self.player is not None:
            self.player.close()

    def wait(self, timeout: float | None = None) -> Audio | None:
        """Block until synthesis ends; the clip (None if stopped before any audio).

        Raises the engine's error if it failed, TimeoutError if `timeout` passed first.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"speech still {self.state} after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.audio

    def profile(self) -> ProfileView:
        """Per-piece table and timeline of this utterance."""
        return ProfileView(self.metrics, title=f"“{_preview(self.text)}”")

    # --- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        parts: list[np.ndarray] = []
        try:
            self._wait_turn()
            if self._stop.is_set():
                self._finish_stopped(parts)
                return
            self.state = "running"
            if self._stream is None:
                self.open()
            self._pump(parts)
            if self._stop.is_set():
                self._finish_stopped(parts)
            else:
                self._finish(parts)
        except BaseException as exc:  # never leave the player or the cell waiting
            self._fail(exc)
        finally:
            if self.player is not None and self.writer is not None:
                self.player.forget(self.writer.stream)
            self._notify()
            self._done.set()

    def _notify(self) -> None:
        # Before `done` is set, so whoever waits on the speech sees what the callback did.
        if self._on_done is not None:
            try:
                self._on_done(self)
            except Exception:
                self.traceback += traceback.format_exc()

    def _wait_turn(self) -> None:
        for ahead in self._ahead:
            while not ahead._done.wait(0.05):
                if self._stop.is_set():
                    return
        self._ahead = []  # let them go

    def _pump(self, parts: list[np.ndarray]) -> None:
        assert self._stream is not None
        if self.player is not None:
            self.writer = self.player.open_stream(
                on_stop=self.stop, on_close=lambda: self.stop("closed")
            )
            o = self.options
            queue = not o.interrupt  # the browser plays it after the players before it
            self.writer.start(self.text, o.voice, o.speed, queue=queue, chars=len(self.text))
        held: list[tuple[np.ndarray, str, int]] = []
        for chunk in self._stream:
            parts.append(chunk.samples)
            self.chunks += 1
            if self._stop.is_set():
                break
            if not self.options.stream:
                held.append((chunk.samples, chunk.text, chunk.seq))
            elif self.writer is not None:
                self.writer.chunk(chunk.samples, chunk.text, chunk.seq)
        for samples, text, seq in held:
            if self.writer is not None:
                self.writer.chunk(samples, text, seq)
        self.metrics = dict(self._stream.metrics)

    def _clip(self, parts: list[np.ndarray]) -> Audio:
        from kokoro_engine import Audio

        samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        # The engine's record of the request (a typed dict there; a plain copy here).
        return Audio(samples, SAMPLE_RATE, cast("RequestMetrics", self.metrics), self.text)

    def _finish(self, parts: list[np.ndarray]) -> None:
        if self.writer is not None:
            self.writer.end(self.metrics)
        self.audio = self._clip(parts)
        notes = []
        self.state = "done"
        if self.options.save:
            try:
                path = self.audio.save(os.path.expanduser(self.options.save))
                notes.append(f"saved to {path}")
            except Exception as exc:  # the disk, not the speech, failed: keep the clip
                self.error = exc
                self.traceback = traceback.format_exc()
                self.state = "failed"
                notes.append(f"not saved: {error_line(exc)}")
        self._show_result(notes)

    def _finish_stopped(self, parts: list[np.ndarray]) -> None:
        if self._stream is not None:
            self._stream.close()
            self.metrics = dict(self._stream.metrics)
        if self.player is not None and self.writer is None:
            self.writer = self.player.open_stream()  # a queued one: tell the player it never ran
        if self.writer is not None:
            self.writer.abort(self.reason or "stopped")
        self.audio = self._clip(parts) if parts else None
        self.state = "stopped"
        self._show_result([self.reason or "stopped"])

    def _fail(self, exc: BaseException) -> None:
        self.error = shorten_traceback(exc) if is_kokoro_error(exc) else exc
        self.traceback = traceback.format_exc()
        self.state = "failed"
        if self._stream is not None:
            self._stream.close()
        try:
            if self.writer is not None:
                self.writer.abort("error", error_line(exc))
            if self._outputs is not None:
                self._outputs.error(error_line(exc))
        except Exception:  # the kernel may be shutting down; the state above says enough
            pass

    def _show_result(self, notes: list[str]) -> None:
        if self._outputs is None:
            return
        static = None
        o = self.options
        if self.audio is not None and len(self.audio.samples) and o.static_max_s > 0:
            caption = " · ".join([_caption(self.metrics), *notes])
            static = StaticAudio(
                self.audio.samples, SAMPLE_RATE, o.static_max_s, o.static_rate or None, caption
            )
        profile = self.profile() if o.profile and self.metrics.get("pieces") else None
        self._outputs.result(static, profile, "" if static else " · ".join(notes))

    # --- display -----------------------------------------------------------------------------

    def show(self) -> None:
        """Put the player and a placeholder for the finished clip in the current cell's output."""
        self._outputs = _Outputs(self.player)

    def __repr__(self) -> str:
        length = f", {self.audio.duration_s:.1f} s" if self.audio is not None else ""
        why = f" ({error_line(self.error)})" if self.error is not None else ""
        return f"<Speech {self.state}{why}{length}, {self.options.voice}: “{_preview(self.text)}”>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _preview(text: str, limit: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _caption(metrics: dict[str, Any]) -> str:
    bits = [str(metrics.get("voice", ""))]
    if isinstance(metrics.get("ttfa_s"), (int, float)):
        bits.append(f"first audio {metrics['ttfa_s']:.2f} s")
    if isinstance(metrics.get("rtf"), (int, float)):
        bits.append(f"RTF {metrics['rtf']:.2f}")
    return " · ".join(b for b in bits if b)


class _Outputs:
    """The cell's outputs for one utterance: the player, then a slot updated when it ends.

    The slot is displayed (empty) while the cell runs and later *updated* by display id:
    updates reach the right cell whichever cell the kernel is running by then.
    """

    def __init__(self, player: Player | None) -> None:
        from IPython import display as ipython_display

        display: Callable[..., Any] = ipython_display.display  # untyped in IPython
        if player is not None:
            display(player)
        self.handle = display({"text/plain": ""}, raw=True, display_id=True)

    def _update(self, plain: str, html_text: str) -> None:
        if self.handle is not None:
            self.handle.update({"text/plain": plain, "text/html": html_text}, raw=True)

    def result(self, static: StaticAudio | None, profile: ProfileView | None, note: str) -> None:
        import html

        plain = [repr(static) if static is not None else note]
        rich = [
            static._repr_html_() if static is not None else f"<small>{html.escape(note)}</small>"
        ]
        if profile is not None:
            plain.append(repr(profile))
            rich.append(profile._repr_html_())
        self._update("\n".join(p for p in plain if p), "".join(rich))

    def error(self, line: str) -> None:
        import html

        style = (
            "color:var(--jp-error-color1,#d32f2f);font-family:var(--jp-code-font-family,monospace)"
        )
        self._update(line, f'<div class="kokoro-error" style="{style}">{html.escape(line)}</div>')


# --- the kernel's speech: who is speaking, who waits ------------------------------------------


class _Conductor:
    """The kernel's speech in order, like a playlist.

    - Speech from another cell (or another run of code) queues: it is synthesized once the
      speech ahead of it has been, and the browser plays it when the audio ahead ends.
    - Speech from a new run of the same cell replaces that cell's earlier speech.
    - Speech with ``interrupt`` (``%%speak --now``) stops all speech first.
    - ``stop_all()`` stops everything: what is synthesizing, what waits, what still plays.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._line: list[Speech] = []  # admitted, in order; kept while they may be heard

    def ahead(self, speech: Speech) -> list[Speech]:
        """The speech `speech` would wait for: still synthesizing, and not about to stop."""
        if speech.options.interrupt:
            return []
        with self._lock:
            return [
                s
                for s in self._line
                if not s.done and not s._stop.is_set() and not _replaces(speech, s)
            ]

    def admit(self, speech: Speech, ahead: list[Speech]) -> None:
        """Stop what `speech` replaces and put it in line behind `ahead`."""
        with self._lock:
            self._line = [s for s in self._line if s.audible]
            stopped = [s for s in self._line if speech.options.interrupt or _replaces(speech, s)]
            speech._ahead = ahead
            self._line.append(speech)
        for other in stopped:
            other.stop("superseded")

    def live(self) -> list[Speech]:
        """Speech still being synthesized or waiting for its turn."""
        with self._lock:
            return [s for s in self._line if not s.done]

    def stop_all(self) -> int:
        """Stop all speech, queued and playing; returns how many were stopped."""
        with self._lock:
            line = [s for s in self._line if s.audible]
        for speech in reversed(line):  # the last first: none of them starts when one ends
            speech.stop()
        return len(line)

    def wait_all(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for speech in self.live():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not speech._done.wait(left):
                return False
        return True


def _replaces(new: Speech, old: Speech) -> bool:
    """`new` comes from a later run of the cell `old` came from."""
    return new.cell[0] is not None and new.cell[0] == old.cell[0] and new.cell[1] != old.cell[1]


conductor = _Conductor()

# --- which cell is running: the front end's cell id (JupyterLab, VS Code send one) -----------

_runs = itertools.count(1)
_cell: Cell = (None, None)
_watched: set[int] = set()


def watch_cells(shell: Any) -> None:
    """Note each cell `shell` runs, so speech knows its cell (idempotent).

    Without a cell id from the front end, every run counts as a cell of its own: then
    nothing is replaced, only queued.
    """
    if id(shell) in _watched:
        return
    _watched.add(id(shell))
    shell.events.register("pre_run_cell", _cell_starts)


def unwatch_cells(shell: Any) -> None:
    if id(shell) in _watched:
        _watched.discard(id(shell))
        shell.events.unregister("pre_run_cell", _cell_starts)


def _cell_starts(info: Any) -> None:
    global _cell
    run = next(_runs)
    cell_id = getattr(info, "cell_id", None)
    _cell = (str(cell_id) if cell_id else f"run {run}", run)


def current_cell() -> Cell:
    """(cell, run) of the cell running now; (None, None) outside IPython."""
    return _cell


def _shell() -> Any:
    """The running IPython shell, or None (plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def speak(
    text: str,
    options: Options,
    player: Player | None = None,
    display: bool = True,
    on_start: Callable[[Speech], None] | None = None,
    on_done: Callable[[Speech], None] | None = None,
) -> Speech:
    """Start speaking `text` (the engine of ``say`` and ``%%speak``); returns the handle at once.

    Bad input (unknown voice, speed out of range, empty text) raises here, before anything
    is displayed and before any other speech is stopped. The speech queues behind the
    speech already going (see ``_Conductor``); its engine stream starts at once when the
    engine is free, else as soon as the speech ahead has been synthesized, which is well
    before that one's audio ends, so the two play without a gap. With ``wait`` or
    ``stream=False`` this returns once synthesis is done; a KeyboardInterrupt while it waits
    stops the speech and re-raises (shown as one line). `on_start` gets the handle before
    that wait (``-o VAR`` binds it there, so an interrupted cell still leaves its handle);
    `on_done` gets it when synthesis ends.
    """
    _check_save(options.save)
    if options.markdown:
        from kokoro_engine import strip_markdown

        text = strip_markdown(text)
    shell = _shell()
    if shell is not None:
        watch_cells(shell)
    display = display and shell is not None
    made_player = player is None and display
    if made_player:
        from ._player import Player

        player = Player()
    speech = Speech(text, options, player, on_done=on_done, cell=current_cell())
    try:
        ahead = conductor.ahead(speech)
        if ahead:
            speech.check()
        else:
            speech.open()  # the engine is free: start synthesizing now
        conductor.admit(speech, ahead)  # only once the input proved good: bad input stops nothing
        if on_start is not None:  # before anything is shown: an interrupt then finds it bound
            on_start(speech)
        if display:
            speech.show()
        speech.start()
        if options.wait or not options.stream:
            speech._done.wait()
    except KeyboardInterrupt as exc:
        # Ctrl-C / "interrupt kernel" while the cell waits (or sets up): stop this speech,
        # keep the engine for the next cell, and let IPython show one line, not our frames.
        speech._abandon("interrupted", close_player=made_player)
        line = "KeyboardInterrupt"
        if speech.reason == "interrupted":  # not when it had just finished anyway
            line += f": speech stopped after {speech.stopped_after or 0} chunk(s)"
        exc._render_traceback_ = lambda: [f"\x1b[0;31m{line}\x1b[0m"]  # type: ignore[attr-defined]
        raise
    except BaseException:
        # A speech nobody runs would hold its engine stream open and keep wait() waiting.
        speech._abandon("stopped", close_player=made_player)
        raise
    return speech


def _check_save(path: str | None) -> None:
    """A --save name the engine cannot write fails now, not after the whole synthesis."""
    if not path:
        return
    from kokoro_engine import InputError

    target = Path(os.path.expanduser(path))
    if target.suffix.lower() not in SAVE_SUFFIXES:
        raise InputError(f"cannot save {target.name!r}: use a .wav, .flac or .ogg file name")
    if target.is_dir():
        raise InputError(f"cannot save to {path!r}: it is a folder; add a file name (clip.wav)")
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"cannot save to {path!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot save to {path!r}: the folder {str(folder)!r} is not writable")


def say(
    text: str,
    voice: str | None = None,
    speed: float | None = None,
    lang: str | None = None,
    *,
    player: Player | None = None,
    display: bool = True,
    queue: bool | None = None,
    **options: Any,
) -> Speech:
    """Speak `text` in the notebook, like ``%%speak``; returns a ``Speech`` handle at once.

    Keywords are the speech options (``stream``, ``interrupt``, ``wait``, ``save``,
    ``profile``, ``markdown``, ...: ``kokoro_nb._options.options_table()`` lists them);
    unset ones take the ``SpeakMagics`` defaults. Calls queue: several ``say`` calls in
    one cell play one after another, after the speech already going. ``interrupt=True``
    stops all speech first. ``handle.wait()`` blocks until the clip is synthesized and
    returns it; ``handle.stop()`` stops it. Engine errors (unknown voice, bad speed) raise
    at once and show as one line. ``queue`` is the old name: ``queue=False`` is
    ``interrupt=True``.
    """
    if queue is not None:
        options.setdefault("interrupt", not queue)
    settings = current(voice=voice, speed=speed, lang=lang, **options)
    with one_line_errors():
        return speak(text, settings, player=player, display=display)


def stop() -> int:
    """Stop all speech: what is being synthesized, what waits in line, and what still plays.

    (A player's own Stop button stops only that player's speech; the next in line then
    plays.) Returns how many utterances were stopped.
    """
    return conductor.stop_all()


def wait(timeout: float | None = None) -> bool:
    """Wait until all speech is synthesized (e.g. before a headless run ends)."""
    return conductor.wait_all(timeout)
