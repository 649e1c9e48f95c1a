"""Accuracy predictors behind a registry: `make_predictor("lgbm", seed=0).fit(X, y).predict(X_new)`.

Importing this package registers the twelve families the NAT2 paper compares.
"""

from factory.search.predictors import boosting, gaussian_process, linear, neural, rbf, trees  # noqa: F401  (register)
from factory.search.predictors.base import (
    FEATURES,
    PREDICTORS,
    Features,
    Predictor,
    SklearnPredictor,
    make_predictor,
    predictor_names,
    register_predictor,
)
from factory.search.predictors.ensemble import CrossValidationEnsemble

__all__ = [
    "FEATURES",
    "PREDICTORS",
    "CrossValidationEnsemble",
    "Features",
    "Predictor",
    "SklearnPredictor",
    "make_predictor",
    "predictor_names",
    "register_predictor",
]
