"""Analytic flash and RAM of a sub-network's FP32 graph against the exported file, and memory-size parsing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from factory.budget import format_bytes, parse_size
from factory.budget.feasibility import Budget, figures
from factory.errors import FactoryError
from factory.graphs.memory import peak_ram_bytes, weight_bytes
from factory.graphs.onnx import EnsembleNetwork, export_onnx
from factory.nn import StaticNetwork
from factory.space import KINDS
from factory.space.config import BRANCH_MBCONV, BRANCH_TRANSFORM, largest_config, smallest_config
from factory.space.encoding import get_encoding
from factory.space.footprint import flash_bytes, ram_bytes
from factory.space.sampling import sample_configs
from factory.testing import randomize
from tests.space_helpers import tiny_spec


def _exported(network: torch.nn.Module, resolution: int, tmp_path) -> tuple[int, int]:
    path = export_onnx(randomize(network, torch.Generator().manual_seed(0)), tmp_path / "net.onnx", resolution)
    return weight_bytes(path), peak_ram_bytes(path)


def _batchnorm_nodes(tmp_path) -> int:
    return sum(node.op_type == "BatchNormalization" for node in onnx.load(str(tmp_path / "net.onnx")).graph.node)


@pytest.mark.parametrize("kind", list(KINDS))
def test_analytic_figures_equal_the_exported_graph(kind, tmp_path):
    spec = tiny_spec(kind)
    configs = sample_configs(get_encoding("nat2", spec), 2, np.random.default_rng(1))
    configs += [largest_config(spec), smallest_config(spec)]
    for config in configs:
        exported = _exported(StaticNetwork(spec, config), config.resolution, tmp_path)
        assert exported == (flash_bytes(spec, config), ram_bytes(spec, config)), config.to_json()


def test_an_ensemble_counts_every_head(tmp_path):
    spec = tiny_spec("ee-dense-parallel")
    config = largest_config(spec).with_exit(3)
    exits = (1, 3)
    ensemble = EnsembleNetwork(StaticNetwork(spec, config, exits), [0.4, 0.6])
    assert _exported(ensemble, config.resolution, tmp_path) == (
        flash_bytes(spec, config, exits),
        ram_bytes(spec, config, exits),
    )
    assert flash_bytes(spec, config, exits) > flash_bytes(spec, config)


def _with_branches(spec, masks: dict[int, int]):
    base = largest_config(spec)
    blocks = list(base.blocks)
    for index, mask in masks.items():
        blocks[index] = replace(blocks[index], branches=mask)
    return replace(base, blocks=tuple(blocks))


def test_a_batchnorm_alone_on_a_conv_output_folds_into_it(tmp_path):
    # A transformation branch alone on an unchanged map: after a stage's first block its BatchNorm reads that
    # block's projection (a conv output nothing else reads) and the exporter folds it in; after the second
    # block (whose output is a residual sum) it stays a BatchNormalization node. Both counted exactly.
    spec = tiny_spec("se-parallel", strides=(2, 2, 2, 1, 1))
    nodes = []
    for masks in ({0: BRANCH_MBCONV, 1: BRANCH_TRANSFORM}, {1: BRANCH_MBCONV, 2: BRANCH_TRANSFORM}):
        config = _with_branches(spec, masks)
        exported = _exported(StaticNetwork(spec, config), config.resolution, tmp_path)
        assert exported == (flash_bytes(spec, config), ram_bytes(spec, config))
        nodes.append(_batchnorm_nodes(tmp_path))
    folded, kept = nodes
    assert folded + 1 == kept


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("262144", 262144),
        ("512B", 512),
        ("256KB", 256_000),
        ("256kb", 256_000),
        ("1.5MB", 1_500_000),
        ("256KiB", 262_144),
        ("1.5MiB", 1_572_864),
        (" 2 GB ", 2_000_000_000),
    ],
)
def test_sizes_parse_to_bytes(text, size):
    assert parse_size(text, "--budget-flash") == size


@pytest.mark.parametrize("text", ["", "12XB", "-3KB", "0", "0KB", "KB", "1.2.3MB"])
def test_malformed_sizes_are_one_line_errors_naming_the_flag(text):
    with pytest.raises(FactoryError, match="--budget-ram") as info:
        parse_size(text, "--budget-ram")
    assert "\n" not in str(info.value)


def test_budget_needs_the_figures_its_limits_name():
    spec = tiny_spec("ee-dense")
    config = smallest_config(spec)
    every = figures(spec, config)
    assert Budget(flash=every.flash, ram=every.ram).fits(spec, config)
    assert not Budget(ram=every.ram - 1).fits(spec, config)
    with pytest.raises(ValueError, match="flash"):
        Budget(flash=10).allows(params=1, macs=1)
    assert Budget(flash=1000, ram=2000).to_dict() == {"params": None, "macs": None, "flash": 1000, "ram": 2000}
    assert Budget(params=5).to_dict() == {"params": 5, "macs": None}
    assert format_bytes(262_144) == "262.1 KB" and format_bytes(12) == "12 B"


def test_the_summary_checks_every_limit_against_the_delivered_figures():
    from factory.report.summary import budget_check

    pick = {"params": 900, "macs": 5000, "flash_bytes": 4000, "ram_bytes": 2048, "latency_measured_ms": 0.2}
    budget = {"params": 1000, "macs": None, "flash": 3000, "ram": 4096, "latency": 0.5}
    checked = budget_check(pick, budget)
    assert checked["meets_budget"] is False and set(checked["budget_check"]) == {"params", "flash", "ram", "latency"}
    assert checked["budget_check"]["flash"] == {"limit": 3000, "measured": 4000, "ok": False}
    assert budget_check(pick, {"params": 1000})["meets_budget"] is True
