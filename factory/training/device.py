"""Device and precision: decided once per run, the same for super-network training and every evaluation.

The precision is the recipe's `train.precision`: "auto" means float32 on a CPU (bf16 convolutions are slower
there) and, on CUDA, bf16 autocast where the GPU supports it, else fp16 autocast with a gradient scaler (V100,
T4 and the RTX 6000 class have no fast bf16). "fp32", "bf16" and "fp16" force one. The resolved precision is
recorded in run.json and the report, so a GPU run's accuracies and a CPU run's can be told apart.
Post-processing fine-tunes the small picks in float32 on every device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from factory.errors import FactoryError
from factory.recipe import PRECISIONS

DEVICE_CHOICES = ("auto", "cpu", "cuda")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """'auto' picks CUDA when available; asking for CUDA without a GPU is a user error.

    Under torchrun each process passes its LOCAL_RANK, so rank k trains on GPU k (never all on GPU 0).
    """
    if name not in DEVICE_CHOICES:
        raise FactoryError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise FactoryError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
        return torch.device("cuda", torch.cuda.current_device() if local_rank is None else local_rank)
    return torch.device("cpu")


def resolve_precision(requested: str, device: torch.device, bf16_supported: bool | None = None) -> str:
    """The precision a run uses on `device`: "fp32", "bf16" or "fp16" (see the module docstring)."""
    if requested not in PRECISIONS:
        raise FactoryError(f"train.precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "fp32"
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    return "bf16" if bf16_supported else "fp16"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """Autocast to the run's precision; float32 runs (every CPU run by default) are left untouched."""
    if precision in _DTYPES:
        with torch.autocast(device.type, dtype=_DTYPES[precision]):
            yield
    else:
        yield


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (the scaler is then a no-op)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def memory_format(channels_last: bool = True) -> torch.memory_format:
    """channels-last for training: tensor cores on CUDA, and about 3x faster depthwise convolution
    training on CPU (oneDNN) than contiguous tensors (measured on the MobileNetV3 plan at 32x32)."""
    return torch.channels_last if channels_last else torch.contiguous_format
