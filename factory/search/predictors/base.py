"""The accuracy-predictor interface and its registry.

A predictor maps gene vectors (rows of integers, see `factory.space.encoding`) to a score, accuracy or
top-1 error alike: it never looks at what the target means. As in pymoo, the public `fit` / `predict`
validate and keep state while subclasses implement only `_fit` / `_predict`, which receive clean float
arrays of the features the model sees (the integer genes, or their one-hot with `features="onehot"`).

All randomness comes from the constructor's `seed`: the same seed, data and library versions give the
same predictions, and no predictor touches a global RNG.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from factory.errors import FactoryError
from factory.space.encoding import Encoding

Features = Literal["integer", "onehot"]
FEATURES: tuple[str, ...] = ("integer", "onehot")
MAX_SEED = 2**31 - 1  # LightGBM and CatBoost take signed 32-bit seeds

P = TypeVar("P", bound="Predictor")

# BLAS / OpenMP threads inside fit and predict. The matrices are tiny (a few hundred rows): threads buy
# nothing, and on a busy machine spinning BLAS threads made MLP and GP fits 20-50x slower. Boosters
# keep their own thread settings (LightGBM's n_jobs, CatBoost's thread_count).
MATH_THREADS = 1
_limits = threading.local()


@contextlib.contextmanager
def limited_threads() -> Iterator[None]:
    """Cap BLAS / OpenMP threads at MATH_THREADS; nested uses (ensembles of predictors) cost nothing."""
    if getattr(_limits, "active", False):
        yield
        return
    _limits.active = True
    try:
        with threadpool_limits(limits=MATH_THREADS):
            yield
    finally:
        _limits.active = False


def check_seed(seed: int) -> int:
    """The seed as a Python int; a bool, float or out-of-range value is a bug in the caller."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {seed}")
    return int(seed)


def spawn_seeds(seed: int, n: int) -> list[int]:
    """n independent child seeds of `seed` (sub-models of an ensemble must not share one)."""
    state = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)
    return [int(s) % MAX_SEED for s in state]


def as_features(X: Any, what: str = "X") -> np.ndarray:
    """X as a finite 2-D float64 array, or a ValueError saying what is wrong with it."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric, got {type(X).__name__} that numpy cannot read as floats") from exc
    if arr.ndim != 2:
        hint = "; pass X.reshape(1, -1) for one vector" if arr.ndim == 1 else ""
        raise ValueError(f"{what} must be 2-D (rows = sub-networks, columns = genes), got shape {arr.shape}{hint}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} has no columns")
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{what} holds a non-finite value {arr[row, col]} at row {row}, column {col}")
    return arr


def as_target(y: Any, n: int) -> np.ndarray:
    """y as a finite 1-D float64 array of n values; a column vector (n, 1) is accepted."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be numeric, got {type(y).__name__} that numpy cannot read as floats") from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"y must be 1-D (one score per row of X), got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"X has {n} rows but y has {len(arr)} values")
    if not np.isfinite(arr).all():
        i = int(np.argmax(~np.isfinite(arr)))
        raise ValueError(f"y holds a non-finite value {arr[i]} at index {i}")
    return arr


class Predictor:
    """Base class of accuracy predictors: validate in `fit` / `predict`, implement `_fit` / `_predict`.

    Args:
        seed: the only source of randomness of the model (0..2**31-1).
        encoding: the gene encoding of the rows; when given, rows are checked against its bounds.
        features: "integer" feeds the genes as they are (NAT2); "onehot" feeds `encoding.one_hot(X)` (NAT).
    """

    #: fewer training rows than this is refused (no model here is meaningful on fewer).
    min_samples: ClassVar[int] = 4

    def __init__(self, seed: int = 0, encoding: Encoding | None = None, features: Features = "integer") -> None:
        self.seed = check_seed(seed)
        if features not in FEATURES:
            raise FactoryError(f"predictor features must be one of {', '.join(FEATURES)}, got {features!r}")
        if features == "onehot" and encoding is None:
            raise FactoryError('features="onehot" needs the encoding the genes come from (pass encoding=...)')
        self.encoding = encoding
        self.features: Features = features
        self.n_features_in_: int | None = None  # gene columns seen by fit; predict must match
        self.constant_: float | None = None  # the score when every training score was the same

    def __repr__(self) -> str:
        enc = f", encoding={self.encoding.name!r}" if self.encoding is not None else ""
        return f"{type(self).__name__}(seed={self.seed}, features={self.features!r}{enc})"

    @property
    def is_fitted(self) -> bool:
        return self.n_features_in_ is not None

    def fit(self: P, X: Any, y: Any) -> P:
        """Fit on gene rows X (n, genes) and their scores y (n,); returns self. Refits from scratch."""
        arr = self._check_rows(X)
        target = as_target(y, len(arr))
        if len(arr) < self.min_samples:
            raise ValueError(f"{type(self).__name__} needs at least {self.min_samples} samples, got {len(arr)}")
        self.n_features_in_ = None  # a failed refit must not leave a half-updated model looking fitted
        self._reset()
        # Identical scores carry no ranking and some libraries refuse them (CatBoost): predict the value.
        self.constant_ = float(target[0]) if np.ptp(target) == 0 else None
        if self.constant_ is None:
            with limited_threads():
                self._fit(self.transform(arr), target)
        self.n_features_in_ = arr.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted scores of gene rows X as a float64 array of shape (n,)."""
        if self.n_features_in_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X, y) first")
        arr = self._check_rows(X)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {arr.shape[1]} columns but the predictor was fitted on {self.n_features_in_}")
        if len(arr) == 0:
            return np.zeros(0, dtype=np.float64)
        if self.constant_ is not None:
            return np.full(len(arr), self.constant_)
        with limited_threads():
            out = np.asarray(self._predict(self.transform(arr)), dtype=np.float64).reshape(-1)
        if out.shape != (len(arr),):
            raise RuntimeError(f"{type(self).__name__}._predict returned {out.shape[0]} values for {len(arr)} rows")
        return out

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The features the model sees for validated rows X: the genes, or their one-hot."""
        if self.features == "onehot":
            assert self.encoding is not None  # checked in __init__
            return self.encoding.one_hot(X)
        return X

    def _check_rows(self, X: Any) -> np.ndarray:
        arr = as_features(X)
        if self.encoding is not None:
            self.encoding.validate(arr)  # names the first out-of-bounds gene
        return arr

    # --- hooks -------------------------------------------------------------------------------------

    def _reset(self) -> None:
        """Forget what the last fit learnt (called before every fit, even one `_fit` is skipped for)."""

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Standardizer:
    """Column-wise z-scores fitted on training data; constant columns keep scale 1 (they carry no signal).

    Used for targets: accuracies differ by tenths of a percent, below default tolerances and penalties.
    """

    def __init__(self, X: np.ndarray) -> None:
        self.offset = X.mean(axis=0)
        spread = X.std(axis=0)
        self.scale = np.where(spread > 1e-12, spread, 1.0)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.offset) / self.scale

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        return Z * self.scale + self.offset


class RangeScaler(Standardizer):
    """Column-wise min-max scaling to [0, 1] on the training rows, for inputs.

    Genes span different ranges (0..4 for the exit, 0..63 for a parallel block) and distance-based
    models must not weigh them by that. Unlike z-scores, this leaves one-hot columns as they are: a
    z-scored rare value (a block code seen in 5% of rows) sits 4 units away and swamps every distance.
    """

    def __init__(self, X: np.ndarray) -> None:
        self.offset = X.min(axis=0)
        spread = X.max(axis=0) - self.offset
        self.scale = np.where(spread > 1e-12, spread, 1.0)


class SklearnPredictor(Predictor):
    """Adapter for scikit-learn style regressors: subclasses return a fresh estimator from `_build`.

    Inputs are min-max scaled when `scale_X` (distance and penalty based models care about gene ranges)
    and targets standardised when `scale_y`; see `RangeScaler` and `Standardizer`.
    """

    scale_X: ClassVar[bool] = True
    scale_y: ClassVar[bool] = True

    def _build(self) -> Any:
        raise NotImplementedError

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._x_scaler = RangeScaler(X) if self.scale_X else None
        self._y_scaler = Standardizer(y[:, None]) if self.scale_y else None
        Xs = self._x_scaler(X) if self._x_scaler else X
        ys = self._y_scaler(y[:, None])[:, 0] if self._y_scaler else y
        self.model_ = self._build().fit(Xs, ys)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        Xs = self._x_scaler(X) if self._x_scaler else X
        out = np.asarray(self.model_.predict(Xs), dtype=np.float64).reshape(-1)
        return self._y_scaler.inverse(out[:, None])[:, 0] if self._y_scaler else out


# --- registry ----------------------------------------------------------------------------------------

PredictorFactory = Callable[..., Predictor]
PREDICTORS: dict[str, PredictorFactory] = {}
_BUILTINS = "factory.search.predictors"  # importing it registers the built-in families


def register_predictor(name: str) -> Callable[[Callable[..., P]], Callable[..., P]]:
    """Decorator adding a predictor class or factory `(seed, encoding, features, **options)` under `name`."""

    def add(factory: Callable[..., P]) -> Callable[..., P]:
        if name in PREDICTORS:
            raise ValueError(f"predictor {name!r} is already registered")
        PREDICTORS[name] = factory
        return factory

    return add


def predictor_names() -> list[str]:
    """The registered predictor names, sorted."""
    importlib.import_module(_BUILTINS)
    return sorted(PREDICTORS)


def make_predictor(name: str, seed: int = 0, **kw: Any) -> Predictor:
    """A new, unfitted predictor `name`; options set to None are dropped so the defaults apply.

    Unknown names and unknown options are `FactoryError`s listing the valid ones.
    """
    importlib.import_module(_BUILTINS)
    try:
        factory = PREDICTORS[name]
    except KeyError:
        raise FactoryError(f"unknown predictor {name!r}; choose one of {', '.join(sorted(PREDICTORS))}") from None
    kw = {k: v for k, v in kw.items() if v is not None}
    check_options(factory, kw, name)
    return factory(seed=seed, **kw)


def check_options(factory: Callable[..., Any], kw: dict[str, Any], name: str) -> None:
    """Raise a FactoryError naming the accepted options when `kw` holds one `factory` does not take."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kw) - set(params))
    if unknown:
        accepted = ", ".join(p for p in params if p != "self")
        raise FactoryError(f"predictor {name!r} has no option {', '.join(unknown)}; its options are {accepted}")
