"""The paper's predictor comparison (Fig. 3-5) on a real archive of evaluated sub-networks.

    python -m benchmarks.predictors --json                       # the shipped CIFAR-10 archive
    python -m benchmarks.predictors --archive benchmarks/data/digits_archive.jsonl --json

For every registered predictor: 10-fold cross-validation where each fold's model is fitted on 300
networks drawn from the other folds (the paper's training-set size) and scored on the held-out fold by
Spearman's rho and Kendall's tau against the true validation top-1; fit and predict seconds are means per
fold. Features are the integer NAT2 genes; `<name>_onehot` entries repeat the run on their one-hot
encoding (NAT's features). Human lines go to stderr; with --json the last stdout line is
{"train_size": 300, "predictors": {"<name>": {"spearman", "kendall", "fit_s", "predict_s"}}}.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.make_archive import CIFAR10_ARCHIVE, load_archive
from factory.search.metrics import cross_validate
from factory.search.predictors import predictor_names

PAPER = ["lgbm", "catboost", "gp", "rbf", "rbfe", "mlp", "cart", "svr", "ridge", "knn", "bayesian_ridge", "e2epp"]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", default=str(CIFAR10_ARCHIVE), help="archive JSONL (benchmarks.make_archive)")
    parser.add_argument("--train-size", type=int, default=300)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predictors", default="all", help="comma list, or all (the paper's twelve first)")
    parser.add_argument("--onehot", default="all", help="predictors also run on one-hot features: all, none or a list")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    encoding, X, y, header = load_archive(args.archive)
    registered = predictor_names()
    names = (
        PAPER + [n for n in registered if n not in PAPER] if args.predictors == "all" else args.predictors.split(",")
    )
    onehot = {"all": names, "none": []}.get(args.onehot, args.onehot.split(","))
    _say(f"{len(X)} networks from {args.archive} ({header.get('recipe')}, {header.get('split')})")
    runs = [(n, "integer") for n in names] + [(n, "onehot") for n in onehot]
    results: dict[str, dict[str, float]] = {}
    for name, features in runs:
        label = name if features == "integer" else f"{name}_onehot"
        scores = cross_validate(
            name,
            X,
            y,
            folds=args.folds,
            seed=args.seed,
            train_size=args.train_size,
            encoding=encoding,
            features=features,
        )
        results[label] = {k: round(scores[k], 4) for k in ("spearman", "kendall")} | {
            k: round(scores[k], 5) for k in ("fit_s", "predict_s")
        }
        r = results[label]
        _say(
            f"{label:<22} rho {r['spearman']:.3f}  tau {r['kendall']:.3f}  "
            f"fit {r['fit_s'] * 1000:8.1f} ms  predict {r['predict_s'] * 1000:7.2f} ms"
        )
    out = {"train_size": args.train_size, "predictors": results}
    if args.json:
        print(json.dumps(out))
    else:
        _say(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
