"""The NAT2 search space: sub-network descriptions, kinds, encodings and samplers."""

from factory.space.config import (
    BLOCKS_PER_STAGE,
    NUM_SLOTS,
    NUM_STAGES,
    BlockConfig,
    SpaceSpec,
    SubnetConfig,
    largest_config,
    make_divisible,
    smallest_config,
)
from factory.space.kinds import KINDS, Kind, get_kind

__all__ = [
    "BLOCKS_PER_STAGE",
    "KINDS",
    "NUM_SLOTS",
    "NUM_STAGES",
    "BlockConfig",
    "Kind",
    "SpaceSpec",
    "SubnetConfig",
    "get_kind",
    "largest_config",
    "make_divisible",
    "smallest_config",
]
