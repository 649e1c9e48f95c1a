"""A tiny build recipe on the embedded digits data: every stage of `factory build` in well under a minute."""

from __future__ import annotations

from pathlib import Path

from factory.recipe import Recipe, recipe_from_dict, save_recipe
from factory.space import SpaceSpec, largest_config, smallest_config
from factory.space.counting import count_params

from .train_helpers import TINY_DATA, TINY_SPACE


def tiny_build_recipe() -> Recipe:
    return recipe_from_dict(
        {
            "name": "tiny-build",
            "data": dict(TINY_DATA),
            "space": {"kind": "ee-dense", **TINY_SPACE},
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
                "adapt_epochs": 0,
                "hv_reference": [1.0, 200000.0],
            },
            "postprocess": {"picks": 2, "max_epochs": 1, "patience": 1, "batch_size": 64},
            "export": {"parity_images": 64},
            "benchmark": {"warmup": 2, "iterations": 5, "batch_sizes": [1, 4]},
        }
    )


def write_tiny_recipe(folder: Path) -> Path:
    path = folder / "tiny-build.yaml"
    save_recipe(tiny_build_recipe(), path)
    return path


def tiny_budget() -> int:
    """A parameter budget halfway (geometrically) between the smallest and largest tiny network."""
    spec: SpaceSpec = tiny_build_recipe().space.to_spec(10)
    low = min(count_params(spec, smallest_config(spec, w).with_exit(1)) for w in spec.widths)
    high = count_params(spec, largest_config(spec))
    return int((low * high) ** 0.5)
