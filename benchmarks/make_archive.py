"""Produce (or extend) the shipped archive of evaluated sub-networks the predictor benchmark reads.

    python -m benchmarks.make_archive --supernet runs/demo/supernet/supernet.pt --count 1100

Depth-uniform samples of the NAT2 encoding (seeded; duplicates by config key skipped) of a trained
super-network, each evaluated exactly as the search does (extract, BatchNorm recalibrated on the recipe's
training subset, top-1 on the validation split). The output is JSONL: a header line (spec, encoding,
recipe name, weights version), then one compact line per network: key, encoding, top1, params, macs.
An interrupted run continues: rerunning the command keeps the lines written and evaluates the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from factory.data import load_dataset
from factory.recipe import recipe_from_dict
from factory.search.evaluation import Complexity, SubnetEvaluator
from factory.space.config import SpaceSpec
from factory.space.encoding import Encoding, get_encoding
from factory.space.sampling import sample_depth_uniform
from factory.training.trainer import load_supernets

FORMAT = "factory-archive/1"
DEFAULT_ARCHIVE = Path(__file__).resolve().parent / "data" / "digits_archive.jsonl"
CIFAR10_ARCHIVE = DEFAULT_ARCHIVE.with_name("cifar10_archive.jsonl")  # the predictor benchmark's default


def load_archive(path: str | Path = DEFAULT_ARCHIVE) -> tuple[Encoding, np.ndarray, np.ndarray, dict[str, Any]]:
    """(encoding, X genes, y top-1, header) of an archive file written by this module."""
    lines = Path(path).read_text().splitlines()
    header = json.loads(lines[0])
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    spec = SpaceSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in header["spec"].items()})
    encoding = get_encoding(header["encoding"], spec)
    rows = [json.loads(line) for line in lines[1:] if line.strip()]
    X = np.array([r["encoding"] for r in rows], dtype=np.int64)
    y = np.array([r["top1"] for r in rows], dtype=np.float64)
    return encoding, X, y, header


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", default="runs/demo/supernet/supernet.pt", help="trained supernet.pt")
    parser.add_argument("--out", default=str(DEFAULT_ARCHIVE))
    parser.add_argument("--count", type=int, default=1100, help="networks in the archive")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 leaves a core free beside training)")
    args = parser.parse_args()

    if not Path(args.supernet).is_file():
        _say(f"no trained super-network at {args.supernet}; run `factory train --recipe digits --out runs/demo`")
        sys.exit(2)
    torch.set_num_threads(max(1, args.threads))
    spec, supernets, state = load_supernets(args.supernet)
    recipe = recipe_from_dict(state["recipe"], args.supernet)
    splits = load_dataset(recipe.data)
    evaluator = SubnetEvaluator(supernets, splits, recipe, "cpu")
    complexity = Complexity(spec)
    encoding = get_encoding("nat2", spec)
    header = {
        "format": FORMAT,
        "encoding": "nat2",
        "spec": dataclasses.asdict(spec),
        "recipe": recipe.name,
        "version": evaluator.version,
        "sampler": "depth_uniform",
        "seed": args.seed,
        "split": f"validation ({len(splits.val)} images)",
    }
    header = json.loads(json.dumps(header))  # tuples as lists, as a reread header has them
    out = Path(args.out)
    done: set[str] = set()
    if out.exists():
        lines = out.read_text().splitlines()
        if not lines or json.loads(lines[0]) != header:
            _say(f"{out} was written for another super-network or seed; delete it or choose another --out")
            sys.exit(2)
        done = {json.loads(line)["key"] for line in lines[1:] if line.strip()}
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(header) + "\n")

    rng = np.random.default_rng(args.seed)
    seen: set[str] = set()
    start, evaluated = time.perf_counter(), 0
    with out.open("a") as handle:
        while len(seen) < args.count:
            for x in sample_depth_uniform(encoding, 64, rng):
                config = encoding.decode(x)
                key = config.key()
                if key in seen or len(seen) >= args.count:
                    continue
                seen.add(key)
                if key in done:
                    continue
                top1, _ = evaluator.top1(config)
                params, macs = complexity(config)
                row = {"key": key, "encoding": x.tolist(), "top1": round(top1, 6), "params": params, "macs": macs}
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                evaluated += 1
                if evaluated % 50 == 0:
                    rate = (time.perf_counter() - start) / evaluated
                    _say(f"{len(seen)}/{args.count} networks, {rate:.2f} s each")
    _say(f"{out}: {args.count} networks ({evaluated} evaluated now) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
