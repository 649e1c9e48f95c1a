"""A multilayer perceptron, one of NAT's original candidates."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from factory.search.predictors.base import Features, SklearnPredictor, register_predictor
from factory.space.encoding import Encoding


@register_predictor("mlp")
class MLPPredictor(SklearnPredictor):
    """A ReLU MLP on min-max scaled genes and standardised targets, trained full-batch with L-BFGS.

    On a few hundred rows full-batch L-BFGS converges in a fraction of a second and, unlike Adam on
    minibatches, needs no learning-rate schedule; an L2 penalty (`alpha`) stands in for NAT's dropout.
    Deterministic under the seed (sklearn draws the initial weights from it, single-threaded maths).
    """

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        hidden: tuple[int, ...] = (64, 64),
        alpha: float = 1.0,
        max_iter: int = 300,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        self.hidden, self.alpha, self.max_iter = tuple(hidden), alpha, max_iter

    def _build(self) -> Any:
        return MLPRegressor(
            hidden_layer_sizes=self.hidden,
            alpha=self.alpha,
            solver="lbfgs",
            max_iter=self.max_iter,
            random_state=self.seed,
        )

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a capped L-BFGS run is the intended early stop
            super()._fit(X, y)
