"""Elastic stage: four block slots, of which the active config runs the first `depth`."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

import torch
from torch import nn

from factory.nn.stage import Stage, stage_forward
from factory.space.config import BlockConfig


class ElasticStage(Stage):
    """A Stage with elastic depth: the first `depth` slots run, wired plainly or densely as the static Stage."""

    def __init__(self, slots: Sequence[nn.Module], dense: bool) -> None:
        super().__init__(slots, dense)
        self.depth = len(self.blocks)

    def set_active(self, blocks: Sequence[BlockConfig]) -> None:
        if not 1 <= len(blocks) <= len(self.blocks):
            raise ValueError(f"a stage runs 1..{len(self.blocks)} blocks, got {len(blocks)}")
        for slot, block in zip(self.blocks, blocks, strict=False):
            slot.set_block(block)
        self.depth = len(blocks)

    @property
    def active_blocks(self) -> list[nn.Module]:
        return list(self.blocks)[: self.depth]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stage_forward(islice(self.blocks, self.depth), x, self.dense)
