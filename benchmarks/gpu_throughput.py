"""Throughput of the CIFAR-10 GPU recipe on this device, on synthetic CIFAR-sized data, and the build it projects.

    python -m benchmarks.gpu_throughput --device cuda --json                 # recipes/cifar10.yaml, ~2-3 minutes
    python -m benchmarks.gpu_throughput --device cuda --batch-sizes 256,1024 --profile --json
    python -m benchmarks.gpu_throughput --device cpu --train-images 512 --json   # the same path on a CPU (tests)

What it measures, with the real trainer and evaluator (random uint8 images and labels in CIFAR-10's shapes:
32x32, 10 classes; speed does not depend on the pixels):
1. training images/s of the super-network's warm-up (maximal network, all exits with AEP) and elastic steps
   (the recipe's sampled sub-networks per batch with the ENS-KD teacher), per batch size asked for (the
   learning rate scaled with it), each the second epoch of its phase (the first warms up the kernels);
   the peak GPU memory and the GPU utilisation sampled from `nvidia-smi` while it trains;
2. evaluation images/s of the search's evaluator on the largest network, and the seconds of one whole
   evaluation as the search runs it (extraction, BatchNorm recalibration, the validation split);
3. with --profile, where an elastic step's time goes (torch.profiler over a few steps): host time per step,
   GPU kernel time per step, kernel launches per step, the busy fraction, the top operators;
4. the projected wall time of `factory build --budget-params 0.3M --dataset cifar10` on this device at CIFAR-10's
   real sizes (45,000 / 5,000 / 10,000): the build's own estimate line (a timed step, as the build prints it),
   and the same stages with the measured loop rates in place of the timed step, for the recipe as shipped
   (adapting a `--supernet`) and for training the super-network from scratch with the recipe's epochs.
Human lines go to stderr; with --json the last stdout line is the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

from benchmarks import run_cli
from benchmarks.gpu_smoke import UtilisationSampler
from factory.data import DatasetSplits, Split
from factory.recipe import Recipe, load_recipe

CIFAR10_SIZES = {"train": 45_000, "val": 5_000, "test": 10_000}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def synthetic_split(n: int, size: int, classes: int, generator: torch.Generator) -> Split:
    """`n` random uint8 images of `size` x `size` with random labels."""
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
    return Split(images, torch.randint(0, classes, (n,), generator=generator))


def synthetic_splits(train: int, val: int, test: int, size: int = 32, classes: int = 10) -> DatasetSplits:
    """CIFAR-shaped splits of random images (the benchmark needs shapes, not pictures)."""
    g = torch.Generator().manual_seed(0)
    parts = [synthetic_split(n, size, classes, g) for n in (train, val, test)]
    return DatasetSplits(*parts, num_classes=classes, class_names=[str(i) for i in range(classes)], name="synthetic")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rates(recipe: Recipe, splits: DatasetSplits, device: str, batch: int) -> tuple[dict[str, Any], Any]:
    """Images/s of the warm-up and elastic loops at `batch` (lr scaled linearly), 2 epochs each, the second kept;
    with the trainer, for the evaluation and the profile that follow."""
    from factory.training.trainer import Phase, SupernetTrainer

    scale = batch / recipe.train.batch_size
    train = dataclasses.replace(recipe.train, batch_size=batch)
    recipe = dataclasses.replace(recipe, train=train)
    width = max(recipe.space.widths)
    phases = [
        Phase("warmup", width, 2, recipe.train.warmup_lr * scale),
        Phase("elastic", width, 2, recipe.train.lr * scale),
    ]
    trainer = SupernetTrainer(recipe, None, device=device, splits=splits, progress=False, phases=phases)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    with UtilisationSampler(0.25) as sampler:
        trainer.run()
    records = {(r["phase"].split("-")[0], r["epoch"]): r for r in trainer.history}
    result = {
        "batch_size": batch,
        "lr_scale": scale,
        "steps_per_epoch": trainer.steps_per_epoch,
        "warmup_images_per_s": round(records[("warmup", 2)]["images_per_s"], 1),
        "elastic_images_per_s": round(records[("elastic", 2)]["images_per_s"], 1),
        "gpu_utilisation": sampler.summary(),
    }
    if trainer.device.type == "cuda":
        result["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(trainer.device) / 2**20, 1)
    return result, trainer


def eval_rates(trainer: Any, splits: DatasetSplits, repeats: int = 3) -> dict[str, Any]:
    """The evaluator's images/s on the largest network, and one whole search evaluation's seconds."""
    from factory.space import largest_config
    from factory.space.encoding import get_encoding
    from factory.space.sampling import sample_configs
    from factory.training.batchnorm import calibration_subset
    from factory.training.evaluate import Evaluator
    from factory.training.trainer import evaluate_config

    recipe, device = trainer.recipe, trainer.device
    t, d = recipe.train, recipe.data
    spec = trainer.spec
    width = max(spec.widths)
    net = trainer.supernets[width].eval()
    evaluator = Evaluator(splits.val, d.mean, d.std, t.eval_batch_size, "auto", device, precision=trainer.precision)
    config = largest_config(spec, width=width, resolution=max(spec.resolutions))
    net.set_active(config)
    static = net.get_active_subnet().to(device)
    evaluator.top1(static, config.resolution)  # prepares the inputs, warms the kernels
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        evaluator.top1(static, config.resolution)
    _sync(device)
    eval_ips = repeats * len(splits.val) / (time.perf_counter() - started)
    calib = calibration_subset(splits.train, t.bn_calib_images, t.seed, device)
    rng = np.random.default_rng(0)
    configs = [dataclasses.replace(c, width=width) for c in sample_configs(get_encoding("nat2", spec), 6, rng)]
    for c in {c.resolution for c in configs}:
        evaluator.inputs(c)
    seconds = []
    for c in configs:
        started = time.perf_counter()
        evaluate_config(net, c, calib, evaluator, d.mean, d.std, t.bn_calib_batch, device)
        _sync(device)
        seconds.append(time.perf_counter() - started)
    return {
        "eval_images_per_s": round(eval_ips, 1),
        "evaluation_seconds": round(statistics.median(seconds[1:]), 3),
        "evaluator_backend": evaluator.backend,
    }


def _step(trainer: Any, run: Any, targets: list[Any], i: int, gen: torch.Generator) -> float:
    """One training step of `targets` on batch `i` of the trainer's split, through the trainer's own forward and
    backward steps; its seconds."""
    from factory.data import augment_batch, normalize

    t, d, device, data = trainer.recipe.train, trainer.recipe.data, trainer.device, trainer.train_data
    started = time.perf_counter()
    index = torch.arange(i * t.batch_size, (i + 1) * t.batch_size, device=device) % len(data.labels)
    images = normalize(augment_batch(data.images[index], d.crop_padding, d.flip, gen), d.mean, d.std)
    loss, _ = trainer.forward_step(run, images, data.labels[index], targets)
    trainer.backward_step(run, loss)
    _sync(device)
    return round(time.perf_counter() - started, 4)


def _elastic_run(trainer: Any) -> tuple[Any, torch.Generator]:
    """The trainer's last (elastic) phase entered, with its teacher, and a generator for augmentation."""
    if trainer.teacher is None:
        trainer.teacher = trainer.make_teacher()
    return trainer._enter(len(trainer.phases) - 1), torch.Generator(device=trainer.device).manual_seed(1)


def profile_steps(trainer: Any, steps: int = 6) -> dict[str, Any]:
    """Where an elastic step's time goes: host vs GPU time, launches, syncs, busy fraction, top operators."""
    from torch.profiler import ProfilerActivity, profile

    device = trainer.device
    run, gen = _elastic_run(trainer)
    rng = np.random.default_rng(1)
    t = trainer.recipe.train
    targets = [trainer.step_targets(run.phase, rng, t.subnets_per_batch) for _ in range(steps + 1)]
    _step(trainer, run, targets[0], 0, gen)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        for i in range(steps):
            _step(trainer, run, targets[i + 1], i + 1, gen)
    wall = (time.perf_counter() - started) / steps
    events = prof.key_averages()
    kernel_us = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA")
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    syncs = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    copies = sum(e.count for e in events if e.key.startswith("cudaMemcpy"))
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    return {
        "steps": steps,
        "wall_ms_per_step": round(wall * 1e3, 2),
        "gpu_kernel_ms_per_step": round(kernel_us / steps / 1e3, 2),
        "kernel_launches_per_step": round(launches / steps, 1),
        "host_syncs_per_step": round(syncs / steps, 1),
        "memcpy_calls_per_step": round(copies / steps, 1),
        "gpu_busy_fraction": round(kernel_us / 1e6 / steps / wall, 3) if wall > 0 else None,
        "top_host_ops_ms_per_step": {e.key: round(e.self_cpu_time_total / steps / 1e3, 2) for e in top},
    }


def project_build(recipe: Recipe, device: torch.device, rates: dict[str, Any], evaluation_s: float) -> dict[str, Any]:
    """Projected seconds of a CIFAR-10 build at its real sizes: the build's own estimate and the measured one."""
    from factory.estimate import describe_estimate, estimate_stages

    splits = DatasetSplits(*(_Sized(CIFAR10_SIZES[part]) for part in ("train", "val", "test")), num_classes=10)
    out: dict[str, Any] = {}
    t, s = recipe.train, recipe.search
    n = CIFAR10_SIZES["train"]
    widths = len(recipe.space.widths)
    warm_epoch, elastic_epoch = n / rates["warmup_images_per_s"], n / rates["elastic_images_per_s"]
    evaluations = s.archive_size * s.init_multiplier + s.iterations * s.candidates_per_iteration
    for name, reuse in (("with_supernet", True), ("from_scratch", False)):
        estimate = estimate_stages(recipe, splits, device, reuse=reuse, transfer=reuse)
        measured = dict(estimate["stages"])
        measured["train"] = 0.0 if reuse else widths * (t.warmup_epochs * warm_epoch + t.epochs * elastic_epoch)
        if reuse:
            x = recipe.transfer
            measured["transfer"] = widths * (x.head_epochs * warm_epoch + x.tune_epochs * warm_epoch)
        measured["search"] = evaluations * evaluation_s + s.iterations * s.adapt_epochs * elastic_epoch
        total = sum(measured.values())
        out[name] = {
            "estimate_line": describe_estimate(estimate),
            "estimate_seconds": estimate["total"],
            "measured_stages": {k: round(v, 1) for k, v in measured.items()},
            "measured_seconds": round(total, 1),
            "measured_line": describe_estimate(
                {**estimate, "stages": measured, "total": total},
                f"from measured loops: warm-up {rates['warmup_images_per_s']:,.0f} and elastic "
                f"{rates['elastic_images_per_s']:,.0f} training images/s, {evaluation_s:.2f} s an evaluation",
            ),
        }
    return out


def step_costs(recipe: Recipe, splits: DatasetSplits, device: str, steps: int = 4) -> dict[str, Any]:
    """Seconds of elastic steps: one sub-network set repeated (its first step cold, then warm) against a new set
    every step, and the maximal network, per precision with cuDNN on and off: tells a per-shape set-up cost
    from the step itself."""
    from factory.training.trainer import Phase, SupernetTrainer

    width = max(recipe.space.widths)
    out: dict[str, Any] = {}
    for precision, cudnn in (("bf16", True), ("fp32", True), ("bf16", False), ("fp32", False)):
        torch.backends.cudnn.enabled = cudnn
        r = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, precision=precision))
        phases = [Phase("warmup", width, 1, 0.01), Phase("elastic", width, 1, 0.01)]
        trainer = SupernetTrainer(r, None, device=device, splits=splits, progress=False, phases=phases)
        run, gen = _elastic_run(trainer)
        rng = np.random.default_rng(len(out) + 7)
        k = r.train.subnets_per_batch
        fixed = trainer.step_targets(run.phase, rng, k)
        repeated = [_step(trainer, run, fixed, i, gen) for i in range(steps)]
        fresh = [_step(trainer, run, trainer.step_targets(run.phase, rng, k), i, gen) for i in range(steps)]
        maximal = [_step(trainer, run, [trainer._maximal_target(width, 1.0)], i, gen) for i in range(steps)]
        key = f"{trainer.precision}-cudnn{'on' if cudnn else 'off'}"
        out[key] = {"same_subnets_s": repeated, "new_subnets_s": fresh, "maximal_s": maximal}
        _say(f"{key}: {json.dumps(out[key])}")
    torch.backends.cudnn.enabled = True
    return out


class _Sized:
    """A stand-in split that has only a length (the estimate reads nothing else)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def run(args: argparse.Namespace) -> dict[str, Any]:
    from factory.training.device import resolve_device

    device = resolve_device(args.device)
    recipe = load_recipe(args.recipe)
    splits = synthetic_splits(args.train_images, args.val_images, 100, recipe.data.image_size)
    result: dict[str, Any] = {
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "recipe": recipe.name,
        "images": {"train": args.train_images, "val": args.val_images, "synthetic": True},
        "train": [],
    }
    if args.probe:
        result["step_costs"] = step_costs(recipe, splits, args.device)
        result["ok"] = True
        return result
    best: dict[str, Any] | None = None
    for batch in [int(b) for b in args.batch_sizes.split(",")] or [recipe.train.batch_size]:
        _say(f"training at batch {batch} ({len(splits.train) // batch} steps an epoch, 2 epochs per phase)")
        rates, trainer = train_rates(recipe, splits, args.device, batch)
        _say(json.dumps(rates))
        result["train"].append(rates)
        if batch == recipe.train.batch_size or best is None:
            best = {"rates": rates, "trainer": trainer}
    assert best is not None
    trainer = best["trainer"]
    result["precision"] = trainer.precision
    _say("evaluation")
    result["eval"] = eval_rates(trainer, splits)
    _say(json.dumps(result["eval"]))
    if args.profile:
        _say("profiling elastic steps")
        result["profile"] = profile_steps(trainer)
        _say(json.dumps(result["profile"]))
    result["projection"] = project_build(recipe, trainer.device, best["rates"], result["eval"]["evaluation_seconds"])
    for name, p in result["projection"].items():
        _say(f"{name}: as the build prints it: {p['estimate_line']}")
        _say(f"{name}: from the measured rates: {p['measured_line']}")
    result["ok"] = all(r["elastic_images_per_s"] > 0 for r in result["train"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--recipe", default="cifar10", help="recipe name or file (default: cifar10, the paper's)")
    parser.add_argument("--batch-sizes", default="256", help="comma-separated training batch sizes to measure")
    parser.add_argument("--train-images", type=int, default=10_240, help="synthetic training images (an epoch)")
    parser.add_argument("--val-images", type=int, default=5_000, help="synthetic validation images")
    parser.add_argument("--profile", action="store_true", help="profile a few elastic steps with torch.profiler")
    parser.add_argument("--probe", action="store_true", help="only time elastic steps: cold vs warm shapes, cuDNN")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last stdout line")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
