"""The sub-network plan against the network built from it: every block's channels and sides, the heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factory.nn import StaticNetwork
from factory.space import KINDS, largest_config, smallest_config
from factory.space.encoding import get_encoding
from factory.space.plan import plan_network
from factory.space.sampling import sample_configs

from .space_helpers import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def _block_outputs(net: StaticNetwork, resolution: int) -> list[tuple[int, ...]]:
    """(channels, height, width) of every block's output, in order, from one forward."""
    shapes: list[tuple[int, ...]] = []
    for stage in net.stages:
        for block in stage.blocks:
            block.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, resolution, resolution))
    return shapes


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_plan_describes_the_built_network(kind: str) -> None:
    spec = tiny_spec(kind, resolutions=(27,), strides=(2, 2, 2, 1, 2))
    configs = [largest_config(spec), smallest_config(spec)]
    configs += sample_configs(get_encoding("nat2", spec), 2, np.random.default_rng(0))
    for config in configs:
        exits = spec.exits()[: config.exit] if spec.early_exit else None
        plan, net = plan_network(spec, config, exits), StaticNetwork(spec, config, exits)
        shapes = _block_outputs(net, config.resolution)
        steps = [step for stage in plan.stages for step in stage.blocks]
        assert shapes == [(s.level.cout, s.out_size, s.out_size) for s in steps], config.to_json()
        assert [f"exit{h.exit}" for h in plan.heads] == list(net.heads) and plan.exits == net.exits
        assert net.first.residual == plan.first.residual


def test_dense_additions_follow_the_ofav2_rule() -> None:
    spec = tiny_spec("se-dense")
    stage = plan_network(spec, largest_config(spec)).stages[0]
    assert [step.skips for step in stage.blocks] == [(), (), (), (0,)] and stage.tail == (0, 1)
    plain = plan_network(tiny_spec("se-base"), largest_config(spec)).stages[0]
    assert all(step.skips == () for step in plain.blocks) and plain.tail == ()
