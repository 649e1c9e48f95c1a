"""Batch-level augmentation and normalisation on the training device.

The standard CIFAR recipe (random crop with zero padding, random horizontal flip) done on a whole batch
at once: one pad, one gather with per-image offsets, one masked flip. Per-image Python transforms would
cost more than the forward pass of the small sub-networks this factory trains. All randomness comes from
the `torch.Generator` passed in, so runs are reproducible and never touch the global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n integers in [0, high) drawn on the generator's device, then moved to `device`."""
    return torch.randint(0, high, (n,), generator=generator, device=generator.device).to(device)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` on every side, then crop back to H x W at a random offset per image.

    One pad and one `gather` over the flattened padded planes (index = per-image offset + a fixed window
    pattern); several times faster than 4-D advanced indexing on the CPU.
    """
    if padding <= 0:
        return images
    n, c, h, w = images.shape
    padded_w = w + 2 * padding
    padded = F.pad(images, (padding, padding, padding, padding)).view(n, c, -1)
    dy = _randint(2 * padding + 1, n, generator, images.device)
    dx = _randint(2 * padding + 1, n, generator, images.device)
    window = (torch.arange(h, device=images.device)[:, None] * padded_w + torch.arange(w, device=images.device)).view(
        1, -1
    )
    index = (dy * padded_w + dx)[:, None] + window  # N x (H*W) flat positions in the padded plane
    return padded.gather(2, index[:, None, :].expand(n, c, h * w)).view(n, c, h, w)


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability p (one Bernoulli draw per image)."""
    mask = torch.rand(len(images), generator=generator, device=generator.device).to(images.device) < p
    return torch.where(mask[:, None, None, None], images.flip(-1), images)


def augment_batch(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding `padding`, 0 = off) and random horizontal flip of an N x C x H x W batch.

    Works on uint8 or float batches on any device and keeps dtype and shape; apply it before `normalize`
    so the padding is black, as in the usual per-image pipeline.
    """
    out = random_crop(images, padding, generator)
    if flip:
        out = random_flip(out, generator)
    return out


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """float32 (x / 255 - mean) / std per channel; a float batch is taken to be in [0, 1] already."""
    x = batch.float()
    if batch.dtype == torch.uint8:
        x = x.div_(255.0)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.sub_(mean_t).div_(std_t)


def resize_batch(batch: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize to resolution x resolution (elastic resolution); the batch itself when already that size.

    Downscaling is antialiased. A uint8 batch comes back uint8 (rounded), a float batch keeps its dtype.
    """
    if batch.shape[-2:] == (resolution, resolution):
        return batch
    antialias = resolution < max(batch.shape[-2:])
    x = batch.float() if batch.dtype == torch.uint8 else batch
    out = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=antialias)
    if batch.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out


def model_inputs(images: torch.Tensor, mean: Sequence[float], std: Sequence[float], resolution: int) -> torch.Tensor:
    """uint8 images as a deployed model takes them: scaled, normalised, resized (the one preprocessing of
    evaluation, the export's parity check and INT8 calibration)."""
    return resize_batch(normalize(images, mean, std), resolution).contiguous()


def device_images(images: torch.Tensor, mean: Sequence[float], std: Sequence[float], resolution: int) -> np.ndarray:
    """`model_inputs` as a float32 numpy array: what a device feeds the exported graph (INT8 calibration and test,
    the bundle's samples)."""
    return model_inputs(images, mean, std, resolution).numpy()


def resize_uint8(images: torch.Tensor, resolution: int, chunk: int = 1024) -> torch.Tensor:
    """`resize_batch` over a whole uint8 dataset in chunks, so the float copy never holds all images at once."""
    if images.shape[-2:] == (resolution, resolution):
        return images.contiguous()
    out = torch.empty(len(images), images.shape[1], resolution, resolution, dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        out[start : start + chunk] = resize_batch(images[start : start + chunk], resolution)
    return out
