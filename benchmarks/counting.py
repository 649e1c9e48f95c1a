"""Benchmark of the analytic counts against fvcore: exactness and speed.

    python -m benchmarks.counting --json [--configs 1000] [--seed 0] [--kinds ee-base ...]

For each of the eight kinds with the real channel plan (SpaceSpec defaults, 32x32 input): `--configs` random
sub-networks from NAT2's depth-uniform sampler, with the width cycled over 1.0 / 1.2 and the exit over every
exit the kind has (so a short run still covers them). Each deployable single-exit network is built and traced
by `factory.finetune.measure` (strict: every op counted or explicitly free), and its headline MACs (conv + linear) and
trainable parameters are compared with `count_macs` / `count_params`.
- mismatches: configs where either figure differs (must be 0; the first few are printed to stderr).
- fvcore_s: mean seconds per config of building the StaticNetwork and tracing it.
- analytic_s: mean seconds per config of count_params + count_macs.
Single-threaded torch (tiny batch-1 traces gain nothing from threads). Progress goes to stderr; the last stdout
line is the JSON object {"kinds": {"<kind>": {"configs", "mismatches", "fvcore_s", "analytic_s"}}} with --json.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from benchmarks import run_cli
from factory.finetune.measure import measure_network
from factory.nn import StaticNetwork
from factory.space import KINDS, SpaceSpec, SubnetConfig
from factory.space.counting import count_macs, count_params
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_configs

MAX_REPORTED_MISMATCHES = 5


def configs_for(spec: SpaceSpec, n: int, seed: int) -> list[SubnetConfig]:
    """`n` depth-uniform samples, width and exit cycled so every width and every exit occurs."""
    configs = sample_configs(get_encoding("nat2", spec), n, np.random.default_rng(seed), "depth_uniform")
    widths, exits = spec.widths, spec.exits()
    return [replace(c, width=widths[i % len(widths)], exit=exits[i % len(exits)]) for i, c in enumerate(configs)]


def run_kind(kind: str, n: int, seed: int) -> dict:
    spec = SpaceSpec(kind=kind)
    configs = configs_for(spec, n, seed)
    mismatches, fvcore_s = 0, 0.0
    for config in tqdm(configs, desc=kind, unit="cfg", file=sys.stderr, mininterval=1.0):
        start = time.perf_counter()
        m = measure_network(StaticNetwork(spec, config), config.resolution, strict=True)
        fvcore_s += time.perf_counter() - start
        expected = (count_params(spec, config), count_macs(spec, config))
        if (m.params, m.macs) != expected:
            mismatches += 1
            if mismatches <= MAX_REPORTED_MISMATCHES:
                tqdm.write(
                    f"MISMATCH {kind}: expected (params, macs) {expected}, fvcore {(m.params, m.macs)}: "
                    f"{config.to_json()}",
                    file=sys.stderr,
                )
    start = time.perf_counter()
    for config in configs:
        count_params(spec, config)
        count_macs(spec, config)
    analytic_s = time.perf_counter() - start
    return {
        "configs": len(configs),
        "mismatches": mismatches,
        "fvcore_s": fvcore_s / max(len(configs), 1),
        "analytic_s": analytic_s / max(len(configs), 1),
    }


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    kinds = args.kinds or list(KINDS)
    result: dict[str, dict] = {}
    for index, kind in enumerate(kinds):
        result[kind] = run_kind(kind, args.configs, args.seed * 1000 + index)
        r = result[kind]
        tqdm.write(
            f"{kind}: {r['configs']} configs, {r['mismatches']} mismatches, fvcore {r['fvcore_s'] * 1e3:.1f} ms, "
            f"analytic {r['analytic_s'] * 1e6:.1f} us per config",
            file=sys.stderr,
        )
    return {"kinds": result}


def kinds_parser(doc: str, configs_help: str) -> argparse.ArgumentParser:
    """The command line of a per-kind exactness benchmark (this one and `benchmarks.memory`)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--configs", type=int, default=1000, help=configs_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="*", choices=list(KINDS), help="kinds to run (default: all eight)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last stdout line")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(kinds_parser(__doc__, "random configs per kind"), run, argv)


if __name__ == "__main__":
    sys.exit(main())
