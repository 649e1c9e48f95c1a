"""Test support shared by the test suite and the benchmarks (as `numpy.testing` is): tiny recipes, budgets.

One home for what both sides use, so a test never imports a benchmark script and a benchmark never imports a
test module. Nothing in `factory` imports this module; it imports only the library.

- `TINY`, `TINY_BUDGET`: the tiny digits build of `benchmarks.gpu_smoke` (every stage in well under a minute).
- `TINY_SPACE`, `TINY_DATA`, `tiny_recipe`: the training tests' tiny space, data section and recipe.
- `tiny_build_recipe`, `tiny_budget`: the build tests' recipe (`TINY` on that data, no adaptation) and budget.
- `middle_budget`: a parameter budget that binds on a space, while some sub-networks still fit.
- `randomize`: distinct random weights and BatchNorm statistics, as a trained network has.
"""

from __future__ import annotations

from typing import Any

import torch

from factory.budget.feasibility import Budget
from factory.recipe import Recipe, recipe_from_dict
from factory.space import largest_config, smallest_config
from factory.space.config import SpaceSpec
from factory.space.counting import count_params

TINY_SPACE: dict[str, Any] = {
    "resolutions": [16, 24],
    "stem_channels": 8,
    "first_block_channels": 8,
    "stage_channels": [8, 8, 16, 16, 16],
}

TINY_DATA: dict[str, Any] = {
    "dataset": "digits",
    "image_size": 24,
    "crop_padding": 2,
    "flip": False,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
}

# The tiny digits build (the GPU smoke run's; the build tests take it on TINY_DATA, without adaptation).
TINY: dict[str, Any] = {
    "name": "gpu-smoke",
    "data": {"dataset": "digits", "image_size": 24, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    "space": {
        "kind": "ee-dense",
        "resolutions": [16, 24],
        "stem_channels": 8,
        "first_block_channels": 8,
        "stage_channels": [8, 8, 16, 16, 16],
    },
    "train": {
        "batch_size": 64,
        "warmup_epochs": 1,
        "epochs": 1,
        "warmup_lr": 0.05,
        "lr": 0.02,
        "subnets_per_batch": 2,
        "bn_calib_images": 64,
        "bn_calib_batch": 64,
        "eval_batch_size": 200,
    },
    "search": {
        "iterations": 1,
        "archive_size": 10,
        "init_multiplier": 2,
        "candidates_per_iteration": 3,
        "predictor_folds": 3,
        "population": 12,
        "generations": 3,
        "distribution_top": 5,
        "adapt_epochs": 1,
        "hv_reference": [1.0, 200000.0],
    },
    "finetune": {"picks": 2, "max_epochs": 1, "patience": 1, "batch_size": 64},
    "export": {"parity_images": 64},
    "bench": {"warmup": 2, "iterations": 5, "batch_sizes": [1, 4]},
}
TINY_BUDGET = 60_000  # parameters: between the tiny space's smallest and largest networks


def tiny_recipe(kind: str = "ee-dense", space: dict[str, Any] | None = None, **train: Any) -> Recipe:
    """A tiny recipe of `kind`, small enough to train in seconds; `space` overrides space fields
    (e.g. {"widths": [1.0]}), the rest go to train."""
    settings = {
        "batch_size": 32,
        "warmup_epochs": 1,
        "epochs": 1,
        "warmup_lr": 0.05,
        "lr": 0.02,
        "subnets_per_batch": 2,
        "bn_calib_images": 64,
        "bn_calib_batch": 32,
        "eval_batch_size": 64,
    }
    settings.update(train)
    return recipe_from_dict(
        {
            "name": "tiny",
            "data": dict(TINY_DATA),
            "space": {"kind": kind, **TINY_SPACE, **(space or {})},
            "train": settings,
        }
    )


def tiny_build_recipe() -> Recipe:
    """`TINY` on the training tests' data and space, without adaptation: a whole build in well under a minute."""
    return recipe_from_dict(
        {
            **TINY,
            "name": "tiny-build",
            "data": dict(TINY_DATA),
            "space": {"kind": "ee-dense", **TINY_SPACE},
            "search": {**TINY["search"], "adapt_epochs": 0},
        }
    )


def tiny_budget() -> int:
    """A parameter budget halfway (geometrically) between the smallest and largest tiny network, so the
    build's budget binds and some networks still fit."""
    spec: SpaceSpec = tiny_build_recipe().space.to_spec(10)
    low = min(count_params(spec, smallest_config(spec, w).with_exit(1)) for w in spec.widths)
    high = count_params(spec, largest_config(spec))
    return int((low * high) ** 0.5)


def middle_budget(spec: SpaceSpec) -> Budget:
    """A parameter budget halfway (geometrically) between the smallest exit-1 and the largest network at the
    widest width: it binds, and some sub-networks still fit."""
    low = count_params(spec, smallest_config(spec, max(spec.widths)).with_exit(1))
    high = count_params(spec, largest_config(spec, max(spec.widths)))
    return Budget(params=int((low * high) ** 0.5))


@torch.no_grad()
def randomize(network: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Distinct random weights and BatchNorm statistics, so the exporter shares no initializer (a fresh
    network's equal BN buffers would be shared, unlike a trained one's); returns `network` in eval mode."""
    for tensor in [*network.parameters(), *network.buffers()]:
        if tensor.is_floating_point():
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return network.eval()
