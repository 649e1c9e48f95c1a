"""Pieces of a static network's state dict cut from the super-network: always copies, never views."""

from __future__ import annotations

import torch
from torch import nn


def bn_state(bn: nn.BatchNorm2d, channels: int) -> dict[str, torch.Tensor]:
    """State-dict entries of a static BatchNorm2d(channels) cut from `bn` (copies, not views)."""
    return {
        "weight": bn.weight[:channels].clone(),
        "bias": bn.bias[:channels].clone(),
        "running_mean": bn.running_mean[:channels].clone(),
        "running_var": bn.running_var[:channels].clone(),
        "num_batches_tracked": bn.num_batches_tracked.clone(),
    }


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with every key under `prefix.`; used to assemble a static network's state dict."""
    return {f"{prefix}.{key}": value for key, value in state.items()}


def copied_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A non-elastic module's state dict, cloned so the extracted network shares no storage."""
    return {key: value.clone() for key, value in module.state_dict().items()}
