"""A rough time estimate for a build, printed before it starts, from one timed training step on the device.

Every stage's cost is expressed in "maximal-network training images": training sees each image once per
epoch per sampled sub-network (sampled ones are single-exit and depth-uniform: ~0.3 of the all-exit
maximal network, the teacher's forward ~0.35); an evaluation runs BN recalibration and the validation
split at ~16x training speed plus a fixed cost (extraction, ONNX export: measured on a CIFAR-10 CPU build,
197 s for 197 evaluations of 5,960 images where 4x estimated 11 minutes); fine-tuning stops early on small
picks (~0.375 of the maximal network's epochs). Constants measured on a digits build on 2 cores (estimate
5 min, actual 6 min); good to a factor of about 1.5: enough to know whether to wait, go for coffee, or
come back tomorrow.
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
PICK_FINETUNE_COST = 0.375
HEADS_COST = 0.5  # a transfer's head warm-up: the maximal network's forward, backward through the heads only


def training_images_per_second(recipe: Recipe, num_classes: int, device: torch.device) -> float:
    """Images/s of one forward + backward of the largest network (all exits) at the recipe's batch size."""
    from factory.nn import StaticNetwork
    from factory.space import largest_config
    from factory.train.device import autocast, memory_format, resolve_precision

    spec = recipe.space.to_spec(num_classes)
    config = largest_config(spec, max(spec.widths), max(spec.resolutions))
    layout = memory_format(recipe.train.channels_last)
    precision = resolve_precision(recipe.train.precision, device)
    net = StaticNetwork(spec, config, spec.exits()).to(device).to(memory_format=layout)
    batch = min(recipe.train.batch_size, 64)
    x = torch.randn(batch, 3, config.resolution, config.resolution, device=device).contiguous(memory_format=layout)
    times = []
    for _ in range(6):  # the first step warms up the kernels; the fastest of five is steadier than of two
        start = time.perf_counter()
        with autocast(device, precision):  # timed as training runs: same layout, same precision
            out = net(x)
            loss = sum(o.float().logsumexp(1).mean() for o in (out if isinstance(out, list) else [out]))
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch / min(times[1:])


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def estimate_build(
    recipe: Recipe,
    splits: Any,
    device: torch.device,
    skip: set[str] | frozenset[str] = frozenset(),
    reuse: bool = False,
    transfer: bool = False,
) -> str:
    """One line: the estimated time of the stages not in `skip`, and in total. `reuse`: the super-network is
    given (no training); `transfer`: and its heads are warmed up on this data first."""
    ips = training_images_per_second(recipe, splits.num_classes, device)
    t, s, p, x = recipe.train, recipe.search, recipe.postprocess, recipe.transfer
    n_train, n_val = len(splits.train), max(len(splits.val), 1)
    widths = len(recipe.space.widths)
    epoch = n_train / ips
    elastic_epoch = epoch * (t.subnets_per_batch * SUBNET_COST + TEACHER_COST + SANDWICH_COST * t.sandwich)
    evaluation = (t.bn_calib_images + n_val) / (ips * INFERENCE_SPEEDUP) + EVALUATION_OVERHEAD_S
    evaluations = s.archive_size * s.init_multiplier + s.iterations * s.candidates_per_iteration
    transfer_epochs = x.head_epochs * epoch * HEADS_COST + x.tune_epochs * epoch + x.elastic_epochs * elastic_epoch
    stages = {
        "train": 0.0 if reuse else widths * (t.warmup_epochs * epoch + t.epochs * elastic_epoch),
        "transfer": transfer_epochs * widths if transfer else 0.0,
        "search": evaluations * evaluation + s.iterations * (s.adapt_epochs * elastic_epoch + 5.0),
        "finetune": p.picks * 2 * p.max_epochs * (n_train + n_val) / ips * PICK_FINETUNE_COST,
        "export": p.picks * 3.0,
        "bench": p.picks * 4.0,
        "report": 3.0,
        "bundle": p.picks * 2.0,
    }
    left = {k: v for k, v in stages.items() if k not in skip}
    total = sum(left.values())
    parts = ", ".join(f"{k} ~{_minutes(v)}" for k, v in left.items() if v >= 1)
    return f"estimated time: ~{_minutes(total)} ({parts}; from a timed step at {ips:,.0f} training images/s)"
