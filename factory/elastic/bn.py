"""Batch norm over the first `channels` features of a wider BatchNorm2d (OFA's DynamicBatchNorm2d)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def elastic_batch_norm(x: torch.Tensor, bn: nn.BatchNorm2d, channels: int) -> torch.Tensor:
    """Normalise `x` with the first `channels` entries of `bn`'s affine weights and running statistics.

    In training mode the running-stat slices are views, so F.batch_norm updates the shared buffers in place,
    and `num_batches_tracked` counts the batch, exactly as OFA's `bn_forward`.
    """
    if channels == bn.num_features:
        return bn(x)
    momentum = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return F.batch_norm(
        x,
        bn.running_mean[:channels],
        bn.running_var[:channels],
        bn.weight[:channels],
        bn.bias[:channels],
        bn.training or not bn.track_running_stats,
        momentum,
        bn.eps,
    )


def importance_order(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Channel indices along `dim` of a conv weight, by descending L1 norm (OFA's importance), ties stable."""
    other = tuple(d for d in range(weight.dim()) if d != dim)
    return weight.abs().sum(dim=other).argsort(descending=True, stable=True)


def permute_(tensor: torch.Tensor, order: torch.Tensor, dim: int = 0) -> None:
    """Reorder `tensor` along `dim` in place (a parameter or buffer keeps its identity for the optimiser)."""
    tensor.copy_(tensor.index_select(dim, order))


def permute_bn_(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    """Reorder a BatchNorm's channels: affine weights and running statistics."""
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        permute_(tensor, order)
