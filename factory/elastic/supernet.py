"""OFASupernet: the OFAv2 super-network of one kind at one width multiplier."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from factory.elastic.mbconv import ElasticMBConv
from factory.elastic.parallel import ElasticParallelLevel
from factory.elastic.stage import ElasticStage
from factory.elastic.state import copied_state, prefixed
from factory.errors import FactoryError
from factory.nn.layers import init_weights
from factory.nn.network import ExitNetwork, StaticNetwork, build_heads, build_stem
from factory.nn.parallel import Transform, conv_branch
from factory.space.config import (
    BLOCKS_PER_STAGE,
    NUM_STAGES,
    SpaceSpec,
    SubnetConfig,
    largest_config,
)
from factory.space.counting import block_io, resolve_exits
from factory.space.sampling import sample_subnets


def _check_spec(spec: SpaceSpec, width: float) -> None:
    if not any(math.isclose(width, w) for w in spec.widths):
        raise FactoryError(f"width {width} is not in space.widths {spec.widths}")
    if any(k % 2 == 0 or k < 1 for k in spec.kernels):
        raise FactoryError(f"space.kernels must be odd, got {spec.kernels}")
    if any(e <= 1 for e in spec.expands):
        raise FactoryError(f"space.expands must be > 1 (expand 1 is the fixed first block), got {spec.expands}")
    if not spec.depths or min(spec.depths) < 2 or max(spec.depths) > BLOCKS_PER_STAGE:
        raise FactoryError(f"space.depths must lie in 2..{BLOCKS_PER_STAGE}, got {spec.depths}")


class OFASupernet(ExitNetwork):
    """Weight-sharing super-network: every sub-network of `spec` at width `width` is a slice of it.

    Widths 1.0 and 1.2 are separate super-networks (see `build_supernets`). Stem, fixed first block, exit
    heads and stage output channels are not elastic; kernel, expand ratio, depth and (parallel kinds) the
    branch mask are. Early-exit kinds hold a head after each stage, single-exit kinds only after the last.

    Use: `set_active(config)` then `forward(x)` or `get_active_subnet()`. After construction the maximal
    network (all exits of the kind) is active.
    """

    def __init__(self, spec: SpaceSpec, width: float) -> None:
        super().__init__()
        _check_spec(spec, width)
        self.spec, self.width = spec, width
        self.stem, self.first = build_stem(spec, width)
        self.stages = nn.ModuleList(
            ElasticStage([self._slot(s, i) for i in range(BLOCKS_PER_STAGE)], spec.dense) for s in range(NUM_STAGES)
        )
        self.heads = build_heads(spec, spec.exits(), width)
        self.apply(init_weights)
        self.set_max()

    def _slot(self, stage: int, index: int) -> nn.Module:
        spec = self.spec
        cin, cout, stride = block_io(spec, stage, index, self.width)
        act = spec.activations[stage]
        mbconv = ElasticMBConv(
            cin, cout, spec.kernels, spec.expands, stride, act, spec.squeeze_excite[stage], residual=index > 0
        )
        if not spec.parallel:
            return mbconv
        return ElasticParallelLevel(mbconv, conv_branch(cin, cout, stride, act), Transform(cin, cout, stride, act))

    # -- active sub-network ---------------------------------------------------------------------------------

    def _check_config(self, config: SubnetConfig) -> None:
        spec = self.spec
        if not math.isclose(config.width, self.width):
            raise FactoryError(f"config width {config.width} does not match this super-network's width {self.width}")
        masks = spec.branch_masks()
        for stage, depth in enumerate(config.depths):
            if depth not in spec.depths:
                raise FactoryError(f"stage {stage + 1} depth {depth} is not in space.depths {spec.depths}")
            for block in config.stage(stage):
                if block.kernel not in spec.kernels or block.expand not in spec.expands or block.branches not in masks:
                    raise FactoryError(
                        f"stage {stage + 1} block {block} is outside the {spec.kind} space "
                        f"(kernels {spec.kernels}, expands {spec.expands}, masks {masks})"
                    )

    def set_active(self, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> None:
        """Activate `config`; `exits` (e.g. (1, 2, 3) for AEP) overrides `(config.exit,)` and makes forward
        return a list of logits. The resolution is not checked: the network runs at any input size."""
        self._check_config(config)
        exits = resolve_exits(self.spec, config, exits)
        for s, stage in enumerate(self.stages):
            stage.set_active(config.stage(s))
        self._config, self._exits = config, exits
        self.route_exits(exits)

    def set_max(self) -> None:
        """Activate the maximal network, with every exit of the kind (five for early-exit kinds)."""
        self.set_active(largest_config(self.spec, self.width), exits=self.spec.exits())

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Re-organise every elastic MBConv's mid channels by importance (see ElasticMBConv.sort_channels)."""
        for module in self.modules():
            if isinstance(module, ElasticMBConv):
                module.sort_channels()

    def sample_active(self, rng: np.random.Generator) -> SubnetConfig:
        """Activate and return a depth-uniform sample at this width, drawn as training draws (`sample_subnets`)."""
        config = sample_subnets(self.spec, 1, rng, self.width)[0]
        self.set_active(config)
        return config

    @property
    def active_config(self) -> SubnetConfig:
        return self._config

    @property
    def active_exits(self) -> tuple[int, ...]:
        return self._exits

    def get_active_subnet(self, exits: tuple[int, ...] | None = None) -> StaticNetwork:
        """The active sub-network as a StaticNetwork with copied weights (kernels transformed) and BN statistics.

        `exits` defaults to the active exits. The copy shares no storage with the super-network and is in the
        super-network's train/eval mode, on its device and dtype.
        """
        config = self._config
        exits = self._exits if exits is None else resolve_exits(self.spec, config, exits)
        if any(f"exit{x}" not in self.heads for x in exits):
            raise FactoryError(f"exits {exits} are not in this super-network")
        with torch.inference_mode(False), torch.no_grad():
            with torch.device("meta"):  # no storage, no init: every tensor comes from the super-network
                net = StaticNetwork(self.spec, config, exits)
            state = prefixed("stem", copied_state(self.stem)) | prefixed("first", copied_state(self.first))
            for s in range(max(exits)):
                for i, slot in enumerate(self.stages[s].active_blocks):
                    state |= prefixed(f"stages.{s}.blocks.{i}", slot.active_state())
            for x in exits:
                state |= prefixed(f"heads.exit{x}", copied_state(self.heads[f"exit{x}"]))
            net.load_state_dict(state, strict=True, assign=True)
        return net.train(self.training)


def build_supernets(spec: SpaceSpec) -> dict[float, OFASupernet]:
    """One independent super-network per width multiplier of `spec` (OFAv2 trains them separately)."""
    return {width: OFASupernet(spec, width) for width in spec.widths}
