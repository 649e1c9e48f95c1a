"""Elastic depthwise convolution: one max-size kernel shared by every kernel size (OFA, transform mode 1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from factory.nn.depthwise import depthwise_conv2d


def _centre(size: int, target: int) -> slice:
    start = (size - target) // 2
    return slice(start, start + target)


class ElasticDepthwiseConv(nn.Module):
    """Depthwise conv whose kernel size and channel count are chosen per forward.

    The weight is stored at the largest kernel. Going down the sorted kernel sizes, a kernel of size t is the
    centre t x t crop of the size above (itself transformed) passed through a learned (t*t x t*t) matrix,
    `transforms["{src}to{t}"]`, shared by all channels of the layer and initialised to the identity. So with
    kernels (3, 5, 7): 5x5 = M_75(crop5(W7)), 3x3 = M_53(crop3(5x5)). Channels are the first `channels`
    filters; only those are transformed.
    """

    def __init__(self, channels: int, kernels: Sequence[int], stride: int) -> None:
        super().__init__()
        self.kernels = tuple(sorted(set(kernels)))
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"elastic kernels must be odd, got {self.kernels}")
        self.max_kernel, self.stride = self.kernels[-1], stride
        self.weight = nn.Parameter(torch.empty(channels, 1, self.max_kernel, self.max_kernel))
        self.transforms = nn.ParameterDict(
            {
                f"{src}to{dst}": nn.Parameter(torch.eye(dst * dst))
                for src, dst in zip(self.kernels[1:], self.kernels[:-1], strict=True)
            }
        )
        self.kernel = self.max_kernel
        self._chain: tuple[tuple[str, int, slice], ...] = ()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """OFA's he_fout init for the weight; identity for every transform matrix."""
        k, c = self.max_kernel, self.weight.shape[0]
        self.weight.normal_(0.0, math.sqrt(2.0 / (k * k * c)))
        for matrix in self.transforms.values():
            matrix.copy_(torch.eye(matrix.shape[0]))

    def set_active(self, kernel: int) -> None:
        """Choose the kernel size; precompute the crop/transform steps so forward only slices and multiplies."""
        if kernel not in self.kernels:
            raise ValueError(f"kernel {kernel} not in {self.kernels}")
        steps, src = [], self.max_kernel
        for dst in reversed(self.kernels):
            if dst >= src or dst < kernel:
                continue
            steps.append((f"{src}to{dst}", dst, _centre(src, dst)))
            src = dst
        self.kernel, self._chain = kernel, tuple(steps)

    def active_filter(self, channels: int) -> torch.Tensor:
        """The (channels, 1, k, k) depthwise filter of the active kernel size."""
        w = self.weight[:channels]
        for key, dst, crop in self._chain:
            w = F.linear(w[:, :, crop, crop].reshape(channels, dst * dst), self.transforms[key])
            w = w.view(channels, 1, dst, dst)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(x, self.active_filter(x.shape[1]), self.stride)
