"""The batch iterator: gather, move, augment, normalise and (optionally) resize whole batches.

Replaces a DataLoader for in-memory uint8 splits: a batch is one index gather on the split's device and
one copy to the training device (pinned and non-blocking for CUDA), then the vectorised ops of
`factory.data.augment`. Shuffling and augmentation draw only from the explicit generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from factory.data.augment import augment_batch, normalize, resize_batch
from factory.data.config import option
from factory.data.splits import Split


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    device: torch.device | str,
    augment: bool,
    cfg: Any,
    resolution: int | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float32 normalised images N x 3 x R x R, int64 labels N), both on `device`.

    shuffle: a fresh permutation from `generator` per call (call once per epoch). augment: random crop with
    cfg.crop_padding and flip when cfg.flip, before normalising with cfg.mean / cfg.std. resolution: resize
    each batch to that size (elastic resolution); None keeps the stored size. `generator` is required when
    shuffling or augmenting, so no result ever depends on the global RNG.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if (shuffle or augment) and generator is None:
        raise ValueError("iterate_batches: pass a torch.Generator when shuffle or augment is on")
    device = torch.device(device)
    n = len(split)
    if shuffle:
        assert generator is not None
        order = torch.randperm(n, generator=generator, device=generator.device).to(split.images.device)
    else:
        order = None
    mean, std = option(cfg, "mean"), option(cfg, "std")
    padding, flip = int(option(cfg, "crop_padding")), bool(option(cfg, "flip"))
    pin = device.type == "cuda" and split.images.device.type == "cpu"
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            images, labels = split.images[start:end], split.labels[start:end]
        else:
            index = order[start:end]
            images, labels = split.images[index], split.labels[index]
        if pin:
            images, labels = images.pin_memory(), labels.pin_memory()
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if augment:
            assert generator is not None
            images = augment_batch(images, padding, flip, generator)
        batch = normalize(images, mean, std)
        if resolution is not None:
            batch = resize_batch(batch, resolution)
        yield batch, labels
