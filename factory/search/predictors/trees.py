"""Tree models: a single CART, and E2EPP's random forest of CARTs."""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor

from factory.search.predictors.base import Features, SklearnPredictor, register_predictor
from factory.space.encoding import Encoding


@register_predictor("cart")
class CARTPredictor(SklearnPredictor):
    """One regression tree: the fastest model to fit, and the least accurate (piecewise-constant)."""

    scale_X = False  # splits are invariant to scaling
    scale_y = False

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        max_depth: int | None = None,
        min_samples_leaf: int = 2,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        self.max_depth, self.min_samples_leaf = max_depth, min_samples_leaf

    def _build(self) -> Any:
        return DecisionTreeRegressor(
            max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf, random_state=self.seed
        )


@register_predictor("e2epp")
class E2EPPPredictor(SklearnPredictor):
    """E2EPP (Sun et al., 2019): an end-to-end random-forest performance predictor.

    E2EPP bags CARTs, each grown on a random subset of the encoding's features, and averages them.
    sklearn's random forest does the same with bootstrap rows and a random feature subset per split
    (`max_features`); E2EPP's own pruning of the tree pool is not reproduced.
    """

    scale_X = False
    scale_y = False

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        n_estimators: int = 200,
        max_features: float | str = 0.5,
        min_samples_leaf: int = 1,
        n_jobs: int = 1,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        self.n_estimators, self.max_features = n_estimators, max_features
        self.min_samples_leaf, self.n_jobs = min_samples_leaf, n_jobs

    def _build(self) -> Any:
        return RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            n_jobs=self.n_jobs,
            random_state=self.seed,
        )
