"""Voice and speed controls: pick, blend, listen — re-spoken live (debounced) as controls change."""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as w

from kokoro_engine import LANGUAGE_NAMES, voice_gender, voices_by_language

from ._errors import error_line
from ._kernel_engine import get_engine
from ._options import Options, current
from ._player import Player
from ._speech import Speech, speak

DEBOUNCE_S = 0.5  # controls fire on every slider step; speak once the hand rests


def _language_groups(voices: list[str]) -> dict[str, list[str]]:
    """Voices under their language's name ("British English": [...])."""
    return {
        LANGUAGE_NAMES.get(code, code): names for code, names in voices_by_language(voices).items()
    }


def _label(voice: str) -> str:
    gender = voice_gender(voice)
    return f"{voice.split('_', 1)[-1]} ({gender})" if gender else voice


def _row(*children: w.Widget) -> w.HBox:
    """A row that wraps on narrow outputs instead of squeezing its sliders."""
    return w.HBox(
        list(children),
        layout=w.Layout(flex_flow="row wrap", align_items="center", grid_gap="4px 16px"),
    )


class Controls(w.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """Text, voice (grouped by language), speed, an optional blend, a player and run metrics."""

    def __init__(
        self,
        text: str = "",
        voice: str = "af_heart",
        speed: float = 1.0,
        *,
        live: bool = True,
        debounce_s: float = DEBOUNCE_S,
    ) -> None:
        self.base = current()
        self.debounce_s = debounce_s
        self.groups = _language_groups(get_engine().voices)
        voice = voice if any(voice in v for v in self.groups.values()) else self.base.voice
        language = next((g for g, v in self.groups.items() if voice in v), next(iter(self.groups)))
        layout = w.Layout(width="auto")
        label = {"description_width": "initial"}  # labels as wide as their words, no wider
        self.text = w.Textarea(
            value=text, placeholder="Type something to say…", rows=3, layout=w.Layout(width="100%")
        )
        self.language = w.Dropdown(
            options=list(self.groups),
            value=language,
            description="Language",
            style=label,
            layout=w.Layout(width="250px"),
        )
        self.voice = w.Dropdown(
            options=self._voice_options(language),
            value=voice,
            description="Voice",
            style=label,
            layout=w.Layout(width="210px"),
        )
        self.speed = _slider("Speed", speed, 0.5, 2.0)
        everyone = [
            (f"{lang} · {_label(v)}", v) for lang, names in self.groups.items() for v in names
        ]
        self.blend = w.Checkbox(value=False, description="Blend with", indent=False, layout=layout)
        self.voice2 = w.Dropdown(
            options=everyone,
            value=everyone[min(1, len(everyone) - 1)][1],
            layout=w.Layout(width="300px"),
            disabled=True,
        )
        self.weight = _slider("Weight", 0.3, 0.05, 0.95, disabled=True)
        self.button = w.Button(description="Speak", icon="play", button_style="primary")
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.live = w.Checkbox(
            value=live, description="Re-speak when a control changes", indent=False, layout=layout
        )
        self.player = Player()
        self.status = w.HTML()
        self.table = w.HTML()
        self.runs: list[Speech] = []
        self.last: Speech | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        super().__init__(
            [
                self.text,
                _row(self.language, self.voice, self.speed),
                _row(self.blend, self.voice2, self.weight),
                _row(self.button, self.stop_button, self.live),
                self.player,
                self.status,
                self.table,
            ]
        )
        self.add_class("kokoro-controls")
        self.button.on_click(lambda _: self.speak())
        self.stop_button.on_click(lambda _: self.stop())
        self.language.observe(self._language_changed, "value")
        self.blend.observe(self._blend_changed, "value")
        for control in (self.voice, self.speed, self.voice2, self.weight):
            control.observe(self._changed, "value")

    # --- what the controls say -----------------------------------------------------------

    def _voice_options(self, language: str) -> list[tuple[str, str]]:
        return [(_label(v), v) for v in self.groups[language]]

    @property
    def voice_spec(self) -> str:
        """The voice argument: a name, or a weighted blend of two."""
        first = self.voice.value
        if not self.blend.value or self.voice2.value == first:
            return str(first)
        weight = round(float(self.weight.value), 2)
        return f"{first}:{1 - weight:.2f},{self.voice2.value}:{weight:.2f}"

    def speak(self) -> Speech | None:
        """Speak the text with the current settings now: a button press means now, so it
        stops all speech (the panel's earlier run, and any cell's) first."""
        self._cancel_timer()
        text = self.text.value
        if not text.strip():
            self._say_status("Type something to say first.")
            return None
        options = Options(
            voice=self.voice_spec,
            speed=float(self.speed.value),
            markdown=self.base.markdown,
            static_max_s=0,
            interrupt=True,
        )
        try:
            speech = speak(text, options, player=self.player, display=False, on_done=self._finished)
        except Exception as exc:
            self._say_status(error_line(exc), error=True)
            return None
        with self._lock:
            self.last = speech
        self._say_status(f"Speaking with {options.voice} at ×{options.speed:.2f}…")
        return speech

    def stop(self) -> None:
        self._cancel_timer()
        if self.last is not None:
            self.last.stop()

    def close(self) -> None:
        """Close the panel, its player and its controls; the speech stops (nobody hears it)."""
        self._cancel_timer()
        self.player.close()  # stops the stream it carries ("closed")
        for child in (self.text, self.language, self.voice, self.speed, self.blend):
            child.close()
        for child in (self.voice2, self.weight, self.button, self.stop_button, self.live):
            child.close()
        self.status.close()
        self.table.close()
        super().close()

    # --- reacting to changes ---------------------------------------------------------------

    def _language_changed(self, change: dict[str, Any]) -> None:
        options = self._voice_options(change["new"])
        self.voice.options = options
        self.voice.value = options[0][1]

    def _blend_changed(self, change: dict[str, Any]) -> None:
        self.voice2.disabled = self.weight.disabled = not change["new"]
        self._changed(change)

    def _changed(self, _change: dict[str, Any]) -> None:
        if not self.live.value or not self.text.value.strip():
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce_s, self.speak)
            self._timer.daemon = True
            self._timer.start()

    def _cancel_timer(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None

    # --- metrics of each run -----------------------------------------------------------------

    def _finished(self, speech: Speech) -> None:
        with self._lock:
            self.runs.append(speech)
        if speech.state == "failed" and speech.error is not None:
            self._say_status(error_line(speech.error), error=True)
        else:
            self._say_status(f"{speech.state}: {speech.options.voice} ×{speech.options.speed:.2f}")
        self.table.value = runs_table(self.runs[-12:])

    def _say_status(self, text: str, error: bool = False) -> None:
        color = "var(--jp-error-color1,#d32f2f)" if error else "var(--jp-ui-font-color2,inherit)"
        self.status.value = f'<span style="color:{color};font-size:12px">{html.escape(text)}</span>'


def runs_table(runs: list[Speech]) -> str:
    """One row per run, newest first: what was asked and what it cost (all text escaped)."""
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "#",
            "voice",
            "speed",
            "state",
            "first audio s",
            "audio s",
            "total s",
            "RTF",
            "cached",
        )
    )
    rows = []
    for number, speech in reversed(list(enumerate(runs, 1))):
        m = speech.metrics
        cells = [
            str(number),
            speech.options.voice,
            f"{speech.options.speed:.2f}",
            speech.state,
            *(
                f"{m[k]:.3f}" if isinstance(m.get(k), (int, float)) else ""
                for k in ("ttfa_s", "audio_s", "total_s", "rtf")
            ),
            "yes" if m.get("cached") else "",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f'<table class="kokoro-table" style="font-size:12px"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def controls(
    text: str = "", voice: str | None = None, speed: float | None = None, *, live: bool = True
) -> Controls:
    """Controls to explore voices and speed on `text`; display the result (the last line of a cell)."""
    base = current()
    return Controls(
        text, voice or base.voice, speed if speed is not None else base.speed, live=live
    )


def _slider(description: str, value: float, low: float, high: float, **extra: Any) -> Any:
    """A slider in steps of 0.05 that reports when released, its label as wide as its word."""
    return w.FloatSlider(
        value=value,
        min=low,
        max=high,
        step=0.05,
        description=description,
        readout_format=".2f",
        continuous_update=False,
        style={"description_width": "initial"},
        layout=w.Layout(flex="1 1 220px", min_width="200px"),
        **extra,
    )
