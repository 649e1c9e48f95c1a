"""The GPU smoke script's CPU mode: the same path as on a GPU (build, torchrun with gloo, throughput)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from factory.pipeline import STAGES

ROOT = Path(__file__).resolve().parent.parent


def run_smoke(device: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_smoke", "--device", device, "--json", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gpu_smoke_runs_the_whole_path_on_the_cpu(tmp_path: Path) -> None:
    result = run_smoke("cpu", tmp_path)
    assert result["ok"] and result["device"] == "cpu"
    build = result["build"]
    assert build["picks"] > 0 and build["precision"] == "fp32"
    assert set(build["stages"]) == set(STAGES)
    assert result["torchrun"] == result["torchrun"] | {"ok": True, "backend": "gloo", "returncode": 0}
    assert result["throughput"]["train_images_per_s"] > 0 and result["throughput"]["eval_images_per_s"] > 0
    assert result["gpu_utilisation"] is None or result["gpu_utilisation"]["samples"] >= 0


@pytest.mark.gpu
def test_gpu_smoke_on_cuda(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: run `python -m benchmarks.gpu_smoke --device cuda --json` on one")
    result = run_smoke("cuda", tmp_path)
    assert result["ok"] and result["torchrun"]["backend"] == "nccl"
    assert result["build"]["precision"] in ("bf16", "fp16")
