"""Type aliases shared across the engine."""

from __future__ import annotations

from os import PathLike
from typing import Union

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
PathLikeStr = Union[str, "PathLike[str]"]

SAMPLE_RATE = 24_000
MAX_PHONEME_IDS = 510
