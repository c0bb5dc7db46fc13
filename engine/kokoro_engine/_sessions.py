"""Building warm ONNX Runtime sessions: which providers, which threads, which options."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import threading
from pathlib import Path
from typing import Any

from . import _assets as assets
from ._errors import InputError
from ._pool import ACCELERATORS, AUTO_ACCELERATORS, CPU, Lane
from ._split import SplitSession, split_paths

# Per-provider options a careful engineer would set by hand. Every Kokoro call has a new
# input shape, so an exhaustive cuDNN search would re-run on every call.
PROVIDER_OPTIONS: dict[str, dict[str, str]] = {
    "CUDAExecutionProvider": {"cudnn_conv_algo_search": "HEURISTIC"},
    "CoreMLExecutionProvider": {"MLComputeUnits": "ALL"},
}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return [p for p in ort.get_available_providers() if p in (*ACCELERATORS, CPU)]


def choose_providers(requested: list[str] | None) -> list[str]:
    """The providers to build sessions for: the best accelerator present, and always the CPU."""
    present = available_providers()
    if requested is None and os.environ.get("KOKORO_NB_PROVIDERS"):
        requested = [p.strip() for p in os.environ["KOKORO_NB_PROVIDERS"].split(",") if p.strip()]
    if requested is None:
        chosen = [p for p in AUTO_ACCELERATORS if p in present][:1]
    else:
        missing = [p for p in requested if p not in present]
        if missing:
            raise InputError(
                f"execution provider(s) {', '.join(missing)} not available in this onnxruntime; "
                f"available: {', '.join(present)} (for CUDA: pip install 'kokoro-nb[gpu]')"
            )
        chosen = [p for p in requested if p != CPU]
    return [*chosen, CPU]


def cpu_layout(cores: int | None = None) -> tuple[int, int, int]:
    """(latency threads, throughput lanes, threads per throughput lane) for this many cores.

    Measured on 2 cores (docs/architecture.md): one piece wants every core (latency); several pieces
    run best side by side on one thread each (throughput). Past 4 lanes the copies of the
    weights cost more memory than the parallelism gives back.
    """
    cores = cores or os.cpu_count() or 1
    lanes = min(cores, 4)
    return min(cores, 8), (lanes if cores > 1 else 0), max(1, cores // lanes)


def _options(threads: int, *, optimized: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if optimized
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning workers burn the cores other sessions are about to use.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def build_session(
    model: Path, provider: str, threads: int = 0, options: dict[str, str] | None = None
) -> Any:
    import onnxruntime as ort

    providers: list[Any] = [(provider, {**PROVIDER_OPTIONS.get(provider, {}), **(options or {})})]
    if provider != CPU:
        providers.append(CPU)
        return ort.InferenceSession(str(model), _options(threads), providers=providers)
    optimized = _optimized_path(model)
    if optimized.is_file():
        try:
            return ort.InferenceSession(
                str(optimized), _options(threads, optimized=True), providers=providers
            )
        except Exception:  # a damaged cache entry: rebuild it from the source model
            optimized.unlink(missing_ok=True)
    session_options = _options(threads)
    temp = optimized.with_name(f"{optimized.name}.{os.getpid()}.{threading.get_ident()}.part")
    with contextlib.suppress(OSError):
        optimized.parent.mkdir(parents=True, exist_ok=True)
        session_options.optimized_model_filepath = str(temp)
    session = ort.InferenceSession(str(model), session_options, providers=providers)
    with contextlib.suppress(OSError):
        os.replace(temp, optimized)
    return session


def _optimized_path(model: Path) -> Path:
    """Where the CPU-optimized graph of `model` is cached: loading it skips ~0.5 s of graph
    optimization. The optimizations are specific to this CPU and onnxruntime, so both are
    part of the key, with the source file's size and mtime."""
    import onnxruntime as ort

    stat = model.stat()
    key = (
        f"{model.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ort.__version__}|{_cpu_signature()}"
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return assets.cache_dir() / "optimized" / f"{model.stem}.{digest}.onnx"


def _cpu_signature() -> str:
    try:
        flags = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        flags = ""
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def model_session(
    model: Path,
    provider: str,
    threads: int = 0,
    options: dict[str, str] | None = None,
    *,
    split: bool = True,
) -> Any:
    """A session for `model`, as prosody + decoder parts when the graph cuts (see _split)."""
    parts = split_paths(model, assets.cache_dir()) if split else None
    if parts is None:
        return build_session(model, provider, threads, options)
    prosody, decoder = (build_session(part, provider, threads, options) for part in parts)
    return SplitSession(prosody, decoder)


def cpu_lane(model: Path, name: str, threads: int, role: str, *, split: bool = True) -> Lane:
    return Lane(name, CPU, model_session(model, CPU, threads, split=split), threads, role)


def latency_lane(model: Path, *, split: bool = True) -> Lane:
    return cpu_lane(model, "cpu-latency", cpu_layout()[0], "latency", split=split)


def throughput_lane_specs() -> list[tuple[str, int]]:
    """(name, threads) of each CPU throughput lane for this machine."""
    _, count, threads = cpu_layout()
    return [(f"cpu-{i + 1}", threads) for i in range(count)]


def accelerator_lane(
    model: Path, provider: str, options: dict[str, str] | None = None, *, split: bool = True
) -> Lane:
    """One session on an accelerator. `options` override PROVIDER_OPTIONS, e.g. CoreML's
    {"MLComputeUnits": "CPUAndNeuralEngine"} (or "CPUAndGPU", "CPUOnly", "ALL")."""
    short = provider.removesuffix("ExecutionProvider").lower()
    return Lane(
        short, provider, model_session(model, provider, 0, options, split=split), 0, "latency"
    )
