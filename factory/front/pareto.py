"""Pareto fronts of minimised objective rows: ranks, crowding and the one non-dominated front that the search's
archive and the picks share (a shared layer, so choosing picks needs nothing of the search stage)."""

from __future__ import annotations

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

_CROWDING = get_crowding_function("cd")


def rank_and_crowding(F: np.ndarray, cv: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NSGA-II's survival order of the rows of F.

    Returns (order, rank, crowding): `order` lists row indices best first; `rank` is the non-dominated
    front index (0 = non-dominated) among feasible rows, -1 for infeasible ones; `crowding` is the
    crowding distance inside a row's front (inf at a front's ends, 0 for infeasible rows).
    """
    F = np.asarray(F, dtype=np.float64)
    n = len(F)
    cv = np.zeros(n) if cv is None else np.asarray(cv, dtype=np.float64)
    rank = np.full(n, -1, dtype=np.int64)
    crowd = np.zeros(n, dtype=np.float64)
    feasible = np.flatnonzero(cv <= 0)
    if len(feasible):
        fronts = NonDominatedSorting().do(F[feasible])
        for r, front in enumerate(fronts):
            rows = feasible[np.sort(front)]
            rank[rows] = r
            crowd[rows] = _CROWDING.do(F[rows]) if len(rows) > 1 else np.inf
    infeasible = np.flatnonzero(cv > 0)
    # lexsort: last key first. Feasible by (rank, -crowding, index); infeasible by (violation, index).
    feas_order = feasible[np.lexsort((feasible, -crowd[feasible], rank[feasible]))]
    infeas_order = infeasible[np.lexsort((infeasible, cv[infeasible]))]
    return np.concatenate([feas_order, infeas_order]).astype(np.int64), rank, crowd


def non_dominated(F: np.ndarray, cv: np.ndarray | None = None, distinct: bool = False) -> np.ndarray:
    """Sorted row indices of the feasible non-dominated rows: the one front the search and the picks share.

    With `distinct`, rows with identical objective values count once (the first of them), so a list of
    choices made from the front never holds the same trade-off twice.
    """
    _, rank, _ = rank_and_crowding(F, cv)
    rows = np.flatnonzero(rank == 0)
    if not distinct:
        return rows
    values = np.asarray(F, dtype=np.float64)
    seen: set[tuple[float, ...]] = set()
    first = []
    for i in rows:
        point = tuple(values[i].tolist())
        if point not in seen:
            seen.add(point)
            first.append(i)
    return np.asarray(first, dtype=rows.dtype)


__all__ = ["non_dominated", "rank_and_crowding"]
