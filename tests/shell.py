"""A real IPython shell without a browser: run a cell, record what a widget's comm publishes."""

from __future__ import annotations

from typing import Any

from comm.base_comm import BaseComm
from IPython.core.interactiveshell import InteractiveShell

from kokoro_nb._player import Player
from kokoro_nb._protocol import Message, decode


def run(ip: InteractiveShell, source: str) -> Any:
    """The cell's result; its error raised here rather than printed."""
    result = ip.run_cell(source)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


class RecordingComm(BaseComm):
    """A comm that keeps what the widget publishes (custom messages and the close)."""

    def __init__(self, **kwargs: Any) -> None:
        self.published: list[tuple[str, Any, list[bytes]]] = []
        super().__init__(**kwargs)

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any
    ) -> None:
        self.published.append((msg_type, data, [bytes(b) for b in buffers or []]))

    def custom(self) -> list[tuple[Any, list[bytes]]]:
        """Each custom message's content and buffers, as the frontend would receive them."""
        return [
            (data["content"], buffers)
            for kind, data, buffers in self.published
            if kind == "comm_msg" and data.get("method") == "custom"
        ]

    def decoded(self) -> list[Message]:
        return [decode(content, buffers) for content, buffers in self.custom()]

    def from_frontend(self, content: Any, buffers: list[Any] | None = None) -> None:
        self.handle_msg(
            {
                "content": {"data": {"method": "custom", "content": content}},
                "buffers": buffers or [],
            }
        )


def channel(player: Player | None) -> RecordingComm:
    """The recording comm of a player made under the ``comms`` fixture."""
    assert player is not None and isinstance(player.comm, RecordingComm)
    return player.comm
