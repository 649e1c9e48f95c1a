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
from factory.space.config import BlockConfig, SpaceSpec, SubnetConfig
from factory.space.plan import ConvPlan, HeadPlan, LevelPlan, MBConvPlan, head_plan, level_plan, plan_network, stem_plan


def mbconv_module(p: MBConvPlan) -> MBConv:
    """The MBConv of a plan."""
    return MBConv(p.cin, p.cout, p.kernel, p.expand, p.stride, p.act, p.se, residual=p.residual)


def level_module(level: LevelPlan) -> nn.Module:
    """A block of a plan: its MBConv, or in parallel kinds a ParallelLevel holding the branches that run
    (created in the order mbconv, conv, transform, which fixes the random initialisation)."""
    if not level.parallel:
        if level.mbconv is None:
            raise ValueError("a level outside a parallel kind is its MBConv")
        return mbconv_module(level.mbconv)
    cin, cout, stride, act = level.cin, level.cout, level.stride, level.act
    return ParallelLevel(
        None if level.mbconv is None else mbconv_module(level.mbconv),
        conv_branch(cin, cout, stride, act) if level.conv else None,
        Transform(cin, cout, stride, act) if level.transform else None,
    )


def stem_modules(stem: ConvPlan, first: MBConvPlan) -> tuple[ConvBNAct, MBConv]:
    """The stem conv + BN + act and the fixed MBConv after it."""
    return ConvBNAct(stem.cin, stem.cout, stem.kernel, stem.stride, act=stem.act), mbconv_module(first)


def head_module(head: HeadPlan) -> ExitHead:
    """The exit head of a plan."""
    return ExitHead(head.cin, head.mid, head.features, head.classes, head.dropout)


def build_level(spec: SpaceSpec, stage: int, index: int, width: float, block: BlockConfig) -> nn.Module:
    """Block `index` of `stage`: an MBConv, or in parallel kinds a ParallelLevel holding the masked branches."""
    return level_module(level_plan(spec, stage, index, width, block))


def build_stem(spec: SpaceSpec, width: float) -> tuple[ConvBNAct, MBConv]:
    """3x3 stride-2 conv + BN + h-swish, then the fixed MBConv (k3, e1, ReLU; residual when channels match)."""
    return stem_modules(*stem_plan(spec, width))


def build_head(spec: SpaceSpec, stage: int, width: float) -> ExitHead:
    """The exit head after `stage` (0-based); its widths are fixed by the stage, never elastic."""
    return head_module(head_plan(spec, stage, width))


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

    Its modules are those of the sub-network's plan (`factory.space.plan`), which the analytic counts and
    footprint replay. Everything structural is fixed here, so forward has no data-dependent control flow and
    exports to ONNX.
    """

    def __init__(self, spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> None:
        super().__init__()
        plan = plan_network(spec, config, exits)
        self.spec, self.config, self.exits = spec, config, plan.exits
        self.stem, self.first = stem_modules(plan.stem, plan.first)
        self.stages = nn.ModuleList(
            Stage([level_module(step.level) for step in stage.blocks], stage.dense) for stage in plan.stages
        )
        self.heads = nn.ModuleDict({f"exit{head.exit}": head_module(head) for head in plan.heads})
        self.route_exits(self.exits)
        self.apply(init_weights)
