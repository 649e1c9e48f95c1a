"""INT8 quantization of an exported pick: the recorded accuracy is the file's, the guard, QAT, resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from factory.data import DatasetSplits, Split, load_dataset
from factory.data.augment import device_images
from factory.export.pick import export_pick
from factory.export.run import parity_inputs
from factory.graphs.int8 import int8_done, quantize_pick
from factory.nn import StaticNetwork
from factory.recipe import Int8Section, Recipe, TensorRTSection
from factory.runtime import make_session
from factory.space import largest_config
from factory.testing import tiny_build_recipe

from .space_helpers import all_exit_network

pytestmark = pytest.mark.usefixtures("one_thread")


def recipe_with(**int8) -> Recipe:
    recipe = tiny_build_recipe()
    export = dataclasses.replace(recipe.export, tensorrt=TensorRTSection(enabled=False), int8=Int8Section(**int8))
    return dataclasses.replace(recipe, export=export)


@pytest.fixture(scope="module")
def splits() -> DatasetSplits:
    """A few hundred digits: enough for calibration, QAT and a test top-1."""
    full = load_dataset(tiny_build_recipe().data)

    def head(split: Split, n: int) -> Split:
        return Split(split.images[:n].contiguous(), split.labels[:n].contiguous())

    return dataclasses.replace(full, train=head(full.train, 256), val=head(full.val, 64), test=head(full.test, 200))


@torch.no_grad()
def tiny_pick(recipe: Recipe, splits: DatasetSplits) -> StaticNetwork:
    """A multi-exit network (exit graphs + the AEP ensemble) with BatchNorm statistics of real images."""
    spec = recipe.space.to_spec(splits.num_classes)
    resolution = largest_config(spec).resolution
    images = device_images(splits.train.images, recipe.data.mean, recipe.data.std, resolution)
    return all_exit_network(spec, torch.from_numpy(images))


def exported(tmp_path, recipe: Recipe, splits: DatasetSplits) -> tuple[StaticNetwork, dict]:
    net = tiny_pick(recipe, splits)
    inputs = parity_inputs(recipe, splits, net.config.resolution)
    record = export_pick(tmp_path, net, inputs, recipe.export, recipe.data.mean, recipe.data.std)
    return net, record


def test_tiny_pick_quantizes_and_runs_with_the_recorded_accuracy(tmp_path, splits):
    recipe = recipe_with(max_drop=100.0, calibration_images=64)
    net, export = exported(tmp_path, recipe, splits)
    record = quantize_pick(tmp_path, net, export, recipe, splits)
    assert record["passed"] and record["method"] == "ptq" and record["qat_s"] is None
    assert [g["name"] for g in record["graphs"]] == [g["name"] for g in export["graphs"]]
    images = device_images(splits.test.images, recipe.data.mean, recipe.data.std, net.config.resolution)
    labels = splits.test.labels.numpy()
    for graph in record["graphs"]:
        path = tmp_path / graph["onnx"]
        assert path.name == f"{graph['name']}.int8.onnx"
        import onnx

        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, "the INT8 graph must be in QDQ form"
        got = make_session(path).run(["logits"], {"image": images})[0].argmax(1)
        fp32 = make_session(tmp_path / graph["fp32_onnx"]).run(["logits"], {"image": images})[0].argmax(1)
        assert graph["top1"] == pytest.approx(float((got == labels).mean()))
        assert graph["fp32_top1"] == pytest.approx(float((fp32 == labels).mean()))
        assert graph["agreement"] == pytest.approx(float((got == fp32).mean()))
        assert graph["drop"] == pytest.approx(100 * (graph["fp32_top1"] - graph["top1"]), abs=1e-3)
        assert graph["weight_bytes"] < 0.5 * graph["fp32_weight_bytes"]
        assert graph["bytes"] == path.stat().st_size
    (tmp_path / "int8.json").write_text(json.dumps(record))
    assert int8_done(tmp_path, export, recipe.export.int8), "a resumed export must skip this pick"
    assert not int8_done(tmp_path, export, dataclasses.replace(recipe.export.int8, method="minmax"))
    (tmp_path / record["graphs"][0]["onnx"]).unlink()
    assert not int8_done(tmp_path, export, recipe.export.int8)


def test_guard_runs_qat_then_passes_or_keeps_fp32_only(tmp_path, splits):
    recipe = recipe_with(max_drop=0.0, calibration_images=1, qat_epochs=1)  # one image: a poor calibration
    net, export = exported(tmp_path, recipe, splits)
    record = quantize_pick(tmp_path, net, export, recipe, splits)
    assert record["ptq_worst_drop"] > 0.0, "the forced guard must fail PTQ"
    assert record["qat_s"] is not None and record["qat_s"] > 0, "a failed PTQ must run QAT"
    kept = sorted(p.name for p in tmp_path.glob("*.int8.onnx"))
    if record["passed"]:
        assert record["method"] == "qat" and kept == sorted(g["onnx"] for g in record["graphs"])
        assert all(g["drop"] <= 0.0 for g in record["graphs"])
    else:
        assert record["method"] is None and kept == [] and all(g["onnx"] is None for g in record["graphs"])
        assert record["status"].startswith("FP32 only") and "max_drop 0" in record["status"]
        assert "QAT (1 epochs) drop" in record["status"]
    assert not list(tmp_path.glob("tmp*")), "no temporary folder may be left behind"


def test_int8_figures_equal_the_files_after_qat(tmp_path, splits):
    """QAT's network is re-exported and quantized like any pick; what int8.json says is measured on those files."""
    from factory.graphs.int8 import qat_network

    recipe = recipe_with()
    net = tiny_pick(recipe, splits)
    trained = qat_network(net, recipe, splits, 1)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in trained.modules())
    assert not any(m._forward_pre_hooks for m in trained.modules()), "QAT hooks must be removed"
    x = torch.from_numpy(device_images(splits.test.images[:8], recipe.data.mean, recipe.data.std, 24))
    with torch.no_grad():
        out = trained(x)
    assert all(np.isfinite(o.numpy()).all() for o in (out if isinstance(out, list) else [out]))


@pytest.mark.parametrize(("count", "batch", "sizes"), [(70, 32, [32, 32]), (10, 32, [10]), (64, 32, [32, 32])])
def test_calibration_batches_are_all_one_size(count, batch, sizes):
    """The histogram calibrators stack the batches' outputs: a ragged last batch made them fail on small data."""
    from factory.graphs.int8 import _Reader

    reader = _Reader(np.zeros((count, 3, 8, 8), np.float32), batch)
    seen = []
    while (item := reader.get_next()) is not None:
        seen.append(len(item["image"]))
    assert seen == sizes
