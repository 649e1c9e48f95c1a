"""Device choice and the mixed-precision context: CUDA (bf16 autocast, channels-last) when present, else CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from factory.errors import FactoryError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; asking for CUDA without a GPU is a user error."""
    if name not in DEVICE_CHOICES:
        raise FactoryError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise FactoryError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA; a no-op on CPU, where bf16 convolutions are slower than float32."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def memory_format(channels_last: bool = True) -> torch.memory_format:
    """channels-last for training: tensor cores on CUDA, and about 3x faster depthwise convolution
    training on CPU (oneDNN) than contiguous tensors (measured on the MobileNetV3 plan at 32x32)."""
    return torch.channels_last if channels_last else torch.contiguous_format
