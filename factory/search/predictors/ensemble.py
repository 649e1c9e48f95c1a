"""K-fold cross-validation ensembles: NAT2 fits its LGBM predictor this way and averages the fold models."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from sklearn.model_selection import KFold

from factory.search.predictors.base import Features, Predictor, make_predictor, spawn_seeds
from factory.space.encoding import Encoding

BaseFactory = Callable[[int], Predictor]


class CrossValidationEnsemble(Predictor):
    """One base model per fold, each fitted on the other folds; the prediction is the mean of the models.

    Averaging K models trained on overlapping (K-1)/K subsets smooths the variance of a single boosted
    model on a 300-row archive; the held-out folds give out-of-fold predictions (`oof_`) for free, an
    honest estimate of the predictor's quality on this archive.

    Args:
        base: a predictor name, or a callable building an unfitted base predictor from a seed. The base
            models see the ensemble's features (already one-hot when asked), so build them without an
            encoding.
        folds: K, at least 2; with fewer rows than K, leave-one-out (one fold per row) is used instead.
    """

    #: with fewer, a fold's training part would fall under a base model's own minimum of 4 rows.
    min_samples: ClassVar[int] = 5

    def __init__(
        self,
        base: str | BaseFactory,
        folds: int = 10,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        **base_kw: Any,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
            raise ValueError(f"folds must be an int >= 2, got {folds!r}")
        if isinstance(base, str):
            base = functools.partial(make_predictor, base, **base_kw)  # a partial, not a lambda: pickles
        elif base_kw:
            raise TypeError("base options are only accepted with a predictor name; bind them in the callable")
        self.base = base
        self.folds = int(folds)
        self.models_: list[Predictor] = []
        self.oof_: np.ndarray | None = None  # out-of-fold prediction of every training row

    @property
    def n_folds_(self) -> int:
        """Folds of the last fit (== `folds` unless there were fewer rows)."""
        return len(self.models_)

    def _reset(self) -> None:
        self.models_, self.oof_ = [], None

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        k = min(self.folds, len(X))
        split_seed, *model_seeds = spawn_seeds(self.seed, k + 1)
        splits = KFold(n_splits=k, shuffle=True, random_state=split_seed).split(X)
        models, oof = [], np.empty(len(X), dtype=np.float64)
        for (train, held), s in zip(splits, model_seeds, strict=True):
            model = self.base(s)
            model.fit(X[train], y[train])
            oof[held] = model.predict(X[held])
            models.append(model)
        self.models_, self.oof_ = models, oof

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(X) for m in self.models_], axis=0)
