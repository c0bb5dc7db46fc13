"""One utterance's life off the cell's thread: engine stream → player → finished clip in the output.

``say()`` returns at once with a ``Speech`` handle; a worker thread pulls chunks from the
engine and sends them to the player, so the kernel stays free to handle the browser's Stop
(the kernel only reads comm messages when idle) and to run the next cell while audio plays.
A new utterance stops the ones before it unless it is queued behind them.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._profile_view import ProfileView
from ._kernel_engine import get_engine
from ._static_audio import StaticAudio

if TYPE_CHECKING:
    from kokoro_engine import Audio, Stream

    from ._player import Player
    from ._protocol import StreamWriter

SAMPLE_RATE = 24000
SAVE_SUFFIXES = (".wav", ".flac", ".ogg")  # what Audio.save writes


@dataclass(frozen=True)
class Options:
    """How to speak: the defaults come from ``SpeakMagics`` (``%config SpeakMagics.voice=...``)."""

    voice: str = "af_heart"
    speed: float = 1.0
    lang: str | None = None
    stream: bool = True  # False: synthesize the whole clip first, then play it
    queue: bool = False  # True: play after the speech already going, instead of stopping it
    wait: bool = False  # True: the call returns when synthesis is done
    save: str | None = None
    profile: bool = False
    markdown: bool = True  # read markdown as prose (markup is not spoken)
    static_max_s: float = 60.0  # cap of the static <audio> kept in the output; 0: none
    static_rate: int = 0  # sample rate of that element; 0: the model's 24 kHz
    on_done: Callable[[Speech], None] | None = field(default=None, compare=False)


def error_line(exc: BaseException) -> str:
    """An exception as one readable line: its type and the first line of its message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def shorten_traceback(exc: BaseException) -> BaseException:
    """Make IPython show `exc` as one line instead of a stack trace (type unchanged)."""
    line = error_line(exc)
    exc._render_traceback_ = lambda: [f"\x1b[0;31m{line}\x1b[0m"]  # type: ignore[attr-defined]
    return exc


class Speech:
    """A handle on one utterance: its state, its audio when done, and a way to stop it.

    States: ``queued`` → ``running`` → ``done`` | ``stopped`` | ``failed``.
    """

    def __init__(self, text: str, options: Options, player: Player | None = None) -> None:
        self.text = text
        self.options = options
        self.player = player
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
        self._after: Speech | None = None
        self._outputs: _Outputs | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------

    def open(self) -> None:
        """Start the engine stream now (on the caller's thread, so bad input raises here)."""
        o = self.options
        self._stream = get_engine().stream(self.text, voice=o.voice, speed=o.speed, lang=o.lang)

    def start(self) -> None:
        # A copy of the caller's context: ipykernel 7 routes a thread's output by it, so what
        # the worker displays lands in the cell that spoke.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="kokoro-speech", daemon=True
        )
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        """Stop synthesis (and the player); chunks already sent stay playable."""
        if self._done.is_set() or self._stop.is_set():
            return
        self.reason = reason
        self.stopped_after = self.chunks
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()  # wakes the worker if it waits for the next chunk

    @property
    def done(self) -> bool:
        return self._done.is_set()

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
        if self.options.on_done is not None:
            try:
                self.options.on_done(self)
            except Exception:
                self.traceback += traceback.format_exc()

    def _wait_turn(self) -> None:
        after = self._after
        while after is not None and not after._done.wait(0.05):
            if self._stop.is_set():
                return

    def _pump(self, parts: list[np.ndarray]) -> None:
        assert self._stream is not None
        if self.player is not None:
            self.writer = self.player.open_stream(
                on_stop=self.stop, on_close=lambda: self.stop("closed")
            )
            o = self.options
            self.writer.start(self.text, o.voice, o.speed, queue=o.queue, chars=len(self.text))
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
        return Audio(samples, SAMPLE_RATE, self.metrics, self.text)

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
        from IPython.display import display

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
    """Live utterances in order: a new one stops them all, or (queued) waits for the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: list[Speech] = []

    def admit(self, speech: Speech) -> None:
        with self._lock:
            self._live = [s for s in self._live if not s.done]
            if speech.options.queue:
                speech._after = self._live[-1] if self._live else None
            else:
                for other in self._live:
                    other.stop("superseded")
            self._live.append(speech)

    def live(self) -> list[Speech]:
        with self._lock:
            return [s for s in self._live if not s.done]

    def stop_all(self) -> int:
        live = self.live()
        for speech in live:
            speech.stop()
        return len(live)

    def wait_all(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for speech in self.live():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not speech._done.wait(left):
                return False
        return True


conductor = _Conductor()


def _in_ipython() -> bool:
    try:
        from IPython.core.interactiveshell import InteractiveShell
    except ImportError:
        return False
    return InteractiveShell.initialized()


def speak(
    text: str,
    options: Options,
    player: Player | None = None,
    display: bool = True,
    on_start: Callable[[Speech], None] | None = None,
) -> Speech:
    """Start speaking `text` (the engine of ``say`` and ``%%speak``); returns the handle at once.

    Bad input (unknown voice, speed out of range, empty text) raises here, before anything
    is displayed, unless the utterance is queued (then it fails in its output when its turn
    comes). With ``wait`` or ``stream=False`` this returns once synthesis is done; a
    KeyboardInterrupt while it waits stops the speech and re-raises (shown as one line).
    `on_start` gets the handle before that wait (``-o VAR`` binds it there, so an
    interrupted cell still leaves its handle).
    """
    _check_save(options.save)
    if options.markdown:
        from kokoro_engine import strip_markdown

        text = strip_markdown(text)
    display = display and _in_ipython()
    made_player = player is None and display
    if made_player:
        from ._player import Player

        player = Player()
    speech = Speech(text, options, player)
    try:
        if not options.queue:
            speech.open()
        conductor.admit(speech)  # only once the input proved good: bad input stops nothing
        if display:
            speech.show()
        speech.start()
        if on_start is not None:
            on_start(speech)
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


def merge(options: Options, **changes: Any) -> Options:
    """`options` with the given fields replaced (None leaves a field as it is)."""
    return replace(options, **{k: v for k, v in changes.items() if v is not None})


def say(
    text: str,
    voice: str | None = None,
    speed: float | None = None,
    lang: str | None = None,
    *,
    stream: bool | None = None,
    queue: bool | None = None,
    wait: bool | None = None,
    save: str | None = None,
    profile: bool | None = None,
    markdown: bool | None = None,
    player: Player | None = None,
    display: bool = True,
) -> Speech:
    """Speak `text` in the notebook, like ``%%speak``; returns a ``Speech`` handle at once.

    Unset arguments take the ``SpeakMagics`` defaults. ``handle.wait()`` blocks until the
    clip is synthesized and returns it; ``handle.stop()`` stops it. A new ``say`` stops
    the speech before it unless ``queue=True``. Engine errors (unknown voice, bad speed)
    raise at once and show as one line.
    """
    from ._magics import current_options

    options = current_options(
        voice=voice,
        speed=speed,
        lang=lang,
        stream=stream,
        queue=queue,
        wait=wait,
        save=save,
        profile=profile,
        markdown=markdown,
    )
    try:
        return speak(text, options, player=player, display=display)
    except Exception as exc:
        if is_kokoro_error(exc):
            raise shorten_traceback(exc) from None
        raise


def stop() -> int:
    """Stop all speech; returns how many utterances were stopped."""
    return conductor.stop_all()


def wait(timeout: float | None = None) -> bool:
    """Wait until all speech is synthesized (e.g. before a headless run ends)."""
    return conductor.wait_all(timeout)


def is_kokoro_error(exc: BaseException) -> bool:
    try:
        from kokoro_engine import KokoroError
    except ImportError:
        return False
    return isinstance(exc, KokoroError)
