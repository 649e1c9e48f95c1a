"""Spread selection: which K of some candidate points, added to the points already held, spread most evenly.

Two callers share the one greedy loop here, each with its own criterion:

- "gaps" (the search, NAT's subset selection): which K of the surrogate search's candidates get a real
  evaluation. A candidate's score is the standard deviation of the gaps between sorted objective values
  of front plus chosen plus it, the LARGEST over the objectives, so no axis (error, params) is left with a
  hole. NAT ran a small binary GA for this; greedily it is deterministic, needs no seed and is as good on
  the few dozen candidates involved.
- "distance" (the picks): which front members join the best-accuracy and best-cost picks. A candidate's
  score is its Euclidean distance to the nearest point held (farthest-point, largest minimum distance).

Either way every objective is min-max normalised over held points plus candidates, one candidate is added
at a time, and ties go to the earlier candidate row.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Criterion = Literal["gaps", "distance"]
CRITERIA: tuple[Criterion, ...] = ("gaps", "distance")


def gap_spread(points: np.ndarray) -> float:
    """max over columns of std(diff(sorted column)): 0 for evenly spaced points (and for < 3 points)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return 0.0
    gaps = np.diff(np.sort(points, axis=0), axis=0)
    return float(gaps.std(axis=0).max())


def nearest_distance(points: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Each row of `points`' Euclidean distance to the nearest row of `held` (inf when `held` is empty)."""
    if len(held) == 0:
        return np.full(len(points), np.inf)
    return np.min(np.linalg.norm(points[:, None, :] - held[None, :, :], axis=2), axis=1)


def select_subset(front: np.ndarray, candidates: np.ndarray, k: int, criterion: Criterion = "gaps") -> list[int]:
    """Indices of at most `k` rows of `candidates` chosen to spread evenly along `front`.

    Args:
        front: (n, m) objective values of the points already held (the archive's non-dominated members, or
            the picks made so far); may be empty.
        candidates: (c, m) objective values of the candidates, best-first by preference: ties go to the
            earlier row.
        k: how many to choose.
        criterion: "gaps" (even gaps along every objective, the search) or "distance" (farthest point,
            the picks); see the module docstring.

    Returns:
        Chosen row indices in the order they were picked (min(k, c) of them).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown spread criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
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
        if criterion == "gaps":
            scores = np.array([gap_spread(np.vstack([current, cand[i : i + 1]])) for i in remaining])
        else:
            scores = -nearest_distance(cand[remaining], current)
        best = remaining[int(np.argmin(scores))]  # argmin: first of equal scores
        chosen.append(best)
        remaining.remove(best)
        current = np.vstack([current, cand[best : best + 1]])
    return chosen
