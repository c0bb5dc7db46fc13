"""Float variants (fp32, fp16) of Kokoro's int8 graph, derived by undoing its quantization.

Only the int8 graph ships (docs/variants.md). Its weights are integers with a scale and a zero point
each, so the float weights can be rebuilt exactly as the int8 kernels see them:
(w − zero_point) × scale. The rewrite replaces each quantized pattern with its float op:

- DynamicQuantizeLinear → MatMulInteger → Cast → Mul(x_scale · w_scale)  ⇒  MatMul
- DynamicQuantizeLinear → ConvInteger → [Add(int bias)] → Cast → Mul  ⇒  Conv (float bias)
- DynamicQuantizeLSTM (W, R stored [dirs, input, 4·hidden])  ⇒  LSTM ([dirs, 4·hidden, input])
- Gather(uint8 table) → DequantizeLinear  ⇒  Gather(float table)

then drops the nodes nothing reads any more and stores each distinct weight once (the
shared BERT layers use one weight twelve times). fp16 converts that fp32 graph with
onnxruntime's float16 tool, keeping precision-critical parts in float32.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from filelock import FileLock
from onnx import NodeProto, TensorProto, helper, numpy_helper

from ._assets import file_sha256
from ._errors import AssetError, InputError
from ._files import read_stamp, save_onnx, write_stamp
from ._types import SAMPLE_RATE

VARIANTS = ("int8", "fp32", "fp16")

# Bump whenever the rewrite changes: cached variants derived by another version are redone.
# v2: the data moves of the phase path follow it into float32 (_DATA_MOVES), squares and the
# encoder's alignment glue stay float32. A v1 fp16 file made before the first of these gave
# NaN audio from ~130 ids on; it was still served from the cache because v stayed 1.
DERIVATION_VERSION = 2

# The bar a variant must pass against int8 on the same tokens and voice (docs/variants.md):
# cosine of log-mel spectrograms in ~0.5 s windows, each lined up locally, which forgives the
# one-frame shifts that rounded durations cause and their sum over a long piece. Measured
# (the bench paragraph's five pieces, 1.8-22 s): fp32 scored 0.9916-0.9989, the same words
# in another voice 0.83-0.942. Plain ~85 ms windows without the lining up scored fp32 0.983-
# 0.9997 on short sentences but 0.927 on a 22 s piece; at speed 1.1 0.88-0.89, with the LSTM
# gates deliberately misordered 0.83-0.84.
PASS_LOG_MEL_COSINE = 0.97
# Rounded durations may shift a phoneme by a frame; a whole word more or less is a failure.
PASS_LENGTH_TOLERANCE = 0.03

# Ops that stay float32 in the fp16 graph. The duration and alignment path (Round, CumSum,
# Range, Gather...) turns floats into indices, where one fp16 rounding step changes the
# length; trig, Exp and the STFT shape the waveform's phase and magnitude; ReduceMean/Sqrt
# are the hand-written instance norms' mean and deviation (their squares: _is_square).
FP16_BLOCKED_OPS = (
    "LSTM",
    "STFT",
    "Sin",
    "Cos",
    "Atan",
    "Tanh",
    "Exp",
    "Pow",
    "Sqrt",
    "ReduceMean",
    "ReduceSum",
    "CumSum",
    "Range",
    "Round",
    "Floor",
    "Clip",
    "Gather",
    "GatherElements",
    "GatherND",
    "ScatterND",
    "NonZero",
    "Where",
    "Resize",
    "Sigmoid",
)

# Node-name scopes kept float32 whatever their op: the harmonic source accumulates f0 into
# a phase of thousands of radians (fp16 keeps ~3 digits, the sine would be noise), and the
# inverse STFT adds overlapping frames whose sum must cancel exactly.
FP16_BLOCKED_SCOPES = (
    "/decoder/decoder/generator/m_source/",
    "/decoder/decoder/generator/f0_upsamp/",
    "/decoder/decoder/generator/istft/",
)
# The generator's own glue ops (not its convolution blocks, which sit in sub-scopes) take
# the source's STFT to magnitude and atan2 phase: in fp16, tiny bins flush to zero and
# 0/0 gives NaN (measured). They are cheap, so all of them stay float32.
_GENERATOR = "/decoder/decoder/generator/"


# Ops that only move values. Optimizers give them generic names ("Transpose_token_36")
# outside every scope; one inside the phase path would still round it to fp16, so they
# follow the node that feeds them. Measured (af_heart, CPU): the harmonic phase grows by
# ~500 rad per id, 163,000 rad at 327 ids and 224,000 at 510; rounded to fp16 it is inf
# past ~130 ids, and sin(inf) made the audio NaN for pieces of 164 ids and more.
_DATA_MOVES = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Concat", "Split")


# The encoder's own glue ops (the predictor, BERT and the text encoder sit in sub-scopes)
# turn durations into the alignment matrix: durations / speed → Round → CumSum → frame
# indices cast to float and compared with the token bounds. fp16 holds integers exactly
# only up to 2048, and a 510-id piece at speed 0.5 runs to ~2160 frames: a frame index and
# a bound rounded alike would give a frame to two tokens. Cheap, so they stay float32 but
# for the MatMuls that apply the 0/1 alignment: each output is one fp16 feature copied, so
# fp16 is exact there, and a float32 MatMul at that spot crashed onnxruntime 1.32.0 at
# ORT_ENABLE_ALL (a segmentation fault while creating the session; measured).
_ENCODER = "/encoder/"


def _at_top_of(node: NodeProto, scope: str) -> bool:
    return node.name.startswith(scope) and "/" not in node.name[len(scope) :]


def _in_float32_scope(node: NodeProto) -> bool:
    alignment_glue = _at_top_of(node, _ENCODER) and node.op_type != "MatMul"
    at_top = _at_top_of(node, _GENERATOR) or alignment_glue
    return at_top or node.name.startswith(FP16_BLOCKED_SCOPES)


def _is_square(node: NodeProto) -> bool:
    """Mul(x, x): the instance norms' variance, the one fp16 value that grows with loudness.

    Measured on the v1 fp16 graph at 510 ids (af_heart, am_onyx, af_sky): the generator's
    AdaIN squares reached 21,700, a third of fp16's 65504, while every other fp16 tensor
    stayed below 200. A square doubles in magnitude per 1.4× louder activation, so it keeps
    float32 and feeds the float32 ReduceMean directly.
    """
    return node.op_type == "Mul" and len(node.input) == 2 and node.input[0] == node.input[1]


def _float32_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes the fp16 graph keeps float32 (besides FP16_BLOCKED_OPS)."""
    kept_outputs: set[str] = set()
    names = []
    for node in graph.node:  # topological order: a feeder is decided before its readers
        follows = node.op_type in _DATA_MOVES and any(i in kept_outputs for i in node.input)
        if follows or _in_float32_scope(node) or _is_square(node):
            kept_outputs.update(node.output)
            names.append(node.name)
    return names


# --- the graph index ---------------------------------------------------------------------


class _Graph:
    """Who makes and who reads each tensor, plus the float weights made so far (deduplicated)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.inits = {t.name: t for t in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output if out}
        self.readers: dict[str, list[NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.readers[name].append(node)
        self.made: dict[tuple[str, ...], str] = {}
        self.new_inits: list[TensorProto] = []

    def array(self, name: str) -> np.ndarray:
        if name not in self.inits:
            raise _unexpected(f"{name!r} is not an initializer")
        return numpy_helper.to_array(self.inits[name])

    def only_reader(self, tensor: str, op_type: str) -> NodeProto:
        """The single node reading `tensor`; the rewrite is only safe when it is the only one."""
        readers = self.readers.get(tensor, [])
        if len(readers) != 1 or readers[0].op_type != op_type:
            found = [r.op_type for r in readers]
            raise _unexpected(f"{tensor!r} should feed one {op_type}, feeds {found}")
        return readers[0]

    def weight(self, key: tuple[str, ...], make: Callable[[], np.ndarray]) -> str:
        """Name of the float weight built from `key`'s initializers, made once however many read it."""
        if key not in self.made:
            name = key[0].removesuffix("_quantized") + "_float"
            array = np.ascontiguousarray(make(), dtype=np.float32)
            self.new_inits.append(numpy_helper.from_array(array, name))
            self.made[key] = name
        return self.made[key]


def _unexpected(detail: str) -> AssetError:
    return AssetError(f"the model is not the int8 Kokoro graph this rewrite knows: {detail}")


def _dequantize(q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)


def _weight_scale(g: _Graph, scale_tensor: str) -> str:
    """The weight's scale initializer inside Mul(x_scale, w_scale): x_scale is a runtime value."""
    node = g.producer.get(scale_tensor)
    if node is None or node.op_type != "Mul":
        raise _unexpected(f"{scale_tensor!r} is not a product of scales")
    found = [name for name in node.input if name in g.inits]
    if len(found) != 1:
        raise _unexpected(f"{node.name!r} should multiply one constant scale")
    return str(found[0])


def _float_input(g: _Graph, node: NodeProto) -> str:
    """The float activation that DynamicQuantizeLinear quantized for `node`."""
    quantize = g.producer.get(node.input[0])
    if quantize is None or quantize.op_type != "DynamicQuantizeLinear":
        raise _unexpected(f"{node.name!r} does not read a dynamically quantized input")
    return str(quantize.input[0])


def _other_input(node: NodeProto, known: str) -> str:
    return str(next(name for name in node.input if name != known))


# --- the rewrites: each returns the float node and the nodes it replaces -----------------

_Rewrite = tuple[NodeProto, list[NodeProto]]


def _matmul(g: _Graph, node: NodeProto) -> _Rewrite:
    cast = g.only_reader(node.output[0], "Cast")
    mul = g.only_reader(cast.output[0], "Mul")
    w, w_zp = node.input[1], node.input[3]
    w_scale = _weight_scale(g, _other_input(mul, cast.output[0]))

    # B is [K, N] with one scale and zero point per output column N: broadcast along rows.
    def make() -> np.ndarray:
        return _dequantize(
            g.array(w), g.array(w_zp).reshape(1, -1), g.array(w_scale).reshape(1, -1)
        )

    weight = g.weight((w, w_zp, w_scale), make)
    new = helper.make_node("MatMul", [_float_input(g, node), weight], [mul.output[0]], node.name)
    return new, [node, cast, mul]


def _conv(g: _Graph, node: NodeProto) -> _Rewrite:
    # The int bias Add is there only when the float Conv had a bias.
    has_bias = [r.op_type for r in g.readers[node.output[0]]] == ["Add"]
    bias_add = g.only_reader(node.output[0], "Add") if has_bias else None
    cast = g.only_reader((bias_add or node).output[0], "Cast")
    mul = g.only_reader(cast.output[0], "Mul")
    w, w_zp = node.input[1], node.input[3]
    w_scale = _weight_scale(g, _other_input(mul, cast.output[0]))

    # Weight is [M, C/group, k...]; scale and zero point are per tensor or per output channel M.
    def make() -> np.ndarray:
        q = g.array(w)
        per_m = (-1,) + (1,) * (q.ndim - 1)
        return _dequantize(q, g.array(w_zp).reshape(per_m), g.array(w_scale).reshape(per_m))

    inputs = [_float_input(g, node), g.weight((w, w_zp, w_scale), make)]
    if bias_add:
        inputs.append(_float_bias(g, _other_input(bias_add, node.output[0])))
    new = helper.make_node("Conv", inputs, [mul.output[0]], node.name)
    new.attribute.extend(node.attribute)
    chain = [n for n in (node, bias_add, cast, mul) if n is not None]
    return new, chain


def _float_bias(g: _Graph, int_bias: str) -> str:
    """The float bias the int bias was computed from at run time (bias / scale → Floor → Cast → Reshape)."""
    name = int_bias
    while name not in g.inits:
        node = g.producer.get(name)
        if node is None or node.op_type not in ("Reshape", "Cast", "Floor", "Div"):
            raise _unexpected(f"cannot trace the float bias behind {int_bias!r}")
        name = node.input[0]
    if g.inits[name].data_type != TensorProto.FLOAT:
        raise _unexpected(f"bias {name!r} is not float")
    return name


def _lstm(g: _Graph, node: NodeProto) -> _Rewrite:
    # Inputs: X W R B seq_lens initial_h initial_c P | W_scale W_zp R_scale R_zp.
    # onnxruntime's quantizer transposes W [dirs, 4H, in] → [dirs, in, 4H] and keeps ONNX's
    # gate order (i, o, f, c), so transposing back restores the LSTM op's layout exactly.
    w, r = node.input[1], node.input[2]
    w_scale, w_zp, r_scale, r_zp = node.input[8:12]

    def restore(q: str, scale: str, zp: str) -> Callable[[], np.ndarray]:
        def make() -> np.ndarray:
            array = g.array(q)
            per_dir = (array.shape[0], 1, -1)  # per direction, or per direction and gate row
            float_w = _dequantize(
                array, g.array(zp).reshape(per_dir), g.array(scale).reshape(per_dir)
            )
            return float_w.transpose(0, 2, 1)

        return make

    inputs = [
        node.input[0],
        g.weight((w, w_scale, w_zp), restore(w, w_scale, w_zp)),
        g.weight((r, r_scale, r_zp), restore(r, r_scale, r_zp)),
        *node.input[3:8],
    ]
    while inputs and not inputs[-1]:
        inputs.pop()  # trailing optional inputs are omitted, not empty
    new = helper.make_node("LSTM", inputs, list(node.output), node.name)
    new.attribute.extend(node.attribute)
    return new, [node]


def _embedding(g: _Graph, node: NodeProto) -> _Rewrite | None:
    """Gather(uint8 table) → DequantizeLinear becomes a Gather from the dequantized table."""
    gather = g.producer.get(node.input[0])
    if gather is None or gather.op_type != "Gather" or gather.input[0] not in g.inits:
        return None
    table, scale, zp = gather.input[0], node.input[1], node.input[2]
    if g.array(scale).size != 1 or len(g.readers[gather.output[0]]) != 1:
        return None  # per-axis or shared: not the embedding pattern; leave it as it is
    weight = g.weight(
        (table, zp, scale), lambda: _dequantize(g.array(table), g.array(zp), g.array(scale))
    )
    new = helper.make_node("Gather", [weight, gather.input[1]], [node.output[0]], gather.name)
    new.attribute.extend(gather.attribute)
    return new, [node, gather]


_REWRITES: dict[str, Callable[[_Graph, NodeProto], _Rewrite | None]] = {
    "MatMulInteger": _matmul,
    "ConvInteger": _conv,
    "DynamicQuantizeLSTM": _lstm,
    "DequantizeLinear": _embedding,
}


# --- fp32 ----------------------------------------------------------------------------------


def to_float32(model: onnx.ModelProto) -> None:
    """Rewrite every quantized pattern of `model` into its float op, in place."""
    g = _Graph(model.graph)
    replace: dict[int, NodeProto | None] = {}
    for node in model.graph.node:
        rule = _REWRITES.get(node.op_type)
        done = rule(g, node) if rule else None
        if done:
            new, chain = done
            replace.update({id(old): None for old in chain})
            replace[id(node)] = new  # the float node takes the pattern's first place: order holds
    nodes = [replace.get(id(n), n) for n in model.graph.node]
    _set_nodes(model.graph, [n for n in nodes if n is not None])
    model.graph.initializer.extend(g.new_inits)
    _prune(model.graph)
    _share_identical_initializers(model.graph)


def _set_nodes(graph: onnx.GraphProto, nodes: list[NodeProto]) -> None:
    kept = [NodeProto() for _ in nodes]
    for copy, node in zip(kept, nodes, strict=False):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(kept)


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nobody needs, then the initializers and value infos left unread."""
    needed = {out.name for out in graph.output}
    live: list[NodeProto] = []
    for node in reversed(graph.node):  # nodes are in topological order: one backward pass
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(name for name in node.input if name)
    _set_nodes(graph, live[::-1])
    _keep_initializers(graph, needed)
    produced = {out for node in graph.node for out in node.output}
    kept_info = [vi for vi in graph.value_info if vi.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)


def _keep_initializers(graph: onnx.GraphProto, names: set[str]) -> None:
    kept = [t for t in graph.initializer if t.name in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _share_identical_initializers(graph: onnx.GraphProto) -> None:
    """Point every reader of a duplicate tensor at one copy, so each weight is stored once."""
    first: dict[tuple[int, tuple[int, ...], bytes], str] = {}
    rename: dict[str, str] = {}
    graph_inputs = {i.name for i in graph.input}
    for tensor in graph.initializer:
        if tensor.name in graph_inputs:
            continue  # an overridable input must keep its own name
        array = numpy_helper.to_array(tensor)
        key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(array.tobytes()).digest())
        rename[tensor.name] = first.setdefault(key, tensor.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if rename.get(name, name) != name:
                node.input[i] = rename[name]
    _keep_initializers(graph, set(first.values()) | graph_inputs)


# --- fp16 ----------------------------------------------------------------------------------


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp16 graph of an fp32 one: float32 inputs and outputs, blocked parts kept float32."""
    from onnxruntime.transformers import float16

    converted: onnx.ModelProto = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=list(FP16_BLOCKED_OPS),
        node_block_list=_float32_nodes(model.graph),
    )
    _skip_fp16_round_trips(converted.graph)
    _drop_repeated_nodes(converted.graph)
    _unique_node_names(converted.graph)
    _sort_topologically(converted.graph)  # the converter appends its casts at the end
    _prune(converted.graph)
    return converted


def _sort_topologically(graph: onnx.GraphProto) -> None:
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise _unexpected(f"cycle or missing input near {waiting[0].name!r}")
        pending = waiting
    _set_nodes(graph, ordered)


def _skip_fp16_round_trips(graph: onnx.GraphProto) -> None:
    """Read float32 results directly where the converter routed them through fp16 and back.

    The converter casts every blocked node's output to fp16 and casts it back to fp32 for
    the next blocked node, so a float32 region would still pass through fp16 at each edge.
    """
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        for i, name in enumerate(node.input):
            back = producer.get(name)
            if back is None or not _is_cast(back, TensorProto.FLOAT):
                continue
            down = producer.get(back.input[0])
            if down is not None and _is_cast(down, TensorProto.FLOAT16) and _from_fp32(down):
                node.input[i] = down.input[0]


def _is_cast(node: NodeProto, to: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == to for a in node.attribute)


def _from_fp32(cast: NodeProto) -> bool:
    # The converter names the casts it puts after blocked (float32) nodes "..._cast_to_fp16_node".
    return cast.name.endswith("_cast_to_fp16_node")


def _drop_repeated_nodes(graph: onnx.GraphProto) -> None:
    """Keep one of identical nodes making the same tensor.

    Some onnxruntime versions emit one Cast per reader of a shared float16 initializer, all
    with the same node and output names: an invalid graph. Identical copies are redundant.
    """
    made: dict[str, bytes] = {}
    kept = []
    for node in graph.node:
        body = node.SerializeToString()
        copies = [made.get(out) for out in node.output]
        if copies and all(c == body for c in copies):
            continue
        if any(c is not None for c in copies):
            raise _unexpected(f"two different nodes make {node.output[0]!r}")
        made.update(dict.fromkeys(node.output, body))
        kept.append(node)
    _set_nodes(graph, kept)


def _unique_node_names(graph: onnx.GraphProto) -> None:
    """Shared initializers can make the converter emit two casts with one name: rename the later ones."""
    seen: set[str] = set()
    for node in graph.node:
        name, n = node.name, 1
        while name in seen:
            name, n = f"{node.name}_{n}", n + 1
        node.name = name
        seen.add(name)


# --- files -----------------------------------------------------------------------------------


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise InputError(
            f"unknown model variant {variant!r}; valid variants: {', '.join(VARIANTS)}"
        )


def derive(int8_path: Path, variant: str, out_path: Path) -> None:
    """Write the `variant` graph derived from the int8 graph at `int8_path` to `out_path`."""
    _check_variant(variant)
    model = onnx.load(str(int8_path))
    if variant != "int8":
        to_float32(model)
    if variant == "fp16":
        model = to_float16(model)
    model.producer_name = "kokoro-nb"
    model.doc_string = (
        f"Kokoro-82M {variant}, derived from {int8_path.name} (v{DERIVATION_VERSION})"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_onnx(model, out_path)


def variant_path(cache_dir: Path, variant: str) -> Path:
    return cache_dir / f"kokoro-v1.0.{variant}.onnx"


def ensure_variant(int8_path: Path, variant: str, cache_dir: Path) -> Path:
    """The graph file of `variant`: the int8 file itself, else a cached derivation (made if stale)."""
    _check_variant(variant)
    if variant == "int8":
        return int8_path
    out = variant_path(cache_dir, variant)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Two kernels starting at once would both spend a minute deriving; one waits instead.
    with FileLock(str(out) + ".lock"):
        source = _source_record(int8_path, out)
        if not _current(out, source):
            derive(int8_path, variant, out)
            _write_sidecar(out, source)
    return out


def _sidecar(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def _read_sidecar(out: Path) -> dict[str, Any]:
    data = read_stamp(_sidecar(out))
    return data if isinstance(data, dict) else {}


def _source_record(int8_path: Path, out: Path) -> dict[str, Any]:
    """What the variant was derived from; hashing 92 MB is skipped while size and mtime match."""
    stat = int8_path.stat()
    record: dict[str, Any] = {
        "derivation_version": DERIVATION_VERSION,
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
    }
    old = _read_sidecar(out)
    same_file = all(old.get(k) == v for k, v in record.items() if k != "derivation_version")
    record["source_sha256"] = old.get("source_sha256") if same_file else file_sha256(int8_path)
    return record


def _current(out: Path, source: dict[str, Any]) -> bool:
    old = _read_sidecar(out)
    keys = ("derivation_version", "source_sha256")
    fresh = bool(old) and all(old.get(k) == source[k] for k in keys)
    return fresh and out.is_file() and out.stat().st_size == old.get("size")


def _write_sidecar(out: Path, source: dict[str, Any]) -> None:
    write_stamp(_sidecar(out), {**source, "size": out.stat().st_size})


# --- checking a variant against int8 -----------------------------------------------------


def similarity(a: np.ndarray, b: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """How close audio `b` is to reference `a`: SNR, log-mel cosines and mel distance.

    Lengths are aligned by trimming to the shorter. SNR is strict (a phase shift of a few
    samples ruins it); the log-mel figures compare what is heard and ignore phase.
    `log_mel_cosine` compares 10.7 ms frames, `log_mel_cosine_pooled` ~85 ms windows,
    `log_mel_cosine_aligned` ~0.5 s windows each lined up locally (the pass bar's figure),
    `mel_distance_db` is the mean absolute difference per mel bin.
    """
    n = min(len(a), len(b))
    x, y = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("audio holds NaN or infinity: there is nothing to compare")
    noise = float(np.sum((x - y) ** 2))
    signal = float(np.sum(x**2))
    snr = 10 * np.log10(signal / noise) if noise > 0 else float("inf")
    mx, my = _log_mel(x, sample_rate), _log_mel(y, sample_rate)
    return {
        "snr_db": float(snr),
        "log_mel_cosine": _cosine(mx, my),
        "log_mel_cosine_pooled": _cosine(_pool(mx), _pool(my)),
        "log_mel_cosine_aligned": _aligned_cosine(mx, my),
        "mel_distance_db": float(np.mean(np.abs(mx - my))),
        "length_ratio": len(b) / max(len(a), 1),
    }


def passes(figures: dict[str, float]) -> bool:
    """Whether `similarity` figures say the variant speaks like int8 (the bar above)."""
    return (
        figures["log_mel_cosine_aligned"] >= PASS_LOG_MEL_COSINE
        and abs(figures["length_ratio"] - 1) <= PASS_LENGTH_TOLERANCE
    )


def _aligned_cosine(a: np.ndarray, b: np.ndarray, window: int = 48, reach: int = 2) -> float:
    """Mean log-mel cosine over ≈0.5 s windows, each lined up with `b` within ±`reach` frames
    of where the window before matched.

    Rounded durations move a phoneme by a frame now and then; over a long piece the moves
    add up, and a plain comparison then faults the same speech for arriving later. Two
    frames per window follow a drift of up to 4 %; a wider reach lets another voice's
    speech chase a match (measured: reach 4 scored another voice up to 0.959, reach 2 0.942).
    """
    if len(a) <= window or len(b) <= window:
        return _cosine(a, b[: len(a)]) if len(b) >= len(a) else _cosine(a[: len(b)], b)
    scores, offset = [], 0
    for start in range(0, len(a) - window + 1, window):
        part = a[start : start + window]
        shifts = [
            s
            for s in range(offset - reach, offset + reach + 1)
            if 0 <= start + s <= len(b) - window
        ]
        if not shifts:
            break
        best = max(shifts, key=lambda s: _cosine(part, b[start + s : start + s + window]))
        scores.append(_cosine(part, b[start + best : start + best + window]))
        offset = best
    return float(np.mean(scores))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _pool(frames: np.ndarray, width: int = 8) -> np.ndarray:
    usable = max(len(frames) // width, 1) * width
    padded = np.pad(frames, ((0, max(usable - len(frames), 0)), (0, 0)))[:usable]
    pooled: np.ndarray = padded.reshape(-1, width, frames.shape[1]).mean(axis=1)
    return pooled


def _log_mel(x: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Log-mel spectrogram in dB above an 80 dB floor (0 = silence), so cosine weighs sound, not silence."""
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = power @ _mel_filters(sample_rate, n_fft).T
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    floored: np.ndarray = np.maximum(db - db.max() + 80.0, 0.0)
    return floored


def _mel_filters(sample_rate: int, n_fft: int, bands: int = 80) -> np.ndarray:
    def to_mel(f: np.ndarray) -> np.ndarray:
        return 2595 * np.log10(1 + f / 700)

    edges = 700 * (10 ** (np.linspace(0, to_mel(np.array(sample_rate / 2)), bands + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lo) / (mid - lo)
    falling = (hi - freqs) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))
