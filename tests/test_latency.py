"""Latency runners: the documented bench.json record, fixed-count and fixed-duration timing, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from factory.bench import BENCH_FORMAT, bench_model
from factory.bench.stats import latency_summary
from factory.bench.timing import time_calls
from factory.graphs.onnx import export_onnx
from factory.nn import StaticNetwork
from factory.space import SpaceSpec, smallest_config

LATENCY_KEYS = {"unit", "count", "mean", "std", "min", "max", "p50", "p90", "p95", "p99"}


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    spec = SpaceSpec(
        kind="ee-dense",
        num_classes=3,
        resolutions=(16,),
        stem_channels=8,
        first_block_channels=8,
        stage_channels=(8, 8, 8, 8, 8),
    )
    net = StaticNetwork(spec, smallest_config(spec).with_exit(2)).eval()
    return export_onnx(net, tmp_path_factory.mktemp("latency") / "exit2.onnx", 16)


def test_summary_percentiles():
    s = latency_summary([0.001 * i for i in range(1, 101)])
    assert set(s) == LATENCY_KEYS and s["unit"] == "ms" and s["count"] == 100
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01) and s["min"] == pytest.approx(1.0)


def test_fixed_count_and_fixed_duration():
    calls = []
    times = time_calls(lambda: calls.append(1), warmup=3, iterations=7)
    assert len(times) == 7 and len(calls) == 10
    times = time_calls(lambda: None, warmup=0, iterations=20, duration_s=0.02)
    assert len(times) >= 10


def test_onnxruntime_record_has_the_documented_schema(onnx_file):
    record = bench_model(onnx_file, "onnxruntime", batch_sizes=(1, 4), warmup=2, iterations=5, threads=1)
    assert record["format"] == BENCH_FORMAT and record["runtime"] == "onnxruntime"
    assert record["provider"] == "CPUExecutionProvider" and record["threads"] == 1
    assert record["input"] == {"name": "image", "shape": [None, 3, 16, 16]}
    assert {"hostname", "processor", "logical_cpus", "python"} <= set(record["machine"])
    assert [r["batch"] for r in record["results"]] == [1, 4]
    for r in record["results"]:
        assert set(r["latency"]) == LATENCY_KEYS and r["latency"]["count"] == 5
        assert r["throughput"]["unit"] == "images/s" and r["throughput"]["value"] > 0
    json.dumps(record)


def test_unknown_runtime_and_missing_provider(onnx_file):
    with pytest.raises(ValueError, match="unknown runtime"):
        bench_model(onnx_file, "tflite")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
            bench_model(onnx_file, "onnxruntime", device="cuda")


BLOCKER = """
import sys, importlib.abc
HEAVY = {"torch", "torchvision", "fvcore", "sklearn", "lightgbm", "catboost", "pymoo", "matplotlib", "scipy"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{name} is not installed on this device")
sys.meta_path.insert(0, Block())
from factory.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_factory_bench_needs_only_onnxruntime(onnx_file, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-c",
        BLOCKER,
        "bench",
        str(onnx_file),
        "--iterations",
        "5",
        "--batch",
        "1,2",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "p50" in done.stdout
    record = json.loads(out.read_text())
    assert [r["batch"] for r in record["results"]] == [1, 2]


def test_factory_bench_bad_input_is_one_line(tmp_path, onnx_file):
    from click.testing import CliRunner

    from factory.cli import main

    result = CliRunner().invoke(main, ["bench", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2 and "not found" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["bench", str(onnx_file), "--batch", "0"])
    assert result.exit_code == 2 and "--batch" in result.output


@pytest.mark.gpu
def test_tensorrt_engine_builds_and_runs(onnx_file, tmp_path):
    from factory.graphs import tensorrt as trt_export

    reason = trt_export.unavailable_reason()
    if reason:
        pytest.skip(f"TensorRT path untested here: {reason}")
    record = trt_export.build_engine(onnx_file, tmp_path / "exit2.engine", trt_export.EngineProfile(16, 1, 4, 8))
    assert record["status"] == "built" and (tmp_path / "exit2.engine").stat().st_size > 0
    assert trt_export.read_record(tmp_path / "exit2.engine")["environment"]["tensorrt"]
    bench = bench_model(tmp_path / "exit2.engine", "tensorrt", batch_sizes=(1, 8), warmup=2, iterations=5)
    assert bench["runtime"] == "tensorrt" and bench["results"][1]["latency"]["count"] == 5


def test_tensorrt_skip_reason_is_stated():
    from factory.graphs import tensorrt as trt_export

    reason = trt_export.unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and CUDA are present; the gpu-marked test covers the build")
    assert "TensorRT" in reason or "CUDA" in reason
    assert trt_export.describe(trt_export.skipped(reason)).startswith("skipped: ")
    if torch.cuda.is_available():
        return
    assert "CUDA" in reason or "not installed" in reason
