"""`factory report`: report.md, a self-contained report.html (the plot embedded) and pareto.png for a run.

Everything comes from the run folder (summary.json's data, the search archive, each pick's metrics, export
and bench files), so the report can be rebuilt at any time.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from factory.io import write_text_atomic
from factory.report.devices import plot_device
from factory.report.plot import plot_pareto
from factory.report.tables import DEVICE_HEADER, GRAPH_HEADER, PICK_HEADER, device_rows, graph_rows, pick_rows


def read_archive(run: Path) -> list[dict[str, Any]]:
    """Every evaluated sub-network of the search (the latest evaluation of each config)."""
    from factory.runfolder import SEARCH_LOG, read_search_log

    latest = {json.dumps(r["config"], sort_keys=True): r for r in read_search_log(run / "search" / SEARCH_LOG)}
    return list(latest.values())


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _source(source: dict[str, Any] | None) -> str:
    """Where the super-network came from, in words."""
    if not source:
        return "trained from scratch on this data"
    how = {
        "transfer": "transferred (heads rebuilt and warmed up, adapted during the search)",
        "retarget": "reused with other resolutions",
        "reuse": "reused as it is",
    }.get(source.get("mode", ""), source.get("mode", ""))
    origin = f"recipe {source.get('recipe')}, {source.get('dataset')}, {source.get('classes')} classes"
    return f"{source.get('path')} ({origin}): {how}; sha256 {str(source.get('sha256', ''))[:12]}"


def _facts(summary: dict[str, Any]) -> list[tuple[str, str]]:
    budget = summary["budget"]
    search = summary["search"]
    parts = [
        f"params <= {budget['params']:,}" if budget.get("params") else "",
        f"MACs <= {budget['macs']:,}" if budget.get("macs") else "",
        f"flash <= {budget['flash']:,} B" if budget.get("flash") else "",
        f"RAM <= {budget['ram']:,} B" if budget.get("ram") else "",
    ]
    missed = [p["id"] for p in summary["picks"] if p.get("meets_budget") is False]
    return [
        ("budget", ", ".join(p for p in parts if p) or "none"),
        ("recipe", summary["recipe"]),
        ("dataset", summary.get("dataset", "")),
        ("device", summary["device"]),
        ("precision (training and evaluation)", summary.get("precision", "fp32")),
        ("source super-network", _source(summary.get("source"))),
        ("front under the budget", summary.get("front_shape", "-")),
        (
            "budget, measured from the delivered files",
            f"missed by {', '.join(missed)}" if missed else "every pick meets every limit",
        ),
        (
            "search",
            f"{search.get('algorithm')}, {search.get('evaluations')} evaluations, "
            f"hypervolume {search.get('hypervolume') or 0:.4f}",
        ),
        ("versions", ", ".join(f"{k} {v}" for k, v in summary.get("versions", {}).items())),
    ]


def write_report(run_dir: str | Path, summary: dict[str, Any]) -> dict[str, Path]:
    """Write pareto.png, report.md and report.html into the run folder; returns their paths."""
    run = Path(run_dir)
    png = plot_pareto(run / "pareto.png", read_archive(run), summary["picks"], summary["budget"])
    notes = (
        "Accuracies are fractions of the test split unless marked as search (validation) figures. Params and "
        "MACs are fvcore counts at batch 1, conv + linear (the papers' convention). Latency is onnxruntime on "
        "this machine's CPU; see each pick's *.bench.json for the machine and settings."
    )
    md = [f"# factory report: {run.name}", ""]
    md += [f"- **{k}**: {v}" for k, v in _facts(summary)]
    md += ["", "![pareto](pareto.png)", "", "## Picks", "", _markdown_table(PICK_HEADER, pick_rows(summary)), ""]
    sections_html = []
    for pick in summary["picks"]:
        rows = graph_rows(run, pick)
        title = f"{pick['id']} ({pick['reason']}, exit {pick['exit']})"
        md += [f"### {title}", "", _markdown_table(GRAPH_HEADER, rows), ""]
        sections_html.append(f"<h3>{html.escape(title)}</h3>{_html_table(GRAPH_HEADER, rows)}")
    for index, device in enumerate(summary.get("devices", [])):
        rows = device_rows(device)
        plot = plot_device(device, run / f"device-{index + 1}.png")
        title = f"On device: {device['name']}"
        md += [f"## {title}", "", _markdown_table(DEVICE_HEADER, rows), "", f"![{title}]({plot.name})", ""]
        picture = base64.b64encode(plot.read_bytes()).decode("ascii")
        sections_html.append(
            f"<h2>{html.escape(title)}</h2>{_html_table(DEVICE_HEADER, rows)}"
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{picture}'>"
        )
    md += [notes, ""]
    write_text_atomic(run / "report.md", "\n".join(md))
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    facts = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in _facts(summary))
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>factory report: {html.escape(run.name)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}"
        "</style></head><body>"
        f"<h1>factory report: {html.escape(run.name)}</h1><ul>{facts}</ul>"
        f"<img alt='accuracy against params, MACs and latency' src='data:image/png;base64,{image}'>"
        f"<h2>Picks</h2>{_html_table(PICK_HEADER, pick_rows(summary))}{''.join(sections_html)}"
        f"<p>{html.escape(notes)}</p></body></html>\n"
    )
    write_text_atomic(run / "report.html", page)
    return {"markdown": run / "report.md", "html": run / "report.html", "png": png}
