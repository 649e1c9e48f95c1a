"""Training throughput of the elastic super-network against plain training of the extracted static network.

    python -m benchmarks.train --json

Both train the maximal width-1.0 sub-network of the real OFAv2 super-network (MobileNetV3-Large channel
plan, 32x32, batch 128, SGD, cross-entropy, channels-last as the trainer uses) on the same random batches, on CPU:
- static: the extracted StaticNetwork (plain nn.Modules);
- elastic: the super-network with that config active, through the trainer's StepLoss (weight
  slicing, elastic kernels and BN), i.e. what elasticity costs per image.
The ratio elastic / static is the headline (target > 0.7). For information, the full elastic phase of the
trainer (K sampled sub-networks per batch plus the distillation teacher) is timed too and reported as
sub-network images per second. Human lines go to stderr; the last stdout line is JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from torch import nn

from factory.elastic import build_supernet
from factory.space import SpaceSpec, SubnetConfig, largest_config
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_configs
from factory.training.losses import ensemble_teacher_probs
from factory.training.step_loss import StepLoss, StepTarget


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _time_steps(step, batches: list[tuple[torch.Tensor, torch.Tensor]], warmup: int) -> float:
    for images, labels in batches[:warmup]:
        step(images, labels)
    start = time.perf_counter()
    for images, labels in batches[warmup:]:
        step(images, labels)
    return sum(len(lab) for _, lab in batches[warmup:]) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--kind", default="ee-dense")
    parser.add_argument("--subnets", type=int, default=4)
    parser.add_argument("--contiguous", action="store_true", help="NCHW tensors instead of channels-last")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    spec = SpaceSpec(kind=args.kind, num_classes=10, resolutions=(32,))
    config = largest_config(spec, width=1.0, resolution=32)
    layout = torch.contiguous_format if args.contiguous else torch.channels_last
    supernet = build_supernet(spec, 1.0).to(memory_format=layout)
    supernet.set_active(config)
    static = supernet.get_active_subnet().train().to(memory_format=layout)
    g = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(args.batch_size, 3, 32, 32, generator=g).contiguous(memory_format=layout),
            torch.randint(0, 10, (args.batch_size,), generator=g),
        )
        for _ in range(args.steps + args.warmup)
    ]

    def plain_step(model: nn.Module, optimizer: torch.optim.Optimizer):
        def step(images: torch.Tensor, labels: torch.Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()

        return step

    static_rate = _time_steps(plain_step(static, torch.optim.SGD(static.parameters(), lr=0.01)), batches, args.warmup)
    _say(f"static maximal network: {static_rate:.0f} images/s")

    objective = StepLoss(supernet.train(), layout)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.01)

    def elastic_step(images: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = objective(images, labels, [StepTarget(config)], {}, 0.0, 0.0)
        loss.backward()
        optimizer.step()

    elastic_rate = _time_steps(elastic_step, batches, args.warmup)
    _say(f"super-network, maximal config active: {elastic_rate:.0f} images/s")

    teacher = build_supernet(spec, 1.0).eval().to(memory_format=layout)
    encoding = get_encoding("nat2", spec)
    rng = np.random.default_rng(0)

    def phase_step(images: torch.Tensor, labels: torch.Tensor) -> None:
        configs = [
            SubnetConfig(c.resolution, 1.0, c.exit, c.blocks) for c in sample_configs(encoding, args.subnets, rng)
        ]
        with torch.no_grad():
            teacher.set_active(largest_config(spec, 1.0, 32), exits=spec.exits())
            probs = ensemble_teacher_probs(teacher(images), [1 / len(spec.exits())] * len(spec.exits()))
        optimizer.zero_grad(set_to_none=True)
        targets = [StepTarget(c, share=1 / len(configs)) for c in configs]
        loss, _ = objective(images, labels, targets, {32: probs}, 1.0, 0.1)
        loss.backward()
        optimizer.step()

    phase_rate = _time_steps(phase_step, batches, args.warmup) * args.subnets
    _say(f"elastic phase ({args.subnets} sampled sub-networks + teacher): {phase_rate:.0f} sub-network images/s")
    result = {
        "elastic_images_per_s": round(elastic_rate, 1),
        "static_images_per_s": round(static_rate, 1),
        "ratio": round(elastic_rate / static_rate, 3),
        "elastic_phase_subnet_images_per_s": round(phase_rate, 1),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "layout": "contiguous" if args.contiguous else "channels_last",
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
