"""The data section of a recipe: where images come from and how batches are made.

It lives with the data layer so the loaders depend on nothing above them; the recipe embeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from factory.bounds import Count, Positive, PositiveInt, Probability, Seed
from factory.errors import FactoryError


@dataclass
class DataSection:
    """Where the images come from and how batches are made."""

    dataset: str = "digits"  # registry name: digits, cifar10, cifar100, tinyimagenet, imagefolder
    data_dir: str | None = None  # the user's data folder (not used by digits)
    image_size: PositiveInt = 32  # images are decoded/resized to this square size and cached as uint8
    val_size: Count | None = None  # None: the dataset's default (the paper's Table 1 where it has one)
    split_seed: Seed = 0  # seeds the stratified train/validation carving
    cache_dir: str | None = None  # None: $FACTORY_CACHE or ~/.cache/factory
    download: bool = False  # let torchvision download CIFAR (only when the user asks and a network exists)
    crop_padding: Count = 4  # random crop with this zero padding (0 = off)
    flip: bool = True  # random horizontal flip
    mean: tuple[Probability, Probability, Probability] = (0.4914, 0.4822, 0.4465)  # of pixels scaled to [0, 1]
    std: tuple[Positive, Positive, Positive] = (0.2470, 0.2435, 0.2616)


_DEFAULT = DataSection()
DATA_DEFAULTS: dict[str, Any] = {f.name: getattr(_DEFAULT, f.name) for f in fields(DataSection)}


def option(cfg: Any, name: str) -> Any:
    """`cfg.name`, or DataSection's default when the object does not carry that attribute (test doubles)."""
    return getattr(cfg, name, DATA_DEFAULTS[name])


def make_data_config(**overrides: Any) -> DataSection:
    """A DataSection with `overrides`; an unknown option is a user error naming it."""
    unknown = sorted(set(overrides) - set(DATA_DEFAULTS))
    if unknown:
        raise FactoryError(f"unknown data option(s) {', '.join(unknown)}; known: {', '.join(sorted(DATA_DEFAULTS))}")
    return DataSection(**overrides)


def checked_image_size(cfg: Any) -> int:
    """data.image_size as a positive int; anything else is a user error naming the key."""
    size = option(cfg, "image_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise FactoryError(f"data.image_size must be a positive integer (pixels), got {size!r}")
    return size


def checked_val_size(cfg: Any) -> int | None:
    """data.val_size as None (the dataset's default) or a non-negative int."""
    size = option(cfg, "val_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise FactoryError(f"data.val_size must be a non-negative integer or null, got {size!r}")
    return size
