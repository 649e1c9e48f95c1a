"""Rank correlations between predicted and true accuracies, and the paper's predictor benchmark protocol.

The search only ranks candidates (non-dominated sorting never reads absolute values), so a predictor is
judged by rank correlation: Spearman's rho (the paper's Fig. 3) and Kendall's tau.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats
from sklearn.model_selection import KFold

from factory.search.predictors.base import Predictor, as_features, as_target, check_seed, make_predictor


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).reshape(-1)
    b = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"y_true has {a.size} values but y_pred has {b.size}")
    if a.size < 2:
        raise ValueError(f"a rank correlation needs at least 2 values, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("y_true and y_pred must be finite")
    return a, b


def _finite_or_zero(value: float) -> float:
    # scipy returns NaN when one side is constant: a constant predictor ranks nothing, so it scores 0.
    return 0.0 if math.isnan(value) else float(value)


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman's rho in [-1, 1]; 0.0 when either side is constant."""
    a, b = _pair(y_true, y_pred)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return _finite_or_zero(stats.spearmanr(a, b).statistic)


def kendall(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b in [-1, 1]; 0.0 when either side is constant."""
    a, b = _pair(y_true, y_pred)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return _finite_or_zero(stats.kendalltau(a, b).statistic)


def cross_validate(
    predictor: str | Callable[[int], Predictor],
    X: Any,
    y: Any,
    folds: int = 10,
    seed: int = 0,
    train_size: int | None = None,
    **predictor_kw: Any,
) -> dict[str, float]:
    """The paper's predictor benchmark: K-fold cross-validation, metrics averaged over the folds.

    Each fold's model is fitted on the other folds, or on `train_size` rows drawn from them without
    replacement (the paper fixes 300 training samples and varies it in Fig. 5), and scored on the
    held-out fold.

    Args:
        predictor: a registered name (built with `make_predictor(name, seed=..., **predictor_kw)`) or a
            callable building an unfitted predictor from a seed.
        X, y: gene rows and their true scores.
        folds: K, at least 2.
        seed: seeds the split, the subsampling and every fold's model.
        train_size: training rows per fold; None uses the whole training part.

    Returns:
        spearman, kendall (means over folds), spearman_std, kendall_std, fit_s and predict_s (mean seconds
        per fold, predict_s for the whole held-out fold), folds, train_size (mean rows fitted per fold).
    """
    arr = as_features(X)
    target = as_target(y, len(arr))
    seed = check_seed(seed)
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or not 2 <= folds <= len(arr):
        raise ValueError(f"folds must be an int in 2..{len(arr)} (the number of rows), got {folds!r}")
    if isinstance(predictor, str):
        name = predictor
        build: Callable[[int], Predictor] = lambda s: make_predictor(name, seed=s, **predictor_kw)  # noqa: E731
    elif predictor_kw:
        raise TypeError("predictor options are only accepted with a predictor name; bind them in the callable")
    else:
        build = predictor

    seq = np.random.SeedSequence(seed)
    split_seed, sample_seed = (int(s) for s in seq.generate_state(2))
    rng = np.random.default_rng(sample_seed)
    fold_seeds = np.random.SeedSequence(split_seed).generate_state(folds) % (2**31 - 1)
    rows: dict[str, list[float]] = {k: [] for k in ("spearman", "kendall", "fit_s", "predict_s", "train_size")}
    splits = KFold(n_splits=folds, shuffle=True, random_state=split_seed % (2**32)).split(arr)
    for (train, held), fold_seed in zip(splits, fold_seeds, strict=True):
        if train_size is not None:
            if not 1 <= train_size <= len(train):
                raise ValueError(
                    f"train_size {train_size} exceeds the {len(train)} training rows of a fold; "
                    f"use more data, fewer folds or a smaller train_size"
                )
            train = np.sort(rng.choice(train, size=train_size, replace=False))
        model = build(int(fold_seed))
        t0 = time.perf_counter()
        model.fit(arr[train], target[train])
        t1 = time.perf_counter()
        pred = model.predict(arr[held])
        t2 = time.perf_counter()
        rows["spearman"].append(spearman(target[held], pred))
        rows["kendall"].append(kendall(target[held], pred))
        rows["fit_s"].append(t1 - t0)
        rows["predict_s"].append(t2 - t1)
        rows["train_size"].append(len(train))
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    out["spearman_std"] = float(np.std(rows["spearman"]))
    out["kendall_std"] = float(np.std(rows["kendall"]))
    out["folds"] = int(folds)
    return out
