"""Static building blocks of the OFAv2 MobileNetV3: conv-BN-act, squeeze-excite, MBConv, weight init."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from factory.errors import FactoryError
from factory.nn.depthwise import DepthwiseConv2d
from factory.space.shapes import mbconv_mid_channels, se_channels

ACTIVATIONS: dict[str, tuple[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]]] = {
    "relu": (nn.ReLU, F.relu),
    "hswish": (nn.Hardswish, F.hardswish),
}


def _lookup(name: str) -> tuple[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise FactoryError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def make_activation(name: str) -> nn.Module:
    """The activation module for a stage's activation name ('relu' or 'hswish')."""
    return _lookup(name)[0]()


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The functional form of `make_activation(name)`; the elastic layers call it directly."""
    return _lookup(name)[1]


class ConvBNAct(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BN -> optional activation; children named conv, bn, act."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: str | None = None
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if groups > 1 and groups == cin == cout:
            layers["conv"] = DepthwiseConv2d(cin, kernel, stride)
        else:
            layers["conv"] = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        layers["bn"] = nn.BatchNorm2d(cout)
        if act is not None:
            layers["act"] = make_activation(act)
        super().__init__(layers)


class SqueezeExcite(nn.Module):
    """OFA squeeze-excite: avg-pool, 1x1 conv (bias) + ReLU, 1x1 conv (bias) + h-sigmoid, rescale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = se_channels(channels)
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand + BN + act] -> kxk depthwise + BN + act -> [SE] -> 1x1 project + BN.

    `expand == 1` drops the expand conv (the fixed block after the stem). `residual` adds the identity
    shortcut; the caller decides it (the first block of a stage has none even when shapes would allow).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        expand: float,
        stride: int,
        act: str,
        se: bool,
        residual: bool,
    ) -> None:
        super().__init__()
        if residual and (stride != 1 or cin != cout):
            raise ValueError(f"an identity shortcut needs stride 1 and cin == cout, got {stride}, {cin}->{cout}")
        mid = mbconv_mid_channels(cin, expand)
        self.expand = ConvBNAct(cin, mid, 1, act=act) if expand != 1 else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid) if se else None
        self.project = ConvBNAct(mid, cout, 1)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.expand is None else self.expand(x)
        h = self.depthwise(h)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return h + x if self.residual else h


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """OFA's 'he_fout' init: conv N(0, sqrt(2 / (k*k*out))), BN (1, 0), linear U(+-1/sqrt(in)), biases 0.

    Meta tensors (a network built only to receive copied weights) are skipped: initialising them is slow.
    """
    if any(p.is_meta for p in module.parameters(recurse=False)):
        return
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        module.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            module.bias.zero_()
    elif isinstance(module, nn.BatchNorm2d):
        module.weight.fill_(1.0)
        module.bias.zero_()
    elif isinstance(module, nn.Linear):
        bound = 1.0 / math.sqrt(module.in_features)
        module.weight.uniform_(-bound, bound)
        if module.bias is not None:
            module.bias.zero_()
