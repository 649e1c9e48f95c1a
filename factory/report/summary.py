"""RUN/summary.json: one machine-readable page per run (schema "factory-summary/1", documented in the README).

Built only from files the stages wrote, so it can be regenerated at any time and never disagrees with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.budget.figures import RECORD_KEYS
from factory.errors import FactoryError
from factory.space.config import SubnetConfig

SUMMARY_FORMAT = "factory-summary/1"


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FactoryError(f"{path} not found; the stage that writes it has not run") from None
    except json.JSONDecodeError:
        raise FactoryError(f"{path} is corrupt; delete it and rerun the stage that writes it") from None


def main_graph(export: dict[str, Any], exit_: int) -> dict[str, Any]:
    """The graph a pick deploys: its AEP ensemble when it has one, else its own exit."""
    graphs = {g["name"]: g for g in export["graphs"]}
    return graphs.get("ensemble") or graphs.get(f"exit{exit_}") or export["graphs"][-1]


def bench_of(folder: Path, model: str) -> dict[str, Any] | None:
    """The bench record of `model` in a pick folder, if measured."""
    path = folder / f"{model}.bench.json"
    return json.loads(path.read_text()) if path.is_file() else None


def tensorrt_fields(engine: dict[str, Any]) -> dict[str, Any]:
    """The deployed graph's TensorRT record as summary fields: status, build precision and the accuracy check's
    figures (null where no engine was built or checked)."""
    from factory.graphs.tensorrt import build_precision

    check = engine.get("check") or {}
    built = engine.get("status") in ("built", "failed") and "environment" in engine
    return {
        "tensorrt_status": engine.get("status", "skipped"),
        "tensorrt_precision": build_precision(engine) if built else None,
        "tensorrt_top1_agreement": check.get("top1_agreement"),
        "tensorrt_max_abs_diff": check.get("max_abs_diff"),
        "tensorrt_tolerance": check.get("tolerance"),
    }


def int8_fields(run: Path, folder: Path, deployed: str) -> dict[str, Any]:
    """The pick's INT8 block: its INT8 files, and the deployed graph's figures from int8.json (null if none)."""
    from factory.runfolder import result_at

    path = folder / "int8.json"
    empty = {"onnx": [], "method": None, "top1": None, "drop": None, "agreement": None, "bytes": None}
    empty |= {"weight_bytes": None, "fp32_weight_bytes": None, "ort_cpu_p50_ms": None}
    if not path.is_file():
        return empty | {"status": "not quantized (export.int8.enabled false or factory export --no-int8)"}
    record = _read(path)
    graph = next((g for g in record["graphs"] if g["name"] == deployed), record["graphs"][-1])
    kept = graph.get("onnx")
    bench = result_at(bench_of(folder, kept) or {}, 1) if kept else None
    return {
        "onnx": [str((folder / g["onnx"]).relative_to(run)) for g in record["graphs"] if g.get("onnx")],
        "method": record.get("method"),
        "top1": graph["top1"],
        "drop": graph["drop"],
        "agreement": graph["agreement"],
        "bytes": graph["bytes"] if kept else None,
        "weight_bytes": graph["weight_bytes"] if kept else None,
        "fp32_weight_bytes": graph["fp32_weight_bytes"],
        "ort_cpu_p50_ms": bench["latency"]["p50"] if bench else None,
        "status": record["status"],
    }


def device_fit(run: Path, folder: Path, graph: dict[str, Any], fp32: bool = False) -> dict[str, Any]:
    """What the delivered graph asks of a device, measured from the file itself (`factory.graphs.memory`): the
    deployed graph in INT8 where it passed the INT8 guard (unless `fp32`), else in FP32."""
    from factory.graphs.memory import peak_ram_bytes, weight_bytes

    path, precision = folder / graph["onnx"], "fp32"
    if (folder / "int8.json").is_file() and not fp32:
        record = _read(folder / "int8.json")
        int8 = next((g for g in record["graphs"] if g["name"] == graph["name"]), None)
        if int8 is not None and int8.get("onnx") and (folder / int8["onnx"]).is_file():
            path, precision = folder / int8["onnx"], "int8"
    return {
        "delivered_onnx": str(path.relative_to(run)),
        "delivered_precision": precision,
        "flash_bytes": weight_bytes(path),
        "ram_bytes": peak_ram_bytes(path),
    }


# A pick's figure of each budget: the record keys, but latency is the delivered graph timed here as the device
# profile times (not the search's prediction).
BUDGET_FIGURES = {**RECORD_KEYS, "latency": "latency_measured_ms"}


def latency_fit(run: Path, pick: dict[str, Any], model: Any, budget: dict[str, Any]) -> dict[str, Any]:
    """With a device profile: the delivered graph timed on this machine as the profile times its networks
    (meaningful when the profile is of this machine). Where the INT8 graph misses a latency limit that the
    FP32 graph meets (a CPU without fast INT8 kernels), and the FP32 graph also fits the flash and RAM limits,
    the FP32 graph is delivered instead, and says so."""
    limit = budget.get("latency")
    from factory.device_side import measure_latency

    if model is None:
        return {"latency_measured_ms": None}
    settings = model.profile["settings"]
    resolution = int(pick["resolution"])
    measured = measure_latency(run / pick["delivered_onnx"], resolution, settings)["latency_ms"]
    out: dict[str, Any] = {"latency_measured_ms": round(measured, 4)}
    if limit is not None and measured > limit and pick["delivered_precision"] == "int8":
        fp32 = measure_latency(run / pick["deployed_onnx"], resolution, settings)["latency_ms"]
        folder = run / "picks" / pick["id"]
        graph = main_graph(_read(folder / "export.json"), pick["exit"])
        fit = device_fit(run, folder, graph, fp32=True)
        fits = budget_check(fit, {n: budget.get(n) for n in ("flash", "ram")})["meets_budget"]
        if fp32 <= limit and fits:
            out.update(fit, latency_measured_ms=round(fp32, 4))
            out["delivered_reason"] = (
                f"INT8 {measured:.4g} ms misses the {limit:g} ms budget, FP32 {fp32:.4g} ms meets it"
            )
    return out


def budget_check(pick: dict[str, Any], budget: dict[str, Any]) -> dict[str, Any]:
    """Each limit given against the pick's figures measured from its delivered files (fvcore's counts of the
    deployed network; flash and RAM of the delivered graph, INT8 where it passed the guard)."""
    checks = {}
    for name, key in BUDGET_FIGURES.items():
        if budget.get(name) is not None and pick.get(key) is not None:
            checks[name] = {"limit": budget[name], "measured": pick[key], "ok": pick[key] <= budget[name]}
    return {"meets_budget": all(c["ok"] for c in checks.values()), "budget_check": checks}


def pick_summary(run: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """One pick's line of the summary: accuracy before/after, fvcore counts, files, parity, latency."""
    from factory.graphs.tensorrt import describe
    from factory.runfolder import result_at

    folder = run / "picks" / entry["id"]
    metrics = _read(folder / "metrics.json")
    export = _read(folder / "export.json")
    graph = main_graph(export, metrics["exit"])
    ort = result_at(bench_of(folder, graph["onnx"]) or {}, 1)
    engine = graph.get("tensorrt", {})
    trt = result_at(bench_of(folder, engine["engine"]) or {}, 1) if engine.get("status") == "built" else None
    deployed = metrics["fvcore"]["deployed"]
    return {
        "id": entry["id"],
        "reason": entry.get("reason", ""),
        "exit": int(metrics["exit"]),
        "exits": metrics.get("exits", [metrics["exit"]]),
        "top1_search": entry.get("val_top1"),
        "top1_before": float(metrics["top1_before"]),
        "top1_after": float(metrics["top1_after"]),
        "params": int(deployed["params"]),
        "macs": int(deployed["macs"]),
        "macs_full": int(deployed.get("macs_full", deployed["macs"])),
        "onnx": [str((folder / g["onnx"]).relative_to(run)) for g in export["graphs"]],
        "deployed_onnx": str((folder / graph["onnx"]).relative_to(run)),
        "onnx_bytes": int(graph["bytes"]),
        "parity_max_abs_diff": max(float(g["parity"]["max_abs_diff"]) for g in export["graphs"]),
        "parity_top1_agreement": min(float(g["parity"]["top1_agreement"]) for g in export["graphs"]),
        "ort_cpu_p50_ms": ort["latency"]["p50"] if ort else None,
        "ort_cpu_p99_ms": ort["latency"]["p99"] if ort else None,
        "ort_cpu_images_per_s": ort["throughput"]["value"] if ort else None,
        "tensorrt": describe(engine),
        **tensorrt_fields(engine),
        "tensorrt_p50_ms": trt["latency"]["p50"] if trt else None,
        "int8": int8_fields(run, folder, graph["name"]),
        **device_fit(run, folder, graph),
    }


def run_precision(recipe: Any, device: str) -> str:
    """The precision the run's training and evaluations used (for runs whose run.json predates the record)."""
    import torch

    from factory.training.device import resolve_precision

    return resolve_precision(recipe.train.precision, torch.device(device))


def latency_model(run: Path) -> Any:
    """The latency predictor of a build given a device profile (RUN/latency/profile.json), else None."""
    profile = run / "latency" / "profile.json"
    if not profile.is_file():
        return None
    from factory.budget.feasibility import delivered_precision
    from factory.budget.latency_model import LatencyModel
    from factory.runinfo import run_recipe
    from factory.training.checkpoint import load_checkpoint

    state = load_checkpoint(run / "supernet" / "supernet.pt")
    return LatencyModel(state["spec"], profile, delivered_precision(run_recipe(run, state.get("recipe"))))


def build_summary(run_dir: str | Path) -> dict[str, Any]:
    """The summary of a run whose picks are exported and benchmarked."""
    from factory.report.devices import device_entries
    from factory.report.front_shape import describe_front
    from factory.runfolder import run_picks

    run = Path(run_dir)
    info = _read(run / "run.json") if (run / "run.json").is_file() else {}
    index = _read(run / "picks" / "picks.json")
    search = _read(run / "search" / "result.json")
    budget = index.get("budget") or {}
    from factory.runinfo import run_recipe

    recipe = run_recipe(run)
    budget = {name: budget.get(name) for name in BUDGET_FIGURES}
    predict = latency_model(run)
    picks = []
    for entry in run_picks(run):
        pick = pick_summary(run, entry)
        exits = tuple(pick["exits"]) if len(pick["exits"]) > 1 else None
        config = SubnetConfig.from_dict(entry["config"])
        pick["latency_predicted_ms"] = None if predict is None else round(predict(config, exits), 4)
        pick.update(latency_fit(run, {**pick, "resolution": config.resolution}, predict, budget))
        picks.append({**pick, **budget_check(pick, budget)})
    return {
        "format": SUMMARY_FORMAT,
        "budget": budget,
        "recipe": info.get("recipe", recipe.name),
        "dataset": recipe.data.dataset,
        "device": info.get("device", ""),
        "precision": info.get("precision") or run_precision(recipe, info.get("device") or "cpu"),
        "seed": info.get("seed"),
        "source": info.get("source"),  # the --supernet the build started from (None: trained from scratch)
        "versions": info.get("versions", {}),
        "search": {
            "algorithm": search.get("algorithm"),
            "evaluations": search.get("evaluations"),
            "hypervolume": search.get("hypervolume"),
            "seconds": search.get("seconds"),
        },
        "report": "report.html",
        "picks": picks,
        "devices": device_entries(run, picks),  # `factory verify` reports merged by `factory report`
        "front_shape": describe_front(picks, search.get("archive", []), budget.get("params")),
    }


def write_summary_and_report(run_dir: str | Path, device: str | None = None) -> dict[str, Path]:
    """The report stage, for `factory build` and `factory report` alike: summary.json, then the report files.

    `device` is the device the build ran on (a standalone `factory report` keeps the one run.json records).
    """
    from factory.io import write_json_atomic
    from factory.report import write_report

    run = Path(run_dir)
    summary = build_summary(run)
    if device:
        summary["device"] = device
    write_json_atomic(run / "summary.json", summary)
    return write_report(run, summary)
