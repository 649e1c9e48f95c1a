"""The tiny channel plan the network tests share: a few channels, so every kind builds and runs in milliseconds."""

from __future__ import annotations

from typing import Any

from factory.space import SpaceSpec

TINY_PLAN: dict[str, Any] = {
    "resolutions": (24, 32),
    "stem_channels": 8,
    "first_block_channels": 8,
    "stage_channels": (8, 16, 16, 24, 24),
}


def tiny_spec(kind: str = "ee-dense", **overrides: Any) -> SpaceSpec:
    """A SpaceSpec of `kind` on the tiny plan (10 classes unless overridden)."""
    return SpaceSpec(kind=kind, **(TINY_PLAN | overrides))
