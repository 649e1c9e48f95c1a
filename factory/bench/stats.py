"""Latency statistics in the shape device-benchmark tools report: count, mean, std and percentiles in ms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """{unit, count, mean, std, min, max, p50, p90, p95, p99} in milliseconds of per-call times in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no timed iterations")
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    return {
        "unit": "ms",
        "count": int(ms.size),
        "mean": float(ms.mean()),
        "std": float(ms.std()),
        "min": float(ms.min()),
        "max": float(ms.max()),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
    }


def throughput(batch: int, latency: dict[str, Any]) -> dict[str, Any]:
    """Images per second at the median latency of one call of `batch` images."""
    return {"unit": "images/s", "value": batch * 1000.0 / latency["p50"] if latency["p50"] > 0 else 0.0}
