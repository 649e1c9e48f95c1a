"""INT8 post-training quantization of exported graphs, measured on the artifact, with a QAT fallback.

Each FP32 graph of a pick becomes a static INT8 graph in QDQ form (`<name>.int8.onnx`), made with
onnxruntime's quantization tools and calibrated on training images preprocessed exactly as the device does
(the same `normalize` / `resize_batch` as the export's parity images). Its accuracy is always measured by
running the INT8 file in onnxruntime on the whole test split, never estimated with PyTorch fake-quant: the
figures a user reads are the figures of the file they deploy.

A pick whose INT8 graphs lose more than `export.int8.max_drop` points against their FP32 graphs is
fine-tuned with quantization-aware training (fake-quantized weights and activations, AEP for multi-exit
picks), exported again and quantized again the same way; if it still loses too much only its FP32 files are
delivered and the record says why, with the figures.
"""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from factory.data.augment import device_images
from factory.errors import FactoryError
from factory.graphs.memory import weight_bytes

INT8_FORMAT = "factory-int8/1"
METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantSettings:
    """The quantizer's choices (see the README's INT8 section for the measurements behind the defaults)."""

    method: str = "minmax"
    per_channel: bool = True
    symmetric_activations: bool = False
    exclude_ops: tuple[str, ...] = ()
    calibration_batch: int = 32


def calibration_images(split: Any, count: int, seed: int, mean: Any, std: Any, resolution: int) -> np.ndarray:
    """A fixed, seeded subset of `count` training images, preprocessed as on the device."""
    from factory.training.batchnorm import calibration_subset

    return device_images(calibration_subset(split, count, seed).images, mean, std, resolution)


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed images, in batches of one size: the histogram
    calibrators stack every batch's outputs into one array, so a smaller last batch (fewer calibration images
    than asked, or a count that is not a multiple of the batch) would fail; its images are left out."""

    def __init__(self, images: np.ndarray, batch: int) -> None:
        self.images, self.batch = images, max(1, min(batch, len(images)))
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.images) - self.batch + 1, self.batch):
            yield {"image": self.images[start : start + self.batch]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        self._it = self._it or self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def quantize_graph(source: str | Path, target: str | Path, images: np.ndarray, settings: QuantSettings) -> Path:
    """Write the static INT8 QDQ graph of the FP32 graph `source` to `target`, calibrated on `images`.

    Weights are INT8 (per output channel when `per_channel`, always symmetric), activations UINT8 (or INT8
    symmetric); the ops in `exclude_ops` stay in float. The FP32 file's metadata is carried over.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from factory.graphs.graph_order import order_like
    from factory.io import write_bytes_atomic

    if settings.method not in METHODS:
        raise FactoryError(f"export.int8.method: {settings.method!r} is not one of {', '.join(METHODS)}")
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[settings.method]
    reader = _Reader(images, settings.calibration_batch)
    CalibrationDataReader.register(_Reader)
    source, target = Path(source), Path(target)
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        exclude = [n.name for n in model.graph.node if n.op_type in settings.exclude_ops]
        # The percentile calibrator prints its percentile range to stdout: keep the build's output readable.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(prepared),
                str(quantized),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=settings.per_channel,
                activation_type=QuantType.QInt8 if settings.symmetric_activations else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=method,
                extra_options={
                    "ActivationSymmetric": settings.symmetric_activations,
                    "WeightSymmetric": True,
                    "CalibTensorRangeSymmetric": settings.symmetric_activations,
                },
            )
        result = onnx.load(str(quantized))
    fp32 = onnx.load(str(source), load_external_data=False)
    order_like(result, fp32)  # the FP32 graph's schedule, which the search's INT8 RAM figures replay
    del result.metadata_props[:]
    result.metadata_props.extend(fp32.metadata_props)
    entry = result.metadata_props.add()
    entry.key, entry.value = "quantization", f"int8 qdq, {settings.method} calibration on {len(images)} images"
    onnx.checker.check_model(result)
    write_bytes_atomic(target, result.SerializeToString())
    return target


def predictions(path: str | Path, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Top-1 class of every image under onnxruntime (CPU)."""
    from factory.runtime import make_session

    session = make_session(path)
    out = [session.run(["logits"], {"image": images[s : s + batch]})[0].argmax(1) for s in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def compare(fp32: str | Path, int8: str | Path, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Test top-1 of both files in onnxruntime, the INT8 graph's agreement with FP32, and the drop in points."""
    a, b = predictions(fp32, images), predictions(int8, images)
    fp32_top1, int8_top1 = float((a == labels).mean()), float((b == labels).mean())
    return {
        "fp32_top1": fp32_top1,
        "top1": int8_top1,
        "drop": round(100 * (fp32_top1 - int8_top1), 4),
        "agreement": float((a == b).mean()),
    }


# --- quantization-aware training ----------------------------------------------------------------------------


class _WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric INT8 fake quantization of a weight (straight-through gradients).

    With BatchNorm frozen, folding BN into the conv scales each output channel by a constant, so per-channel
    symmetric quantization of the unfolded weight lands on the same grid as the exported, folded one.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(1) / 127.0).clamp(min=1e-12).float()
        zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -128, 127)


class _ActivationFakeQuant:
    """Per-tensor UINT8 fake quantization of a module's input, its range an EMA of the observed min / max."""

    def __init__(self, momentum: float = 0.1) -> None:
        self.low: float | None = None
        self.high: float | None = None
        self.momentum = momentum

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = inputs[0]
        if module.training or self.low is None:
            low, high = min(float(x.detach().min()), 0.0), max(float(x.detach().max()), 0.0)
            if self.low is None or self.high is None:
                self.low, self.high = low, high
            else:
                self.low += self.momentum * (low - self.low)
                self.high += self.momentum * (high - self.high)
        scale = max((self.high - self.low) / 255.0, 1e-8)
        zero = round(-self.low / scale)
        return (torch.fake_quantize_per_tensor_affine(x, scale, min(max(zero, 0), 255), 0, 255), *inputs[1:])


def _frozen_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(module, False)


def qat_network(network: nn.Module, recipe: Any, splits: Any, epochs: int, seed: int = 0) -> nn.Module:
    """A copy of `network` fine-tuned for `epochs` with fake-quantized weights and activations.

    Starts from the post-processed weights; multi-exit networks train with AEP (the post-processing's
    weighting) on train + validation, as step 2 of post-processing does. BatchNorm is frozen, so the graph
    exported afterwards folds exactly the statistics the fake quantization saw. The returned network has
    plain float weights (on the INT8 grid) and no hooks: it exports like any pick.
    """
    from torch.nn.utils import parametrize

    from factory.training.aep import aep_weights
    from factory.training.aep_fit import fit

    model = copy.deepcopy(network).cpu().float()
    exits = tuple(getattr(model, "exits", (1,)))
    weighting = recipe.finetune.aep_weighting if len(exits) > 1 else "unif"
    alpha = aep_weights(weighting, len(exits))[0]
    handles = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = types.MethodType(_frozen_eval, module)  # type: ignore[method-assign]
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            parametrize.register_parametrization(module, "weight", _WeightFakeQuant())
            handles.append(module.register_forward_pre_hook(_ActivationFakeQuant()))
    train = splits.train.joined(splits.val) if len(splits.val) else splits.train
    fit(model, train, recipe, model.config.resolution, alpha, epochs, seed, torch.device("cpu"))
    for handle in handles:
        handle.remove()
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        if "train" in vars(module):
            del module.train
    return model.eval()


# --- one pick ------------------------------------------------------------------------------------------------


def settings_of(config: Any) -> dict[str, Any]:
    """The recipe's INT8 settings as recorded in int8.json: a change redoes the quantization on resume."""
    return {
        "method": config.method,
        "per_channel": config.per_channel,
        "symmetric_activations": config.symmetric_activations,
        "exclude_ops": list(config.exclude_ops),
        "calibration_images": config.calibration_images,
        "max_drop": config.max_drop,
        "qat_epochs": config.qat_epochs,
    }


def int8_done(folder: Path, export: dict[str, Any], config: Any) -> bool:
    """True when folder/int8.json was made from the current FP32 graphs with the same settings and every INT8
    file it keeps is there (so a resumed export skips the pick)."""
    import json

    from factory.io import file_sha256

    path = folder / "int8.json"
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
        sources = {g["onnx"]: file_sha256(folder / g["onnx"]) for g in export["graphs"]}
        if record.get("sources") != sources or record.get("settings") != settings_of(config):
            return False
        return all((folder / g["onnx"]).is_file() for g in record["graphs"] if g.get("onnx"))
    except (json.JSONDecodeError, KeyError, TypeError, OSError):
        return False


def _quantize_all(
    sources: dict[str, Path], fp32: dict[str, Path], out: Path, calib: np.ndarray, test: Any, q: QuantSettings
) -> list[dict[str, Any]]:
    """Quantize every graph of `sources` into `out` and measure each INT8 file against the FP32 deliverable."""
    images, labels = test
    entries = []
    for name, source in sources.items():
        target = quantize_graph(source, out / f"{name}.int8.onnx", calib, q)
        figures = compare(fp32[name], target, images, labels)
        entries.append(
            {
                "name": name,
                "onnx": target.name,
                "fp32_onnx": fp32[name].name,
                **figures,
                "images": len(labels),
                "bytes": target.stat().st_size,
                "weight_bytes": weight_bytes(target),
                "fp32_bytes": fp32[name].stat().st_size,
                "fp32_weight_bytes": weight_bytes(fp32[name]),
            }
        )
    return entries


def _worst(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return max(entries, key=lambda e: e["drop"])


def quantize_pick(
    folder: str | Path,
    network: Any,
    export: dict[str, Any],
    recipe: Any,
    splits: Any,
    progress: bool = False,
) -> dict[str, Any]:
    """Quantize every graph of an exported pick, guard the accuracy drop, fall back to QAT; returns int8.json.

    Files: `<graph>.int8.onnx` beside each FP32 graph when every graph of the pick stays within
    `export.int8.max_drop` points (the pick's method is "ptq", or "qat" when PTQ alone did not); otherwise no
    INT8 file is kept and `status` says why, with the figures.
    """
    import os

    from factory.graphs.tensorrt import unavailable_reason
    from factory.io import file_sha256

    folder = Path(folder)
    config = recipe.export.int8
    quant = QuantSettings(config.method, config.per_channel, config.symmetric_activations, tuple(config.exclude_ops))
    mean, std, res = recipe.data.mean, recipe.data.std, network.config.resolution
    fp32 = {g["name"]: folder / g["onnx"] for g in export["graphs"]}
    calib, calib_s = timed(
        calibration_images, splits.train, config.calibration_images, recipe.train.seed, mean, std, res
    )
    test = (device_images(splits.test.images, mean, std, res), splits.test.labels.numpy())
    for stale in folder.glob("*.int8.onnx"):
        stale.unlink()
    with tempfile.TemporaryDirectory(dir=folder) as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "ptq").mkdir()
        entries, ptq_s = timed(_quantize_all, fp32, fp32, tmp / "ptq", calib, test, quant)
        method, chosen, qat_s, ptq_worst = "ptq", tmp / "ptq", None, _worst(entries)
        if ptq_worst["drop"] > config.max_drop and config.qat_epochs > 0:
            if progress:
                print(f"  PTQ drops {ptq_worst['drop']:.2f} points on {ptq_worst['name']}: QAT", flush=True)
            (tmp / "qat").mkdir()
            started = time.perf_counter()
            sources = qat_graphs(network, recipe, splits, tmp / "qat")
            qat_entries = _quantize_all(sources, fp32, tmp / "qat", calib, test, quant)
            qat_s = round(time.perf_counter() - started, 3)
            if _worst(qat_entries)["drop"] < ptq_worst["drop"]:
                method, chosen, entries = "qat", tmp / "qat", qat_entries
        worst = _worst(entries)
        passed = worst["drop"] <= config.max_drop
        qat_drop = _worst(qat_entries)["drop"] if qat_s else None
        status = guard_status(method, worst, ptq_worst["drop"], qat_drop, config)
        if passed:
            for entry in entries:
                os.replace(chosen / entry["onnx"], folder / entry["onnx"])
        else:
            for entry in entries:
                entry["onnx"] = None
    trt = unavailable_reason() if recipe.export.tensorrt.enabled else "disabled in the recipe"
    return {
        "format": INT8_FORMAT,
        "settings": settings_of(config),
        "sources": {g["onnx"]: file_sha256(folder / g["onnx"]) for g in export["graphs"]},
        "method": method if passed else None,
        "passed": passed,
        "status": status,
        "ptq_worst_drop": ptq_worst["drop"],
        "calibration_s": round(calib_s + ptq_s, 3),
        "qat_s": qat_s,
        "graphs": entries,
        "tensorrt": {"status": "skipped", "reason": trt or "INT8 engines are not built yet (explicit quantization)"},
    }


def qat_graphs(network: Any, recipe: Any, splits: Any, out: Path) -> dict[str, Path]:
    """The pick fine-tuned with fake quantization (`qat_network`), exported as FP32 graphs into `out`, one per
    deployment graph: the sources PTQ then quantizes when PTQ alone missed the guard."""
    from factory.graphs.onnx import deployment_graphs, export_onnx, graph_metadata

    config, mean, std = recipe.export.int8, recipe.data.mean, recipe.data.std
    trained = qat_network(network, recipe, splits, config.qat_epochs, recipe.train.seed)
    sources = {}
    for name, module in deployment_graphs(trained).items():
        meta = graph_metadata(trained, name, mean, std, list(splits.class_names))
        graph = out / f"{name}.fp32.onnx"
        res = network.config.resolution
        sources[name] = export_onnx(module, graph, res, recipe.export.opset, recipe.export.dynamic_batch, meta)
    return sources


def guard_status(method: str, worst: dict[str, Any], ptq_drop: float, qat_drop: float | None, config: Any) -> str:
    """The accuracy guard's verdict in one line: the method kept and its worst drop, or why the pick stays FP32."""
    if worst["drop"] <= config.max_drop:
        return f"{method}: worst drop {worst['drop']:.2f} points ({worst['name']}) <= max_drop {config.max_drop:g}"
    tried = f"PTQ drop {ptq_drop:.2f}" + (
        f", QAT ({config.qat_epochs} epochs) drop {qat_drop:.2f}" if qat_drop is not None else ""
    )
    limit = f"max_drop {config.max_drop:g}"
    return f"FP32 only: INT8 loses too much on {worst['name']} ({tried} points of test top-1 > {limit})"


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """fn(*args, **kwargs) and the seconds it took."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - started, 3)
