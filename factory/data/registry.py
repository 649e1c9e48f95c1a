"""The dataset registry: a name in the recipe (`data.dataset`) maps to a loader function.

A loader takes the data config and returns a `DatasetSplits`. The built-in loaders (digits, cifar10,
cifar100, tinyimagenet, imagefolder) are imported on first use, so importing `factory.data` stays cheap and
a plug-in can add its own with `@register_dataset("name")`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from factory.data.config import checked_image_size, checked_val_size, option
from factory.data.splits import DatasetSplits
from factory.errors import FactoryError

Loader = Callable[[Any], DatasetSplits]

_LOADERS: dict[str, Loader] = {}
_BUILTIN_MODULES = ("digits", "cifar", "tinyimagenet", "imagefolder")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make `fn(cfg) -> DatasetSplits` loadable as `name` (lower case, unique)."""
    key = name.strip().lower()

    def decorator(fn: Loader) -> Loader:
        if key in _LOADERS and _LOADERS[key] is not fn:
            raise ValueError(f"dataset {key!r} is already registered")
        _LOADERS[key] = fn
        return fn

    return decorator


def _ensure_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"factory.data.{module}")


def dataset_names() -> list[str]:
    """The registered dataset names, sorted."""
    _ensure_builtins()
    return sorted(_LOADERS)


def load_dataset(cfg: Any) -> DatasetSplits:
    """Load `cfg.dataset` into train / val / test splits of uint8 images (cached in memory and on disk)."""
    _ensure_builtins()
    name = str(option(cfg, "dataset")).strip().lower()
    if name not in _LOADERS:
        raise FactoryError(
            f"unknown dataset {option(cfg, 'dataset')!r}; choose one of {', '.join(sorted(_LOADERS))} (--dataset)"
        )
    checked_image_size(cfg)
    checked_val_size(cfg)
    splits = _LOADERS[name](cfg)
    splits.name = splits.name or name
    return splits
