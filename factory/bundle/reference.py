"""The bundle's preprocessing in plain numpy: the reference a device team ports (copied into MODEL_CARD.md).

It reproduces `factory.data.model_inputs` on decoded images: scale to [0, 1], normalise, then resize
bilinearly to the graph's resolution, antialiased when shrinking (a triangle filter widened by the scale, as
torch's `interpolate(..., antialias=True)` and PIL do). Tests check it against the factory's own path.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _weights(size_in: int, size_out: int) -> np.ndarray:
    """size_out x size_in bilinear weights; the triangle widens by the scale when shrinking (antialias)."""
    scale = size_in / size_out
    support = max(scale, 1.0)
    out = np.zeros((size_out, size_in), dtype=np.float64)
    for i in range(size_out):
        center = (i + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), size_in)
        taps = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((taps + 0.5 - center) / support))
        out[i, lo:hi] = w / w.sum()
    return out


def preprocess(rgb: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """A decoded H x W x 3 uint8 RGB image (see spec["decode"]) -> the 1 x 3 x R x R float32 graph input."""
    x = rgb.astype(np.float32) * np.float32(spec["scale"])
    x = (x - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32)
    r = spec["resolution"]
    if x.shape[:2] != (r, r):
        rows, cols = _weights(x.shape[0], r), _weights(x.shape[1], r)
        x = np.einsum("ih,hwc,jw->ijc", rows, x.astype(np.float64), cols).astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
