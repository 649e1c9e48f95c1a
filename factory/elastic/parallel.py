"""Elastic parallel level: the three branches of a block slot; the branch mask is chosen per sub-network."""

from __future__ import annotations

import torch
from torch import nn

from factory.elastic.mbconv import ElasticMBConv
from factory.elastic.state import copied_state, prefixed
from factory.nn.parallel import ParallelLevel
from factory.space.config import BRANCH_CONV1X1, BRANCH_MBCONV, BRANCH_TRANSFORM, BlockConfig

_BITS = {"mbconv": BRANCH_MBCONV, "conv": BRANCH_CONV1X1, "transform": BRANCH_TRANSFORM}


class ElasticParallelLevel(nn.Module):
    """All three branches of a parallel level; the active mask picks which run, summed in the static order.

    Only the MBConv branch is elastic; the 1x1 conv and transformation branches are the static modules
    (their channels are fixed by the slot), so extraction copies them as they are.
    """

    def __init__(self, mbconv: ElasticMBConv, conv: nn.Module, transform: nn.Module) -> None:
        super().__init__()
        self.mbconv, self.conv, self.transform = mbconv, conv, transform
        self.mask = BRANCH_MBCONV | BRANCH_CONV1X1 | BRANCH_TRANSFORM
        self._active: tuple[str, ...] = ParallelLevel.BRANCHES

    def set_block(self, block: BlockConfig) -> None:
        self.mbconv.set_active(block.kernel, block.expand)
        names = [name for name in ParallelLevel.BRANCHES if block.branches & _BITS[name]]
        if not names:
            raise ValueError(f"branch mask {block.branches} selects no branch")
        self.mask = block.branches
        self._active = tuple(names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self, self._active[0])(x)
        for name in self._active[1:]:
            out = out + getattr(self, name)(x)
        return out

    @torch.no_grad()
    def active_state(self) -> dict[str, torch.Tensor]:
        """State dict of the static ParallelLevel with the active mask."""
        state: dict[str, torch.Tensor] = {}
        if self.mask & BRANCH_MBCONV:
            state |= prefixed("mbconv", self.mbconv.active_state())
        if self.mask & BRANCH_CONV1X1:
            state |= prefixed("conv", copied_state(self.conv))
        if self.mask & BRANCH_TRANSFORM:
            state |= prefixed("transform", copied_state(self.transform))
        return state
