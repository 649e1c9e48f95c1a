"""Hypervolume of an archive's front against a fixed reference point, normalised to [0, 1].

Each objective is divided by its reference value, so the reference point becomes (1, ..., 1) and the
hypervolume is the fraction of the box [0, reference] the front dominates. Top-1 error is a fraction
with reference 1.0 (unchanged); params, MACs or latency are divided by theirs (e.g. 10M params). The
normalisation is fixed for a whole search, so values are comparable across iterations and between NAT2
and NAT runs with the same reference. Points that do not strictly dominate the reference add nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV


def hypervolume(F: np.ndarray, reference: Sequence[float]) -> float:
    """Normalised hypervolume of the rows of F (minimised objectives) against `reference`."""
    F = np.asarray(F, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if F.ndim != 2 or F.shape[1] != len(ref):
        raise ValueError(f"F must be (n, {len(ref)}) for a {len(ref)}-value reference, got shape {F.shape}")
    if np.any(ref <= 0):
        raise ValueError(f"reference values must be positive, got {tuple(ref)}")
    Z = F / ref
    Z = Z[np.all(Z < 1.0, axis=1)]
    if len(Z) == 0:
        return 0.0
    if Z.shape[1] == 1:
        return float(1.0 - Z.min())
    return float(HV(ref_point=np.ones(Z.shape[1])).do(Z))
