"""Benchmark of the OFAv2 super-networks: extraction parity, parameter counts, dynamic-forward overhead.

    python -m benchmarks.supernet --json [--configs 200] [--seed 0] [--timed 5] [--repeats 5]

For each of the eight kinds with the real channel plan (SpaceSpec defaults, 32x32 input), at widths 1.0 and 1.2:
- configs_checked / max_abs_diff: random sub-networks (alternating widths), eval mode, with randomised BN
  statistics and affine weights and non-identity kernel transforms; the largest |super-network - extracted
  static network| over all logits (batch 2). Checking is single-threaded: tiny batches gain nothing from threads.
- params_max / params_min: trainable parameters of the extracted single-exit largest / smallest network, from
  the analytic count (cross-checked against the extracted network; a mismatch aborts).
- dynamic_over_static: median over `--timed` configs of median(super-network forward with the config active) /
  median(extracted static forward), batch 64, torch.inference_mode, `--repeats` alternating runs after a warm-up,
  with torch's default CPU threads. Target <= 1.3.
Human-readable lines go to stderr; the last stdout line is the JSON object when --json is given.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

from benchmarks import run_cli
from factory.elastic import OFASupernet, build_supernets
from factory.space import KINDS, SpaceSpec, largest_config, smallest_config
from factory.space.counting import count_params


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@torch.no_grad()
def randomise(net: OFASupernet, generator: torch.Generator) -> None:
    """Calibrate BN on random images with the maximal network, then perturb statistics, affine and transforms.

    Calibration keeps activations O(1) through 20 blocks, so an absolute difference is meaningful.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for name, p in net.named_parameters():
        if "transforms" in name:
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
        elif name.endswith("bn.weight"):
            p.uniform_(0.8, 1.25, generator=generator)
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    net.train().set_max()
    net(torch.randn(32, 3, 32, 32, generator=generator))
    for bn in bns:
        bn.momentum = 0.1
        bn.running_mean.add_(0.1 * bn.running_var.sqrt() * torch.randn(bn.running_mean.shape, generator=generator))
        bn.running_var.mul_(torch.empty(bn.running_var.shape).uniform_(0.8, 1.25, generator=generator))
    net.eval()


def _flat(y: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.flatten() for t in y]) if isinstance(y, list) else y.flatten()


def check(nets: dict[float, OFASupernet], n: int, rng: np.random.Generator) -> float:
    """Largest |super-network - extracted| over `n` random configs, alternating widths."""
    widths, worst = list(nets), 0.0
    with torch.inference_mode():
        for i in range(n):
            net = nets[widths[i % len(widths)]]
            config = net.sample_active(rng)
            x = torch.randn(2, 3, config.resolution, config.resolution)
            diff = (_flat(net(x)) - _flat(net.get_active_subnet()(x))).abs().max().item()
            worst = max(worst, diff)
    return worst


def _time(fn, x: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(x)
    return time.perf_counter() - start


def overhead(net: OFASupernet, n: int, repeats: int, batch: int, rng: np.random.Generator) -> float:
    """Median over configs of the super-network / static forward time ratio."""
    ratios = []
    with torch.inference_mode():
        for _ in range(n):
            config = net.sample_active(rng)
            static = net.get_active_subnet()
            x = torch.randn(batch, 3, config.resolution, config.resolution)
            for _ in range(2):  # warm-up (allocator, oneDNN primitives for these shapes)
                net(x), static(x)
            dynamic, plain = [], []
            for _ in range(repeats):  # alternate so background load hits both alike
                dynamic.append(_time(net, x))
                plain.append(_time(static, x))
            ratios.append(statistics.median(dynamic) / statistics.median(plain))
    return statistics.median(ratios)


def params(spec: SpaceSpec, nets: dict[float, OFASupernet]) -> tuple[dict[str, int], dict[str, int]]:
    """Analytic params of the largest and smallest single-exit networks per width, checked against extraction."""
    result: tuple[dict[str, int], dict[str, int]] = ({}, {})
    for width, net in nets.items():
        for out, config in zip(result, (largest_config(spec, width), smallest_config(spec, width)), strict=True):
            counted = count_params(spec, config)
            net.set_active(config)
            built = sum(p.numel() for p in net.get_active_subnet().parameters())
            if built != counted:
                raise RuntimeError(f"{spec.kind} {config.key()}: analytic {counted} != built {built}")
            out[f"{width:.1f}"] = counted
    return result


def run(args: argparse.Namespace) -> dict:
    threads = torch.get_num_threads()
    kinds: dict[str, dict] = {}
    for k, kind in enumerate(KINDS):
        start = time.perf_counter()
        spec = SpaceSpec(kind=kind)
        torch.manual_seed(args.seed + k)
        generator = torch.Generator().manual_seed(args.seed + k)
        rng = np.random.default_rng(args.seed + k)
        nets = build_supernets(spec)
        for net in nets.values():
            randomise(net, generator)
        params_max, params_min = params(spec, nets)
        torch.set_num_threads(1)
        try:
            worst = check(nets, args.configs, rng)
        finally:
            torch.set_num_threads(threads)
        ratio = overhead(nets[1.0], args.timed, args.repeats, args.batch, rng)
        kinds[kind] = {
            "configs_checked": args.configs,
            "max_abs_diff": worst,
            "dynamic_over_static": round(ratio, 4),
            "params_max": params_max,
            "params_min": params_min,
        }
        _say(
            f"{kind:18s} checked {args.configs} max|diff| {worst:.2e}  dynamic/static {ratio:.3f}  "
            f"params max {params_max} min {params_min}  ({time.perf_counter() - start:.0f}s)"
        )
    settings = {
        "batch": args.batch,
        "timed_configs": args.timed,
        "repeats": args.repeats,
        "seed": args.seed,
        "torch": torch.__version__,
        "threads": threads,
    }
    return {"kinds": kinds, "settings": settings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=200, help="random configs checked per kind")
    parser.add_argument("--timed", type=int, default=5, help="configs timed per kind")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per config and network")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the timed forwards")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last stdout line")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
