"""A tiny build recipe on the embedded digits data: every stage of `factory build` in well under a minute."""

from __future__ import annotations

from pathlib import Path

from benchmarks.gpu_smoke import TINY
from factory.recipe import Recipe, recipe_from_dict, save_recipe
from factory.space import SpaceSpec, largest_config, smallest_config
from factory.space.counting import count_params

from .train_helpers import TINY_DATA, TINY_SPACE


def tiny_build_recipe() -> Recipe:
    """The smoke script's tiny digits build, on the training tests' data and space, without adaptation."""
    return recipe_from_dict(
        {
            **TINY,
            "name": "tiny-build",
            "data": dict(TINY_DATA),
            "space": {"kind": "ee-dense", **TINY_SPACE},
            "search": {**TINY["search"], "adapt_epochs": 0},
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
