"""BatchNorm recalibration of an extracted sub-network.

Weights shared in a super-network give each sub-network the wrong BN statistics; OFA's remedy is to
re-estimate them on a fixed subset of training images. Here the statistics are the exact average over
the subset (momentum None = cumulative average), computed in train mode without gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from factory.data import Split, normalize, resize_batch


def calibration_subset(split: Split, count: int, seed: int, device: torch.device | str = "cpu") -> Split:
    """A fixed, seeded subset of `count` images: every sub-network is recalibrated on the same images.

    It is kept on `device`, where every recalibration reads it (thousands of times in a search).
    """
    generator = torch.Generator().manual_seed(seed)
    count = min(count, len(split.labels))
    index = torch.randperm(len(split.labels), generator=generator)[:count]
    return Split(split.images[index].contiguous().to(device), split.labels[index].contiguous().to(device))


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    subset: Split,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    resolution: int,
    batch_size: int = 100,
    device: torch.device | str = "cpu",
) -> None:
    """Replace every BatchNorm's running statistics by their average over `subset` at `resolution`."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(bn.momentum, bn.training) for bn in bns]
    was_training = model.training
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    for start in range(0, len(subset.labels), batch_size):
        images = subset.images[start : start + batch_size].to(device)
        model(resize_batch(normalize(images, mean, std), resolution))
    for bn, (momentum, _) in zip(bns, saved, strict=True):
        bn.momentum = momentum
    model.train(was_training)
    if not was_training:
        for bn in bns:
            bn.eval()
