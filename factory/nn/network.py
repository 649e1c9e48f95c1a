"""StaticNetwork: the plain, exportable network of one sub-network (no elastic code).

ExitNetwork holds the stem -> stages -> exit heads loop; the super-network (factory.elastic) inherits it
too, so the two cannot drift apart. Nothing here imports factory.elastic.
"""

from __future__ import annotations

import torch
from torch import nn

from factory.nn.heads import ExitHead
from factory.nn.layers import ConvBNAct, MBConv, init_weights
from factory.nn.parallel import ParallelLevel, Transform, conv_branch
from factory.nn.stage import Stage
from factory.space.config import BRANCH_CONV1X1, BRANCH_MBCONV, BRANCH_TRANSFORM, BlockConfig, SpaceSpec, SubnetConfig
from factory.space.counting import block_io, block_mask, resolve_exits


def build_level(spec: SpaceSpec, stage: int, index: int, width: float, block: BlockConfig) -> nn.Module:
    """Block `index` of `stage`: an MBConv, or in parallel kinds a ParallelLevel holding the masked branches."""
    cin, cout, stride = block_io(spec, stage, index, width)
    act, se = spec.activations[stage], spec.squeeze_excite[stage]

    def mbconv() -> MBConv:
        return MBConv(cin, cout, block.kernel, block.expand, stride, act, se, residual=index > 0)

    if not spec.parallel:
        return mbconv()
    mask = block_mask(spec, block)
    return ParallelLevel(
        mbconv() if mask & BRANCH_MBCONV else None,
        conv_branch(cin, cout, stride, act) if mask & BRANCH_CONV1X1 else None,
        Transform(cin, cout, stride, act) if mask & BRANCH_TRANSFORM else None,
    )


def build_stem(spec: SpaceSpec, width: float) -> tuple[ConvBNAct, MBConv]:
    """3x3 stride-2 conv + BN + h-swish, then the fixed MBConv (k3, e1, ReLU; residual when channels match)."""
    stem, first = spec.stem_out(width), spec.first_block_out(width)
    return (
        ConvBNAct(3, stem, 3, 2, act="hswish"),
        MBConv(stem, first, 3, 1, 1, "relu", se=False, residual=stem == first),
    )


def build_head(spec: SpaceSpec, stage: int, width: float) -> ExitHead:
    """The exit head after `stage` (0-based); its widths are fixed by the stage, never elastic."""
    mid, features = spec.head_channels(stage, width)
    return ExitHead(spec.stage_out(stage, width), mid, features, spec.num_classes, spec.dropout)


def build_heads(spec: SpaceSpec, exits: tuple[int, ...], width: float) -> nn.ModuleDict:
    """One head per exit, keyed "exit<x>" as every network (static or super) names them."""
    return nn.ModuleDict({f"exit{x}": build_head(spec, x - 1, width) for x in exits})


class ExitNetwork(nn.Module):
    """stem -> fixed MBConv -> stages[:max(exits)] -> one exit head per exit: the forward of both networks.

    The static network and the super-network inherit this one loop, so an extracted network computes in
    the same order (bit for bit) what the super-network computes. Subclasses build `stem`, `first`,
    `stages` and `heads` and call `route_exits` whenever their exits change; stages after the last exit
    never run. Forward returns a tensor for one exit, else a list of logits in exit order.
    """

    stem: nn.Module
    first: nn.Module
    stages: nn.ModuleList
    heads: nn.ModuleDict

    def route_exits(self, exits: tuple[int, ...]) -> None:
        """Run stages 1..max(exits) and the head after each stage in `exits`."""
        self._head_after = tuple(f"exit{s + 1}" if s + 1 in exits else None for s in range(max(exits)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        x = self.first(self.stem(x))
        outs = []
        for stage, head in zip(self.stages, self._head_after, strict=False):  # stages past the last exit never run
            x = stage(x)
            if head is not None:
                outs.append(self.heads[head](x))
        return outs[0] if len(outs) == 1 else outs


class StaticNetwork(ExitNetwork):
    """stem -> fixed MBConv -> stages[:max(exits)] -> one exit head per exit.

    Args:
        spec: the super-network family (kind, channel plan).
        config: the sub-network; blocks of stages after the last exit are not built.
        exits: exits to build, e.g. (1, 2, 3) for AEP fine-tuning; None means `(config.exit,)`, the deployable
            single-exit network. Forward returns a tensor for one exit, else a list of logits in exit order.

    Everything structural is fixed here, so forward has no data-dependent control flow and exports to ONNX.
    """

    def __init__(self, spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.spec, self.config = spec, config
        self.exits = resolve_exits(spec, config, exits)
        width = config.width
        self.stem, self.first = build_stem(spec, width)
        self.stages = nn.ModuleList(
            Stage([build_level(spec, s, i, width, b) for i, b in enumerate(config.stage(s))], spec.dense)
            for s in range(max(self.exits))
        )
        self.heads = build_heads(spec, self.exits, width)
        self.route_exits(self.exits)
        self.apply(init_weights)
