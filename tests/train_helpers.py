"""Tiny recipes and data shared by the training tests: a few channels, 24 px, a few hundred images."""

from __future__ import annotations

from typing import Any

import torch

from factory.budget.feasibility import Budget
from factory.data import DatasetSplits, Split
from factory.recipe import recipe_from_dict
from factory.space import largest_config, smallest_config
from factory.space.config import SpaceSpec
from factory.space.counting import count_params

TINY_SPACE = {
    "resolutions": [16, 24],
    "stem_channels": 8,
    "first_block_channels": 8,
    "stage_channels": [8, 8, 16, 16, 16],
}


TINY_DATA = {
    "dataset": "digits",
    "image_size": 24,
    "crop_padding": 2,
    "flip": False,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
}


def tiny_recipe(kind: str = "ee-dense", space: dict[str, Any] | None = None, **train):
    """A tiny recipe of `kind`; `space` overrides space fields (e.g. {"widths": [1.0]}), the rest go to train."""
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


class InterruptAfter:
    """A training callback that stops the run with KeyboardInterrupt once `epochs` epochs are written."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.seen = 0

    def on_epoch_end(self, trainer: Any, result: Any) -> None:
        self.seen += 1
        if self.seen == self.epochs:
            raise KeyboardInterrupt


def tiny_splits(n_train: int = 96, n_eval: int = 64, classes: int = 4, seed: int = 0) -> DatasetSplits:
    """Random but learnable images: each class has its own mean brightness pattern."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> Split:
        labels = torch.arange(n) % classes
        base = (labels.view(-1, 1, 1, 1).float() * 60 + 20).expand(n, 3, 24, 24)
        noise = torch.randint(0, 40, (n, 3, 24, 24), generator=g).float()
        return Split((base + noise).clamp(0, 255).to(torch.uint8).contiguous(), labels.long())

    return DatasetSplits(make(n_train), make(n_eval), make(n_eval), classes, [str(i) for i in range(classes)], "tiny")


def middle_budget(spec: SpaceSpec) -> Budget:
    """A parameter budget halfway (geometrically) between the smallest exit-1 and the largest network at the
    widest width: it binds, and some sub-networks still fit."""
    low = count_params(spec, smallest_config(spec, max(spec.widths)).with_exit(1))
    high = count_params(spec, largest_config(spec, max(spec.widths)))
    return Budget(params=int((low * high) ** 0.5))
