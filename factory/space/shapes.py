"""Shape arithmetic of the OFAv2 networks: channels, strides, spatial sizes and exits, without building modules.

These rules are the one definition the sub-network plan (`factory.space.plan`), the layers of `factory.nn` and
the elastic layers of `factory.elastic` all use, so a static network, the super-network and the analytic
figures cannot disagree on a channel count.
"""

from __future__ import annotations

from factory.errors import FactoryError
from factory.space.config import BRANCH_MBCONV, BlockConfig, SpaceSpec, SubnetConfig, make_divisible

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


__all__ = [
    "SE_REDUCTION",
    "block_io",
    "block_mask",
    "conv_out",
    "mbconv_mid_channels",
    "resolve_exits",
    "se_channels",
    "stage_in",
]
