"""SubnetConfig: the one description of a sub-network, and SpaceSpec: the super-network it lives in.

Every stage of the factory (encodings, super-network, predictors, export metadata, reports) passes a
`SubnetConfig` around. It is frozen, hashable and round-trips through JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Annotated, Any

from factory.bounds import Fraction, Positive, PositiveInt, Range
from factory.errors import FactoryError
from factory.space.kinds import Kind, get_kind

NUM_STAGES = 5
BLOCKS_PER_STAGE = 4
NUM_SLOTS = NUM_STAGES * BLOCKS_PER_STAGE

# Branch-mask bits of a parallel level, in the documented order (MSB first):
# 4 = the MBConv residual block, 2 = a 1x1 conv + BN + act, 1 = the "transformation" branch.
BRANCH_MBCONV = 4
BRANCH_CONV1X1 = 2
BRANCH_TRANSFORM = 1


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet channel rounding: nearest multiple of `divisor`, never more than 10% below `value`."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class BlockConfig:
    """One active block slot: depthwise kernel, expand ratio, and branch mask (4 = MBConv only)."""

    kernel: int
    expand: int
    branches: int = BRANCH_MBCONV

    @property
    def has_mbconv(self) -> bool:
        return bool(self.branches & BRANCH_MBCONV)


@dataclass(frozen=True)
class SubnetConfig:
    """A sub-network: input resolution, width multiplier, exit (1..5, 1-based stage) and 20 block slots.

    `blocks[s * 4 + b]` is block b of stage s, or None when skipped. A valid config has the first two
    blocks of each stage active and no active block after a skipped one (encodings repair to this form).
    Stages after the exit are kept (they are part of the genes) but never run.
    """

    resolution: int
    width: float
    exit: int
    blocks: tuple[BlockConfig | None, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if len(self.blocks) != NUM_SLOTS:
            raise ValueError(f"SubnetConfig needs {NUM_SLOTS} block slots, got {len(self.blocks)}")
        if not 1 <= self.exit <= NUM_STAGES:
            raise ValueError(f"exit must be in 1..{NUM_STAGES}, got {self.exit}")
        for stage in range(NUM_STAGES):
            slots = self.blocks[stage * BLOCKS_PER_STAGE : (stage + 1) * BLOCKS_PER_STAGE]
            if slots[0] is None or slots[1] is None:
                raise ValueError(f"stage {stage + 1}: the first two blocks cannot be skipped")
            if slots[2] is None and slots[3] is not None:
                raise ValueError(f"stage {stage + 1}: block 4 is active after a skipped block 3")

    def stage(self, index: int) -> tuple[BlockConfig, ...]:
        """The active blocks of stage `index` (0-based), in order."""
        slots = self.blocks[index * BLOCKS_PER_STAGE : (index + 1) * BLOCKS_PER_STAGE]
        return tuple(b for b in slots if b is not None)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(self.stage(s)) for s in range(NUM_STAGES))

    def with_exit(self, exit_: int) -> SubnetConfig:
        return SubnetConfig(self.resolution, self.width, exit_, self.blocks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "width": self.width,
            "exit": self.exit,
            "blocks": [None if b is None else asdict(b) for b in self.blocks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubnetConfig:
        blocks = tuple(None if b is None else BlockConfig(**b) for b in data["blocks"])
        return cls(int(data["resolution"]), float(data["width"]), int(data["exit"]), blocks)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SubnetConfig:
        return cls.from_dict(json.loads(text))

    def key(self) -> str:
        """A short stable string for caches and file names (only the parts that run)."""
        parts = [f"r{self.resolution}", f"w{self.width:g}", f"x{self.exit}"]
        for s in range(self.exit):
            parts.append("-".join(f"{b.kernel}{b.expand}{b.branches}" for b in self.stage(s)))
        return "_".join(parts)


@dataclass(frozen=True)
class SpaceSection:
    """The recipe's `space` section: the super-network family (kind) and its elastic values.

    The channel plan defaults to OFA MobileNetV3-Large; tests pass a tiny plan (a few channels) to stay fast.
    Each field's type carries its allowed range, checked when a recipe is loaded.
    """

    kind: str = "ee-dense"  # se|ee - base|dense|parallel|dense-parallel
    resolutions: tuple[PositiveInt, ...] = (32,)
    widths: tuple[Positive, ...] = (1.0, 1.2)
    kernels: tuple[PositiveInt, ...] = (3, 5, 7)
    expands: tuple[PositiveInt, ...] = (3, 4, 6)
    depths: tuple[Annotated[int, Range(2, BLOCKS_PER_STAGE)], ...] = (2, 3, 4)  # the first two blocks always run
    stem_channels: PositiveInt = 16
    first_block_channels: PositiveInt = 16
    stage_channels: tuple[PositiveInt, ...] = (24, 40, 80, 112, 160)
    strides: tuple[Annotated[int, Range(1, 2)], ...] = (2, 2, 2, 1, 2)
    activations: tuple[str, ...] = ("relu", "relu", "hswish", "hswish", "hswish")
    squeeze_excite: tuple[bool, ...] = (False, True, False, True, True)
    head_expand: PositiveInt = 6  # exit head: 1x1 conv to head_expand * C
    head_features: PositiveInt = 8  # exit head: feature layer of head_features * C
    dropout: Fraction = 0.1

    def __post_init__(self) -> None:
        get_kind(self.kind)
        for name in ("stage_channels", "strides", "activations", "squeeze_excite"):
            if len(getattr(self, name)) != NUM_STAGES:
                raise FactoryError(f"space.{name} needs {NUM_STAGES} values, got {len(getattr(self, name))}")

    def to_spec(self, num_classes: int) -> SpaceSpec:
        """The SpaceSpec the networks are built from, for a dataset with `num_classes` classes."""
        return SpaceSpec(num_classes=num_classes, **{f.name: getattr(self, f.name) for f in fields(SpaceSection)})


@dataclass(frozen=True)
class SpaceSpec(SpaceSection):
    """A super-network's full description: the recipe's space section plus the dataset's class count."""

    num_classes: PositiveInt = 10

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) for files that are read back without unpickling objects."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    def fingerprint(self) -> str:
        """16 hex digits naming the space (kind, channel plan, choices, classes), so a latency profile of
        another space is refused."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpaceSpec:
        """Rebuild a spec written by `to_dict`; unknown keys are an error, lists become tuples."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FactoryError(f"unknown space keys {', '.join(unknown)}; the file is from another factory version")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def kind_info(self) -> Kind:
        return get_kind(self.kind)

    @property
    def early_exit(self) -> bool:
        return self.kind_info.early_exit

    @property
    def dense(self) -> bool:
        return self.kind_info.dense

    @property
    def parallel(self) -> bool:
        return self.kind_info.parallel

    def channels(self, base: int, width: float) -> int:
        """Channels of a layer with `base` channels at width multiplier `width`."""
        return make_divisible(base * width, 8)

    def stem_out(self, width: float) -> int:
        return self.channels(self.stem_channels, width)

    def first_block_out(self, width: float) -> int:
        return self.channels(self.first_block_channels, width)

    def stage_out(self, stage: int, width: float) -> int:
        return self.channels(self.stage_channels[stage], width)

    def head_channels(self, stage: int, width: float) -> tuple[int, int]:
        """(expand, feature) channels of the exit head after `stage`: 6C and 8C of the stage's base width."""
        base = self.stage_channels[stage]
        return self.channels(base * self.head_expand, width), self.channels(base * self.head_features, width)

    def exits(self) -> tuple[int, ...]:
        """The exits this kind has (1-based stage indices)."""
        return tuple(range(1, NUM_STAGES + 1)) if self.early_exit else (NUM_STAGES,)

    def branch_masks(self) -> tuple[int, ...]:
        return tuple(range(1, 8)) if self.parallel else (BRANCH_MBCONV,)

    def with_kind(self, kind: str) -> SpaceSpec:
        return replace(self, kind=kind)


def largest_config(spec: SpaceSpec, width: float | None = None, resolution: int | None = None) -> SubnetConfig:
    """The maximal sub-network of one super-network: every block, largest kernel and expand, all branches,
    deepest exit. Each width is its own super-network, so `width` defaults to the first (smallest)."""
    block = BlockConfig(max(spec.kernels), max(spec.expands), max(spec.branch_masks()))
    depth = max(spec.depths)
    stage = (block,) * depth + (None,) * (BLOCKS_PER_STAGE - depth)
    return SubnetConfig(resolution or max(spec.resolutions), width or min(spec.widths), NUM_STAGES, stage * NUM_STAGES)


def smallest_config(spec: SpaceSpec, width: float | None = None, resolution: int | None = None) -> SubnetConfig:
    """The minimal sub-network: two blocks per stage, smallest kernel and expand, MBConv only, first exit
    (width defaults to the smallest)."""
    block = BlockConfig(min(spec.kernels), min(spec.expands), BRANCH_MBCONV)
    depth = min(spec.depths)
    stage = (block,) * depth + (None,) * (BLOCKS_PER_STAGE - depth)
    exit_ = 1 if spec.early_exit else NUM_STAGES
    return SubnetConfig(resolution or min(spec.resolutions), width or min(spec.widths), exit_, stage * NUM_STAGES)
