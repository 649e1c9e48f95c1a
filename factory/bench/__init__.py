"""Latency of exported models: onnxruntime, eager PyTorch and TensorRT runners behind one function.

`bench_model` warms up, times a fixed number of calls (or a fixed duration) at each batch size, and returns
the bench.json record (schema in the README, format "factory-bench/1"). Runners import their runtime only
when chosen, so benchmarking an ONNX file needs nothing but numpy and onnxruntime.
"""

from __future__ import annotations

import datetime as _dt
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factory.bench.environment import machine
from factory.bench.stats import latency_summary, throughput
from factory.bench.timing import time_calls

BENCH_FORMAT = "factory-bench/1"
RUNNERS = {
    "onnxruntime": ("factory.bench.onnxruntime_runner", "OnnxRuntimeRunner"),
    "torch": ("factory.bench.torch_runner", "TorchRunner"),
    "tensorrt": ("factory.graphs.tensorrt_runner", "TensorRTRunner"),
}


def open_runner(path: str | Path, runtime: str = "onnxruntime", threads: int = 0, device: str | None = None):
    """The runner of `runtime` for the model at `path` (device: provider for onnxruntime, cpu/cuda for torch)."""
    if runtime not in RUNNERS:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNNERS)}")
    module, name = RUNNERS[runtime]
    cls = getattr(importlib.import_module(module), name)
    if device is None:
        return cls(path, threads)
    return cls(path, threads, device)


def bench_model(
    path: str | Path,
    runtime: str = "onnxruntime",
    batch_sizes: Sequence[int] = (1, 32),
    warmup: int = 10,
    iterations: int = 200,
    duration_s: float = 0.0,
    threads: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """Time `path` at every batch size and return the bench.json record."""
    path = Path(path)
    runner = open_runner(path, runtime, threads, device)
    results = []
    for batch in batch_sizes:
        seconds = time_calls(runner.call(int(batch)), warmup, iterations, duration_s, runner.synchronize)
        latency = latency_summary(seconds)
        results.append({"batch": int(batch), "latency": latency, "throughput": throughput(int(batch), latency)})
    return {
        "format": BENCH_FORMAT,
        "model": path.name,
        "model_bytes": path.stat().st_size,
        **runner.info(),
        "settings": {"warmup": warmup, "iterations": iterations, "duration_s": duration_s},
        "results": results,
        "machine": machine(),
        "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
