"""Transfer against training from scratch, on a low-data target made from real images.

    python -m benchmarks.transfer --data-dir ../shared/datasets/cifar10-jpeg --json

From a CIFAR-10-style image folder (train/<class>/, test/<class>/) it links two datasets under --work:
  source: airplane, automobile, bird, cat, deer, every training image (25,000);
  target: dog, frog, horse, ship, truck, only --target-images training images per class, tested on those
          classes' whole test split (5,000).
Then, at --budget-params:
  1. `factory train --recipe source-cpu` on the source (paid once; a finished source in --work is reused);
  2. `factory build --recipe transfer-cpu` on the target from scratch (the recipe's from-scratch settings);
  3. `factory build --recipe transfer-cpu --supernet SOURCE` on the target (heads rebuilt, warmed up, adapted).
Each step runs as its own process, as a user would run it, and is timed by the wall clock. The best pick of
each build is the one with the highest test top-1 after post-processing (in percent). Each leg's result is
kept in WORK/<leg>.json; --reuse keeps legs already measured there instead of building them again. Human
lines go to stderr; the last stdout line is JSON (`{"scratch": {...}, "transfer": {...}}`) with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import run_cli

SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")
SOURCE_RECIPE = "source-cpu"
TARGET_RECIPE = "transfer-cpu"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file())


def link_split(data_dir: Path, out: Path, classes: tuple[str, ...], per_class: int | None) -> dict[str, int]:
    """Link `classes` of data_dir/train (the first `per_class` images of each, all when None) and data_dir/test
    into out/train and out/test; existing links are kept. Returns the image count of each split."""
    counts = {"train": 0, "test": 0}
    for part in counts:
        for name in classes:
            source = data_dir / part / name
            if not source.is_dir():
                raise SystemExit(f"{source} not found: --data-dir must hold train/<class>/ and test/<class>/")
            chosen = _images(source)
            if part == "train" and per_class is not None:
                chosen = chosen[:per_class]
            target = out / part / name
            target.mkdir(parents=True, exist_ok=True)
            for image in chosen:
                link = target / image.name
                if not link.exists():
                    os.symlink(image.resolve(), link)
            counts[part] += len(chosen)
    return counts


def factory_command(args: list[str], log: Path) -> float:
    """Run `factory ARGS` in its own process with its output in `log`; the wall-clock seconds it took."""
    say(f"$ factory {' '.join(args)}  (output in {log})")
    start = time.perf_counter()
    with log.open("w") as stream:
        done = subprocess.run([sys.executable, "-m", "factory", *args], stdout=stream, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"factory {args[0]} failed (exit {done.returncode}); see {log}")
    return seconds


def best_pick(run: Path) -> dict[str, Any]:
    """The pick with the highest post-processed test top-1 in RUN/summary.json (top-1 in percent)."""
    summary = json.loads((run / "summary.json").read_text())
    best = max(summary["picks"], key=lambda p: p["top1_after"])
    top1 = round(100 * best["top1_after"], 2)
    return {"id": best["id"], "top1": top1, "params": best["params"], "exit": best["exit"]}


def train_source(work: Path, source_data: Path) -> float:
    """Train the source super-network once; the training seconds it cost (read back when reused)."""
    run = work / "source-run"
    metrics = run / "supernet" / "metrics.json"
    if not metrics.is_file():
        resume = ["--resume"] if (run / "supernet" / "checkpoint.pt").is_file() else []
        args = ["train", "--recipe", SOURCE_RECIPE, "--data-dir", str(source_data), "--out", str(run), *resume]
        factory_command(args, work / "source.log")
    else:
        say(f"source super-network already trained in {run}; reused")
    return float(json.loads(metrics.read_text())["train_seconds"])


def target_build(
    work: Path, target_data: Path, budget: str, name: str, supernet: Path | None, reuse: bool
) -> dict[str, Any]:
    """One target build from nothing (its run folder is replaced); the best pick and the build's seconds, also
    kept in WORK/<name>.json (with `reuse`, a leg with that file is not built again)."""
    run = work / name
    record = work / f"{name}.json"
    if reuse and record.is_file():
        say(f"{name}: reusing {record}")
        return json.loads(record.read_text())
    args = ["build", "--recipe", TARGET_RECIPE, "--data-dir", str(target_data), "--budget-params", budget]
    args += ["--out", str(run), "--force"]
    if supernet is not None:
        args += ["--supernet", str(supernet)]
    seconds = factory_command(args, work / f"{name}.log")
    result = {**best_pick(run), "seconds": round(seconds, 1)}
    record.write_text(json.dumps(result))
    say(f"{name}: best pick {result['id']} {result['top1']:.2f}% at {result['params']:,} params, {seconds:.0f} s")
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work).resolve()
    data_dir = Path(args.data_dir).resolve()
    source_data, target_data = work / "data-source", work / "data-target"
    sizes = {
        "source": link_split(data_dir, source_data, SOURCE_CLASSES, None),
        "target": link_split(data_dir, target_data, TARGET_CLASSES, args.target_images),
    }
    say(f"images: {sizes}")
    source_seconds = train_source(work, source_data)
    scratch = target_build(work, target_data, args.budget_params, "target-scratch", None, args.reuse)
    supernet = work / "source-run" / "supernet" / "supernet.pt"
    transfer = target_build(work, target_data, args.budget_params, "target-transfer", supernet, args.reuse)
    transfer["source_seconds"] = round(source_seconds, 1)
    gain = transfer["top1"] - scratch["top1"]
    ratio = transfer["seconds"] / scratch["seconds"]
    say(f"transfer gains {gain:+.2f} points in {ratio:.2f}x the from-scratch build's time")
    return {
        "scratch": scratch,
        "transfer": transfer,
        "images": sizes,
        "budget_params": args.budget_params,
        "gain_points": round(gain, 2),
        "time_ratio": round(ratio, 3),
        "ok": gain >= 8.0 and ratio <= 0.5,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", required=True, help="CIFAR-10-style folder with train/<class>/ and test/<class>/."
    )
    parser.add_argument("--work", default="runs/transfer-benchmark", help="Scratch folder for links and runs.")
    parser.add_argument("--budget-params", default="0.3M")
    parser.add_argument("--target-images", type=int, default=200, help="Training images per target class.")
    parser.add_argument("--reuse", action="store_true", help="Keep the legs already measured in --work.")
    parser.add_argument("--json", action="store_true")
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
