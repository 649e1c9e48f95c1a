"""Batch augmentation, normalisation, resizing and the batch iterator."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from factory.data import DATA_DEFAULTS, Split, augment_batch, iterate_batches, normalize, resize_batch
from factory.data.augment import random_crop, random_flip


def data_cfg(**overrides: object) -> SimpleNamespace:
    return SimpleNamespace(**{**DATA_DEFAULTS, **overrides})


def batch(n: int = 32, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_keeps_shape_and_dtype(dtype):
    images = batch().to(dtype)
    out = augment_batch(images, 4, True, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == dtype


def test_padding_zero_without_flip_is_identity():
    images = batch()
    assert torch.equal(augment_batch(images, 0, False, torch.Generator().manual_seed(0)), images)


def test_flip_flips_exactly_the_drawn_images():
    images = batch(64)
    out = random_flip(images, torch.Generator().manual_seed(5))
    drawn = torch.rand(64, generator=torch.Generator().manual_seed(5)) < 0.5
    assert 0 < int(drawn.sum()) < 64
    for i in range(64):
        expected = images[i].flip(-1) if drawn[i] else images[i]
        assert torch.equal(out[i], expected)
    assert torch.equal(augment_batch(images, 0, True, torch.Generator().manual_seed(5)), out)


def test_crop_is_a_window_of_the_zero_padded_image():
    images, pad = batch(16, 6), 2
    out = random_crop(images, pad, torch.Generator().manual_seed(1))
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = set()
    for i in range(16):
        hits = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert hits, f"image {i} is not a crop of its padded input"
        offsets.add(hits[0])
    assert len(offsets) > 1  # offsets differ per image


def test_augment_is_seeded():
    images = batch()
    a = augment_batch(images, 4, True, torch.Generator().manual_seed(7))
    b = augment_batch(images, 4, True, torch.Generator().manual_seed(7))
    c = augment_batch(images, 4, True, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_normalize():
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(images, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]))
    floats = normalize(torch.ones(1, 3, 2, 2), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert torch.allclose(floats, torch.ones(1, 3, 2, 2))


def test_resize_batch():
    images = batch(4, 8).float()
    assert resize_batch(images, 8) is images
    assert resize_batch(images, 12).shape == (4, 3, 12, 12)
    small = resize_batch(batch(4, 8), 4)
    assert small.dtype == torch.uint8 and small.shape == (4, 3, 4, 4)


def _split(n: int = 50) -> Split:
    return Split(batch(n, 8), torch.arange(n) % 5)


def test_iterate_batches_covers_every_sample_once():
    split, cfg = _split(), data_cfg()
    seen = []
    for images, labels in iterate_batches(
        split, 16, shuffle=True, generator=torch.Generator().manual_seed(0), device="cpu", augment=True, cfg=cfg
    ):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 8, 8) and labels.dtype == torch.int64
        seen.append(labels)
    assert [len(x) for x in seen] == [16, 16, 16, 2]
    assert sorted(torch.cat(seen).tolist()) == sorted(split.labels.tolist())


def test_iterate_batches_plain_order_drop_last_resolution():
    split, cfg = _split(), data_cfg()
    batches = list(
        iterate_batches(
            split, 16, shuffle=False, generator=None, device="cpu", augment=False, cfg=cfg, resolution=4, drop_last=True
        )
    )
    assert len(batches) == 3 and batches[0][0].shape == (16, 3, 4, 4)
    assert torch.equal(batches[1][1], split.labels[16:32])
    full = next(iterate_batches(split, 50, shuffle=False, generator=None, device="cpu", augment=False, cfg=cfg))
    assert torch.allclose(full[0], normalize(split.images, cfg.mean, cfg.std))


def test_iterate_batches_seeded_and_needs_generator():
    split, cfg = _split(), data_cfg()

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return [
            x for x, _ in iterate_batches(split, 16, shuffle=True, generator=gen, device="cpu", augment=True, cfg=cfg)
        ]

    assert all(torch.equal(a, b) for a, b in zip(run(3), run(3), strict=True))
    assert not torch.equal(run(3)[0], run(4)[0])
    with pytest.raises(ValueError, match="Generator"):
        next(iterate_batches(split, 8, shuffle=True, generator=None, device="cpu", augment=False, cfg=cfg))
