"""TensorRT engines from the exported ONNX graphs (GPU machines only).

The engine is built with TensorRT's Python API (builder -> network -> ONNX parser -> builder config with
workspace limit, one optimisation profile over the batch axis, and a timing cache shared by every build of
the run). FP16: TensorRT 10 sets the FP16 builder flag when the GPU has fast FP16; TensorRT 11 removed the
precision flags, so there the network is strongly typed and FP16 comes from the FP16 ONNX graph
(`factory.graphs.onnx.fp16_graph`). Either way the engine's interface is the ONNX file's: float32 `image` in,
float32 `logits` out (FP16 only inside). An engine only runs on the TensorRT / CUDA version and GPU it was built
for, so those are written beside it (`<engine>.json`, with the accuracy check of `factory.export.engine_check`).
Without TensorRT or CUDA nothing is written and the caller records why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.io import write_bytes_atomic, write_json_atomic


@dataclass(frozen=True)
class EngineProfile:
    """Batch sizes of the optimisation profile and the build settings (from the recipe's export.tensorrt)."""

    resolution: int
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 64
    fp16: bool = True
    workspace_mb: int = 1024


def unavailable_reason() -> str | None:
    """Why a TensorRT engine cannot be built here, or None when it can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install 'factory[tensorrt]' on a machine with an NVIDIA GPU)"
    try:
        import torch
    except ImportError:
        return "PyTorch is needed to find the CUDA device"
    if not torch.cuda.is_available():
        return "no CUDA device is visible"
    return None


def tensorrt_major() -> int:
    """Installed TensorRT's major version (10, 11, ...)."""
    import tensorrt as trt

    return int(trt.__version__.split(".")[0])


def environment() -> dict[str, Any]:
    """TensorRT, CUDA and GPU versions: an engine is only valid where all three match."""
    import tensorrt as trt
    import torch

    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {
        "tensorrt": trt.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(index),
        "compute_capability": f"{major}.{minor}",
        "driver": _driver_version(),
    }


def _driver_version() -> str | None:
    try:
        import subprocess

        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except Exception:
        return None


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    profile: EngineProfile,
    timing_cache: str | Path | None = None,
    fp16_onnx_path: str | Path | None = None,
) -> dict[str, Any]:
    """Build and write a serialised engine; returns the record written beside it (`<engine>.json`).

    `fp16_onnx_path` is the FP16 graph TensorRT 11 needs for a strongly typed FP16 engine (float32 input and
    output, Casts at the boundaries); on TensorRT 10 the FP32 graph plus the FP16 flag is used instead, with the
    network's input and output pinned to float32 linear tensors. The record's "precision" is the build
    precision, "fp16" or "fp32"; FP32 builds turn TensorRT's TF32 default off, so "fp32" means FP32 math.
    """
    import tensorrt as trt

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = tensorrt_major()
    strongly_typed = major >= 11  # TensorRT 11 has strong typing only
    from_fp16_graph = strongly_typed and profile.fp16 and fp16_onnx_path is not None
    network = builder.create_network(_network_flags(trt, strongly_typed))
    parser = trt.OnnxParser(network, logger)
    source = Path(fp16_onnx_path if from_fp16_graph else onnx_path)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {source}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_mb << 20)
    precision = "fp16" if from_fp16_graph else "fp32"
    if not strongly_typed:
        _pin_float32_io(trt, network)
        if profile.fp16 and getattr(builder, "platform_has_fast_fp16", True):
            config.set_flag(trt.BuilderFlag.FP16)
            precision = "fp16"
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if precision == "fp32" and tf32 is not None:
        config.clear_flag(tf32)  # TF32 rounds matmul inputs to FP16's 10-bit mantissa: not what "fp32" says
    shape = (3, profile.resolution, profile.resolution)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(
        network.get_input(0).name,
        (profile.min_batch, *shape),
        (profile.opt_batch, *shape),
        (profile.max_batch, *shape),
    )
    config.add_optimization_profile(opt_profile)
    cache_file = Path(timing_cache) if timing_cache else None
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file and cache_file.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):  # made by another GPU or TensorRT version
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {source}")
    engine_path = Path(engine_path)
    write_bytes_atomic(engine_path, bytes(serialized))
    final_cache = config.get_timing_cache()
    if cache_file is not None and final_cache is not None:
        write_bytes_atomic(cache_file, bytes(final_cache.serialize()))
    record = {
        "status": "built",
        "engine": engine_path.name,
        "onnx": source.name,
        "precision": precision,
        "strongly_typed": strongly_typed,
        "profile": {"min": profile.min_batch, "opt": profile.opt_batch, "max": profile.max_batch},
        "workspace_mb": profile.workspace_mb,
        "build_s": round(time.perf_counter() - started, 3),
        "environment": environment(),
    }
    write_json_atomic(engine_path.with_suffix(engine_path.suffix + ".json"), record)
    return record


def _network_flags(trt: Any, strongly_typed: bool) -> int:
    """Network creation flags: STRONGLY_TYPED where asked for and the flag still exists (TensorRT 11 networks
    are strongly typed whatever the flags say)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 1 << int(flag) if strongly_typed and flag is not None else 0


def _pin_float32_io(trt: Any, network: Any) -> None:
    """Weakly typed (TensorRT 10) builds: keep every float input and output a float32 linear tensor, so the FP16
    flag changes only the inside of the engine, never the interface the ONNX file documents."""
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    for tensor in tensors:
        if tensor.dtype in (trt.float32, trt.float16):
            tensor.dtype = trt.float32
            tensor.allowed_formats = 1 << int(trt.TensorFormat.LINEAR)


def skipped(reason: str) -> dict[str, Any]:
    """The record of a TensorRT step that did not run, and why."""
    return {"status": "skipped", "reason": reason}


def build_precision(record: dict[str, Any] | None) -> str:
    """The precision an engine was built in, "fp16" or "fp32", from its record ("unknown" without one).

    Records written before the precision was a bare word said "fp16 (strongly typed)"; the first word counts.
    """
    words = str((record or {}).get("precision") or "").split()
    return words[0] if words and words[0] in ("fp16", "fp32") else "unknown"


def describe(record: dict[str, Any]) -> str:
    """One line for tables: 'built fp16 (TensorRT 10.x, GPU), top-1 agreement 100.00%, max abs diff ...',
    'failed: accuracy check: ...' or 'skipped: reason'."""
    status = record.get("status", "unknown")
    if status == "built":
        env = record.get("environment", {})
        line = f"built {build_precision(record)} (TensorRT {env.get('tensorrt')}, {env.get('gpu')})"
        check = record.get("check")
        if not check:
            return line + ", not accuracy-checked"
        return (
            f"{line}, top-1 agreement {check['top1_agreement']:.2%}, max abs diff {check['max_abs_diff']:.2g} "
            f"<= {check['tolerance']:.2g}"
        )
    return f"{status}: {record.get('reason', '')}".rstrip(": ")


def read_record(engine_path: str | Path) -> dict[str, Any]:
    """The versions record written beside an engine."""
    path = Path(engine_path)
    return json.loads(path.with_suffix(path.suffix + ".json").read_text())
