"""The host side of latency profiling: a kit of sample sub-networks of a run's space, as ONNX graphs.

The kit spreads its networks over the whole space (the search's sampler) and puts half of them near the
run's budget (within it, at half the limit or more), where the picks are chosen. Each network comes as its
FP32 graph and, when the run delivers INT8, as its INT8 graph too (quantized as the build quantizes, on
random calibration images), so the device times the precision it will run. The weights are the networks'
initial ones: latency on a CPU does not depend on the values. The manifest names the space by a
fingerprint, so a profile of another space is refused when a build reads it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from factory.budget.feasibility import BUDGETED, Budget, figures, int8_layout
from factory.device_side import KIT_FORMAT
from factory.errors import FactoryError
from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.encoding import get_encoding
from factory.space.footprint_int8 import Int8Layout
from factory.space.sampling import sample_configs

NEAR_SHARE = 0.5  # of the kit's networks drawn near the budget
NEAR_FROM = 0.5  # "near": the largest figure at least this share of its limit


def _load(budget: Budget, spec: SpaceSpec, config: SubnetConfig) -> float:
    """The largest share of a limit the network uses (0 without limits)."""
    values = figures(spec, config, footprint=budget.needs_footprint, int8=budget.int8)
    shares = [values.value(n) / getattr(budget, n) for n in BUDGETED if getattr(budget, n) is not None]
    return max(shares, default=0.0)


def kit_configs(spec: SpaceSpec, budget: Budget, count: int, seed: int = 0) -> list[SubnetConfig]:
    """`count` distinct sub-networks: half from the whole space, half within `budget` near its limits."""
    rng = np.random.default_rng(seed)
    encoding = get_encoding("nat2", spec)
    chosen: dict[str, SubnetConfig] = {}
    if budget.limited:
        wanted = round(count * NEAR_SHARE)
        for _ in range(200):
            for config in sample_configs(encoding, 64, rng):
                if len(chosen) < wanted and NEAR_FROM <= _load(budget, spec, config) <= 1.0:
                    chosen.setdefault(config.key(), config)
            if len(chosen) >= wanted:
                break
    for _ in range(100):
        if len(chosen) >= count:
            break
        for config in sample_configs(encoding, count, rng):
            if len(chosen) < count:
                chosen.setdefault(config.key(), config)
    return list(chosen.values())


def write_kit(
    spec: SpaceSpec,
    configs: list[SubnetConfig],
    out: str | Path,
    note: dict[str, Any],
    int8: Int8Layout | None = None,
) -> Path:
    """Export `configs` to OUT/nets/<i>.onnx (and OUT/nets/<i>.int8.onnx, quantized with `int8`'s layout) and
    write OUT/manifest.json; replaces an existing kit."""
    import torch

    from factory.graphs.int8 import QuantSettings, quantize_graph
    from factory.graphs.onnx import export_onnx
    from factory.io import file_sha256, write_json_atomic
    from factory.nn import StaticNetwork

    out = Path(out)
    if (out / "nets").is_dir():
        shutil.rmtree(out / "nets")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    networks = []
    for index, config in enumerate(configs):
        file = f"nets/{index:04d}.onnx"
        export_onnx(StaticNetwork(spec, config), out / file, config.resolution)
        values = figures(spec, config)
        extra = {}
        if int8 is not None:
            extra["int8_file"] = f"nets/{index:04d}.int8.onnx"
            images = rng.random((4, 3, config.resolution, config.resolution), dtype=np.float32)
            settings = QuantSettings(per_channel=int8.per_channel, symmetric_activations=int8.symmetric_activations)
            quantize_graph(out / file, out / extra["int8_file"], images, settings)
            extra["int8_sha256"] = file_sha256(out / extra["int8_file"])
        networks.append(
            {
                "file": file,
                "sha256": file_sha256(out / file),  # the device times only graphs whose hash matches
                **extra,
                "resolution": config.resolution,
                "config": config.to_dict(),
                **{k: v for k, v in values.to_record().items() if k != "latency_ms"},
            }
        )
    fingerprint = spec.fingerprint()
    kit_id = hashlib.sha256(json.dumps([n["config"] for n in networks], sort_keys=True).encode()).hexdigest()[:16]
    manifest = {
        "format": KIT_FORMAT,
        "kit_id": kit_id,
        "space_fingerprint": fingerprint,
        "space": spec.to_dict(),
        "input": {"name": "image", "layout": "NCHW", "dtype": "float32", "batch": 1},
        **note,
        "networks": networks,
    }
    write_json_atomic(out / "manifest.json", manifest)
    return out / "manifest.json"


def make_kit(run: str | Path, out: str | Path, count: int = 200, seed: int = 0) -> Path:
    """The kit of a run folder: its super-network's space, dense near the budget its build was asked for."""
    from factory.training.checkpoint import load_checkpoint

    run = Path(run)
    checkpoint = run / "supernet" / "supernet.pt"
    if not checkpoint.is_file():
        raise FactoryError(f"no super-network at {checkpoint}; pass a run folder of `factory build` or `factory train`")
    if count < 10:
        raise FactoryError(f"--count {count} is too few to fit a latency predictor; give 10 or more (200 is good)")
    from factory.runinfo import run_recipe

    state = load_checkpoint(checkpoint)
    spec: SpaceSpec = state["spec"]
    layout = int8_layout(run_recipe(run, state.get("recipe")))  # the kit times the precision the run delivers
    budget = Budget()
    if (run / "build.json").is_file():
        budget = Budget.from_dict(json.loads((run / "build.json").read_text())["request"].get("budget") or {})
    configs = kit_configs(spec, budget.with_int8(layout), count, seed)
    note = {"run": str(run), "budget": budget.to_dict(), "seed": seed, "int8": layout is not None}
    return write_kit(spec, configs, out, note, layout)
