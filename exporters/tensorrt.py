"""TensorRT engines from the exported ONNX graphs (GPU machines only).

The engine is built with TensorRT's Python API (builder -> network -> ONNX parser -> builder config with
workspace limit, one optimisation profile over the batch axis, and a timing cache shared by every build of
the run). FP16: TensorRT 10 sets the FP16 builder flag when the GPU has fast FP16; TensorRT 11 removed the
precision flags, so there the network is created strongly typed and FP16 comes from an FP16 ONNX graph.
An engine only runs on the TensorRT / CUDA version and GPU it was built for, so those are written beside it.
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

    `fp16_onnx_path` is the FP16 graph TensorRT 11 needs for a strongly typed FP16 engine; on TensorRT 10 the
    FP32 graph plus the FP16 flag is used instead.
    """
    import tensorrt as trt

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = tensorrt_major()
    strongly_typed = major >= 11 and profile.fp16 and fp16_onnx_path is not None
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    source = Path(fp16_onnx_path if strongly_typed else onnx_path)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {source}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_mb << 20)
    precision = "fp32"
    if strongly_typed:
        precision = "fp16 (strongly typed)"
    elif profile.fp16 and major < 11 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        precision = "fp16"
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
        "profile": {"min": profile.min_batch, "opt": profile.opt_batch, "max": profile.max_batch},
        "workspace_mb": profile.workspace_mb,
        "build_s": round(time.perf_counter() - started, 3),
        "environment": environment(),
    }
    write_json_atomic(engine_path.with_suffix(engine_path.suffix + ".json"), record)
    return record


def skipped(reason: str) -> dict[str, Any]:
    """The record of a TensorRT step that did not run, and why."""
    return {"status": "skipped", "reason": reason}


def describe(record: dict[str, Any]) -> str:
    """One line for tables: 'built fp16 (TensorRT 10.x, GPU)' or 'skipped: reason'."""
    if record.get("status") == "built":
        env = record.get("environment", {})
        return f"built {record.get('precision')} (TensorRT {env.get('tensorrt')}, {env.get('gpu')})"
    return f"{record.get('status', 'unknown')}: {record.get('reason', '')}".rstrip(": ")


def read_record(engine_path: str | Path) -> dict[str, Any]:
    """The versions record written beside an engine."""
    path = Path(engine_path)
    return json.loads(path.with_suffix(path.suffix + ".json").read_text())
