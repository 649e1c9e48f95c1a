"""A rough time estimate for a build, printed before it starts, from timed training steps on the device.

Every stage's cost is expressed in "maximal-network training images": training sees each image once per
epoch per sampled sub-network (a sampled single-exit network costs SUBNET_COST of the all-exit maximal
network, the teacher's forward TEACHER_COST); an evaluation runs BN recalibration and the validation split at
INFERENCE_SPEEDUP times training speed plus a fixed cost; a pick's two fine-tuning steps cost
PICK_FINETUNE_COST of the maximal network's epochs each; a training epoch costs TRAINING_LOOP_COST times the
timed step. The measurements behind each constant, and how close whole builds came to the clock, are in
`benchmarks/data/README.md` ("Time estimate constants"). The estimate and each stage's are kept in
RUN/build.json beside the measured seconds, and `benchmarks.cpu_curve` compares them.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from factory.recipe import Recipe

INFERENCE_SPEEDUP = 16.0  # onnxruntime evaluation (no backward, batch 500) against one training step's rate
SUBNET_COST = 0.3
TEACHER_COST = 0.35
SANDWICH_COST = 1.0  # the maximal network's own step in every elastic batch (train.sandwich)
EVALUATION_OVERHEAD_S = 0.2
PICK_FINETUNE_COST = 0.45
TRAINING_LOOP_COST = 1.1  # a training loop's epoch against the timed forward + backward alone
HEADS_COST = 0.5  # a transfer's head warm-up: the maximal network's forward, backward through the heads only


def training_images_per_second(recipe: Recipe, num_classes: int, device: torch.device) -> float:
    """Images/s of one forward + backward of the largest network (all exits) at the recipe's batch size."""
    from factory.nn import StaticNetwork
    from factory.space import largest_config
    from factory.training.device import autocast, memory_format, resolve_precision

    spec = recipe.space.to_spec(num_classes)
    config = largest_config(spec, max(spec.widths), max(spec.resolutions))
    layout = memory_format(recipe.train.channels_last)
    precision = resolve_precision(recipe.train.precision, device)
    net = StaticNetwork(spec, config, spec.exits()).to(device).to(memory_format=layout)
    batch = min(recipe.train.batch_size, 64)
    x = torch.randn(batch, 3, config.resolution, config.resolution, device=device).contiguous(memory_format=layout)
    times = []
    for _ in range(10):  # two steps warm up the kernels; the fastest of eight rides out a busy spell of the machine
        start = time.perf_counter()
        with autocast(device, precision):  # timed as training runs: same layout, same precision
            out = net(x)
            loss = sum(o.float().logsumexp(1).mean() for o in (out if isinstance(out, list) else [out]))
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch / min(times[2:])


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def estimate_stages(
    recipe: Recipe,
    splits: Any,
    device: torch.device,
    skip: set[str] | frozenset[str] = frozenset(),
    reuse: bool = False,
    transfer: bool = False,
) -> dict[str, Any]:
    """Estimated seconds of each stage not in `skip` (kept in build.json beside the measured ones, so the
    estimate can be checked stage by stage), with the timed step's rate. `reuse`: the super-network is given
    (no training); `transfer`: and its heads are warmed up on this data first."""
    ips = training_images_per_second(recipe, splits.num_classes, device)
    t, s, p, x = recipe.train, recipe.search, recipe.finetune, recipe.transfer
    n_train, n_val = len(splits.train), max(len(splits.val), 1)
    widths = len(recipe.space.widths)
    epoch = n_train / ips * TRAINING_LOOP_COST
    elastic_epoch = epoch * (t.subnets_per_batch * SUBNET_COST + TEACHER_COST + SANDWICH_COST * t.sandwich)
    evaluation = (t.bn_calib_images + n_val) / (ips * INFERENCE_SPEEDUP) + EVALUATION_OVERHEAD_S
    evaluations = s.archive_size * s.init_multiplier + s.iterations * s.candidates_per_iteration
    transfer_epochs = x.head_epochs * epoch * HEADS_COST + x.tune_epochs * epoch + x.elastic_epochs * elastic_epoch
    stages = {
        "train": 0.0 if reuse else widths * (t.warmup_epochs * epoch + t.epochs * elastic_epoch),
        "transfer": transfer_epochs * widths if transfer else 0.0,
        "search": evaluations * evaluation + s.iterations * (s.adapt_epochs * elastic_epoch + 5.0),
        "finetune": p.picks * 2 * p.max_epochs * (n_train + n_val) / ips * PICK_FINETUNE_COST,
        # Per pick (benchmarks/data/README.md, "Time estimate constants"); an INT8 QAT fallback is not foreseen.
        "export": p.picks * 1.5,
        "bench": p.picks * 0.5,
        "report": 1.5,
        "bundle": p.picks * 1.0,
    }
    left = {k: round(v, 1) for k, v in stages.items() if k not in skip}
    return {"stages": left, "total": round(sum(left.values()), 1), "images_per_second": round(ips, 1)}


def describe_estimate(estimate: dict[str, Any], basis: str | None = None) -> str:
    """One line for the build's log: the total and the stages that take a second or more. `basis` says what
    the figures come from (default: the timed step and its rate)."""
    parts = ", ".join(f"{k} ~{_minutes(v)}" for k, v in estimate["stages"].items() if v >= 1)
    total = _minutes(estimate["total"])
    basis = basis or f"from a timed step at {estimate['images_per_second']:,.0f} training images/s"
    return f"estimated time: ~{total} ({parts}; {basis})"
