"""`digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), needs no files.

The default dataset, so every command runs anywhere in seconds. The 0..16 grey levels are scaled to
0..255, upsampled bilinearly to `image_size` and repeated to 3 channels. Splits, stratified and seeded by
`split_seed`: test 20% (359), validation 10% of all images (180, or `val_size`), train the rest (1,258),
about 70 / 10 / 20.
"""

from __future__ import annotations

from typing import Any

import torch

from factory.data.augment import resize_batch
from factory.data.cache import make_key, memory_get, memory_put
from factory.data.config import checked_image_size, checked_val_size, option
from factory.data.registry import register_dataset
from factory.data.splits import DatasetSplits, Split, build_splits, default_holdout

TEST_FRACTION = 0.2
VAL_FRACTION = 0.1


def digits_images(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 N x 3 x S x S and their int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = torch.from_numpy(bunch.images).float().mul_(255.0 / 16.0)[:, None]  # N x 1 x 8 x 8
    grey = resize_batch(grey, image_size).round_().clamp_(0, 255).to(torch.uint8)
    images = grey.expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(bunch.target).long()


@register_dataset("digits")
def load_digits_dataset(cfg: Any) -> DatasetSplits:
    """Train / val / test of the sklearn digits at cfg.image_size (memory-cached; decoding takes milliseconds)."""
    size, val_size, seed = checked_image_size(cfg), checked_val_size(cfg), int(option(cfg, "split_seed"))
    key = make_key(dataset="digits", image_size=size, seed=seed, val_size=val_size)
    cached = memory_get(key)
    if cached is not None:
        return cached
    images, labels = digits_images(size)
    n = len(labels)
    splits = build_splits(
        name="digits",
        class_names=[str(d) for d in range(10)],
        train=Split(images, labels),
        val=None,
        test=None,
        val_size=default_holdout(n, VAL_FRACTION, val_size),
        test_size=round(TEST_FRACTION * n),
        seed=seed,
    )
    memory_put(key, splits)
    return splits
