"""Analytic flash and RAM of a sub-network's INT8 (QDQ) graph against the quantized file, and its node order."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from factory.budget.feasibility import Budget, figures, int8_layout
from factory.graphs.int8 import QuantSettings, quantize_graph
from factory.graphs.memory import peak_ram_bytes, weight_bytes
from factory.graphs.onnx import EnsembleNetwork, export_onnx
from factory.nn import StaticNetwork
from factory.recipe import load_recipe
from factory.space import KINDS
from factory.space.config import largest_config, smallest_config
from factory.space.encoding import get_encoding
from factory.space.footprint import flash_bytes, ram_bytes
from factory.space.footprint_int8 import Int8Layout, int8_footprint
from factory.space.sampling import sample_configs
from factory.testing import randomize
from tests.space_helpers import tiny_spec


def _random(network: torch.nn.Module) -> torch.nn.Module:
    return randomize(network, torch.Generator().manual_seed(0))


def _quantized(network: torch.nn.Module, resolution: int, tmp_path, settings: QuantSettings | None = None):
    """The FP32 and INT8 files of `network` (with its weights as they are)."""
    settings = settings or QuantSettings()
    fp32 = export_onnx(network.eval(), tmp_path / "net.onnx", resolution)
    images = np.random.default_rng(0).random((4, 3, resolution, resolution), dtype=np.float32)
    return fp32, quantize_graph(fp32, tmp_path / "int8.onnx", images, settings)


@pytest.mark.parametrize("kind", list(KINDS))
def test_analytic_int8_figures_equal_the_quantized_graph(kind, tmp_path):
    spec = tiny_spec(kind)
    configs = [*sample_configs(get_encoding("nat2", spec), 1, np.random.default_rng(2)), largest_config(spec)]
    for config in configs:
        _, int8 = _quantized(_random(StaticNetwork(spec, config)), config.resolution, tmp_path)
        measured = (weight_bytes(int8), peak_ram_bytes(int8))
        assert measured == int8_footprint(spec, config), config.to_json()


@pytest.mark.parametrize(
    "layout", [Int8Layout(symmetric_activations=True), Int8Layout(per_channel=False)], ids=["symmetric", "per-tensor"]
)
def test_the_quantizer_layouts_are_counted_too(layout, tmp_path):
    spec = tiny_spec("ee-dense-parallel")
    config = largest_config(spec)
    settings = QuantSettings(per_channel=layout.per_channel, symmetric_activations=layout.symmetric_activations)
    _, int8 = _quantized(_random(StaticNetwork(spec, config)), config.resolution, tmp_path, settings)
    assert (weight_bytes(int8), peak_ram_bytes(int8)) == int8_footprint(spec, config, layout=layout)


def test_an_int8_ensemble_shares_equal_weights_and_counts_distinct_ones(tmp_path):
    spec = tiny_spec("ee-dense-parallel")
    config = largest_config(spec).with_exit(3)
    exits = (1, 3)
    for betas in ([0.5, 0.5], [0.4, 0.6]):
        network = EnsembleNetwork(_random(StaticNetwork(spec, config, exits)), betas)  # the betas as given
        _, int8 = _quantized(network, config.resolution, tmp_path)
        measured = (weight_bytes(int8), peak_ram_bytes(int8))
        assert measured == int8_footprint(spec, config, exits, betas=betas), betas
    distinct, shared = int8_footprint(spec, config, exits), int8_footprint(spec, config, exits, betas=[0.5, 0.5])
    assert distinct[0] == shared[0] + 6  # without the weights the bound counts each one apart: one uint8 + qparams


def test_the_quantized_file_runs_in_the_fp32_graphs_order(tmp_path):
    spec = tiny_spec("ee-dense-parallel")
    config = largest_config(spec)
    fp32, int8 = _quantized(_random(StaticNetwork(spec, config)), config.resolution, tmp_path)
    position = {name: i for i, node in enumerate(onnx.load(str(fp32)).graph.node) for name in node.output}
    nodes = onnx.load(str(int8)).graph.node
    made = [position[o] for node in nodes for o in node.output if o in position]
    assert len(made) > 10 and made == sorted(made)
    seen = {value.name for value in onnx.load(str(int8)).graph.input}
    seen |= {t.name for t in onnx.load(str(int8)).graph.initializer}
    for node in nodes:  # still topological
        assert all(name in seen for name in node.input if name), node.name
        seen.update(node.output)


def test_int8_figures_are_about_a_third_of_fp32_and_follow_the_recipe():
    spec = tiny_spec("ee-dense")
    config = largest_config(spec)
    flash, ram = int8_footprint(spec, config)
    assert flash < 0.5 * flash_bytes(spec, config) and ram < 0.5 * ram_bytes(spec, config)
    assert figures(spec, config, int8=Int8Layout()).flash == flash
    recipe = load_recipe("digits")
    assert int8_layout(recipe) == (Int8Layout() if recipe.export.int8.enabled else None)
    recipe.export.int8.exclude_ops = ("Add",)
    assert int8_layout(recipe) is None  # ops kept in float: counted as FP32, an upper bound
    small = smallest_config(spec)
    limit = int8_footprint(spec, small)[0]
    assert Budget(flash=limit).with_int8(Int8Layout()).fits(spec, small)
    assert not Budget(flash=limit).fits(spec, small)  # the same limit in FP32 bytes
