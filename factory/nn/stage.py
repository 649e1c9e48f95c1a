"""Wiring of the blocks inside a stage: plain sequence or OFAv2 dense skip connections."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from factory.space.plan import dense_skips, dense_tail


def stage_forward(
    blocks: Sequence[Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor, dense: bool
) -> torch.Tensor:
    """Run a stage's blocks; shared by the static network and the super-network so both sum alike.

    Dense wiring (OFAv2, `factory.space.plan.dense_skips` / `dense_tail`, which the analytic figures replay):
    let y[0] be the stage input and y[d] the output of block d (1-based). Block d takes y[d-1], plus
    sum(y[1..d-3]) when d >= 4; that sum is the block's whole input, so its identity shortcut adds it too. The
    stage output is y[D] + sum(y[1..D-2]). The stage input y[0] is never added (it has other channels and
    resolution). Plain wiring: blocks in sequence.
    """
    if not dense:
        for block in blocks:
            x = block(x)
        return x
    ys: list[torch.Tensor] = []
    h = x
    for index, block in enumerate(blocks):
        for skip in dense_skips(index):
            h = h + ys[skip]
        h = block(h)
        ys.append(h)
    out = ys[-1]
    for skip in dense_tail(len(ys)):
        out = out + ys[skip]
    return out


class Stage(nn.Module):
    """A static stage: its active blocks, in order, and whether they are densely wired."""

    def __init__(self, blocks: Sequence[nn.Module], dense: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.dense = dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stage_forward(self.blocks, x, self.dense)
