"""pareto.png: accuracy against params, MACs and latency, with the archive, its front, the budget and the picks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def front_of(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated points (smaller x, larger y), sorted by x: the staircase drawn as the front."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def plot_pareto(
    path: str | Path, archive: Sequence[dict[str, Any]], picks: Sequence[dict[str, Any]], budget: dict[str, Any]
) -> Path:
    """Three panels; the first two show every evaluated sub-network (search validation top-1), the third the
    picks' test top-1 after post-processing against their measured onnxruntime CPU latency at batch 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs (conv + linear)")):
        xs = [r[key] for r in archive]
        ys = [100 * r["top1"] for r in archive]
        ax.scatter(xs, ys, s=10, color="0.65", label=f"evaluated ({len(xs)})")
        front = front_of(list(zip(xs, ys, strict=True)))
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.2", lw=1.2, label="front")
        if budget.get(key):
            ax.axvline(budget[key], color="crimson", ls="--", lw=1.2, label=f"budget {budget[key]:,.0f}")
        for i, pick in enumerate(picks):
            ax.scatter(pick[key], 100 * pick["top1_search"], s=90, marker="*", color=colors[i % len(colors)], zorder=3)
            ax.annotate(
                pick["id"].split("-")[0],
                (pick[key], 100 * pick["top1_search"]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation top-1 (%) during search")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    ax = axes[2]
    for i, pick in enumerate(picks):
        if pick.get("ort_cpu_p50_ms") is None:
            continue
        ax.scatter(
            pick["ort_cpu_p50_ms"],
            100 * pick["top1_after"],
            s=90,
            marker="*",
            color=colors[i % len(colors)],
            label=f"{pick['id']} (exit {pick['exit']})",
        )
    ax.set_xlabel("onnxruntime CPU latency p50, batch 1 (ms)")
    ax.set_ylabel("test top-1 (%) after post-processing")
    ax.grid(alpha=0.3)
    if picks:
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_title("accuracy vs parameters")
    axes[1].set_title("accuracy vs MACs")
    axes[2].set_title("picks: accuracy vs measured latency")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
