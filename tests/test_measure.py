"""fvcore measurement: the analytic counts equal the traced ones exactly, and no op is silently free."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from factory.finetune.measure import UncountedOpError, measure_config, measure_exits, measure_network
from factory.space import KINDS, SpaceSpec, SubnetConfig, largest_config, smallest_config
from factory.space.counting import count_macs, count_params
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_configs

from .space_helpers import tiny_spec

CONFIGS_PER_KIND = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def random_configs(spec: SpaceSpec, n: int, seed: int) -> list[SubnetConfig]:
    """Depth-uniform NAT2 samples, with resolution and width cycled so every combination occurs."""
    configs = sample_configs(get_encoding("nat2", spec), n, np.random.default_rng(seed))
    res, widths = spec.resolutions, spec.widths
    return [
        replace(c, resolution=res[i // len(widths) % len(res)], width=widths[i % len(widths)])
        for i, c in enumerate(configs)
    ]


def check(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> None:
    m = measure_config(spec, config, exits, strict=True)
    expected = (count_params(spec, config, exits), count_macs(spec, config, exits))
    assert (m.params, m.macs) == expected, f"{spec.kind} exits={exits} {config.to_json()}"
    assert m.unsupported == {}
    assert m.macs_full > m.macs


@pytest.mark.parametrize("kind", list(KINDS))
def test_headline_equals_analytic_counts(kind: str):
    """Single-exit and AEP multi-exit networks of random configs, both resolutions and both widths."""
    spec = tiny_spec(kind)
    configs = random_configs(spec, CONFIGS_PER_KIND, seed=list(KINDS).index(kind))
    configs += [smallest_config(spec, width=1.2), largest_config(spec, width=1.2, resolution=24)]
    for config in configs:
        check(spec, config)
        if spec.early_exit and config.exit > 1:
            check(spec, config, tuple(range(1, config.exit + 1)))
    if spec.early_exit:
        assert {c.exit for c in configs} >= {1, 5}


def test_real_plan_every_exit():
    """The real channel plan (SpaceSpec defaults): every exit alone and the AEP network."""
    spec = SpaceSpec(kind="ee-dense-parallel")
    config = largest_config(spec, width=1.2)
    result = measure_exits(spec, config, strict=True)
    assert result.exits == (1, 2, 3, 4, 5)
    for x, m in result.single.items():
        assert (m.params, m.macs) == (count_params(spec, config, (x,)), count_macs(spec, config, (x,)))
    assert (result.aep.params, result.aep.macs) == (
        count_params(spec, config, result.exits),
        count_macs(spec, config, result.exits),
    )
    assert result.single[5].macs < result.aep.macs
    json.dumps(result.to_dict())


def test_measure_exits_shape():
    ee = tiny_spec("ee-base")
    result = measure_exits(ee, smallest_config(ee).with_exit(3))
    assert result.exits == (1, 2, 3) and list(result.single) == [1, 2, 3]
    assert result.aep.macs > result.single[3].macs
    se = tiny_spec("se-dense")
    result = measure_exits(se, smallest_config(se))
    assert result.exits == (5,) and result.aep is result.single[5]


class Toy(nn.Module):
    """conv 3->4 k3 -> BN -> ReLU -> 3x3/2 max-pool -> + itself -> global avg-pool -> flatten -> linear 4->2."""

    def __init__(self, extra=None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn(self.conv(x))))
        h = h + h
        if self.extra is not None:
            h = self.extra(h)
        return self.fc(self.drop(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1)))


def test_full_count_by_hand():
    """8x8 input: every handle's convention, computed by hand."""
    model = Toy().train()
    m = measure_network(model, 8, strict=True)
    assert model.training, "the training flag is restored"
    assert m.by_op == {
        "conv": 3 * 4 * 9 * 64,
        "batch_norm": 4 * 64,  # one per output element
        "relu": 4 * 64,
        "max_pool2d": 4 * 16 * 9,  # kernel area per output element
        "add": 4 * 16,
        "adaptive_avg_pool2d": 4 * 16,  # one per input element
        "linear": 4 * 2,
    }
    assert m.macs == 3 * 4 * 9 * 64 + 8
    assert m.macs_full == sum(m.by_op.values())
    assert m.params == 108 + 8 + 10
    model.fc.bias.requires_grad_(False)
    assert measure_network(model, 8).params == 108 + 8 + 8, "only trainable parameters count"


class Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.exp()


class Cat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], 1)[:, :4]


def test_strict_mode_rejects_uncounted_ops():
    """aten::exp has no handle anywhere; aten::cat is on fvcore's default ignore list: both must surface."""
    with pytest.raises(UncountedOpError, match="aten::exp"):
        measure_network(Toy(Exp()), 8, strict=True)
    m = measure_network(Toy(Exp()), 8)
    assert m.unsupported == {"aten::exp": 1}
    assert m.macs == 3 * 4 * 9 * 64 + 8, "the rest is still counted"
    with pytest.raises(UncountedOpError, match="aten::cat"):
        measure_network(Toy(Cat()), 8, strict=True)
