"""The model as two graphs, prosody then decoder: the same audio, and each token's frames in between.

The prosody part (tokens, style, speed → aligned text features, pitch and energy curves,
per-token frame counts) is cheap; the decoder turns frames into audio and costs ~94 % of a
call, in proportion to the frames. Cutting the graph at these tensors reproduces the single
graph bit for bit, and exposes how many frames each token gets (what word timings need).

Every frame is decoded, the pads' near-silence included. Cropping the leading pad's frames
saved work but cost intelligibility: the decoder's residual blocks normalize each channel
over the whole utterance (instance norm over time), so dropping frames shifts those
statistics and changes every frame of the piece, not just the start; word error rose
(+0.015 and +0.026 on streamed paragraphs for am_michael, docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from ._files import read_stamp, save_onnx, write_stamp

# Tensors where the Kokoro v1.0 export splits (names from the torch export).
ALIGNED = "/encoder/MatMul_1_output_0"  # [1, 512, F] text features per frame
PITCH = "/encoder/Reshape_output_0"  # [1, 2F]
ENERGY = "/encoder/Reshape_1_output_0"  # [1, 2F]
DURATIONS = "/encoder/Gather_output_0"  # [T] frames per token, pads included
SPLIT_VERSION = 1


def split_paths(model: Path, cache: Path) -> tuple[Path, Path] | None:
    """Cached (prosody, decoder) graphs for `model`, cut on first use; None if it won't cut."""
    stat = model.stat()
    stem = f"{model.stem}.{stat.st_size}"
    prosody, decoder = (
        cache / "split" / f"{stem}.prosody.onnx",
        cache / "split" / f"{stem}.decoder.onnx",
    )
    stamp = cache / "split" / f"{stem}.json"
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "version": SPLIT_VERSION}
    if read_stamp(stamp) == key and prosody.is_file() and decoder.is_file():
        return prosody, decoder
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(stamp) + ".lock", timeout=600):
            if not (read_stamp(stamp) == key and prosody.is_file() and decoder.is_file()):
                if not _cut(model, prosody, decoder):
                    return None
                write_stamp(stamp, key)
    except OSError:
        return None  # a read-only cache: run the single graph
    return prosody, decoder


def _cut(model: Path, prosody: Path, decoder: Path) -> bool:
    import onnx
    from onnx.utils import Extractor

    graph = onnx.load(str(model))
    produced = {out for node in graph.graph.node for out in node.output}
    if not {ALIGNED, PITCH, ENERGY, DURATIONS} <= produced:
        return False  # another export: names differ
    extractor = Extractor(graph)
    inputs = [i.name for i in graph.graph.input]
    save_onnx(extractor.extract_model(inputs, [ALIGNED, PITCH, ENERGY, DURATIONS]), prosody)
    save_onnx(
        extractor.extract_model([ALIGNED, PITCH, ENERGY, "style"], [graph.graph.output[0].name]),
        decoder,
    )
    return True


class SplitSession:
    """Two sessions that run as one: the same inputs and output as the single graph."""

    def __init__(self, prosody: Any, decoder: Any) -> None:
        self.prosody = prosody
        self.decoder = decoder

    def get_inputs(self) -> Any:
        return self.prosody.get_inputs()

    def run(
        self, output_names: Any, feed: dict[str, Any], run_options: Any = None
    ) -> list[np.ndarray]:
        aligned, pitch, energy, _durations = self.prosody.run(None, feed, run_options)
        features = {ALIGNED: aligned, PITCH: pitch, ENERGY: energy, "style": feed["style"]}
        return list(self.decoder.run(None, features, run_options))
