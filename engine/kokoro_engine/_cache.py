"""The audio cache: finished piece audio kept by what made it, least recently used out first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ._types import FloatArray


class AudioCache:
    """Finished piece audio by (ids, voice, speed, variant), within a byte budget."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap = cap_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[Any, ...], FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[Any, ...]) -> FloatArray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: FloatArray) -> None:
        if value.nbytes > self.cap:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.cap:
                _, old = self._items.popitem(last=False)
                self.bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
