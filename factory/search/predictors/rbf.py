"""Radial-basis-function surrogates: NAT's RBF (cubic kernel, linear tail) and its feature-bagged ensemble."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RBFInterpolator

from factory.search.predictors.base import Features, Predictor, RangeScaler, register_predictor, spawn_seeds
from factory.space.encoding import Encoding

# Kernels with no shape parameter: the fit needs no epsilon, and the result does not depend on a scale guess.
SCALE_FREE_KERNELS = ("cubic", "thin_plate_spline", "linear", "quintic")


class _RBFModel:
    """An RBF interpolant on min-max scaled features, robust to the degenerate inputs archives produce.

    Repeated rows are merged (mean target): interpolating two different values at one point is singular.
    The linear tail needs a full-rank polynomial matrix, which constant genes and one-hot groups (whose
    columns sum to 1) break; the features are therefore rotated onto the principal axes of the training
    rows that have non-zero spread. The rotation keeps distances, so the kernel part is unchanged.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, kernel: str, smoothing: float) -> None:
        X, inverse = np.unique(X, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        y = np.bincount(inverse, weights=y) / np.bincount(inverse)
        self.scaler = RangeScaler(X)
        Z = self.scaler(X)
        self.center = Z.mean(axis=0)
        _, s, vt = np.linalg.svd(Z - self.center, full_matrices=False)
        rank = int(np.sum(s > 1e-8 * max(s.max(initial=0.0), 1.0)))
        self.basis = vt[:rank].T
        self.constant = float(y.mean())
        self.interp: RBFInterpolator | None = None
        if rank > 0:  # else every row is the same point: predict the mean
            self.interp = RBFInterpolator(self._project(X), y, kernel=kernel, degree=1, smoothing=smoothing)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (self.scaler(X) - self.center) @ self.basis

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.interp is None:
            return np.full(len(X), self.constant)
        return self.interp(self._project(X))


def _check_rbf(kernel: str, smoothing: float) -> None:
    if kernel not in SCALE_FREE_KERNELS:
        raise ValueError(f"rbf kernel must be one of {', '.join(SCALE_FREE_KERNELS)}, got {kernel!r}")
    if smoothing < 0:
        raise ValueError(f"rbf smoothing must be >= 0, got {smoothing}")


@register_predictor("rbf")
class RBFPredictor(Predictor):
    """NAT's RBF surrogate: cubic kernel with a linear polynomial tail on min-max scaled genes.

    `smoothing` 0 interpolates the archive exactly, as NAT (pySOT) does; a positive value trades
    interpolation for robustness to evaluation noise.
    """

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        kernel: str = "cubic",
        smoothing: float = 0.0,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        _check_rbf(kernel, smoothing)
        self.kernel, self.smoothing = kernel, smoothing

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.model_ = _RBFModel(X, y, self.kernel, self.smoothing)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_(X)


@register_predictor("rbfe")
class RBFEnsemblePredictor(Predictor):
    """NAT's RBF ensemble: each member sees a random subset of a random number of features.

    As in NAT's code, which follows E2EPP's bagging of features, members use all rows (`sample_fraction`
    below 1 adds row bagging) and the prediction is the median over members, robust to the few members
    whose feature subset extrapolates badly. NAT used 500 members; 100 keep the fit well under a second
    with a stable median.
    """

    def __init__(
        self,
        seed: int = 0,
        encoding: Encoding | None = None,
        features: Features = "integer",
        n_models: int = 100,
        sample_fraction: float = 1.0,
        reduce: str = "median",
        kernel: str = "cubic",
        smoothing: float = 0.0,
    ) -> None:
        super().__init__(seed=seed, encoding=encoding, features=features)
        _check_rbf(kernel, smoothing)
        if n_models < 1:
            raise ValueError(f"rbfe n_models must be >= 1, got {n_models}")
        if not 0 < sample_fraction <= 1:
            raise ValueError(f"rbfe sample_fraction must be in (0, 1], got {sample_fraction}")
        if reduce not in ("median", "mean"):
            raise ValueError(f'rbfe reduce must be "median" or "mean", got {reduce!r}')
        self.n_models, self.sample_fraction, self.reduce = n_models, sample_fraction, reduce
        self.kernel, self.smoothing = kernel, smoothing

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        rng = np.random.default_rng(spawn_seeds(self.seed, 1)[0])
        n, m = X.shape
        n_rows = max(self.min_samples, round(self.sample_fraction * n))
        self.members_: list[tuple[np.ndarray, _RBFModel]] = []
        for _ in range(self.n_models):
            rows = np.sort(rng.choice(n, size=n_rows, replace=False)) if n_rows < n else np.arange(n)
            cols = np.sort(rng.permutation(m)[: rng.integers(1, m + 1)])
            self.members_.append((cols, _RBFModel(X[np.ix_(rows, cols)], y[rows], self.kernel, self.smoothing)))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        preds = np.stack([model(X[:, cols]) for cols, model in self.members_])
        return np.median(preds, axis=0) if self.reduce == "median" else preds.mean(axis=0)
