"""Accuracy predictors: registry, input validation, every family fits and ranks, CV ensemble, metrics."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from factory.errors import FactoryError
from factory.search.metrics import cross_validate, kendall, spearman
from factory.search.predictors import (
    PREDICTORS,
    CrossValidationEnsemble,
    Predictor,
    make_predictor,
    predictor_names,
    register_predictor,
)
from factory.space.config import SpaceSpec
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_depth_uniform

PAPER = ["lgbm", "catboost", "gp", "rbf", "rbfe", "mlp", "cart", "svr", "ridge", "knn", "bayesian_ridge", "e2epp"]


def target(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth nonlinear score of 23 genes in 0..9 with interactions and a little noise."""
    Z = X / 9.0
    signal = np.sin(3 * Z[:, 0]) + np.sqrt(Z[:, 1]) + 0.8 * Z[:, 2] * Z[:, 3] + 0.4 * Z[:, 4:10].mean(axis=1)
    return 0.7 + 0.05 * signal + 0.002 * rng.normal(size=len(X))


def problem(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 10, size=(n, 23))
    return X, target(X, rng)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = problem(120, seed=0)
    X_test, y_test = problem(200, seed=1)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def encoding():
    return get_encoding("nat2", SpaceSpec(kind="ee-dense"))


# --- registry ------------------------------------------------------------------------------------------


def test_the_papers_twelve_are_registered() -> None:
    names = predictor_names()
    assert set(PAPER) <= set(names)
    assert names == sorted(names)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(FactoryError, match=r"unknown predictor 'xgb'.*lgbm.*ridge"):
        make_predictor("xgb")


def test_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(FactoryError, match=r"'ridge' has no option depth.*alpha"):
        make_predictor("ridge", depth=3)
    with pytest.raises(FactoryError, match=r"'lgbm' has no option depth.*num_leaves"):
        make_predictor("lgbm", depth=3)


def test_none_options_keep_the_defaults() -> None:
    assert make_predictor("ridge", alpha=None).alpha == 1.0
    assert make_predictor("lgbm", folds=None).folds == 10


def test_register_a_new_predictor() -> None:
    class MeanPredictor(Predictor):
        def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
            self.mean_ = float(y.mean())

        def _predict(self, X: np.ndarray) -> np.ndarray:
            return np.full(len(X), self.mean_)

    register_predictor("test_mean")(MeanPredictor)
    try:
        assert "test_mean" in predictor_names()
        out = make_predictor("test_mean", seed=3).fit(np.zeros((4, 2)), [1, 2, 3, 4]).predict(np.ones((2, 2)))
        np.testing.assert_array_equal(out, [2.5, 2.5])
        with pytest.raises(ValueError, match="already registered"):
            register_predictor("test_mean")(MeanPredictor)
    finally:
        PREDICTORS.pop("test_mean")


# --- every family --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER)
def test_fits_predicts_and_is_deterministic(name: str, data) -> None:
    X, y, X_test, _ = data
    model = make_predictor(name, seed=7)
    assert model.fit(X, y) is model
    pred = model.predict(X_test)
    assert pred.shape == (len(X_test),) and pred.dtype == np.float64
    assert np.isfinite(pred).all()
    again = make_predictor(name, seed=7).fit(X, y).predict(X_test)
    np.testing.assert_allclose(again, pred, rtol=0, atol=1e-10)
    assert model.predict(X_test[:0]).shape == (0,)


@pytest.mark.parametrize("name", PAPER)
def test_survives_degenerate_archives(name: str) -> None:
    """Repeated rows, constant genes and identical scores occur in small or converged archives."""
    rng = np.random.default_rng(0)
    X = np.repeat(rng.integers(0, 10, size=(6, 23)), 2, axis=0)
    X[:, 5] = 3
    for y in (np.full(len(X), 0.9), np.repeat(rng.random(6), 2)):
        pred = make_predictor(name).fit(X, y).predict(rng.integers(0, 10, size=(5, 23)))
        assert np.isfinite(pred).all()
    pred = make_predictor(name).fit(X, np.full(len(X), 0.9)).predict(X)
    np.testing.assert_allclose(pred, 0.9, atol=1e-6)


@pytest.mark.parametrize("name", PAPER)
def test_predictors_rank_held_out_networks(name: str, data) -> None:
    """Every family finds real signal; the strong ones (two relevant genes among 23, one non-monotone) rank well."""
    X, y, X_test, y_test = data
    rho = spearman(y_test, make_predictor(name, seed=0).fit(X, y).predict(X_test))
    assert rho > (0.7 if name in ("lgbm", "gp", "e2epp", "catboost", "mlp") else 0.25)


@pytest.mark.parametrize("name", PAPER)
def test_onehot_features(name: str, encoding) -> None:
    rng = np.random.default_rng(0)
    X = sample_depth_uniform(encoding, 60, rng)
    y = 0.8 + 0.01 * X[:, 1] + 0.002 * (X[:, encoding.n_header :] > 0).sum(axis=1) + 0.001 * rng.normal(size=60)
    model = make_predictor(name, seed=0, encoding=encoding, features="onehot").fit(X, y)
    pred = model.predict(sample_depth_uniform(encoding, 7, rng))
    assert pred.shape == (7,) and np.isfinite(pred).all()


def test_onehot_is_the_model_on_encoding_one_hot(encoding) -> None:
    rng = np.random.default_rng(1)
    X = sample_depth_uniform(encoding, 40, rng)
    y = rng.random(40)
    onehot = make_predictor("ridge", encoding=encoding, features="onehot").fit(X, y)
    plain = make_predictor("ridge").fit(encoding.one_hot(X), y)
    np.testing.assert_allclose(onehot.predict(X), plain.predict(encoding.one_hot(X)))
    assert onehot.n_features_in_ == encoding.n_genes


def test_feature_options_are_checked(encoding) -> None:
    with pytest.raises(FactoryError, match="needs the encoding"):
        make_predictor("ridge", features="onehot")
    with pytest.raises(FactoryError, match="integer, onehot"):
        make_predictor("ridge", encoding=encoding, features="binary")


def test_encoding_bounds_are_checked(encoding) -> None:
    X = sample_depth_uniform(encoding, 10, np.random.default_rng(0))
    X[3, 1] = 7  # width index out of range
    with pytest.raises(ValueError, match="row 3: gene 1"):
        make_predictor("ridge", encoding=encoding).fit(X, np.arange(10.0))


# --- validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.arange(10.0), np.arange(10.0), "must be 2-D.*reshape"),
        (np.array([["a", "b"]] * 5), np.arange(5.0), "must be numeric"),
        (np.where(np.eye(5, 3) == 1, np.nan, 1.0), np.arange(5.0), "non-finite value nan at row 0, column 0"),
        (np.ones((5, 3)), np.arange(4.0), "5 rows but y has 4"),
        (np.ones((5, 3)), np.ones((5, 2)), "y must be 1-D"),
        (np.ones((5, 3)), [1, 2, np.inf, 4, 5], "non-finite value inf at index 2"),
        (np.ones((3, 3)), np.arange(3.0), "at least 4 samples"),
        (np.ones((5, 0)), np.arange(5.0), "no columns"),
    ],
)
def test_fit_rejects_bad_inputs(X, y, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_predictor("ridge").fit(X, y)


def test_predict_checks_state_and_columns(data) -> None:
    X, y, _, _ = data
    model = make_predictor("ridge")
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(X)
    model.fit(X, y)
    with pytest.raises(ValueError, match="22 columns but the predictor was fitted on 23"):
        model.predict(X[:, :22])
    with pytest.raises(ValueError, match="reshape"):
        model.predict(X[0])
    np.testing.assert_allclose(model.predict(X[:1].tolist()), model.predict(X[:1].astype(np.float32)))


def test_column_target_is_accepted(data) -> None:
    X, y, X_test, _ = data
    a = make_predictor("ridge").fit(X, y[:, None]).predict(X_test)
    np.testing.assert_allclose(a, make_predictor("ridge").fit(X, y).predict(X_test))


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, True])
def test_bad_seeds(seed) -> None:
    with pytest.raises((TypeError, ValueError), match="seed"):
        make_predictor("ridge", seed=seed)


def test_catboost_missing_is_a_user_error(monkeypatch, data) -> None:
    X, y, _, _ = data
    monkeypatch.setitem(sys.modules, "catboost", None)  # makes `import catboost` raise ImportError
    with pytest.raises(FactoryError, match="pip install catboost"):
        make_predictor("catboost").fit(X, y)


# --- cross-validation ensemble -----------------------------------------------------------------------------


def test_lgbm_is_a_ten_fold_ensemble(data) -> None:
    X, y, X_test, _ = data
    model = make_predictor("lgbm").fit(X, y)
    assert isinstance(model, CrossValidationEnsemble) and model.n_folds_ == 10
    np.testing.assert_allclose(model.predict(X_test), np.mean([m.predict(X_test) for m in model.models_], axis=0))
    assert model.oof_ is not None and model.oof_.shape == (len(X),)
    assert spearman(y, model.oof_) > 0.5  # out-of-fold predictions are honest but informative


def test_fitted_predictors_pickle(data) -> None:
    """The search may checkpoint its predictor: fitted models, ensembles included, must round-trip."""
    X, y, X_test, _ = data
    for name in ("lgbm", "rbfe", "gp"):
        model = make_predictor(name, folds=3) if name == "lgbm" else make_predictor(name)
        model.fit(X, y)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X_test), model.predict(X_test))


@pytest.mark.parametrize("folds", [2, 7])
def test_ensemble_uses_the_requested_folds(folds: int, data) -> None:
    X, y, _, _ = data
    model = CrossValidationEnsemble("ridge", folds=folds, seed=1).fit(X, y)
    assert model.n_folds_ == folds
    seeds = {m.seed for m in model.models_}
    assert len(seeds) == folds  # fold models do not share a seed
    assert make_predictor("lgbm", folds=folds).fit(X, y).n_folds_ == folds


def test_ensemble_with_fewer_rows_than_folds_is_leave_one_out() -> None:
    X, y = problem(6)
    model = CrossValidationEnsemble("ridge", folds=10).fit(X, y)
    assert model.n_folds_ == 6
    assert model.fit(X, np.ones(6)).n_folds_ == 0 and model.oof_ is None  # constant scores: nothing to fit


def test_ensemble_takes_a_callable_and_checks_folds(data) -> None:
    X, y, X_test, _ = data
    built: list[int] = []

    def base(seed: int) -> Predictor:
        built.append(seed)
        return make_predictor("ridge", seed=seed, alpha=0.5)

    CrossValidationEnsemble(base, folds=3).fit(X, y).predict(X_test)
    assert len(built) == 3
    with pytest.raises(ValueError, match="folds must be an int >= 2"):
        CrossValidationEnsemble("ridge", folds=1)


# --- metrics -----------------------------------------------------------------------------------------------


def test_rank_correlations_on_hand_cases() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6 * (0 + 1 + 1) / (3 * 8)
    assert kendall([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # (2 concordant - 1 discordant) / 3
    assert kendall([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
    assert kendall([7, 7, 7], [1, 2, 3]) == 0.0
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        kendall([1], [1])


def test_cross_validate_protocol() -> None:
    X, y = problem(200)
    out = cross_validate("ridge", X, y, folds=5, seed=0, train_size=60)
    assert set(out) >= {"spearman", "kendall", "fit_s", "predict_s", "spearman_std", "kendall_std"}
    assert out["train_size"] == 60 and out["folds"] == 5
    assert 0.5 < out["spearman"] <= 1 and 0.3 < out["kendall"] <= 1 and out["fit_s"] > 0
    assert out == {**cross_validate("ridge", X, y, folds=5, seed=0, train_size=60), "fit_s": out["fit_s"],
                   "predict_s": out["predict_s"]}  # fmt: skip
    full = cross_validate(lambda s: make_predictor("ridge", seed=s), X, y, folds=5)
    assert full["train_size"] == 160
    assert cross_validate("ridge", X, y, folds=5, alpha=100.0)["spearman"] != full["spearman"]
    with pytest.raises(ValueError, match="train_size 170 exceeds the 160 training rows"):
        cross_validate("ridge", X, y, folds=5, train_size=170)
    with pytest.raises(ValueError, match="folds must be an int"):
        cross_validate("ridge", X, y, folds=1)
