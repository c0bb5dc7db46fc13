"""A session's input feed (tokens, style, speed), shaped by the input names and types it declares."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._types import FloatArray


class Feeds:
    """Builds a session's input feed, reading input names and types from the session."""

    def __init__(self, session: Any) -> None:
        inputs = {i.name: i for i in session.get_inputs()}
        self.tokens = "input_ids" if "input_ids" in inputs else "tokens"
        self.int_speed = "speed" in inputs and "int" in inputs["speed"].type

    def __call__(self, ids: list[int], style: FloatArray, speed: float) -> dict[str, Any]:
        speed_value = np.array(
            [round(speed) if self.int_speed else speed], np.int32 if self.int_speed else np.float32
        )
        return {
            self.tokens: np.array([[0, *ids, 0]], dtype=np.int64),
            "style": np.asarray(style, dtype=np.float32),
            "speed": speed_value,
        }
