"""The CIFAR-10 CPU recipe's accuracy against build minutes, and the build's time estimate against the clock.

    python -m benchmarks.cpu_curve --data-dir ../shared/datasets/cifar10-jpeg --json

Each point is one whole build, `factory build --budget-params 0.3M --dataset imagefolder --data-dir DIR`, of
the shipped `cifar10-cpu` recipe with only its super-network training scaled (warm-up and elastic epochs;
search and post-processing unchanged), run as its own process and timed by the wall clock:
  short:   6 warm-up + 1 elastic epochs,
  mid:     19 + 1 (the recipe's split before the curve chose 28 + 2),
  default: the shipped recipe (28 + 2).
For each point: the best pick's test top-1 after post-processing (percent) and its params, the build's minutes,
and the estimate printed before the build next to the measured seconds of every stage (RUN/build.json).
Each point's result is kept in WORK/<point>.json; --reuse keeps points already measured there. Human lines go
to stderr; the last stdout line is JSON with --json: `{"points": [...], "target_top1": 85.0, ...}`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks import run_cli
from benchmarks.transfer import best_pick, factory_command, say

RECIPE = "cifar10-cpu"
TARGET_TOP1 = 85.0
ESTIMATE_TOLERANCE = 0.25
POINTS = {"short": (6, 1), "mid": (19, 1), "default": (None, None)}  # (warm-up epochs, elastic epochs)


def point_recipe(work: Path, name: str) -> tuple[Path, int, int]:
    """The shipped recipe with its training scaled for point `name`, written to WORK/<name>.yaml; its epochs."""
    from factory.recipe import load_recipe, save_recipe

    recipe = load_recipe(RECIPE)
    warmup, elastic = POINTS[name]
    if warmup is not None:
        recipe.train.warmup_epochs, recipe.train.epochs = warmup, elastic
    recipe.name = f"{RECIPE}-{name}"
    path = work / f"{name}.yaml"
    save_recipe(recipe, path)
    return path, recipe.train.warmup_epochs, recipe.train.epochs


def estimate_check(run: Path, seconds: float) -> dict[str, Any]:
    """The estimate the build printed (RUN/build.json) against the measured stage seconds and the wall clock."""
    state = json.loads((run / "build.json").read_text())
    estimate = state["estimates"][0]
    stages = {
        stage: {"estimated": estimate["stages"].get(stage), "measured": record["seconds"]}
        for stage, record in state["stages"].items()
        if stage in estimate["stages"]
    }
    error = estimate["total"] / seconds - 1.0
    return {"estimated_seconds": estimate["total"], "error": round(error, 3), "stages": stages}


def build_point(work: Path, data_dir: Path, budget: str, name: str, reuse: bool) -> dict[str, Any]:
    """One build from nothing for point `name` (its run folder is replaced); kept in WORK/<name>.json."""
    record = work / f"{name}.json"
    if reuse and record.is_file():
        say(f"{name}: reusing {record}")
        return json.loads(record.read_text())
    run = work / name
    recipe, warmup, elastic = point_recipe(work, name)
    args = ["build", "--recipe", str(recipe), "--dataset", "imagefolder", "--data-dir", str(data_dir)]
    args += ["--budget-params", budget, "--out", str(run), "--force"]
    seconds = factory_command(args, work / f"{name}.log")
    result = {
        "point": name,
        "warmup_epochs": warmup,
        "elastic_epochs": elastic,
        "minutes": round(seconds / 60, 1),
        "best": best_pick(run),
        "estimate": estimate_check(run, seconds),
    }
    record.write_text(json.dumps(result))
    best = result["best"]
    say(f"{name}: best pick {best['id']} {best['top1']:.2f}% at {best['params']:,} params, {seconds / 60:.1f} min")
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.points.split(",") if n.strip()]
    unknown = [n for n in names if n not in POINTS]
    if unknown:
        raise SystemExit(f"unknown point(s) {', '.join(unknown)}; choose from {', '.join(POINTS)}")
    data_dir = Path(args.data_dir).resolve()
    points = [build_point(work, data_dir, args.budget_params, name, args.reuse) for name in names]
    estimates_ok = all(abs(p["estimate"]["error"]) <= ESTIMATE_TOLERANCE for p in points)
    return {
        "points": points,
        "target_top1": TARGET_TOP1,
        "reached": [p["point"] for p in points if p["best"]["top1"] >= TARGET_TOP1 and p["minutes"] <= 90],
        "estimates_within": ESTIMATE_TOLERANCE,
        "estimates_ok": estimates_ok,
        "budget_params": args.budget_params,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10-style folder with train/<class>/, test/<class>/.")
    parser.add_argument("--work", default="runs/cpu-curve", help="Scratch folder for recipes, logs and runs.")
    parser.add_argument("--points", default=",".join(POINTS), help=f"Comma-separated, from {', '.join(POINTS)}.")
    parser.add_argument("--budget-params", default="0.3M")
    parser.add_argument("--reuse", action="store_true", help="Keep the points already measured in --work.")
    parser.add_argument("--json", action="store_true")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
