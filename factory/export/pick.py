"""Export one post-processed pick: an ONNX graph per exit (+ the AEP ensemble), parity, TensorRT engines.

Files written in the pick's folder: exit<k>.onnx for every exit the deployed network keeps, ensemble.onnx
when it keeps more than one (AEP), exit<k>.engine and its versions record on a GPU with TensorRT, and
export.json with what was done (parity figures, file sizes, TensorRT status or why it was skipped).
Every engine is checked against its ONNX graph on the parity images (`factory.export.engine_check`); one
that fails is renamed `<engine>.failed` and recorded as failed with the figures, and its ONNX file stays.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from factory.export import engine_check
from factory.graphs import tensorrt as trt_export
from factory.graphs.onnx import (
    check_parity,
    deployment_graphs,
    export_onnx,
    fp16_graph,
    graph_metadata,
    simplify_onnx,
)
from factory.nn import StaticNetwork
from factory.recipe import ExportSection

EXPORT_FORMAT = "factory-export/1"


def export_pick(
    folder: str | Path,
    network: StaticNetwork,
    parity_inputs: torch.Tensor,
    settings: ExportSection,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: list[str] | None = None,
    timing_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Export every graph of `network` into `folder` and verify each; returns the export record.

    Raises ParityError (a FactoryError) when onnxruntime disagrees with PyTorch: a graph that fails parity is
    never reported as exported. TensorRT engines are checked on the same `parity_inputs`; a failed engine is
    recorded (status "failed" with the figures), not raised: the ONNX graph is still good.
    """
    folder = Path(folder)
    resolution = network.config.resolution
    reason = trt_export.unavailable_reason() if settings.tensorrt.enabled else "disabled in the recipe"
    graphs = []
    check_images = None if reason else parity_inputs.detach().cpu().float().contiguous().numpy()
    for name, module in deployment_graphs(network).items():
        started = time.perf_counter()
        path = export_onnx(
            module,
            folder / f"{name}.onnx",
            resolution,
            settings.opset,
            settings.dynamic_batch,
            graph_metadata(network, name, mean, std, classes or []),
        )
        simplified = simplify_onnx(path) if settings.simplify else "off"
        export_s = time.perf_counter() - started
        parity = check_parity(module, path, parity_inputs, settings.parity_atol)
        entry = {
            "name": name,
            "onnx": path.name,
            "bytes": path.stat().st_size,
            "opset": settings.opset,
            "simplify": simplified,
            "export_s": round(export_s, 3),
            "parity": parity.to_dict(),
        }
        entry["tensorrt"] = (
            trt_export.skipped(reason) if reason else _engine(path, resolution, settings, timing_cache, check_images)
        )
        graphs.append(entry)
    return {"format": EXPORT_FORMAT, "resolution": resolution, "graphs": graphs}


def _engine(
    onnx_path: Path, resolution: int, settings: ExportSection, timing_cache: str | Path | None, images: Any
) -> dict[str, Any]:
    """Build the TensorRT engine of one graph and check it against the graph on `images`.

    A build failure, or an engine that fails (or cannot run) its accuracy check, is recorded, not hidden.
    """
    t = settings.tensorrt
    profile = trt_export.EngineProfile(resolution, t.min_batch, t.opt_batch, t.max_batch, t.fp16, t.workspace_mb)
    engine_path = onnx_path.with_suffix(".engine")
    try:
        fp16_path = None
        if t.fp16 and trt_export.tensorrt_major() >= 11:
            fp16_path = fp16_graph(onnx_path, onnx_path.with_suffix(".fp16.onnx"))
        record = trt_export.build_engine(onnx_path, engine_path, profile, timing_cache, fp16_onnx_path=fp16_path)
    except Exception as exc:  # the ONNX graph is still valid; record why the engine is missing
        return {"status": "failed", "reason": _first_line(exc)}
    try:
        check = engine_check.check_engine(engine_path, onnx_path, images)
    except Exception as exc:  # an engine that cannot be checked is not delivered either
        return engine_check.reject(engine_path, record, f"the accuracy check could not run: {_first_line(exc)}")
    return engine_check.settle(engine_path, record, check)


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
