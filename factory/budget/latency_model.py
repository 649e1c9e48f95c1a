"""A latency predictor fitted on a device profile: batch-1 milliseconds of any sub-network of the space.

Features come from the deployable graph without building it (`factory.space.footprint.graph_features`): the
node count, dense and depthwise conv MACs, activation traffic, weights and peak memory. The model is a
non-negative linear one fitted for relative error (each network weighs by 1 / its latency): a CPU's
batch-1 time is close to a sum of per-node dispatch, arithmetic and memory terms, and non-negative
coefficients keep it monotone, so it extrapolates sanely outside the kit. `benchmarks.latency_predictor`
compares it with boosted trees on the same profiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from factory.device_side import PROFILE_FORMAT
from factory.errors import FactoryError
from factory.io import read_json_input
from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.footprint import graph_features

FEATURES = ("nodes", "convs", "dense_macs", "depthwise_macs", "traffic", "weights", "peak")
WITHIN = 0.10  # the error band the held-out report counts


def feature_matrix(
    spec: SpaceSpec, configs: Sequence[SubnetConfig], exits: tuple[int, ...] | None = None
) -> np.ndarray:
    """(n, 1 + len(FEATURES)): a constant column, then each feature (of the network with `exits`)."""
    rows = [[1.0, *(graph_features(spec, c, exits)[name] for name in FEATURES)] for c in configs]
    return np.array(rows, dtype=np.float64).reshape(len(configs), 1 + len(FEATURES))


@dataclass
class LatencyPredictor:
    """Non-negative linear latency model over `FEATURES` (coefficients per scaled column)."""

    coef: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray) -> LatencyPredictor:
        from scipy.optimize import nnls

        scale = np.maximum(np.abs(X).max(axis=0), 1e-12)
        weights = 1.0 / np.asarray(y, dtype=np.float64)
        coef, _ = nnls((X / scale) * weights[:, None], np.ones_like(weights))
        return cls(coef, scale)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (X / self.scale) @ self.coef

    def to_dict(self) -> dict[str, Any]:
        return {"features": ["constant", *FEATURES], "coef": self.coef.tolist(), "scale": self.scale.tolist()}


def accuracy(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """The share within WITHIN of the measured latency, the median relative error and Spearman's rho."""
    from scipy.stats import spearmanr

    relative = np.abs(predicted - measured) / measured
    return {
        "within_10pct": float(np.mean(relative <= WITHIN)),
        "median_rel_error": float(np.median(relative)),
        "spearman_rho": float(spearmanr(predicted, measured).statistic),
        "networks": len(measured),
    }


def cross_validated(X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Held-out accuracy: every network predicted by a model fitted without it (k folds)."""
    order = np.random.default_rng(seed).permutation(len(y))
    predicted = np.empty_like(y)
    for fold in np.array_split(order, folds):
        train = np.setdiff1d(order, fold)
        predicted[fold] = LatencyPredictor.fit(X[train], y[train]).predict(X[fold])
    return accuracy(predicted, y)


def read_profile(path: str | Path, spec: SpaceSpec) -> dict[str, Any]:
    """A device profile written by `factory profile`, checked against the run's space."""
    path = Path(path)
    hint = "run `factory profile KIT --out FILE` on the device"
    profile = read_json_input(path, "--latency-profile", PROFILE_FORMAT, hint, "networks")
    try:
        for net in profile["networks"]:
            SubnetConfig.from_dict(net["config"])
            if not float(net["latency_ms"]) > 0:
                raise ValueError
    except (KeyError, TypeError, ValueError):
        raise FactoryError(f"--latency-profile {path} is corrupt (a network without a config or latency)") from None
    if profile.get("space_fingerprint") != spec.fingerprint():
        raise FactoryError(
            f"--latency-profile {path} profiles another space (fingerprint {profile.get('space_fingerprint')}, "
            f"this run's {spec.fingerprint()}); make a kit of this run with `factory profile-kit --run RUN`"
        )
    return profile


def profiled_precisions(profile: dict[str, Any]) -> tuple[str, ...]:
    """The precisions every network of `profile` was timed in: ("fp32",) or ("fp32", "int8")."""
    has_int8 = all(float(n.get("int8", {}).get("latency_ms", 0)) > 0 for n in profile["networks"])
    return ("fp32", "int8") if has_int8 else ("fp32",)


def latencies(profile: dict[str, Any], precision: str = "fp32") -> np.ndarray:
    """Each network's profiled milliseconds (its fastest run) in `precision`."""
    nets = profile["networks"]
    return np.array([float(n["latency_ms"] if precision == "fp32" else n["int8"]["latency_ms"]) for n in nets])


def fit_profile(
    profile: dict[str, Any], spec: SpaceSpec, precision: str = "fp32"
) -> tuple[LatencyPredictor, dict[str, Any]]:
    """The predictor of `precision`'s latency fitted on every network of `profile`, and its cross-validated
    held-out accuracy."""
    configs = [SubnetConfig.from_dict(n["config"]) for n in profile["networks"]]
    X = feature_matrix(spec, configs)
    y = latencies(profile, precision)
    report = {"heldout": cross_validated(X, y), "machine": profile.get("machine", {}), "kit": profile.get("kit")}
    return LatencyPredictor.fit(X, y), report | {"precision": precision}


class LatencyModel:
    """Predicted milliseconds of configs from a profile, memoised by config key: of the INT8 graphs when
    `precision` is "int8" and the profile timed them (a kit made for an INT8 build), else of the FP32 graphs
    (`precision` then says "fp32" and the report notes why)."""

    def __init__(self, spec: SpaceSpec, profile_path: str | Path, precision: str = "fp32") -> None:
        self.spec = spec
        self.path = Path(profile_path)
        self.profile = read_profile(self.path, spec)
        self.precision = precision if precision in profiled_precisions(self.profile) else "fp32"
        self.predictor, self.report = fit_profile(self.profile, spec, self.precision)
        if self.precision != precision:
            self.report["note"] = f"the profile has no {precision.upper()} timings; FP32 latency is predicted"
        self._cache: dict[str, float] = {}

    def __call__(self, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> float:
        """Predicted batch-1 milliseconds of the network of `config` with `exits` (default: its own exit)."""
        key = f"{config.key()}:{exits}"
        if key not in self._cache:
            self._cache[key] = float(self.predictor.predict(feature_matrix(self.spec, [config], exits))[0])
        return self._cache[key]
