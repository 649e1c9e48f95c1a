"""Device reports back in the run: `factory report --run RUN --device-results FILE...`.

Each `factory verify` report is checked and kept in RUN/devices/ (so every later report shows it), then the
summary gets a `devices` list and the report a table and a plot per device: each pick's latency there,
beside the latency predicted from a device profile where the build had one, and the build machine's.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from factory.device_side import REPORT_FORMAT
from factory.errors import FactoryError


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_device_report(report: dict[str, Any], where: str) -> None:
    """A FactoryError unless `report` holds what every later `factory report` reads: a pick name, machine and
    settings objects, and graph rows with a file, a precision and a finite positive latency."""
    hint = "pass the device-report.json `factory verify` wrote, unedited"
    if not isinstance(report.get("pick"), str) or not report["pick"].strip():
        raise FactoryError(f"{where} names no pick; {hint}")
    for key in ("machine", "settings"):
        if not isinstance(report.get(key, {}), dict):
            raise FactoryError(f"{where}: {key!r} is not an object; {hint}")
    if not isinstance(report.get("graphs"), list) or not report["graphs"]:
        raise FactoryError(f"{where} lists no graphs; {hint}")
    for index, graph in enumerate(report["graphs"], 1):
        if not isinstance(graph, dict) or not all(isinstance(graph.get(k), str) for k in ("file", "precision")):
            raise FactoryError(f"{where} graph {index} lacks its file or precision; {hint}")
        if not _number(graph.get("latency_ms")) or graph["latency_ms"] <= 0:
            raise FactoryError(f"{where} graph {index} has no finite positive latency_ms; {hint}")
        if graph.get("median_ms") is not None and not _number(graph["median_ms"]):
            raise FactoryError(f"{where} graph {index} has a median_ms that is not a finite number; {hint}")


def safe_stem(name: str) -> str:
    """`name` as a file name of letters, digits, '.', '_' and '-' only (a report's pick names its file in
    RUN/devices, and must not lead anywhere else)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "pick"


def add_device_reports(run: Path, files: list[str | Path]) -> list[Path]:
    """Copy each valid device report into RUN/devices/ (named by its pick and content); a bad one is a clear
    error and nothing of it is kept."""
    from factory.io import file_sha256, read_json_input, write_json_atomic

    reports = []
    for file in files:  # every file checked before any is kept
        path = Path(file)
        hint = "pass the device-report.json `factory verify` wrote"
        report = read_json_input(path, "--device-results", REPORT_FORMAT, hint, "graphs")
        check_device_report(report, f"--device-results {path}")
        reports.append((report, file_sha256(path)[:12]))
    kept = []
    for report, digest in reports:
        target = run / "devices" / f"{safe_stem(report['pick'])}-{digest}.json"
        write_json_atomic(target, report)
        kept.append(target)
    return kept


def device_entries(run: Path, picks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary's `devices` list: one entry per kept report, grouped by machine."""
    folder = run / "devices"
    if not folder.is_dir():
        return []
    by_pick = {p["id"]: p for p in picks}
    devices: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            report = None
        if not isinstance(report, dict):
            raise FactoryError(f"{path} is not readable JSON; delete it and add the report again")
        check_device_report(report, str(path))  # kept before reports were checked: one line, not a traceback
        machine = report.get("machine", {})
        name = f"{machine.get('platform', '?')} ({machine.get('machine', '?')}, {machine.get('cpu_count', '?')} CPUs)"
        entry = devices.setdefault(name, {"machine": machine, "name": name, "results": []})
        pick = by_pick.get(report.get("pick"), {})
        for graph in report["graphs"]:
            entry["results"].append(
                {
                    "pick": report.get("pick"),
                    "file": graph["file"],
                    "precision": graph["precision"],
                    "latency_ms": graph["latency_ms"],
                    "median_ms": graph.get("median_ms"),
                    "predicted_ms": pick.get("latency_predicted_ms") if graph["precision"] == "fp32" else None,
                    "build_machine_p50_ms": pick.get("ort_cpu_p50_ms") if graph["precision"] == "fp32" else None,
                    "verified": bool(graph.get("ok")),
                    "measured_at": report.get("measured_at"),
                    "threads": report.get("settings", {}).get("threads"),
                }
            )
    return list(devices.values())


def plot_device(device: dict[str, Any], path: Path) -> Path:
    """Latency of each pick's graphs on the device (bars), with the predicted latency where there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = device["results"]
    labels = [f"{r['pick']}\n{r['precision']}" for r in results]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(results) + 2), 4))
    ax.bar(range(len(results)), [r["latency_ms"] for r in results], color="#4c72b0", label="measured on the device")
    predicted = [(i, r["predicted_ms"]) for i, r in enumerate(results) if r["predicted_ms"] is not None]
    if predicted:
        ax.scatter(*zip(*predicted, strict=True), color="#dd8452", zorder=3, label="predicted from the profile")
    ax.set_xticks(range(len(results)), labels, fontsize=7)
    ax.set_ylabel("ms at batch 1 (fastest run)")
    ax.set_title(device["name"], fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
