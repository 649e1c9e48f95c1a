"""Static network: shapes, exits, dense wiring, and the analytic parameter / MAC counts against the built modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from factory.errors import FactoryError
from factory.nn import StaticNetwork, stage_forward
from factory.space import KINDS, BlockConfig, SpaceSpec, SubnetConfig, largest_config, smallest_config
from factory.space.counting import count_macs, count_params

from .space_helpers import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def random_config(spec: SpaceSpec, rng: np.random.Generator, width: float | None = None) -> SubnetConfig:
    """Depth-uniform sample; independent of the super-network and of the search's samplers."""
    blocks: list[BlockConfig | None] = []
    for _ in range(5):
        depth = int(rng.choice(spec.depths))
        for i in range(4):
            kernel, expand = int(rng.choice(spec.kernels)), int(rng.choice(spec.expands))
            blocks.append(BlockConfig(kernel, expand, int(rng.choice(spec.branch_masks()))) if i < depth else None)
    exit_ = int(rng.choice(spec.exits()))
    return SubnetConfig(int(rng.choice(spec.resolutions)), width or spec.widths[0], exit_, tuple(blocks))


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def hook_macs(net: nn.Module, resolution: int) -> int:
    """Conv + linear multiply-adds at batch 1, measured from the actual output shapes."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * module.in_channels // module.groups * k

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, resolution, resolution))
    return total


@pytest.mark.parametrize("kind", list(KINDS))
def test_forward_shapes_and_exits(kind: str) -> None:
    spec = tiny_spec(kind)
    x = torch.randn(2, 3, 32, 32)
    for config in (largest_config(spec), smallest_config(spec), random_config(spec, np.random.default_rng(0))):
        y = StaticNetwork(spec, config).eval()(x)
        assert isinstance(y, torch.Tensor) and y.shape == (2, 10) and torch.isfinite(y).all()
    outs = StaticNetwork(spec, largest_config(spec), spec.exits()).train()(x)
    if spec.early_exit:
        assert isinstance(outs, list) and len(outs) == 5 and all(o.shape == (2, 10) for o in outs)
    else:
        assert outs.shape == (2, 10)


@pytest.mark.parametrize("kind", list(KINDS))
def test_counts_match_built_network(kind: str) -> None:
    rng = np.random.default_rng(1)
    for width in (1.0, 1.2):
        spec = tiny_spec(kind)
        configs = [largest_config(spec, width), smallest_config(spec, width)]
        configs += [random_config(spec, rng, width) for _ in range(4)]
        for config in configs:
            exit_sets = [None, tuple(range(1, config.exit + 1))] if spec.early_exit else [None]
            for exits in exit_sets:
                net = StaticNetwork(spec, config, exits)
                assert count_params(spec, config, exits) == n_params(net), (config.key(), exits)
                assert count_macs(spec, config, exits) == hook_macs(net, config.resolution), (config.key(), exits)


def test_counts_odd_resolution_and_stem_mismatch() -> None:
    """Odd sizes check the floor in conv_out; stem != first block drops the first residual."""
    spec = tiny_spec("ee-dense-parallel", resolutions=(27,), first_block_channels=16)
    net = StaticNetwork(spec, largest_config(spec, resolution=27))
    assert not net.first.residual
    assert count_params(spec, net.config) == n_params(net)
    assert count_macs(spec, net.config) == hook_macs(net, 27)


def test_dense_wiring_formula() -> None:
    """y[d] = 2 * input; block 4 gets y3 + y1; output y[D] + sum(y[1..D-2]); stage input never added."""
    x = torch.ones(1)
    blocks = [lambda t: 2 * t] * 4
    assert stage_forward(blocks[:2], x, dense=True).item() == 4  # y1=2, y2=4
    assert stage_forward(blocks[:3], x, dense=True).item() == 10  # y3=8, + y1
    assert stage_forward(blocks, x, dense=True).item() == 26  # y4 = 2 * (8 + 2) = 20, + y1 + y2
    assert stage_forward(blocks, x, dense=False).item() == 16


def test_exits_validation() -> None:
    se = tiny_spec("se-base")
    with pytest.raises(FactoryError):
        StaticNetwork(se, largest_config(se).with_exit(3))
    ee = tiny_spec("ee-base")
    net = StaticNetwork(ee, largest_config(ee), exits=(2, 1))
    assert net.exits == (1, 2) and len(net.stages) == 2
    assert set(net.heads) == {"exit1", "exit2"}


def test_non_parallel_kind_ignores_mask() -> None:
    spec = tiny_spec("se-base")
    config = largest_config(tiny_spec("se-parallel"))  # masks 7
    net = StaticNetwork(spec, config)
    assert count_params(spec, config) == n_params(net) == n_params(StaticNetwork(spec, largest_config(spec)))
