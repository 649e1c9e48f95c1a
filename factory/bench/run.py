"""Latency of every exported model of a run: onnxruntime on this machine's CPU (FP32 and INT8 graphs),
TensorRT where built.

Each model gets `<model>.bench.json` beside it (format in the README). A model whose bench file exists is
skipped, so an interrupted benchmark resumes; `force` measures again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import file_sha256, write_json_atomic
from factory.runfolder import export_done, pick_steps
from factory.runinfo import run_recipe


def bench_path(model: Path) -> Path:
    """exit3.onnx -> exit3.onnx.bench.json (engines get their own: exit3.engine.bench.json)."""
    return model.with_name(model.name + ".bench.json")


def models_of(folder: Path) -> list[tuple[Path, str]]:
    """(model file, runtime) for every exported file of a pick, in export order."""
    record = json.loads((folder / "export.json").read_text())
    found = []
    for graph in record["graphs"]:
        found.append((folder / graph["onnx"], "onnxruntime"))
        engine = graph.get("tensorrt", {})
        if engine.get("status") == "built":
            found.append((folder / engine["engine"], "tensorrt"))
    int8 = folder / "int8.json"
    if int8.is_file():  # the INT8 graphs kept by the accuracy guard, timed beside their FP32 graphs
        found += [(folder / g["onnx"], "onnxruntime") for g in json.loads(int8.read_text())["graphs"] if g.get("onnx")]
    return found


def bench_run(run_dir: str | Path, force: bool = False, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Benchmark every exported model of the run; returns {relative model path: bench record}."""
    from factory.bench import bench_model
    from factory.runfolder import result_at

    run = Path(run_dir)
    settings = run_recipe(run).bench
    if not settings.batch_sizes or min(settings.batch_sizes) < 1:
        raise FactoryError("bench.batch_sizes must list positive batch sizes, e.g. [1, 32]; fix the recipe")
    records: dict[str, dict[str, Any]] = {}
    engine_reason: str | None = None
    for step in pick_steps(run, is_done=export_done):
        folder = step.folder
        if not step.done:
            raise FactoryError(f"pick {step.entry['id']} is not exported yet; run `factory export --run {run}`")
        for model, runtime in models_of(folder):
            out = bench_path(model)
            digest = file_sha256(model)
            if out.is_file() and not force:
                previous = json.loads(out.read_text())
                if previous.get("model_sha256") == digest:
                    records[str(model.relative_to(run))] = previous
                    continue
            if runtime == "tensorrt":
                from factory.graphs.tensorrt import unavailable_reason

                engine_reason = engine_reason or unavailable_reason()
                if engine_reason:
                    if progress:
                        print(f"{model.relative_to(run)}: not timed here ({engine_reason})", flush=True)
                    continue
            try:
                record = bench_model(
                    model,
                    runtime,
                    settings.batch_sizes,
                    settings.warmup,
                    settings.iterations,
                    settings.duration_s,
                    settings.threads,
                )
            except Exception as exc:  # runtimes raise their own exception types
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise FactoryError(f"cannot benchmark {model} with {runtime}: {reason}") from None
            record["model_sha256"] = digest
            write_json_atomic(out, record)
            records[str(model.relative_to(run))] = record
            if progress:
                first = result_at(record, settings.batch_sizes[0]) or record["results"][0]
                lat = first["latency"]
                print(
                    f"{model.relative_to(run)} [{runtime}]: batch {first['batch']} p50 {lat['p50']:.3f} ms, "
                    f"p99 {lat['p99']:.3f} ms, {first['throughput']['value']:.0f} images/s",
                    flush=True,
                )
    return records
