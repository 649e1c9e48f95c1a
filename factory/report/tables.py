"""The report's tables as rows of strings, shared by the Markdown and HTML writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PICK_HEADER = [
    "pick",
    "reason",
    "exit",
    "top-1 before",
    "top-1 after",
    "params",
    "MACs",
    "flash KiB (delivered)",
    "RAM KiB",
    "ORT p50 ms",
    "latency ms: predicted / measured (profile)",
    "budget",
    "TensorRT",
    "INT8 top-1",
    "INT8 drop (points)",
    "INT8 weights KiB (FP32)",
    "INT8 p50 ms",
    "INT8",
]
GRAPH_HEADER = [
    "graph",
    "test top-1",
    "params",
    "MACs",
    "ONNX size",
    "parity (max abs diff, top-1 agree)",
    "latency p50 / p99 ms",
    "throughput img/s",
    "TensorRT engine (top-1 agree, max abs diff / tolerance)",
]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def engine_cell(engine: dict[str, Any]) -> str:
    """A graph's TensorRT engine in a few words: its build precision and accuracy-check figures, or why none."""
    from factory.graphs.tensorrt import build_precision

    status = engine.get("status", "skipped")
    check = engine.get("check")
    if status == "skipped":
        return "skipped"
    if not check:
        return f"{build_precision(engine)}, not checked" if status == "built" else f"failed: {engine.get('reason', '')}"
    figures = f"{check['top1_agreement']:.2%}, {check['max_abs_diff']:.1e} / {check['tolerance']:.1e}"
    line = f"{build_precision(engine)}: {figures}"
    return line if status == "built" else f"failed, {line}"


def int8_cells(q: dict[str, Any]) -> list[str]:
    """The INT8 columns of a pick: the deployed graph's INT8 top-1, drop, weights, latency and status."""
    kib = lambda b: "-" if b is None else f"{b / 1024:.1f}"  # noqa: E731
    return [
        pct(q.get("top1")),
        "-" if q.get("drop") is None else f"{q['drop']:.2f}",
        f"{kib(q.get('weight_bytes'))} ({kib(q.get('fp32_weight_bytes'))})",
        ms(q.get("ort_cpu_p50_ms")),
        q.get("status", "-"),
    ]


def _kib_cell(size: int | None, precision: str | None = None) -> str:
    if size is None:
        return "-"
    return f"{size / 1024:.1f}" + (f" ({precision.upper()})" if precision else "")


def _budget_cell(pick: dict[str, Any]) -> str:
    """ "met", or the limits the delivered files miss, with the measured figure."""
    checks = pick.get("budget_check") or {}
    if not checks:
        return "-"
    missed = [f"{name} {c['measured']:,} > {c['limit']:,}" for name, c in checks.items() if not c["ok"]]
    return "; ".join(missed) if missed else "met"


def pick_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per pick: the overview table."""
    return [
        [
            p["id"],
            p["reason"],
            str(p["exit"]),
            pct(p["top1_before"]),
            pct(p["top1_after"]),
            f"{p['params']:,}",
            f"{p['macs']:,}",
            _kib_cell(p.get("flash_bytes"), p.get("delivered_precision")),
            _kib_cell(p.get("ram_bytes")),
            ms(p["ort_cpu_p50_ms"]),
            f"{ms(p.get('latency_predicted_ms'))} / {ms(p.get('latency_measured_ms'))}",
            _budget_cell(p),
            p["tensorrt"],
            *int8_cells(p.get("int8") or {}),
        ]
        for p in summary["picks"]
    ]


def graph_rows(run: Path, pick: dict[str, Any]) -> list[list[str]]:
    """One row per exported graph of a pick (exit k, and the ensemble for AEP picks)."""
    import json

    folder = run / "picks" / pick["id"]
    metrics = json.loads((folder / "metrics.json").read_text())
    export = json.loads((folder / "export.json").read_text())
    rows = []
    for graph in export["graphs"]:
        name = graph["name"]
        if name == "ensemble":
            top1, params, macs = metrics["top1_after"], pick["params"], pick["macs"]
        else:
            k = name.removeprefix("exit")
            top1 = metrics.get("top1_after_per_exit", {}).get(k, metrics["top1_after"])
            params = metrics["params_per_exit"].get(k, pick["params"])
            macs = metrics["macs_per_exit"].get(k, pick["macs"])
        bench_file = folder / f"{graph['onnx']}.bench.json"
        bench = json.loads(bench_file.read_text()) if bench_file.is_file() else None
        first = bench["results"][0] if bench else None
        parity = graph["parity"]
        rows.append(
            [
                graph["onnx"],
                pct(top1),
                f"{params:,}",
                f"{macs:,}",
                f"{graph['bytes'] / 1024:.1f} KiB",
                f"{parity['max_abs_diff']:.1e}, {parity['top1_agreement']:.4f}",
                f"{ms(first['latency']['p50'])} / {ms(first['latency']['p99'])}" if first else "-",
                f"{first['throughput']['value']:,.0f} (batch {first['batch']})" if first else "-",
                engine_cell(graph.get("tensorrt") or {}),
            ]
        )
        for result in (bench or {}).get("results", [])[1:]:
            lat = result["latency"]
            rows.append(
                [
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"{ms(lat['p50'])} / {ms(lat['p99'])}",
                    f"{result['throughput']['value']:,.0f} (batch {result['batch']})",
                    "",
                ]
            )
    return rows


DEVICE_HEADER = [
    "pick",
    "graph",
    "precision",
    "device ms (fastest)",
    "device ms (median)",
    "predicted ms",
    "build machine p50 ms",
    "verify",
    "threads",
    "measured at",
]


def device_rows(device: dict[str, Any]) -> list[list[str]]:
    """One row per graph a device verified and timed."""
    return [
        [
            str(r["pick"]),
            r["file"],
            r["precision"],
            ms(r["latency_ms"]),
            ms(r.get("median_ms")),
            ms(r.get("predicted_ms")),
            ms(r.get("build_machine_p50_ms")),
            "passed" if r["verified"] else "FAILED",
            str(r.get("threads")),
            str(r.get("measured_at")),
        ]
        for r in device["results"]
    ]
