"""TensorRT engines: the accuracy check against the ONNX graph, the float32 engine interface, precision labels.

The decisions (agreement, max abs diff, tolerance), the FP16 ONNX graph, the records and the labels are tested
on the CPU; building and running engines needs CUDA and TensorRT and is in the gpu-marked tests.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from factory.export import engine_check
from factory.export.engine_check import (
    MIN_TOP1_AGREEMENT,
    RTOL,
    compare_logits,
    interface_problems,
    onnx_logits,
    reject,
    settle,
    tolerance,
)
from factory.export.pick import export_pick
from factory.graphs import tensorrt as trt_export
from factory.graphs.onnx import FP16_MAX, deployment_graphs, export_onnx, fp16_graph, read_metadata
from factory.graphs.tensorrt_runner import TensorRTRunner, engine_record
from factory.nn import StaticNetwork
from factory.recipe import ExportSection, TensorRTSection
from factory.space import KINDS, SpaceSpec

from .space_helpers import all_exit_network

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = {"resolutions": (24,), "stem_channels": 8, "first_block_channels": 8, "stage_channels": (8, 8, 16, 16, 16)}
GOOD_IO = {"image": ("input", "float32"), "logits": ("output", "float32")}


@torch.no_grad()
def trained_like(kind: str) -> StaticNetwork:
    """Every exit of a small network with BN statistics of one batch and logits of at most a few units (heads
    scaled down where a random deep head gives hundreds, never scaled up: that would magnify rounding)."""
    spec = SpaceSpec(kind=kind, num_classes=5, **SPACE)
    torch.manual_seed(0)
    net = all_exit_network(spec, torch.randn(256, 3, 24, 24))
    for m in net.modules():  # 1x1 maps of noise leave variances of ~1e-8: BN would magnify any rounding 300x
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.clamp_(min=1e-2)
    outs = net(torch.randn(64, 3, 24, 24))
    for head, out in zip(net.heads.values(), outs if isinstance(outs, list) else [outs], strict=True):
        last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.div_(out.abs().max().clamp(min=1.0) / 4.0)
        last.bias.zero_()
    return net


def logits(n: int = 200, classes: int = 10, seed: int = 0) -> np.ndarray:
    """Reference logits of a few units with a clear winner per image (no near-ties)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, classes)).astype(np.float32)
    x[np.arange(n), rng.integers(0, classes, n)] += 4.0
    return x


# -- the decision, on numpy arrays ------------------------------------------------------------------------------


def test_identical_logits_pass():
    ref = logits()
    check = compare_logits(ref, ref.copy())
    assert check.passed and check.top1_agreement == 1.0 and check.max_abs_diff == 0.0
    assert check.images == 200 and check.failures() == []


def test_fp16_sized_rounding_passes():
    ref = logits()
    engine = ref.astype(np.float16).astype(np.float32) * (1 + 1e-3)  # FP16 storage plus a 0.1% drift
    check = compare_logits(ref, engine)
    assert check.passed and check.max_abs_diff < 0.01 < check.tolerance


def test_tolerance_is_relative_to_the_largest_logit_with_a_floor_of_one():
    assert tolerance(np.array([[0.1, -0.2]])) == pytest.approx(RTOL)  # small logits: 0.05 logit units
    assert tolerance(np.array([[12.0, -20.0]])) == pytest.approx(RTOL * 20.0)
    assert tolerance(np.array([[np.nan, 3.0]])) == pytest.approx(RTOL * 3.0)
    assert RTOL == 0.05 and MIN_TOP1_AGREEMENT == 0.99


def test_too_many_top1_changes_fail_with_the_figures():
    ref = logits(n=100)
    engine = ref.copy()
    for i in (3, 7):  # 98% agreement: below 99%
        engine[i] = np.roll(engine[i], 1)
    check = compare_logits(ref, engine)
    assert not check.passed and check.top1_agreement == pytest.approx(0.98)
    assert "top-1 agreement 98.00% < 99%" in check.reason() and "over 100 images" in check.reason()
    engine = ref.copy()
    engine[3] = np.roll(engine[3], 1)  # 99%: enough agreement, but the rolled row is far off
    check = compare_logits(ref, engine)
    assert check.top1_agreement == pytest.approx(0.99) and not check.passed
    assert check.failures() == [f"max abs diff {check.max_abs_diff:.3g} > tolerance {check.tolerance:.3g}"]


def test_same_ranking_but_distorted_scores_fail():
    ref = logits()
    check = compare_logits(ref, ref * 1.3)  # every top-1 kept, every score 30% off
    assert check.top1_agreement == 1.0 and not check.passed
    assert check.max_abs_diff > check.tolerance and "max abs diff" in check.reason()


def test_non_finite_engine_logits_fail_and_the_record_stays_valid_json():
    ref = logits()
    engine = ref.copy()
    engine[0, 0], engine[5, 2] = np.nan, np.inf
    check = compare_logits(ref, engine)
    assert not check.passed and check.nonfinite == 2 and check.top1_agreement == pytest.approx(0.99)
    assert "2 non-finite logits" in check.reason()
    json.dumps(check.to_dict(), allow_nan=False)


def test_interface_problems_fail_the_check():
    assert interface_problems(GOOD_IO) == []
    old_fp16 = {"image": ("input", "float16"), "logits": ("output", "float16")}  # a TensorRT 11 engine of before
    assert interface_problems(old_fp16) == [
        "image is a float16 input, not a float32 input",
        "logits is a float16 output, not a float32 output",
    ]
    assert interface_problems({"input.1": ("input", "float32")}) == [
        "no input named 'image'",
        "no output named 'logits'",
        "unexpected IO tensors input.1",
    ]
    ref = logits()
    check = compare_logits(ref, ref, interface_problems(old_fp16))
    assert not check.passed and "interface: image is a float16 input" in check.reason()
    assert check.to_dict()["interface"] == list(check.interface)


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="do not match"):
        compare_logits(logits(n=10), logits(n=9))
    with pytest.raises(ValueError, match="do not match"):
        compare_logits(np.zeros((0, 3)), np.zeros((0, 3)))


# -- what a check does to the files and records ------------------------------------------------------------------


def built_record(engine: Path, precision: str = "fp16") -> dict:
    record = {
        "status": "built",
        "engine": engine.name,
        "onnx": "exit3.onnx",
        "precision": precision,
        "environment": {"tensorrt": "10.9.0", "gpu": "Test GPU"},
    }
    engine.write_bytes(b"plan")
    engine.with_name(engine.name + ".json").write_text(json.dumps(record))
    return record


def test_a_passing_engine_is_kept_with_its_figures(tmp_path):
    engine = tmp_path / "exit3.engine"
    record = settle(engine, built_record(engine), compare_logits(logits(), logits()))
    assert record["status"] == "built" and record["check"]["passed"] and engine.is_file()
    assert engine_record(engine) == record
    assert trt_export.describe(record).startswith("built fp16 (TensorRT 10.9.0, Test GPU), top-1 agreement 100.00%")


def test_a_failing_engine_is_renamed_and_reported_with_its_figures(tmp_path):
    engine = tmp_path / "exit3.engine"
    check = compare_logits(logits(), logits() * 1.3)
    record = settle(engine, built_record(engine), check)
    assert not engine.exists() and not (tmp_path / "exit3.engine.json").exists()
    assert (tmp_path / "exit3.engine.failed").read_bytes() == b"plan"
    assert record["status"] == "failed" and record["engine"] == "exit3.engine.failed"
    assert record["check"]["top1_agreement"] == 1.0 and record["check"]["max_abs_diff"] > record["check"]["tolerance"]
    assert json.loads((tmp_path / "exit3.engine.failed.json").read_text()) == record
    assert trt_export.read_record(tmp_path / "exit3.engine.failed") == record
    line = trt_export.describe(record)
    assert line.startswith("failed: accuracy check over 200 images: max abs diff") and "> tolerance" in line
    # a later export whose engine passes removes what the failed one left
    settle(engine, built_record(engine), compare_logits(logits(), logits()))
    assert engine.is_file() and not (tmp_path / "exit3.engine.failed").exists()
    assert not (tmp_path / "exit3.engine.failed.json").exists()


def test_an_engine_that_cannot_be_checked_is_not_delivered(tmp_path):
    engine = tmp_path / "exit3.engine"
    record = reject(engine, built_record(engine), "the accuracy check could not run: RuntimeError: boom")
    assert record["status"] == "failed" and "check" not in record and not engine.exists()
    assert trt_export.describe(record) == "failed: the accuracy check could not run: RuntimeError: boom"


# -- precision labels --------------------------------------------------------------------------------------------


def test_build_precision_comes_from_the_record():
    assert trt_export.build_precision({"precision": "fp16"}) == "fp16"
    assert trt_export.build_precision({"precision": "fp32"}) == "fp32"
    assert trt_export.build_precision({"precision": "fp16 (strongly typed)"}) == "fp16"  # records of before
    assert trt_export.build_precision(None) == "unknown"
    assert trt_export.build_precision({"status": "failed", "reason": "x"}) == "unknown"


def fake_runner(record: dict | None, input_dtype: str) -> TensorRTRunner:
    """A TensorRTRunner as __init__ leaves it, without TensorRT or CUDA: only what info() reads."""
    runner = object.__new__(TensorRTRunner)
    runner.trt = types.SimpleNamespace(__version__="10.9.0")
    runner.torch = types.SimpleNamespace(
        cuda=types.SimpleNamespace(get_device_name=lambda: "Test GPU"), version=types.SimpleNamespace(cuda="12.8")
    )
    runner.engine = types.SimpleNamespace(get_tensor_dtype=lambda name: f"DataType.{input_dtype}")
    runner.inputs, runner.input_shape, runner.record = ["image"], [-1, 3, 24, 24], record
    return runner


@pytest.mark.parametrize(
    ("record", "input_dtype", "label"),
    [
        ({"precision": "fp16"}, "FLOAT", "fp16"),  # TensorRT 10, FP16 flag: float32 input, FP16 inside
        ({"precision": "fp16"}, "HALF", "fp16"),
        ({"precision": "fp32"}, "FLOAT", "fp32"),
        (None, "FLOAT", "unknown"),  # an engine copied without its record
    ],
)
def test_bench_precision_is_the_build_precision_not_the_input_dtype(record, input_dtype, label):
    info = fake_runner(record, input_dtype).info()
    assert info["precision"] == label and info["runtime"] == "tensorrt"
    assert info["input"] == {"name": "image", "shape": [None, 3, 24, 24]}


def test_engine_record_is_read_beside_the_engine(tmp_path):
    engine = tmp_path / "exit1.engine"
    assert engine_record(engine) is None
    record = built_record(engine, "fp32")
    assert engine_record(engine) == record
    (tmp_path / "exit1.engine.json").write_text("{not json")
    assert engine_record(engine) is None


def test_onnxruntime_runner_keeps_reporting_its_input_precision(tmp_path):
    from factory.bench.onnxruntime_runner import OnnxRuntimeRunner

    net = trained_like("ee-base")
    path = export_onnx(deployment_graphs(net)["exit2"], tmp_path / "exit2.onnx", 24)
    assert OnnxRuntimeRunner(path, 1).info()["precision"] == "fp32"
    fp16 = fp16_graph(path, tmp_path / "exit2.fp16.onnx")
    assert OnnxRuntimeRunner(fp16, 1).info()["precision"] == "fp32"  # float32 input: the documented interface


# -- the FP16 ONNX graph: float32 in and out, FP16 inside --------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fp16_graph_keeps_the_float32_interface_and_the_logits(kind, tmp_path):
    net = trained_like(kind)
    images = torch.randn(32, 3, 24, 24).numpy()
    for name, module in deployment_graphs(net).items():
        meta = {"factory_graph": name, "resolution": 24}
        path = export_onnx(module, tmp_path / f"{name}.onnx", 24, metadata=meta)
        fp16 = fp16_graph(path, tmp_path / f"{name}.fp16.onnx")
        model = onnx.load(str(fp16))
        onnx.checker.check_model(model, full_check=True)
        io = [(v.name, v.type.tensor_type.elem_type) for v in (*model.graph.input, *model.graph.output)]
        assert io == [("image", onnx.TensorProto.FLOAT), ("logits", onnx.TensorProto.FLOAT)]
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        first, last = model.graph.node[0], model.graph.node[-1]
        assert first.op_type == "Cast" and list(first.input) == ["image"]
        assert first.attribute[0].i == onnx.TensorProto.FLOAT16
        assert last.op_type == "Cast" and list(last.output) == ["logits"]
        assert last.attribute[0].i == onnx.TensorProto.FLOAT
        assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
        for node in model.graph.node:
            if node.op_type == "Constant":
                assert node.attribute[0].t.data_type != onnx.TensorProto.FLOAT, node.name
        assert read_metadata(fp16)["factory_graph"] == name
        reference, half = onnx_logits(path, images), onnx_logits(fp16, images)
        assert half.dtype == np.float32
        check = compare_logits(reference, half)
        assert check.max_abs_diff < 0.2 * check.tolerance, name  # weights rounded to FP16 once: far inside
        # random networks on noise give near-ties; every top-1 change must be one (margin within the rounding)
        top2 = np.sort(reference, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * check.max_abs_diff
        assert (reference.argmax(1) == half.argmax(1))[clear].all(), name


def test_fp16_graph_refuses_weights_beyond_float16(tmp_path):
    net = trained_like("ee-base")
    path = export_onnx(deployment_graphs(net)["exit1"], tmp_path / "exit1.onnx", 24)
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[0] = 2 * FP16_MAX
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="beyond float16's range"):
        fp16_graph(path, tmp_path / "exit1.fp16.onnx")
    assert not (tmp_path / "exit1.fp16.onnx").exists()


# -- the export of a pick with TensorRT stood in for (CPU) -------------------------------------------------------


def fake_tensorrt(monkeypatch, engine_logits):
    """TensorRT 11 "present": build_engine writes a record and a stand-in file, check_engine compares
    `engine_logits(onnx_path, fp16_path, images)` with onnxruntime's logits like the real check does."""

    def build_engine(onnx_path, engine_path, profile, timing_cache=None, fp16_onnx_path=None):
        assert fp16_onnx_path is not None and Path(fp16_onnx_path).is_file()
        return built_record(Path(engine_path)) | {"onnx": Path(fp16_onnx_path).name}

    def check_engine(engine_path, onnx_path, images):
        fp16_path = Path(onnx_path).with_suffix(".fp16.onnx")
        return compare_logits(onnx_logits(onnx_path, images), engine_logits(onnx_path, fp16_path, images), [])

    monkeypatch.setattr(trt_export, "unavailable_reason", lambda: None)
    monkeypatch.setattr(trt_export, "tensorrt_major", lambda: 11)
    monkeypatch.setattr(trt_export, "build_engine", build_engine)
    monkeypatch.setattr(engine_check, "check_engine", check_engine)


def export_with_fake_tensorrt(folder: Path) -> dict:
    net = trained_like("ee-dense")
    settings = ExportSection(tensorrt=TensorRTSection(enabled=True, fp16=True))
    return export_pick(folder, net, torch.randn(40, 3, 24, 24), settings, (0.5,) * 3, (0.25,) * 3, list("abcde"))


def test_export_checks_every_engine_and_keeps_the_passing_ones(monkeypatch, tmp_path):
    fake_tensorrt(monkeypatch, lambda onnx_path, fp16_path, images: onnx_logits(fp16_path, images))
    record = export_with_fake_tensorrt(tmp_path)
    for graph in record["graphs"]:
        engine = graph["tensorrt"]
        assert engine["status"] == "built" and engine["check"]["passed"], engine
        assert engine["check"]["images"] == 40 and engine["check"]["top1_agreement"] == 1.0
        assert (tmp_path / engine["engine"]).is_file()
        assert engine_record(tmp_path / engine["engine"])["check"] == engine["check"]


def test_export_reports_a_failed_engine_and_keeps_its_onnx(monkeypatch, tmp_path):
    from factory.bench.run import models_of
    from factory.report.summary import tensorrt_fields
    from factory.report.tables import engine_cell

    def broken(onnx_path, fp16_path, images):  # an engine whose logits come out in the wrong class order
        return np.ascontiguousarray(onnx_logits(fp16_path, images)[:, ::-1])

    fake_tensorrt(monkeypatch, broken)
    record = export_with_fake_tensorrt(tmp_path)
    (tmp_path / "export.json").write_text(json.dumps(record))
    for graph in record["graphs"]:
        engine = graph["tensorrt"]
        assert engine["status"] == "failed" and engine["engine"] == graph["name"] + ".engine.failed"
        assert not engine["check"]["passed"] and engine["reason"].startswith("accuracy check over 40 images")
        assert (tmp_path / graph["onnx"]).is_file() and not (tmp_path / f"{graph['name']}.engine").exists()
        assert engine_cell(engine).startswith("failed, fp16: ")
        fields = tensorrt_fields(engine)
        assert fields["tensorrt_status"] == "failed" and fields["tensorrt_precision"] == "fp16"
        assert fields["tensorrt_max_abs_diff"] == engine["check"]["max_abs_diff"]
        assert fields["tensorrt_tolerance"] == engine["check"]["tolerance"]
        assert fields["tensorrt_top1_agreement"] == engine["check"]["top1_agreement"]
    assert all(runtime == "onnxruntime" for _, runtime in models_of(tmp_path))  # nothing failed is benchmarked


def test_summary_fields_without_an_engine():
    from factory.report.summary import tensorrt_fields
    from factory.report.tables import engine_cell

    fields = tensorrt_fields(trt_export.skipped("no CUDA device is visible"))
    assert fields == {
        "tensorrt_status": "skipped",
        "tensorrt_precision": None,
        "tensorrt_top1_agreement": None,
        "tensorrt_max_abs_diff": None,
        "tensorrt_tolerance": None,
    }
    assert engine_cell(trt_export.skipped("no CUDA device is visible")) == "skipped"
    assert engine_cell({"status": "failed", "reason": "RuntimeError: parse"}) == "failed: RuntimeError: parse"


def test_an_export_with_unchecked_engines_is_redone(tmp_path):
    from factory.io import file_sha256
    from factory.runfolder import export_done

    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "exit3.onnx").write_bytes(b"graph")
    engine = tmp_path / "exit3.engine"
    unchecked = built_record(engine)
    graph = {"name": "exit3", "onnx": "exit3.onnx", "tensorrt": unchecked}
    export = {"model_sha256": file_sha256(tmp_path / "model.pt"), "graphs": [graph]}
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert not export_done(tmp_path)
    graph["tensorrt"] = settle(engine, unchecked, compare_logits(logits(), logits()))
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert export_done(tmp_path)
    engine.unlink()
    assert not export_done(tmp_path)


# -- on a GPU with TensorRT --------------------------------------------------------------------------------------


def _need_tensorrt() -> None:
    reason = trt_export.unavailable_reason()
    if reason:
        pytest.skip(f"TensorRT path untested here: {reason}")


@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True])
def test_engine_interface_precision_and_accuracy(fp16, tmp_path):
    _need_tensorrt()
    from factory.bench import bench_model

    net = trained_like("ee-dense")
    path = export_onnx(deployment_graphs(net)["exit3"], tmp_path / "exit3.onnx", 24)
    fp16_path = fp16_graph(path, tmp_path / "exit3.fp16.onnx") if fp16 else None
    engine = tmp_path / "exit3.engine"
    profile = trt_export.EngineProfile(24, 1, 8, 16, fp16=fp16)
    record = trt_export.build_engine(path, engine, profile, tmp_path / "cache", fp16_onnx_path=fp16_path)
    assert record["precision"] in (("fp16", "fp32") if fp16 else ("fp32",))  # fp16 unless the GPU lacks it
    if fp16 and trt_export.tensorrt_major() >= 11:
        assert record["onnx"] == "exit3.fp16.onnx" and record["precision"] == "fp16"
    runner = TensorRTRunner(engine)
    assert runner.io_types() == GOOD_IO
    images = torch.randn(37, 3, 24, 24).numpy()  # more than max_batch, not a multiple of it
    out = runner.run(images)
    assert out.dtype == np.float32 and out.shape == (37, 5)
    check = engine_check.check_engine(engine, path, images)
    assert not check.interface and check.nonfinite == 0 and check.max_abs_diff <= check.tolerance, check.reason()
    if record["precision"] == "fp32":
        assert check.passed, check.reason()
    else:  # random networks on noise give near-ties; FP16 may flip those, never a clear top-1
        reference = onnx_logits(path, images)
        top2 = np.sort(reference, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * check.max_abs_diff
        assert (reference.argmax(1) == out.argmax(1))[clear].all()
    bench = bench_model(engine, "tensorrt", batch_sizes=(1, 8), warmup=2, iterations=5)
    assert bench["precision"] == record["precision"]


@pytest.mark.gpu
def test_export_builds_checked_engines_and_rejects_a_failing_one(monkeypatch, tmp_path):
    _need_tensorrt()
    net = trained_like("ee-dense")  # FP32 engines: no near-tie of a random network can flip in FP32 math
    settings = ExportSection(tensorrt=TensorRTSection(enabled=True, fp16=False, min_batch=1, opt_batch=8, max_batch=16))
    images = torch.randn(48, 3, 24, 24)
    record = export_pick(tmp_path / "ok", net, images, settings, (0.5,) * 3, (0.25,) * 3, list("abcde"))
    for graph in record["graphs"]:
        engine = graph["tensorrt"]
        assert engine["status"] == "built" and engine["check"]["passed"], engine
        assert engine["check"]["interface"] == [] and (tmp_path / "ok" / engine["engine"]).is_file()
        assert engine["precision"] == "fp32" and engine["check"]["images"] == 48
    strict = compare_logits

    def impossible(reference, engine, interface=(), **kw):  # no engine can agree on more than every image
        return strict(reference, engine, interface, min_top1_agreement=1.01)

    monkeypatch.setattr(engine_check, "compare_logits", impossible)
    record = export_pick(tmp_path / "bad", net, images, settings, (0.5,) * 3, (0.25,) * 3, list("abcde"))
    for graph in record["graphs"]:
        engine = graph["tensorrt"]
        assert engine["status"] == "failed" and "top-1 agreement" in engine["reason"]
        assert (tmp_path / "bad" / engine["engine"]).is_file() and engine["engine"].endswith(".engine.failed")
        assert (tmp_path / "bad" / graph["onnx"]).is_file()
