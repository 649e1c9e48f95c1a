"""The GPU path in one short run: a tiny digits build on the device, a torchrun epoch, throughput, utilisation.

    python -m benchmarks.gpu_smoke --device cuda --json      # on a GPU machine: at most a few minutes
    python -m benchmarks.gpu_smoke --device cpu --json       # the same path on the CPU (gloo); the tests run it

Steps, each timed:
1. `factory build` of a tiny digits recipe (`factory.testing.TINY`) on the device: super-network training at
   the run's precision (bf16 or fp16 with a gradient scaler on CUDA, fp32 on a CPU), evaluation, search,
   post-processing, ONNX export (TensorRT engines, accuracy-checked, where TensorRT is installed) and the
   latency bench;
2. one training epoch under torchrun with one process (NCCL on CUDA, gloo on a CPU): the rank's device, the
   process group and the collective that averages the logged metrics;
3. training throughput (the build's elastic epochs, images/s) and evaluation throughput (the search's
   evaluator over the validation split, images/s);
4. GPU utilisation during the build, sampled from `nvidia-smi` every half second when it is present.
Human lines go to stderr; with --json the last stdout line is the result. Exit code 1 when a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import run_cli
from factory.recipe import Recipe, recipe_from_dict, save_recipe
from factory.testing import TINY, TINY_BUDGET


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class UtilisationSampler:
    """Samples `nvidia-smi`'s GPU utilisation in a thread; no samples where the tool is absent."""

    def __init__(self, period_s: float = 0.5) -> None:
        self.period = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._tool = shutil.which("nvidia-smi")
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> UtilisationSampler:
        if self._tool:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        query = [self._tool, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(self.period):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5, check=True).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return

    def summary(self) -> dict[str, Any] | None:
        if not self._tool:
            return None
        values = self.samples or [0.0]
        return {"samples": len(self.samples), "mean_percent": statistics.fmean(values), "max_percent": max(values)}


def smoke_build(recipe: Recipe, out: Path, device: str) -> dict[str, Any]:
    """The tiny build on `device`; the stages' seconds, the picks and the TensorRT status."""
    from factory.budget.feasibility import Budget
    from factory.pipeline import BuildRequest, build

    started = time.perf_counter()
    summary = build(BuildRequest(recipe, out, Budget(params=TINY_BUDGET), device=device, progress=False, log=_say))
    stages = json.loads((out / "build.json").read_text())["stages"]
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "stages": {name: stage["seconds"] for name, stage in stages.items()},
        "device": summary["device"],
        "precision": summary.get("precision"),
        "picks": len(summary["picks"]),
        "tensorrt": summary["picks"][0]["tensorrt"] if summary["picks"] else None,
        "top1_after": [p["top1_after"] for p in summary["picks"]],
    }


def smoke_torchrun(recipe_path: Path, out: Path, device: str) -> dict[str, Any]:
    """One process under torchrun (`torch.distributed.run`): the process group, its device and backend."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    command += ["-m", "factory", "train", "--recipe", str(recipe_path), "--out", str(out), "--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    epochs = sorted((out / "supernet" / "epochs").glob("*.json")) if (out / "supernet").is_dir() else []
    records = [json.loads(p.read_text()) for p in epochs]
    backend = "nccl" if device == "cuda" else "gloo"
    ok = done.returncode == 0 and bool(records) and all(r.get("process_group") == backend for r in records)
    if not ok:
        _say(done.stderr[-2000:])
    return {
        "ok": ok,
        "returncode": done.returncode,
        "backend": backend,
        "epochs": len(records),
        "seconds": round(time.perf_counter() - started, 2),
    }


def train_throughput(run: Path) -> float:
    """Images/s of the build's elastic-phase epochs (the sampled sub-networks' forward and backward)."""
    records = [json.loads(p.read_text()) for p in sorted((run / "supernet" / "epochs").glob("*elastic*.json"))]
    return round(statistics.fmean(r["images_per_s"] for r in records), 1) if records else 0.0


def eval_throughput(run: Path, device: str, repeats: int = 5) -> float:
    """Images/s of the search's evaluator (BN recalibration excluded) on the build's largest network."""
    from factory.data import load_dataset
    from factory.runinfo import run_recipe
    from factory.space import largest_config
    from factory.training.device import resolve_device, resolve_precision
    from factory.training.evaluate import Evaluator
    from factory.training.trainer import load_supernets

    recipe = run_recipe(run)
    spec, nets, _ = load_supernets(run / "supernet" / "supernet.pt")
    torch_device = resolve_device(device)
    splits = load_dataset(recipe.data)
    config = largest_config(spec)
    net = nets[config.width]
    net.set_active(config)
    static = net.get_active_subnet().to(torch_device)
    precision = resolve_precision(recipe.train.precision, torch_device)
    evaluator = Evaluator(splits.val, recipe.data.mean, recipe.data.std, 200, "auto", torch_device, precision=precision)
    evaluator.top1(static, config.resolution)  # warm-up, prepares the inputs
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        evaluator.top1(static, config.resolution)
    return round(repeats * len(splits.val) / (time.perf_counter() - started), 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from factory.training.device import resolve_device

    device = str(resolve_device(args.device).type)
    recipe = recipe_from_dict(TINY, "gpu_smoke")
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    if (folder / "build").exists():
        shutil.rmtree(folder / "build")
    if (folder / "torchrun").exists():
        shutil.rmtree(folder / "torchrun")
    recipe_path = folder / "gpu-smoke.yaml"
    save_recipe(recipe, recipe_path)
    result: dict[str, Any] = {"device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None}
    with UtilisationSampler() as sampler:
        _say(f"[1/3] tiny digits build on {device}")
        result["build"] = smoke_build(recipe, folder / "build", device)
    result["gpu_utilisation"] = sampler.summary()
    _say("[2/3] one training epoch under torchrun (1 process)")
    result["torchrun"] = smoke_torchrun(recipe_path, folder / "torchrun", device)
    _say("[3/3] training and evaluation throughput")
    result["throughput"] = {
        "train_images_per_s": train_throughput(folder / "build"),
        "eval_images_per_s": eval_throughput(folder / "build", device),
    }
    result["ok"] = result["torchrun"]["ok"] and result["build"]["picks"] > 0
    _say(json.dumps(result, indent=2))
    if not args.out:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", default=None, help="keep the runs in this folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last stdout line")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
