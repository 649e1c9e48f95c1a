"""A parallel level: up to three branches on the same input whose outputs are summed."""

from __future__ import annotations

import torch
from torch import nn

from factory.nn.layers import ConvBNAct, make_activation


class Transform(nn.Module):
    """The 'transformation' branch: [3x3 max-pool, stride s, pad 1] -> [1x1 conv if channels change] -> BN -> act.

    With stride 1 and equal channels it is BN + act of the input.
    """

    def __init__(self, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride, 1) if stride > 1 else None
        self.conv = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.bn = nn.BatchNorm2d(cout)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        if self.conv is not None:
            x = self.conv(x)
        return self.act(self.bn(x))


def conv_branch(cin: int, cout: int, stride: int, act: str) -> ConvBNAct:
    """Branch 2 of a level: 1x1 conv with the level's stride + BN + act."""
    return ConvBNAct(cin, cout, 1, stride, act=act)


class ParallelLevel(nn.Module):
    """Sum of the active branches, always in the order mbconv (mask 4), conv (2), transform (1).

    The MBConv branch carries its own identity shortcut. Inactive branches are None, so a level's
    state-dict keys do not depend on which others are active.
    """

    BRANCHES = ("mbconv", "conv", "transform")

    def __init__(self, mbconv: nn.Module | None, conv: nn.Module | None, transform: nn.Module | None) -> None:
        super().__init__()
        self.mbconv, self.conv, self.transform = mbconv, conv, transform
        self._active = tuple(name for name in self.BRANCHES if getattr(self, name) is not None)
        if not self._active:
            raise ValueError("a parallel level needs at least one branch")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self, self._active[0])(x)
        for name in self._active[1:]:
            out = out + getattr(self, name)(x)
        return out
