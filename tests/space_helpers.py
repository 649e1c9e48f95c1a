"""The tiny channel plan the network tests share: a few channels, so every kind builds and runs in milliseconds."""

from __future__ import annotations

from typing import Any

import torch

from factory.nn import StaticNetwork
from factory.space import SpaceSpec, largest_config

TINY_PLAN: dict[str, Any] = {
    "resolutions": (24, 32),
    "stem_channels": 8,
    "first_block_channels": 8,
    "stage_channels": (8, 16, 16, 24, 24),
}


def tiny_spec(kind: str = "ee-dense", **overrides: Any) -> SpaceSpec:
    """A SpaceSpec of `kind` on the tiny plan (10 classes unless overridden)."""
    return SpaceSpec(kind=kind, **(TINY_PLAN | overrides))


def all_exit_network(spec: SpaceSpec, images: torch.Tensor) -> StaticNetwork:
    """The largest network of `spec` with every exit, its BatchNorm statistics the exact average over `images`
    (seeded weights), in eval mode: a stand-in for a trained pick in export tests."""
    torch.manual_seed(0)
    net = StaticNetwork(spec, largest_config(spec), spec.exits())
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        net.train()(images)
    return net.eval()
