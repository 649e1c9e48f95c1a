"""Picks: the sub-networks handed to the user, chosen from the final archive under the device budget.

From the archive's members that meet the budget (params <= P and/or MACs <= M), the non-dominated front
of (top-1 error, secondary objective) is taken; the picks are the best-accuracy network, the best network
in the secondary objective, and then the members of the front that spread the rest most evenly along it
(largest minimum distance in normalised objective space), up to `count` in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from factory.budget import format_count
from factory.errors import FactoryError
from factory.space import SpaceSpec, SubnetConfig, smallest_config
from factory.space.counting import count_macs, count_params


@dataclass(frozen=True)
class Budget:
    """Device limits; None means unlimited."""

    params: int | None = None
    macs: int | None = None

    def allows(self, params: int, macs: int) -> bool:
        return (self.params is None or params <= self.params) and (self.macs is None or macs <= self.macs)

    def describe(self) -> str:
        parts = []
        if self.params is not None:
            parts.append(f"params <= {format_count(self.params)}")
        if self.macs is not None:
            parts.append(f"MACs <= {format_count(self.macs)}")
        return " and ".join(parts) or "no budget"

    def to_dict(self) -> dict[str, int | None]:
        return {"params": self.params, "macs": self.macs}


def smallest_reachable(spec: SpaceSpec) -> tuple[int, int]:
    """The fewest params and MACs any sub-network of the space has (smallest config, every width and exit)."""
    params, macs = [], []
    for width in spec.widths:
        base = smallest_config(spec, width=width, resolution=min(spec.resolutions))
        for exit_ in spec.exits():
            config = base.with_exit(exit_)
            params.append(count_params(spec, config))
            macs.append(count_macs(spec, config))
    return min(params), min(macs)


def check_feasible(spec: SpaceSpec, budget: Budget) -> None:
    """Fail early, naming the smallest reachable counts, when no sub-network can meet the budget."""
    params, macs = smallest_reachable(spec)
    too_tight = (budget.params is not None and budget.params < params) or (
        budget.macs is not None and budget.macs < macs
    )
    if too_tight:
        raise FactoryError(
            f"no sub-network can meet {budget.describe()}: the smallest reachable is {format_count(params)} params "
            f"and {format_count(macs)} MACs; raise the budget"
        )


def pareto_front(errors: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (minimising both), sorted by cost."""
    order = np.lexsort((errors, costs))
    front, best = [], np.inf
    for i in order:
        if errors[i] < best:
            front.append(i)
            best = errors[i]
    return np.asarray(front, dtype=int)


def choose_picks(
    records: Sequence[dict[str, Any]], budget: Budget, count: int = 4, objective: str = "params"
) -> list[dict[str, Any]]:
    """Pick up to `count` archive records under `budget`, spread along the (error, objective) front.

    Each record needs `config` (dict or SubnetConfig), `top1`, `params` and `macs`. The returned records
    carry a `pick_reason`: "best-accuracy", "best-<objective>" or "front".
    """
    feasible = [r for r in records if budget.allows(int(r["params"]), int(r["macs"]))]
    if not feasible:
        smallest = min(records, key=lambda r: r[objective]) if records else None
        hint = (
            ""
            if smallest is None
            else f" (the smallest in the archive has {format_count(smallest[objective])} {objective})"
        )
        raise FactoryError(
            f"no searched sub-network meets {budget.describe()}{hint}; raise the budget or search with it"
        )
    errors = np.array([1.0 - float(r["top1"]) for r in feasible])
    costs = np.array([float(r[objective]) for r in feasible])
    front = pareto_front(errors, costs)
    chosen = [int(front[np.argmin(errors[front])]), int(front[0])]
    reasons = {chosen[0]: "best-accuracy", chosen[1]: f"best-{objective}"}
    chosen = list(dict.fromkeys(chosen))
    if len(front) > len(chosen) and count > len(chosen):
        points = np.stack([errors[front], costs[front]], axis=1)
        span = np.ptp(points, axis=0)
        points = (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)
        position = {int(i): k for k, i in enumerate(front)}
        while len(chosen) < min(count, len(front)):
            taken = points[[position[i] for i in chosen]]
            gaps = np.min(np.linalg.norm(points[:, None, :] - taken[None, :, :], axis=2), axis=1)
            for i in chosen:
                gaps[position[i]] = -1.0
            nxt = int(front[int(np.argmax(gaps))])
            chosen.append(nxt)
            reasons[nxt] = "front"
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
