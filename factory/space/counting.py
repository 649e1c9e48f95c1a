"""Structure arithmetic of the OFAv2 networks, without building modules.

The channel rules (MBConv mid channels, SE channels, block in/out/stride, exits) live here so that the
static network, the super-network and the analytic counts share one definition. The counts are needed by
the search thousands of times, so they must not construct `nn.Module`s.
"""

from __future__ import annotations

from factory.errors import FactoryError
from factory.space.config import (
    BRANCH_CONV1X1,
    BRANCH_MBCONV,
    BRANCH_TRANSFORM,
    BlockConfig,
    SpaceSpec,
    SubnetConfig,
    make_divisible,
)

SE_REDUCTION = 4


def mbconv_mid_channels(in_channels: int, expand: float) -> int:
    """Expanded channels of an MBConv, as OFA: make_divisible(round(in * expand), 8); expand 1 keeps `in`."""
    if expand == 1:
        return in_channels
    return make_divisible(round(in_channels * expand), 8)


def se_channels(mid_channels: int) -> int:
    """Squeeze channels of an SE module on `mid_channels` (OFA: make_divisible(mid // 4, 8))."""
    return make_divisible(mid_channels // SE_REDUCTION, 8)


def stage_in(spec: SpaceSpec, stage: int, width: float) -> int:
    """Input channels of body stage `stage` (0-based)."""
    return spec.first_block_out(width) if stage == 0 else spec.stage_out(stage - 1, width)


def block_io(spec: SpaceSpec, stage: int, index: int, width: float) -> tuple[int, int, int]:
    """(in channels, out channels, stride) of block `index` of `stage`; the first block strides and widens."""
    out = spec.stage_out(stage, width)
    if index == 0:
        return stage_in(spec, stage, width), out, spec.strides[stage]
    return out, out, 1


def block_mask(spec: SpaceSpec, block: BlockConfig) -> int:
    """The branch mask that runs: the block's own in parallel kinds, MBConv only (4) otherwise."""
    return block.branches if spec.parallel else BRANCH_MBCONV


def resolve_exits(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The exits a network built from `config` carries: `(config.exit,)` by default, sorted and unique.

    Raises FactoryError for an exit the kind does not have (single-exit kinds only have exit 5).
    """
    chosen = (config.exit,) if exits is None else tuple(sorted({int(x) for x in exits}))
    allowed = spec.exits()
    if not chosen or any(x not in allowed for x in chosen):
        raise FactoryError(f"exits {chosen} are not available in a {spec.kind} network; choose from {allowed}")
    return chosen


def conv_out(size: int, kernel: int, stride: int, padding: int | None = None) -> int:
    """Spatial output size of a conv or pool: floor((H + 2p - k) / s) + 1, with 'same' padding k // 2."""
    padding = kernel // 2 if padding is None else padding
    return (size + 2 * padding - kernel) // stride + 1


class _Tally:
    """Accumulates parameters and MACs of conv / BN / linear layers."""

    def __init__(self) -> None:
        self.params = 0
        self.macs = 0

    def conv(self, cin: int, cout: int, kernel: int, size: int, groups: int = 1, bias: bool = False) -> None:
        """A conv whose OUTPUT is `size` x `size`."""
        weights = cin // groups * cout * kernel * kernel
        self.params += weights + (cout if bias else 0)
        self.macs += weights * size * size

    def bn(self, channels: int) -> None:
        self.params += 2 * channels

    def linear(self, fin: int, fout: int) -> None:
        self.params += fin * fout + fout
        self.macs += fin * fout


def _mbconv(t: _Tally, cin: int, cout: int, kernel: int, expand: float, stride: int, se: bool, size: int) -> int:
    mid = mbconv_mid_channels(cin, expand)
    out_size = conv_out(size, kernel, stride)
    if expand != 1:
        t.conv(cin, mid, 1, size)
        t.bn(mid)
    t.conv(mid, mid, kernel, out_size, groups=mid)
    t.bn(mid)
    if se:
        red = se_channels(mid)
        t.conv(mid, red, 1, 1, bias=True)
        t.conv(red, mid, 1, 1, bias=True)
    t.conv(mid, cout, 1, out_size)
    t.bn(cout)
    return out_size


def _level(t: _Tally, spec: SpaceSpec, stage: int, index: int, width: float, block: BlockConfig, size: int) -> int:
    cin, cout, stride = block_io(spec, stage, index, width)
    mask = block_mask(spec, block)
    out_size = conv_out(size, 1, stride, 0)
    if mask & BRANCH_MBCONV:
        se = spec.squeeze_excite[stage]
        out_size = _mbconv(t, cin, cout, block.kernel, block.expand, stride, se, size)
    if mask & BRANCH_CONV1X1:
        t.conv(cin, cout, 1, out_size)
        t.bn(cout)
    if mask & BRANCH_TRANSFORM:
        if cin != cout:
            t.conv(cin, cout, 1, out_size)
        t.bn(cout)
    return out_size


def _tally(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None) -> _Tally:
    exits = resolve_exits(spec, config, exits)
    width, t = config.width, _Tally()
    stem, first = spec.stem_out(width), spec.first_block_out(width)
    size = conv_out(config.resolution, 3, 2)
    t.conv(3, stem, 3, size)
    t.bn(stem)
    size = _mbconv(t, stem, first, 3, 1, 1, False, size)
    for stage in range(max(exits)):
        for index, block in enumerate(config.stage(stage)):
            size = _level(t, spec, stage, index, width, block, size)
        if stage + 1 in exits:
            channels = spec.stage_out(stage, width)
            mid, feat = spec.head_channels(stage, width)
            t.conv(channels, mid, 1, size)
            t.bn(mid)
            t.conv(mid, feat, 1, 1)
            t.linear(feat, spec.num_classes)
    return t


def count_params(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> int:
    """Trainable parameters of `StaticNetwork(spec, config, exits)`, computed without building it."""
    return _tally(spec, config, exits).params


def count_macs(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> int:
    """Multiply-adds of conv and linear layers at batch 1 and `config.resolution` (the papers' convention).

    BN, pooling, activations, the SE multiply and branch/skip additions count 0; SE convs run at 1x1.
    """
    return _tally(spec, config, exits).macs


__all__ = [
    "block_io",
    "block_mask",
    "conv_out",
    "count_macs",
    "count_params",
    "mbconv_mid_channels",
    "resolve_exits",
    "se_channels",
    "stage_in",
]
