"""The GPU smoke script's CPU mode: the same path as on a GPU (build, torchrun with gloo, throughput)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from factory.pipeline import STAGES

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(module: str, *args: str) -> dict:
    """`python -m benchmarks.<module> ARGS --json` from the checkout; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args, "--json"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_smoke(device: str, out: Path) -> dict:
    return run_benchmark("gpu_smoke", "--device", device, "--out", str(out))


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


def run_throughput(out: Path, *extra: str) -> dict:
    from factory.recipe import recipe_from_dict, save_recipe
    from factory.testing import TINY

    recipe = out / "tiny.yaml"
    save_recipe(recipe_from_dict(TINY, "tiny"), recipe)
    args = ["--device", "cpu", "--recipe", str(recipe), "--train-images", "128", "--val-images", "64"]
    return run_benchmark("gpu_throughput", *args, *extra)


def test_the_gpu_throughput_benchmark_measures_profiles_and_projects_on_the_cpu(tmp_path: Path) -> None:
    result = run_throughput(tmp_path, "--batch-sizes", "32,64", "--profile")
    assert result["ok"] and [r["batch_size"] for r in result["train"]] == [32, 64]
    assert all(r["warmup_images_per_s"] > 0 and r["elastic_images_per_s"] > 0 for r in result["train"])
    assert result["eval"]["eval_images_per_s"] > 0 and result["eval"]["evaluation_seconds"] > 0
    assert result["profile"]["steps"] > 0 and result["profile"]["wall_ms_per_step"] > 0
    for name in ("with_supernet", "from_scratch"):
        projection = result["projection"][name]
        assert projection["measured_seconds"] > 0 and projection["estimate_line"].startswith("estimated time: ~")
    assert result["projection"]["from_scratch"]["measured_stages"]["train"] > 0


def test_the_step_probe_times_repeated_and_new_sub_networks(tmp_path: Path) -> None:
    costs = run_throughput(tmp_path, "--probe")["step_costs"]
    assert set(costs) == {"fp32-cudnnon", "fp32-cudnnoff"} | {"bf16-cudnnon", "bf16-cudnnoff"}
    assert all(len(v["same_subnets_s"]) == len(v["new_subnets_s"]) == 4 for v in costs.values())
