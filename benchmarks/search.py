"""NAT2 against the NAT baseline on the same trained super-network, at the same number of real evaluations.

    factory train --recipe digits --out runs/demo        # once: the super-network both searches use
    python -m benchmarks.search --json                    # --supernet RUN to use another run folder

Both searches start from as many evaluated networks (NAT's initial sample is set to NAT2's pre-processing
pool, init_multiplier x archive_size) and evaluate the same K per iteration (NAT's 8), without
adaptation by default (--adapt-epochs), so they spend exactly the same evaluations and see the same
weights. What differs is the method: NAT2's depth-uniform sampler, fixed archive kept by rank + crowding,
integer-feature predictor and fill repair, against NAT's uniform-gene sampler, growing archive, one-hot
predictor and push repair. The hypervolume (recipe's fixed reference, normalised) is recorded after the
initial archive (iteration 0) and after every iteration. Each search writes to OUT/nat2 and OUT/nat.
Human lines go to stderr; with --json the last stdout line is
{"evaluations": int, "nat2": {"hypervolume": [...]}, "nat": {"hypervolume": [...]}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from factory.recipe import load_recipe, recipe_from_dict
from factory.search.engine import run_search
from factory.training.checkpoint import load_checkpoint

NAT_K = 8


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _link_run(source: Path, target: Path) -> None:
    """A run folder whose supernet/ is the source's (searches write only to their own search/)."""
    target.mkdir(parents=True, exist_ok=True)
    link = target / "supernet"
    if not link.exists():
        link.symlink_to((source / "supernet").resolve(), target_is_directory=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", default="runs/demo", help="run folder holding supernet/supernet.pt")
    parser.add_argument("--recipe", default=None, help="default: RUN/recipe.yaml, else the checkpoint's")
    parser.add_argument("--iterations", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--adapt-epochs", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the two searches (default: a temporary one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    run = Path(args.supernet)
    checkpoint = run / "supernet" / "supernet.pt"
    if not checkpoint.is_file():
        _say(
            f"no trained super-network at {checkpoint}: run `factory train --recipe digits --out {run}` first "
            "(a few CPU minutes), or pass --supernet RUN"
        )
        sys.exit(2)
    if args.recipe:
        recipe = load_recipe(args.recipe)
    elif (run / "recipe.yaml").is_file():
        recipe = load_recipe(run / "recipe.yaml")
    else:
        recipe = recipe_from_dict(load_checkpoint(checkpoint)["recipe"], str(checkpoint))
    search = recipe.search
    if args.iterations is not None:
        search.iterations = args.iterations
    search.adapt_epochs = args.adapt_epochs
    search.candidates_per_iteration = NAT_K
    search.nat_initial_samples = search.init_multiplier * search.archive_size

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="factory-search-bench-"))
    results, evaluations = {}, {}
    for algorithm in ("nat2", "nat"):
        _link_run(run, out / algorithm)
        start = time.perf_counter()
        result = run_search(out / algorithm, recipe=recipe, algorithm=algorithm, device=args.device, force=True)
        hv = [h["hypervolume"] for h in result["history"]]
        results[algorithm] = {"hypervolume": hv, "seconds": round(time.perf_counter() - start, 1)}
        evaluations[algorithm] = result["evaluations"]
        _say(f"{algorithm}: {result['evaluations']} evaluations, hypervolume " + " ".join(f"{v:.4f}" for v in hv))
    if evaluations["nat2"] != evaluations["nat"]:
        _say(f"warning: unequal evaluations {evaluations} (duplicate samples in the initial pool)")
    pairs = zip(results["nat2"]["hypervolume"][1:], results["nat"]["hypervolume"][1:], strict=True)
    wins = all(a >= b for a, b in pairs)
    _say(f"NAT2 >= NAT at every iteration after the first: {wins}; searches in {out}")
    summary = {"evaluations": evaluations["nat2"], **results}
    if args.json:
        print(json.dumps(summary))
    else:
        _say(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
