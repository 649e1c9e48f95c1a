"""Benchmark of the analytic flash and RAM figures against the exported ONNX graphs: exactness and speed.

    python -m benchmarks.memory --json [--configs 1000] [--seed 0] [--kinds ee-base ...] [--int8]

For each of the eight kinds with the real channel plan (SpaceSpec defaults, 32x32 input): `--configs` random
sub-networks (split evenly over the kinds; the sampler of `benchmarks.counting`, width and exit cycled). Each
deployable network (in early-exit kinds every third one as the AEP ensemble of its exit and those before)
gets random weights and BatchNorm statistics (as a trained one has: no two weights equal, so the exporter
shares none), is exported as `factory export` does, and its initializer bytes and peak
activation bytes (`factory.graphs.memory`) are compared with `factory.space.footprint`'s flash_bytes / ram_bytes.
- mismatches: configs where either figure differs (must be 0; the first few are printed to stderr).
- export_s: mean seconds per config of building, exporting and measuring the graph.
- analytic_s: mean seconds per config of flash_bytes + ram_bytes.
With --int8 each exported graph is also quantized as `factory export` does (static QDQ, per-channel weights,
calibrated on 4 random images) and its figures compared with `factory.space.footprint_int8`'s:
- int8_mismatches (must be 0), int8_s: mean seconds per config of quantizing and measuring.
The last stdout line is {"kinds": {"<kind>": {"configs", "mismatches", "export_s", "analytic_s"}}} with --json
(and "int8_mismatches", "int8_s" with --int8).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks import run_cli
from benchmarks.counting import configs_for, kinds_parser
from factory.graphs.int8 import QuantSettings, quantize_graph
from factory.graphs.memory import peak_ram_bytes, weight_bytes
from factory.graphs.onnx import EnsembleNetwork, export_onnx
from factory.nn import StaticNetwork
from factory.space import KINDS, SpaceSpec, SubnetConfig
from factory.space.footprint import flash_bytes, ram_bytes
from factory.space.footprint_int8 import int8_footprint
from factory.testing import randomize

MAX_REPORTED_MISMATCHES = 5


def ensemble_exits(spec: SpaceSpec, config: SubnetConfig, index: int) -> tuple[int, ...] | None:
    """Every third config of an early-exit kind is exported as an AEP ensemble of its exit and the ones before."""
    if index % 3 != 2 or config.exit == 1 or not spec.early_exit:
        return None
    return tuple(e for e in spec.exits() if e <= config.exit)


def _report(kind: str, what: str, expected: tuple[int, int], measured: tuple[int, int], config) -> None:
    line = f"MISMATCH {kind} {what}: analytic (flash, ram) {expected}, ONNX {measured}: {config.to_json()}"
    tqdm.write(line, file=sys.stderr)


def run_kind(kind: str, n: int, seed: int, folder: Path, int8: bool = False) -> dict:
    spec = SpaceSpec(kind=kind)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    mismatches, export_s, int8_mismatches, int8_s = 0, 0.0, 0, 0.0
    configs = configs_for(spec, n, seed)
    for index, config in enumerate(tqdm(configs, desc=kind, unit="cfg", file=sys.stderr, mininterval=1.0)):
        start = time.perf_counter()
        exits = ensemble_exits(spec, config, index)
        network = randomize(StaticNetwork(spec, config, exits), generator)
        betas = [1.0 / len(exits)] * len(exits) if exits else None
        module = network if betas is None else EnsembleNetwork(network, betas)
        path = export_onnx(module, folder / "net.onnx", config.resolution)
        measured = (weight_bytes(path), peak_ram_bytes(path))
        export_s += time.perf_counter() - start
        expected = (flash_bytes(spec, config, exits), ram_bytes(spec, config, exits))
        if measured != expected:
            mismatches += 1
            if mismatches <= MAX_REPORTED_MISMATCHES:
                _report(kind, "fp32", expected, measured, config)
        if int8:
            start = time.perf_counter()
            images = rng.random((4, 3, config.resolution, config.resolution), dtype=np.float32)
            quantized = quantize_graph(path, folder / "int8.onnx", images, QuantSettings())
            measured = (weight_bytes(quantized), peak_ram_bytes(quantized))
            int8_s += time.perf_counter() - start
            expected = int8_footprint(spec, config, exits, betas=betas)
            if measured != expected:
                int8_mismatches += 1
                if int8_mismatches <= MAX_REPORTED_MISMATCHES:
                    _report(kind, "int8", expected, measured, config)
    start = time.perf_counter()
    for config in configs:
        flash_bytes(spec, config)
        ram_bytes(spec, config)
    analytic_s = time.perf_counter() - start
    count = max(len(configs), 1)
    out = {"configs": len(configs), "mismatches": mismatches, "export_s": export_s / count}
    out["analytic_s"] = analytic_s / count
    if int8:
        out |= {"int8_mismatches": int8_mismatches, "int8_s": int8_s / count}
    return out


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer warns of every rank-1 BatchNorm scale
    kinds = args.kinds or list(KINDS)
    per_kind = -(-args.configs // len(kinds))
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, kind in enumerate(kinds):
            r = result[kind] = run_kind(kind, per_kind, args.seed * 1000 + index, Path(tmp), args.int8)
            tqdm.write(
                f"{kind}: {r['configs']} configs, {r['mismatches']} mismatches, export {r['export_s'] * 1e3:.0f} ms, "
                f"analytic {r['analytic_s'] * 1e6:.0f} us per config"
                + (f"; int8 {r['int8_mismatches']} mismatches, {r['int8_s']:.2f} s per config" if args.int8 else ""),
                file=sys.stderr,
            )
    return {"kinds": result}


def main(argv: list[str] | None = None) -> int:
    parser = kinds_parser(__doc__, "random configs in all, split over the kinds")
    parser.add_argument("--int8", action="store_true", help="also check the INT8 figures against quantized graphs")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
