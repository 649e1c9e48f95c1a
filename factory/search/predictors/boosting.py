"""Gradient-boosted trees: LightGBM (NAT2's choice) and CatBoost (the paper's most accurate, but slower)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from factory.errors import FactoryError
from factory.search.predictors.base import Features, Predictor, Standardizer, check_options, register_predictor
from factory.search.predictors.ensemble import CrossValidationEnsemble
from factory.space.encoding import Encoding


class LGBMPredictor(Predictor):
    """One LightGBM regressor with the Huber objective (NAT2), robust to a few badly evaluated networks.

    Targets are standardised first, so Huber's threshold (`alpha`, 0.9 in LightGBM) is in standard
    deviations whether y is a fraction, a percentage or an error. Defaults are for archives of a few
    hundred rows: small leaves, shallow trees, one thread (two threads on tiny data are far slower).
    """

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        num_leaves: int = 15,
        min_child_samples: int = 5,
        objective: str = "huber",
        n_jobs: int = 1,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        self.params: dict[str, Any] = {
            "objective": objective,
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_child_samples": min_child_samples,
            "n_jobs": n_jobs,
            "verbose": -1,
            "deterministic": True,
            "force_col_wise": True,  # with `deterministic`, makes results independent of the threading
            **(params or {}),
        }

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        import lightgbm

        self._y_scaler = Standardizer(y[:, None])
        self.model_ = lightgbm.LGBMRegressor(random_state=self.seed, **self.params)
        self.model_.fit(X, self._y_scaler(y[:, None])[:, 0])

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._y_scaler.inverse(self.model_.predict(X)[:, None])[:, 0]


@register_predictor("lgbm")
def lgbm(
    seed: int = 0, encoding: Encoding | None = None, features: Features = "integer", folds: int = 10, **kw: Any
) -> CrossValidationEnsemble:
    """NAT2's predictor: Huber LightGBM as a `folds`-fold cross-validation ensemble (options: `LGBMPredictor`)."""
    check_options(LGBMPredictor, kw, "lgbm")
    return CrossValidationEnsemble(
        functools.partial(LGBMPredictor, **kw), folds=folds, seed=seed, encoding=encoding, features=features
    )


@register_predictor("catboost")
class CatBoostPredictor(Predictor):
    """CatBoost with symmetric trees; the paper's best correlation, at a higher fit time than LGBM.

    catboost is imported only when fitting, so the rest of the factory works without it.
    """

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        iterations: int = 300,
        depth: int = 6,
        learning_rate: float = 0.05,
        thread_count: int = 2,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        self.params: dict[str, Any] = {
            "iterations": iterations,
            "depth": depth,
            "learning_rate": learning_rate,
            "thread_count": thread_count,
            "verbose": False,
            "allow_writing_files": False,  # else it writes catboost_info/ into the working directory
            **(params or {}),
        }

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        try:
            import catboost
        except ImportError:
            raise FactoryError("the catboost predictor needs the catboost package: pip install catboost") from None
        self._y_scaler = Standardizer(y[:, None])
        self.model_ = catboost.CatBoostRegressor(random_seed=self.seed, **self.params)
        self.model_.fit(X, self._y_scaler(y[:, None])[:, 0])

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._y_scaler.inverse(np.asarray(self.model_.predict(X))[:, None])[:, 0]
