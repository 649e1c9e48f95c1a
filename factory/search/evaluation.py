"""Real evaluation of sub-networks for the search, behind caches that make every config cost once.

Top-1 depends on the super-network's weights, so it is cached by (version, config key): `version` is a
digest of every width's weights plus the evaluation settings (calibration images, seed, data), so it
changes after each adaptation and an unchanged super-network maps to the same version in every run.
Latency and the analytic counts depend on the architecture only and are cached by config key.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from factory.budget.figures import Figures
from factory.data import DatasetSplits
from factory.elastic import OFASupernet
from factory.errors import FactoryError
from factory.recipe import Recipe
from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.counting import count_macs, count_params
from factory.space.footprint_int8 import Int8Layout, delivered_footprint
from factory.training.batchnorm import calibration_subset
from factory.training.device import resolve_precision
from factory.training.evaluate import Evaluator, onnx_session
from factory.training.trainer import evaluate_config

LATENCY_WARMUP = 3
LATENCY_RUNS = 10


def weights_version(supernets: dict[float, OFASupernet], salt: Any = None) -> str:
    """A 16-hex digest of every width's weights and buffers (and `salt`, e.g. the evaluation settings)."""
    digest = hashlib.sha256(json.dumps(salt, sort_keys=True, default=str).encode())
    for width in sorted(supernets):
        for name, tensor in sorted(supernets[width].state_dict().items()):
            digest.update(f"{width}:{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class Complexity:
    """Analytic params and MACs of configs (exact, `factory.space.counting`), and the flash and RAM bytes of
    the graph the build delivers (exact: the INT8 graph of `int8`'s layout, else the FP32 graph), memoised
    by config key."""

    def __init__(self, spec: SpaceSpec, int8: Int8Layout | None = None) -> None:
        self.spec = spec
        self.int8 = int8
        self._counts: dict[str, tuple[int, int]] = {}
        self._footprints: dict[str, tuple[int, int]] = {}

    def footprint(self, config: SubnetConfig) -> tuple[int, int]:
        """(flash bytes, RAM bytes) of the deployable network's delivered graph."""
        key = config.key()
        if key not in self._footprints:
            self._footprints[key] = delivered_footprint(self.spec, config, None, self.int8)
        return self._footprints[key]

    def figures(self, config: SubnetConfig, latency: float | None = None) -> Figures:
        """Every figure of the deployable network of `config` (latency given by the caller's model)."""
        params, macs = self(config)
        flash, ram = self.footprint(config)
        return Figures(params, macs, flash, ram, latency)

    def __call__(self, config: SubnetConfig) -> tuple[int, int]:
        key = config.key()
        if key not in self._counts:
            self._counts[key] = (count_params(self.spec, config), count_macs(self.spec, config))
        return self._counts[key]


@dataclass
class CacheStats:
    evaluations: int = 0  # real evaluations (recovered ones from an interrupted run included)
    hits: int = 0  # answered from the cache, no evaluation
    seconds: float = 0.0


@dataclass
class EvaluationCache:
    """top-1 by (version, config key); `pending` holds results an interrupted run logged after its last
    saved state: they are reused instead of recomputed, and count (and are logged) as evaluations again."""

    values: dict[tuple[str, str], float] = field(default_factory=dict)
    pending: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    stats: CacheStats = field(default_factory=CacheStats)

    def get(self, version: str, key: str) -> float | None:
        return self.values.get((version, key))

    def put(self, version: str, key: str, top1: float) -> None:
        self.values[(version, key)] = float(top1)


class SubnetEvaluator:
    """Validation top-1 of sub-networks: extract, recalibrate BN on a fixed training subset, evaluate.

    Args:
        supernets: one super-network per width (the search adapts them in place, then calls `refresh`).
        splits: the dataset; `val` is evaluated, a seeded subset of `train` recalibrates BatchNorm.
        recipe: `train.bn_calib_images`, `bn_calib_batch`, `eval_batch_size`, `seed`; `data` mean and std.
        device: where extraction and calibration run; CPU evaluates with onnxruntime ("auto" backend).
        backend: the `Evaluator` backend ("auto", "onnxruntime", "eager").
    """

    def __init__(
        self,
        supernets: dict[float, OFASupernet],
        splits: DatasetSplits,
        recipe: Recipe,
        device: torch.device | str = "cpu",
        backend: str = "auto",
    ) -> None:
        t, d = recipe.train, recipe.data
        if len(splits.val) == 0:
            raise FactoryError("the search evaluates on the validation split, which is empty; give data.val_size > 0")
        self.supernets = supernets
        self.device = torch.device(device)
        self.mean, self.std = tuple(d.mean), tuple(d.std)
        self.calib_batch = t.bn_calib_batch
        self.precision = resolve_precision(t.precision, self.device)
        self.calib = calibration_subset(splits.train, t.bn_calib_images, t.seed, self.device)
        self.evaluator = Evaluator(
            splits.val, self.mean, self.std, t.eval_batch_size, backend, self.device, precision=self.precision
        )
        self.latency_threads = recipe.bench.threads
        self.salt = {
            "bn_calib_images": t.bn_calib_images,
            "bn_calib_batch": t.bn_calib_batch,
            "seed": t.seed,
            "data": recipe.to_dict()["data"],
            "val_size": len(splits.val),
            "precision": self.precision,  # a bf16 evaluation is another measurement than a float32 one
        }
        self.cache = EvaluationCache()
        self.latency: dict[str, float] = {}
        self.version = weights_version(supernets, self.salt)

    @property
    def evaluations(self) -> int:
        """Real evaluations so far (recovered ones included)."""
        return self.cache.stats.evaluations

    @property
    def cache_hits(self) -> int:
        """Requests answered from the cache."""
        return self.cache.stats.hits

    def restore(self, evaluations: int, cache_hits: int, latency: Mapping[str, float]) -> None:
        """Continue the counts and latencies of a saved search."""
        self.cache.stats.evaluations = int(evaluations)
        self.cache.stats.hits = int(cache_hits)
        self.latency.update({k: float(v) for k, v in latency.items()})

    def replay(self, log: Sequence[Mapping[str, Any]], saved: int) -> None:
        """Take back a search's evaluation log on resume: the first `saved` records (those the saved state
        covers) fill the cache; later ones, computed after the last save, wait for `recover`. Every record's
        latency is kept (it depends on the architecture only)."""
        for i, record in enumerate(log):
            key = (str(record.get("version")), str(record.get("key")))
            if record.get("latency_ms") is not None:
                self.latency.setdefault(key[1], float(record["latency_ms"]))
            if i < saved:
                self.cache.put(*key, float(record["top1"]))
            else:
                self.cache.pending.setdefault(key, dict(record))

    def recover(self, config: SubnetConfig) -> dict[str, Any] | None:
        """The record an interrupted run logged for `config` under the current weights (see `replay`), now
        cached and counted as an evaluation, so the resumed search logs it again instead of recomputing it;
        None when there is none."""
        key = (self.version, config.key())
        record = self.cache.pending.pop(key, None)
        if record is not None:
            self.cache.put(*key, float(record["top1"]))
            self.cache.stats.evaluations += 1
        return record

    def refresh(self) -> str:
        """Recompute the weights version after the super-networks changed (adaptation, loading)."""
        self.version = weights_version(self.supernets, self.salt)
        return self.version

    def top1(self, config: SubnetConfig) -> tuple[float, bool]:
        """(validation top-1, whether it came from the cache) of `config` under the current weights."""
        cached = self.cache.get(self.version, config.key())
        if cached is not None:
            self.cache.stats.hits += 1
            return cached, True
        start = time.perf_counter()
        for net in self.supernets.values():
            net.eval()
        value = evaluate_config(
            self.supernets[config.width],
            config,
            self.calib,
            self.evaluator,
            self.mean,
            self.std,
            self.calib_batch,
            self.device,
        )
        self.cache.stats.seconds += time.perf_counter() - start
        self.cache.stats.evaluations += 1
        self.cache.put(self.version, config.key(), value)
        return float(value), False

    def latency_ms(self, config: SubnetConfig) -> float:
        """Median onnxruntime CPU latency (ms) at batch 1 of the extracted network; SLOW (~0.3 s per new
        config: export + warm-up + timed runs), cached by config key, fine for small archives only."""
        key = config.key()
        if key not in self.latency:
            supernet = self.supernets[config.width]
            supernet.set_active(config)
            static = supernet.get_active_subnet().cpu().eval()
            example = torch.zeros(2, 3, config.resolution, config.resolution)
            session = onnx_session(static, example, self.latency_threads)
            one = np.zeros((1, 3, config.resolution, config.resolution), dtype=np.float32)
            for _ in range(LATENCY_WARMUP):
                session.run(None, {"image": one})
            times = []
            for _ in range(LATENCY_RUNS):
                start = time.perf_counter()
                session.run(None, {"image": one})
                times.append((time.perf_counter() - start) * 1000.0)
            self.latency[key] = float(statistics.median(times))
        return self.latency[key]
