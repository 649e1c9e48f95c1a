"""Parameters and multiply-adds of a sub-network, from its plan, without building modules.

The counts are needed by the search thousands of times, so they replay `factory.space.plan` (the structure
the static network is built from) instead of constructing `nn.Module`s. The shape rules once defined here
live in `factory.space.shapes` and are still importable from this module.
"""

from __future__ import annotations

from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.plan import BlockStep, MBConvPlan, plan_network
from factory.space.shapes import (
    block_io,
    block_mask,
    conv_out,
    mbconv_mid_channels,
    resolve_exits,
    se_channels,
    stage_in,
)


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


def _mbconv(t: _Tally, p: MBConvPlan, size: int, out_size: int) -> None:
    mid = p.mid
    if p.expand != 1:
        t.conv(p.cin, mid, 1, size)
        t.bn(mid)
    t.conv(mid, mid, p.kernel, out_size, groups=mid)
    t.bn(mid)
    if p.se:
        red = p.reduced
        t.conv(mid, red, 1, 1, bias=True)
        t.conv(red, mid, 1, 1, bias=True)
    t.conv(mid, p.cout, 1, out_size)
    t.bn(p.cout)


def _level(t: _Tally, step: BlockStep) -> None:
    level, out_size = step.level, step.out_size
    if level.mbconv is not None:
        _mbconv(t, level.mbconv, step.size, out_size)
    if level.conv:
        t.conv(level.cin, level.cout, 1, out_size)
        t.bn(level.cout)
    if level.transform:
        if level.cin != level.cout:
            t.conv(level.cin, level.cout, 1, out_size)
        t.bn(level.cout)


def _tally(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None) -> _Tally:
    plan, t = plan_network(spec, config, exits), _Tally()
    stem = plan.stem
    t.conv(stem.cin, stem.cout, stem.kernel, plan.stem_size)
    t.bn(stem.cout)
    _mbconv(t, plan.first, plan.stem_size, plan.first_size)
    for stage in plan.stages:
        for step in stage.blocks:
            _level(t, step)
        head = stage.head
        if head is not None:
            t.conv(head.cin, head.mid, 1, stage.out_size)
            t.bn(head.mid)
            t.conv(head.mid, head.features, 1, 1)
            t.linear(head.features, head.classes)
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
