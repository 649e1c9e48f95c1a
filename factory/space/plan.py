"""The plan of a sub-network: one walk of a config into the layers it runs, with their channels and sides.

The static network (`factory.nn`) builds its modules from a plan, and the analytic counts (`counting`) and the
deployed graph's flash and RAM (`footprint`) replay it, so the structure (the stem, each block's channels,
stride, kernel and branches, the dense additions, the exit heads) is derived here once and the three cannot
drift apart. A plan is plain immutable data (named tuples, the cheapest records to make) and builds no module:
the search walks thousands of them.
"""

from __future__ import annotations

from typing import NamedTuple

from factory.space.config import BRANCH_CONV1X1, BRANCH_MBCONV, BRANCH_TRANSFORM, BlockConfig, SpaceSpec, SubnetConfig
from factory.space.shapes import block_io, block_mask, conv_out, mbconv_mid_channels, resolve_exits, se_channels


class ConvPlan(NamedTuple):
    """The stem: a conv with 'same' padding, then BatchNorm and an activation."""

    cin: int
    cout: int
    kernel: int
    stride: int
    act: str


class MBConvPlan(NamedTuple):
    """An inverted residual: [1x1 expand + BN + act] -> kxk depthwise + BN + act -> [SE] -> 1x1 project + BN
    [+ the identity]. Expand 1 (the fixed block after the stem) has no expand conv."""

    cin: int
    mid: int
    cout: int
    kernel: int
    expand: float
    stride: int
    act: str
    se: bool
    reduced: int  # the squeeze channels of its SE module (0 without one)
    residual: bool


def mbconv_plan(
    cin: int, cout: int, kernel: int, expand: float, stride: int, act: str, se: bool, residual: bool
) -> MBConvPlan:
    """An MBConv with its mid and squeeze channels worked out (`factory.space.shapes`)."""
    mid = mbconv_mid_channels(cin, expand)
    return MBConvPlan(cin, mid, cout, kernel, expand, stride, act, se, se_channels(mid) if se else 0, residual)


class LevelPlan(NamedTuple):
    """One block: the MBConv, the 1x1 conv + BN + act branch and the transformation branch that run, summed in
    that order. Parallel kinds wrap them in a level even when only the MBConv runs; other kinds run the MBConv.

    The transformation branch is [3x3 max-pool when strided] -> [1x1 conv when the channels change] -> BN -> act.
    """

    cin: int
    cout: int
    stride: int
    act: str
    mbconv: MBConvPlan | None
    conv: bool
    transform: bool
    parallel: bool


class HeadPlan(NamedTuple):
    """The exit head after a stage: 1x1 conv + BN + h-swish to `mid`, global pool, 1x1 conv + h-swish to
    `features`, dropout, linear classifier."""

    exit: int  # 1-based: the head after stage exit - 1
    cin: int
    mid: int
    features: int
    classes: int
    dropout: float


class BlockStep(NamedTuple):
    """A block in its place: the earlier outputs of its stage (0-based block indices) added to its input
    before it runs (dense wiring), and the sides of its input and output maps."""

    level: LevelPlan
    skips: tuple[int, ...]
    size: int
    out_size: int


class StagePlan(NamedTuple):
    """A stage: its blocks in order, the block outputs added to the last one's to make its output (dense
    wiring), and the exit head that reads that output, if any."""

    index: int  # 0-based
    dense: bool
    blocks: tuple[BlockStep, ...]
    tail: tuple[int, ...]
    head: HeadPlan | None

    @property
    def out_size(self) -> int:
        return self.blocks[-1].out_size


class NetPlan(NamedTuple):
    """A sub-network with its exits: stem -> fixed MBConv -> stages[:max(exits)] -> one head per exit."""

    resolution: int
    exits: tuple[int, ...]
    stem: ConvPlan
    first: MBConvPlan
    stem_size: int  # the side of the stem's output, the fixed MBConv's input
    first_size: int  # the side of the fixed MBConv's output, the first stage's input
    stages: tuple[StagePlan, ...]

    @property
    def heads(self) -> tuple[HeadPlan, ...]:
        """The exit heads in exit order."""
        return tuple(stage.head for stage in self.stages if stage.head is not None)


def dense_skips(index: int) -> range:
    """Dense wiring (OFAv2): the earlier block outputs (0-based) added to block `index`'s input: y[1..d-3]
    for block d = index + 1. The stage input is never added (it has other channels and resolution)."""
    return range(max(index - 2, 0))


def dense_tail(depth: int) -> range:
    """Dense wiring: the block outputs added to the last one's to make the stage output, y[1..D-2]."""
    return range(max(depth - 2, 0))


def stem_plan(spec: SpaceSpec, width: float) -> tuple[ConvPlan, MBConvPlan]:
    """3x3 stride-2 conv + BN + h-swish, then the fixed MBConv (k3, e1, ReLU; residual when channels match)."""
    stem, first = spec.stem_out(width), spec.first_block_out(width)
    return ConvPlan(3, stem, 3, 2, "hswish"), mbconv_plan(stem, first, 3, 1, 1, "relu", False, stem == first)


def level_plan(spec: SpaceSpec, stage: int, index: int, width: float, block: BlockConfig) -> LevelPlan:
    """Block `index` of `stage` (0-based) running `block`; only the first block of a stage strides and widens,
    and only the others have an identity shortcut."""
    cin, cout, stride = block_io(spec, stage, index, width)
    act, mask = spec.activations[stage], block_mask(spec, block)
    mbconv = None
    if mask & BRANCH_MBCONV:
        mbconv = mbconv_plan(cin, cout, block.kernel, block.expand, stride, act, spec.squeeze_excite[stage], index > 0)
    conv, transform = bool(mask & BRANCH_CONV1X1), bool(mask & BRANCH_TRANSFORM)
    return LevelPlan(cin, cout, stride, act, mbconv, conv, transform, spec.parallel)


def head_plan(spec: SpaceSpec, stage: int, width: float) -> HeadPlan:
    """The exit head after `stage` (0-based); its widths are fixed by the stage, never elastic."""
    mid, features = spec.head_channels(stage, width)
    return HeadPlan(stage + 1, spec.stage_out(stage, width), mid, features, spec.num_classes, spec.dropout)


def _out_size(level: LevelPlan, size: int) -> int:
    if level.mbconv is not None:
        return conv_out(size, level.mbconv.kernel, level.stride)
    return conv_out(size, 1, level.stride, 0)


def plan_network(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> NetPlan:
    """The plan of `config` with `exits` (default `(config.exit,)`) at `config.resolution`; the blocks of stages
    after the last exit are left out, as they never run. Raises FactoryError for an exit the kind lacks."""
    exits = resolve_exits(spec, config, exits)
    width, dense = config.width, spec.dense
    stem, first = stem_plan(spec, width)
    stem_size = conv_out(config.resolution, stem.kernel, stem.stride)
    size = first_size = conv_out(stem_size, first.kernel, first.stride)
    stages = []
    for stage in range(max(exits)):
        blocks = config.stage(stage)
        steps = []
        for index, block in enumerate(blocks):
            level = level_plan(spec, stage, index, width, block)
            skips = tuple(dense_skips(index)) if dense else ()
            out_size = _out_size(level, size)
            steps.append(BlockStep(level, skips, size, out_size))
            size = out_size
        tail = tuple(dense_tail(len(blocks))) if dense else ()
        head = head_plan(spec, stage, width) if stage + 1 in exits else None
        stages.append(StagePlan(stage, dense, tuple(steps), tail, head))
    return NetPlan(config.resolution, exits, stem, first, stem_size, first_size, tuple(stages))


__all__ = [
    "BlockStep",
    "ConvPlan",
    "HeadPlan",
    "LevelPlan",
    "MBConvPlan",
    "NetPlan",
    "StagePlan",
    "dense_skips",
    "dense_tail",
    "head_plan",
    "level_plan",
    "mbconv_plan",
    "plan_network",
    "stem_plan",
]
