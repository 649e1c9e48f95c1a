"""Benchmark of the latency predictor on profiles of this machine: held-out error, rank and repeatability.

    python -m benchmarks.latency_predictor --json [--recipe digits] [--classes 10] [--count 200]

Makes a kit of `--count` sub-networks of the recipe's space (half near `--budget-params`, as
`factory profile-kit` does), profiles it twice with `factory profile`'s code and defaults (onnxruntime CPU,
batch 1, one thread, 3 rounds of 50 timed runs; a network's latency is its fastest run), and reports:
- repeatability: the two profiles against each other (share within 10%, median relative difference, rho);
- per model (the shipped non-negative linear model over graph features, and LightGBM on the same features
  for comparison): 5-fold held-out accuracy on profile A (share within 10%, median relative error, Spearman
  rho), and the same model fitted on A and checked against profile B's measurements (`against_b`).
When the recipe delivers INT8 (the default), the kit also holds each network's INT8 graph, as
`factory profile-kit` makes it, and `int8` reports the same for the INT8 latencies (what an INT8 build
predicts). `ok` is the target: the shipped model puts >= 90% of held-out networks within 10% with
rho >= 0.95, in every precision profiled.
Run it on an otherwise idle machine: a second heavy process changes the latencies it measures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import run_cli
from factory.budget.feasibility import Budget, int8_layout
from factory.budget.latency_model import (
    LatencyPredictor,
    accuracy,
    cross_validated,
    feature_matrix,
    latencies,
    profiled_precisions,
)
from factory.device_side import profile_kit
from factory.profile.kit import kit_configs, write_kit
from factory.recipe import load_recipe
from factory.space.config import SubnetConfig


def _lightgbm_heldout(X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    import lightgbm

    order = np.random.default_rng(seed).permutation(len(y))
    predicted = np.empty_like(y)
    for fold in np.array_split(order, folds):
        train = np.setdiff1d(order, fold)
        model = lightgbm.LGBMRegressor(n_estimators=300, learning_rate=0.05, min_child_samples=5, verbose=-1)
        model.fit(X[train], np.log(y[train]))
        predicted[fold] = np.exp(model.predict(X[fold]))
    return predicted


def run(args: argparse.Namespace) -> dict:
    recipe = load_recipe(args.recipe)
    spec = recipe.space.to_spec(args.classes)
    layout = int8_layout(recipe)
    configs = kit_configs(spec, Budget(params=args.budget_params).with_int8(layout), args.count, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        kit = Path(tmp) / "kit"
        write_kit(spec, configs, kit, {"recipe": recipe.name}, layout)
        timings = []
        profiles = []
        for name in ("a", "b"):
            start = time.perf_counter()
            profiles.append(profile_kit(kit, Path(tmp) / f"{name}.json", threads=args.threads, runs=args.runs))
            timings.append(round(time.perf_counter() - start, 1))
            print(f"profile {name}: {timings[-1]} s", file=sys.stderr, flush=True)
    a = np.array([n["latency_ms"] for n in profiles[0]["networks"]])
    b = np.array([n["latency_ms"] for n in profiles[1]["networks"]])
    medians = [np.array([n["median_ms"] for n in p["networks"]]) for p in profiles]
    X = feature_matrix(spec, [SubnetConfig.from_dict(n["config"]) for n in profiles[0]["networks"]])
    linear = cross_validated(X, a)
    fitted = LatencyPredictor.fit(X, a)
    models = {"linear": {"heldout": linear, "against_b": accuracy(fitted.predict(X), b)}}
    try:
        boosted = _lightgbm_heldout(X[:, 1:], a)
        models["lightgbm"] = {"heldout": accuracy(boosted, a)}
    except ImportError:
        models["lightgbm"] = {"skipped": "lightgbm is not installed"}
    result = {
        "recipe": recipe.name,
        "networks": len(a),
        "latency_ms": {"min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())},
        "profile_seconds": timings,
        "machine": profiles[0]["machine"],
        "repeatability": accuracy(b, a),
        "repeatability_of_medians": accuracy(medians[1], medians[0]),
        "models": models,
    }
    checks = [linear]
    if "int8" in profiled_precisions(profiles[0]) and "int8" in profiled_precisions(profiles[1]):
        a8, b8 = latencies(profiles[0], "int8"), latencies(profiles[1], "int8")
        heldout = cross_validated(X, a8)
        result["int8"] = {
            "latency_ms": {"min": float(a8.min()), "median": float(np.median(a8)), "max": float(a8.max())},
            "int8_over_fp32": {"median": float(np.median(a8 / a)), "min": float((a8 / a).min())},
            "repeatability": accuracy(b8, a8),
            "linear": {"heldout": heldout, "against_b": accuracy(LatencyPredictor.fit(X, a8).predict(X), b8)},
        }
        checks.append(heldout)
        print(f"int8: {result['int8']}", file=sys.stderr)
    result["ok"] = all(c["within_10pct"] >= 0.9 and c["spearman_rho"] >= 0.95 for c in checks)
    for name, entry in models.items():
        print(f"{name}: {entry}", file=sys.stderr)
    print(f"repeatability: {result['repeatability']}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="digits", help="recipe whose space is profiled")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--count", type=int, default=200, help="networks in the kit")
    parser.add_argument("--budget-params", type=int, default=300_000, help="half the kit is drawn near it")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per network and round")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (0: its default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last stdout line")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
