"""Kernel, linear and neighbour regressors the paper added as fast baselines: svr, ridge, bayesian_ridge, knn."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import BayesianRidge, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import SVR

from factory.search.predictors.base import Features, SklearnPredictor, register_predictor
from factory.space.encoding import Encoding


@register_predictor("svr")
class SVRPredictor(SklearnPredictor):
    """Epsilon-SVR with an RBF kernel on min-max scaled genes and standardised targets (`epsilon` is in target stds)."""

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        C: float = 1.0,
        epsilon: float = 0.1,
        gamma: str | float = "scale",
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        self.C, self.epsilon, self.gamma = C, epsilon, gamma

    def _build(self) -> Any:
        return SVR(C=self.C, epsilon=self.epsilon, gamma=self.gamma)  # deterministic: the seed is unused


@register_predictor("ridge")
class RidgePredictor(SklearnPredictor):
    """L2-penalised least squares on min-max scaled genes: linear in each gene, so blind to interactions."""

    def __init__(
        self, seed: int = 0, encoding: Encoding | None = None, features: Features = "integer", alpha: float = 1.0
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        self.alpha = alpha

    def _build(self) -> Any:
        return Ridge(alpha=self.alpha)


@register_predictor("bayesian_ridge")
class BayesianRidgePredictor(SklearnPredictor):
    """Ridge whose penalty and noise level are estimated from the data (evidence maximisation)."""

    def _build(self) -> Any:
        return BayesianRidge()


@register_predictor("knn")
class KNNPredictor(SklearnPredictor):
    """Distance-weighted k nearest neighbours on min-max scaled genes; k shrinks to the sample count."""

    def __init__(
        self, seed: int = 0, encoding: Encoding | None = None, features: Features = "integer", n_neighbors: int = 5
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        if n_neighbors < 1:
            raise ValueError(f"knn n_neighbors must be >= 1, got {n_neighbors}")
        self.n_neighbors = n_neighbors

    def _build(self) -> Any:
        return KNeighborsRegressor(n_neighbors=min(self.n_neighbors, self._n_train), weights="distance")

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._n_train = len(X)
        super()._fit(X, y)
