"""Subset selection: which K of the surrogate search's candidates get a real evaluation.

NAT picks the K candidates that, added to the archive's front, leave the most even spacing along the
front: it minimises the standard deviation of the gaps between sorted objective values. NAT ran a small
binary GA for this; here the subset is built greedily, one candidate at a time, which is deterministic,
needs no seed and is as good on the few dozen candidates involved. Every objective is min-max normalised
over front plus candidates, and the score is the LARGEST gap std over the objectives, so no axis (error,
params) is left with a hole.
"""

from __future__ import annotations

import numpy as np


def gap_spread(points: np.ndarray) -> float:
    """max over columns of std(diff(sorted column)): 0 for evenly spaced points (and for < 3 points)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return 0.0
    gaps = np.diff(np.sort(points, axis=0), axis=0)
    return float(gaps.std(axis=0).max())


def select_subset(front: np.ndarray, candidates: np.ndarray, k: int) -> list[int]:
    """Indices of at most `k` rows of `candidates` chosen to spread evenly along `front`.

    Args:
        front: (n, m) objective values of the archive's non-dominated members (may be empty).
        candidates: (c, m) predicted objective values of the candidates, best-first by preference:
            ties go to the earlier row.
        k: how many to choose.

    Returns:
        Chosen row indices in the order they were picked (min(k, c) of them).
    """
    cand = np.asarray(candidates, dtype=np.float64)
    if cand.ndim != 2:
        raise ValueError(f"candidates must be 2-D (rows, objectives), got shape {cand.shape}")
    base = np.asarray(front, dtype=np.float64).reshape(-1, cand.shape[1])
    k = min(int(k), len(cand))
    if k <= 0:
        return []
    both = np.vstack([base, cand])
    low = both.min(axis=0)
    span = np.where(np.ptp(both, axis=0) > 0, np.ptp(both, axis=0), 1.0)
    base, cand = (base - low) / span, (cand - low) / span
    chosen: list[int] = []
    remaining = list(range(len(cand)))
    current = base
    for _ in range(k):
        scores = [gap_spread(np.vstack([current, cand[i : i + 1]])) for i in remaining]
        best = remaining[int(np.argmin(scores))]  # argmin: first of equal scores
        chosen.append(best)
        remaining.remove(best)
        current = np.vstack([current, cand[best : best + 1]])
    return chosen
