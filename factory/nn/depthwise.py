"""Depthwise 'same' convolution that trains fast on CPU at the small feature maps of 32x32 inputs.

At 32x32 the deep stages of a MobileNetV3 see 4x4, 2x2 and 1x1 maps, smaller than their 5x5 and 7x7
kernels. Two facts make that slow to train on CPU and how to fix it exactly:
- A tap further than (size - 1) from the centre only ever multiplies padding, so cropping it off (and
  shrinking the padding by as much) gives the same output and the same gradients; the cropped taps get
  the zero gradient they would get anyway. A 7x7 kernel on a 1x1 map becomes a per-channel scale.
- oneDNN's weight gradient is 3-10x slower when the kernel is larger than the unpadded input; padding
  the input explicitly and convolving without padding computes the same thing on its fast path.
8x8 and larger maps keep the plain convolution, which is as fast there.

On CUDA the same convolution runs on PyTorch's own depthwise kernels instead of cuDNN's: cuDNN 9 builds (and for
depthwise convolutions compiles at run time) an execution plan for every new input shape, and an elastic
super-network meets new shapes at nearly every step; PyTorch picks its own kernel for a float32 input in the
default layout. The figures of both (`python -m benchmarks.depthwise`, `python -m benchmarks.gpu_throughput
--probe`) are in `benchmarks/data/README.md` ("Depthwise convolution").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _crop(kernel: int, size: int) -> int:
    """How many taps to drop from each side of a 'same'-padded kernel on a `size`-long input."""
    return max(0, kernel // 2 - size + 1)


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """F.conv2d(x, weight, None, stride, k // 2, 1, channels) for an odd (channels, 1, k, k) weight, faster.

    The crop and the explicit padding answer oneDNN's slow paths (the CPU measurement above); elsewhere (cuDNN)
    the plain convolution runs, which computes the same thing.
    """
    kernel, (height, width) = weight.shape[-1], x.shape[-2:]
    if x.device.type != "cpu":
        return native_depthwise_conv2d(x, weight, stride)
    crop_h, crop_w = _crop(kernel, height), _crop(kernel, width)
    if crop_h or crop_w:
        weight = weight[:, :, crop_h : kernel - crop_h, crop_w : kernel - crop_w]
    kh, kw = weight.shape[-2:]
    pad_h, pad_w = kh // 2, kw // 2
    if kh > height or kw > width:
        return F.conv2d(F.pad(x, (pad_w, pad_w, pad_h, pad_h)), weight, None, stride, 0, 1, x.shape[1])
    return F.conv2d(x, weight, None, stride, (pad_h, pad_w), 1, x.shape[1])


def native_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """The depthwise convolution on PyTorch's own kernels (forward and backward), never cuDNN's: a float32
    input in the default layout, autocast off, the result back in the input's dtype and layout. Why: cuDNN's
    per-shape set-up cost (module docstring)."""
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    with torch.autocast(x.device.type, enabled=False):
        y = F.conv2d(
            x.float().contiguous(), weight.float().contiguous(), None, stride, weight.shape[-1] // 2, 1, x.shape[1]
        )
    y = y.to(x.dtype)
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise nn.Conv2d that trains through `depthwise_conv2d`.

    Inference (eval mode) on a CPU keeps the plain convolution, so exported graphs and fvcore's MAC counts
    are those of the network as specified; on CUDA it takes the same cuDNN-free path as training.
    """

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or x.device.type == "cuda":
            return depthwise_conv2d(x, self.weight, self.stride[0])
        return super().forward(x)
