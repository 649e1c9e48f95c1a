"""Picks: the sub-networks handed to the user, chosen from the final archive under the device budget.

From the archive's members that meet every limit of the budget (params, MACs, flash and RAM of the delivered
graph, predicted latency), the non-dominated front of (top-1 error, secondary objective) is taken; the picks are
the best-accuracy network, the best network in the secondary objective, and then the members of the front that
spread the rest most evenly along it (largest minimum distance in normalised objective space), up to `count` in all.

The front, the spread selection and the budget are the search's own (`factory.front.pareto`,
`factory.front.subset`, `factory.budget.feasibility`), so picks and search agree on what they mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from factory.budget import format_count
from factory.budget.feasibility import Budget, check_feasible, smallest_reachable
from factory.budget.figures import Figures
from factory.errors import FactoryError
from factory.front.pareto import non_dominated
from factory.front.subset import select_subset
from factory.space import SubnetConfig

__all__ = ["Budget", "check_feasible", "choose_picks", "pick_id", "smallest_reachable"]


def record_figure(record: dict[str, Any], name: str) -> float | None:
    """A figure of an archive record by budget / objective name (flash and ram in bytes, latency in ms)."""
    return Figures.from_record(record).value(name)


def choose_picks(
    records: Sequence[dict[str, Any]], budget: Budget, count: int = 4, objective: str = "params"
) -> list[dict[str, Any]]:
    """Pick up to `count` archive records under `budget`, spread along the (error, objective) front.

    Each record needs `config` (dict or SubnetConfig), `top1`, `params` and `macs`. The returned records
    carry a `pick_reason`: "best-accuracy", "best-<objective>" or "front".
    """
    feasible = [r for r in records if budget.admits(Figures.from_record(r))]
    if not feasible:
        smallest = min(records, key=lambda r: record_figure(r, objective)) if records else None
        hint = (
            ""
            if smallest is None
            else f" (the smallest in the archive has {format_count(record_figure(smallest, objective))} {objective})"
        )
        raise FactoryError(
            f"no searched sub-network meets {budget.describe()}{hint}; raise the budget or search with it"
        )
    errors = np.array([1.0 - float(r["top1"]) for r in feasible])
    costs = np.array([float(record_figure(r, objective)) for r in feasible])
    points = np.column_stack([errors, costs])
    front = non_dominated(points, distinct=True)
    front = front[np.argsort(costs[front], kind="stable")]
    chosen = [int(front[np.argmin(errors[front])]), int(front[0])]
    reasons = {chosen[0]: "best-accuracy", chosen[1]: f"best-{objective}"}
    chosen = list(dict.fromkeys(chosen))
    rest = [int(i) for i in front if int(i) not in reasons]
    for j in select_subset(points[chosen], points[rest], count - len(chosen), criterion="distance"):
        chosen.append(rest[j])
        reasons[rest[j]] = "front"
    chosen = chosen[:count]
    picks = []
    for i in sorted(chosen, key=lambda i: -float(feasible[i]["top1"])):
        record = dict(feasible[i])
        record["pick_reason"] = reasons[i]
        picks.append(record)
    return picks


def pick_id(config: SubnetConfig, index: int) -> str:
    """A short, stable folder name for a pick: rank, exit and a digest of its config."""
    import hashlib

    digest = hashlib.sha1(config.to_json().encode()).hexdigest()[:8]
    return f"p{index + 1}-x{config.exit}-{digest}"
