"""ONNX export of every exit (and the AEP ensemble) of every kind, the checker, and the parity check."""

from __future__ import annotations

import onnx
import pytest
import torch

from factory.export.pick import export_pick
from factory.graphs.onnx import ParityError, check_parity, deployment_graphs, export_onnx, read_metadata
from factory.nn import StaticNetwork
from factory.recipe import ExportSection, TensorRTSection
from factory.space import KINDS, SpaceSpec, largest_config

SPACE = {"resolutions": (24,), "stem_channels": 8, "first_block_channels": 8, "stage_channels": (8, 8, 16, 16, 16)}


pytestmark = pytest.mark.usefixtures("one_thread")


@torch.no_grad()
def calibrated(net: StaticNetwork) -> StaticNetwork:
    """BN statistics of one random batch and heads scaled to logits of O(1), as in a trained network, so the
    absolute 1e-4 tolerance means what it means for real picks (random deep heads reach logits of ~200)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()(torch.randn(256, 3, 24, 24))  # deep stages are 1x1: few images give near-zero variances
    net.eval()
    outs = net(torch.randn(64, 3, 24, 24))
    for head, out in zip(net.heads.values(), outs if isinstance(outs, list) else [outs], strict=True):
        last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.div_(out.abs().max().clamp(min=1.0))  # trained networks have logits of a few units
        last.bias.zero_()
    return net


def all_exit_network(kind: str) -> StaticNetwork:
    spec = SpaceSpec(kind=kind, num_classes=5, **SPACE)
    torch.manual_seed(0)
    return calibrated(StaticNetwork(spec, largest_config(spec), spec.exits()))


def settings(**kw) -> ExportSection:
    return ExportSection(tensorrt=TensorRTSection(enabled=False), **kw)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_exit_of_every_kind_exports_and_passes_parity(kind, tmp_path):
    net = all_exit_network(kind)
    inputs = torch.randn(12, 3, 24, 24)
    record = export_pick(tmp_path, net, inputs, settings(), (0.5,) * 3, (0.25,) * 3, ["a", "b", "c", "d", "e"])
    names = [g["name"] for g in record["graphs"]]
    expected = [f"exit{k}" for k in net.exits] + (["ensemble"] if len(net.exits) > 1 else [])
    assert names == expected
    for graph in record["graphs"]:
        path = tmp_path / graph["onnx"]
        onnx.checker.check_model(str(path), full_check=True)
        assert graph["parity"]["passed"] and graph["parity"]["max_abs_diff"] <= 1e-4
        assert graph["parity"]["top1_agreement"] == 1.0
        assert graph["tensorrt"] == {"status": "skipped", "reason": "disabled in the recipe"}
        model = onnx.load(str(path))
        assert [i.name for i in model.graph.input] == ["image"]
        assert [o.name for o in model.graph.output] == ["logits"]
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        meta = read_metadata(path)
        assert meta["resolution"] == "24" and meta["factory_graph"] == graph["name"]


def test_exit_graph_equals_the_multi_exit_networks_output():
    net = all_exit_network("ee-dense")
    x = torch.randn(4, 3, 24, 24)
    graphs = deployment_graphs(net)
    with torch.no_grad():
        outs = net(x)
        for k, out in zip(net.exits, outs, strict=True):
            torch.testing.assert_close(graphs[f"exit{k}"](x), out)
        torch.testing.assert_close(graphs["ensemble"](x), sum(outs) / len(outs))


def test_forced_parity_failure_is_reported(tmp_path):
    net = all_exit_network("ee-base")
    graph = deployment_graphs(net)["exit2"]
    path = export_onnx(graph, tmp_path / "exit2.onnx", 24)
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    array = onnx.numpy_helper.to_array(weight).copy()
    array *= 1.5
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(path))
    inputs = torch.randn(8, 3, 24, 24)
    with pytest.raises(ParityError, match="differs from PyTorch"):
        check_parity(graph, path, inputs)
    parity = check_parity(graph, path, inputs, strict=False)
    assert not parity.passed and parity.max_abs_diff > 1e-4


def test_parity_needs_images(tmp_path):
    net = all_exit_network("ee-base")
    graph = deployment_graphs(net)["exit1"]
    path = export_onnx(graph, tmp_path / "exit1.onnx", 24)
    with pytest.raises(Exception, match="parity check got no images"):
        check_parity(graph, path, torch.empty(0, 3, 24, 24))


def test_non_finite_outputs_fail_parity(tmp_path):
    # A NaN compares false with everything: it must fail the check, never read as a difference of 0.
    graph = deployment_graphs(all_exit_network("ee-base"))["exit1"]
    path = export_onnx(graph, tmp_path / "exit1.onnx", 24)
    inputs = torch.randn(4, 3, 24, 24)
    inputs[2] = float("nan")  # PyTorch and onnxruntime both answer NaN for that image
    with pytest.raises(ParityError, match="NaN or infinite outputs"):
        check_parity(graph, path, inputs)
    parity = check_parity(graph, path, inputs, strict=False)
    assert not parity.passed and parity.max_abs_diff == float("inf")
