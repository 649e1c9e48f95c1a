"""Elastic MBConv: kernel size and expand ratio chosen per sub-network by slicing the largest block's weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from factory.elastic.bn import elastic_batch_norm, importance_order, permute_, permute_bn_
from factory.elastic.kernel import ElasticDepthwiseConv
from factory.elastic.state import bn_state, prefixed
from factory.nn.layers import SqueezeExcite, activation_fn
from factory.space.config import BlockConfig
from factory.space.counting import mbconv_mid_channels, se_channels


class ElasticSE(SqueezeExcite):
    """OFA squeeze-excite over the first `mid` channels, squeezing to the first make_divisible(mid // 4, 8): the
    static SE's weights, sliced."""

    def forward(self, x: torch.Tensor, reduced: int) -> torch.Tensor:  # type: ignore[override]
        mid = x.shape[1]
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(F.conv2d(s, self.reduce.weight[:reduced, :mid], self.reduce.bias[:reduced]))
        s = F.hardsigmoid(F.conv2d(s, self.expand.weight[:mid, :reduced], self.expand.bias[:mid]))
        return x * s

    @torch.no_grad()
    def reorder(self, mid_order: torch.Tensor) -> None:
        """Follow the block's new mid-channel order, and sort the squeeze channels by importance (L1 norm of
        their expand weights); both permutations leave the full SE's function unchanged."""
        squeeze = importance_order(self.expand.weight, dim=1)
        permute_(self.reduce.weight, squeeze)
        permute_(self.reduce.bias, squeeze)
        permute_(self.reduce.weight, mid_order, dim=1)
        permute_(self.expand.weight, squeeze, dim=1)
        permute_(self.expand.weight, mid_order)
        permute_(self.expand.bias, mid_order)

    def active_state(self, mid: int, reduced: int) -> dict[str, torch.Tensor]:
        return {
            "reduce.weight": self.reduce.weight[:reduced, :mid].clone(),
            "reduce.bias": self.reduce.bias[:reduced].clone(),
            "expand.weight": self.expand.weight[:mid, :reduced].clone(),
            "expand.bias": self.expand.bias[:mid].clone(),
        }


class _ConvBN(nn.Module):
    """Names a conv and its BN like the static ConvBNAct (conv, bn), so state keys line up."""

    def __init__(self, conv: nn.Module, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv, self.bn = conv, bn


class ElasticMBConv(nn.Module):
    """The MBConv of one block slot at its largest kernel and expand ratio.

    The active block uses the first make_divisible(round(cin * e), 8) mid channels: expand conv out-channels,
    depthwise filters, their BNs, the SE and the project conv's in-channels are sliced to them. In/out
    channels, stride, activation, SE and shortcut are fixed by the slot. The forward mirrors
    `factory.nn.layers.MBConv` op for op, so an extracted block computes the same numbers.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernels: Sequence[int],
        expands: Sequence[float],
        stride: int,
        act: str,
        se: bool,
        residual: bool,
    ) -> None:
        super().__init__()
        self.cin, self.cout, self.stride, self.residual = cin, cout, stride, residual
        self.expands = tuple(expands)
        max_mid = mbconv_mid_channels(cin, max(self.expands))
        self.expand = _ConvBN(nn.Conv2d(cin, max_mid, 1, bias=False), nn.BatchNorm2d(max_mid))
        self.depthwise = _ConvBN(ElasticDepthwiseConv(max_mid, kernels, stride), nn.BatchNorm2d(max_mid))
        self.se = ElasticSE(max_mid) if se else None
        self.project = _ConvBN(nn.Conv2d(max_mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self._act = activation_fn(act)
        self.set_active(max(self.depthwise.conv.kernels), max(self.expands))

    def set_block(self, block: BlockConfig) -> None:
        """Activate a block slot's config (non-parallel kinds: the mask is always 4)."""
        self.set_active(block.kernel, block.expand)

    def set_active(self, kernel: int, expand: float) -> None:
        if expand not in self.expands:
            raise ValueError(f"expand {expand} not in {self.expands}")
        self.depthwise.conv.set_active(kernel)
        self.mid = mbconv_mid_channels(self.cin, expand)
        self.reduced = se_channels(self.mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.mid
        h = F.conv2d(x, self.expand.conv.weight[:mid])
        h = self._act(elastic_batch_norm(h, self.expand.bn, mid))
        h = self._act(elastic_batch_norm(self.depthwise.conv(h), self.depthwise.bn, mid))
        if self.se is not None:
            h = self.se(h, self.reduced)
        h = self.project.bn(F.conv2d(h, self.project.conv.weight[:, :mid]))
        return h + x if self.residual else h

    @torch.no_grad()
    def sort_channels(self) -> None:
        """OFA's channel re-organisation before elastic training: order the mid channels by importance (L1
        norm of their project-conv weights), so every smaller expand ratio keeps the most important ones
        instead of an arbitrary prefix. A permutation, so the largest block computes the same function."""
        order = importance_order(self.project.conv.weight, dim=1)
        permute_(self.expand.conv.weight, order)
        permute_bn_(self.expand.bn, order)
        permute_(self.depthwise.conv.weight, order)
        permute_bn_(self.depthwise.bn, order)
        if self.se is not None:
            self.se.reorder(order)
        permute_(self.project.conv.weight, order, dim=1)

    @torch.no_grad()
    def active_state(self) -> dict[str, torch.Tensor]:
        """State dict of the static MBConv of the active block (transformed kernel, sliced BN statistics)."""
        mid = self.mid
        state = {"expand.conv.weight": self.expand.conv.weight[:mid].clone()}
        state |= prefixed("expand.bn", bn_state(self.expand.bn, mid))
        state["depthwise.conv.weight"] = self.depthwise.conv.active_filter(mid).clone()
        state |= prefixed("depthwise.bn", bn_state(self.depthwise.bn, mid))
        if self.se is not None:
            state |= prefixed("se", self.se.active_state(mid, self.reduced))
        state["project.conv.weight"] = self.project.conv.weight[:, :mid].clone()
        state |= prefixed("project.bn", bn_state(self.project.bn, self.cout))
        return state
