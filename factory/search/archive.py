"""The archive of evaluated sub-networks and its ordering by non-dominated rank and crowding distance.

NAT2 keeps a fixed number of members: the initial pool and every iteration's newcomers are ranked by
NSGA-II's survival order (non-dominated rank, then crowding distance inside a rank) and the tail is cut.
With budgets, constrained domination applies: every feasible member ranks before every infeasible one,
and infeasible ones are ordered by how far they exceed the budgets. Ties keep archive order, so the order
is deterministic (pymoo's own survival breaks ties at random).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from factory.budget.figures import Figures
from factory.front.pareto import non_dominated, rank_and_crowding
from factory.search.settings import ACCURACY
from factory.space.config import SubnetConfig


@dataclass(frozen=True)
class Member:
    """One evaluated sub-network: its genes, validation top-1 (fraction) and complexity.

    `version` names the super-network weights `top1` was measured with; `iteration` is when it was
    (last) evaluated, 0 for the initial archive.
    """

    config: SubnetConfig
    x: tuple[int, ...]
    top1: float
    params: int
    macs: int
    latency_ms: float | None = None
    iteration: int = 0
    version: str = ""
    flash: int | None = None  # bytes of the delivered graph's weights, INT8 or FP32 (search.evaluation.Complexity)
    ram: int | None = None  # its peak activation bytes at batch 1

    @property
    def key(self) -> str:
        return self.config.key()

    @property
    def error(self) -> float:
        return 1.0 - self.top1

    @property
    def figures(self) -> Figures:
        """What a budget limits, for this network."""
        return Figures(self.params, self.macs, self.flash, self.ram, self.latency_ms)

    @classmethod
    def of(cls, config: SubnetConfig, x: tuple[int, ...], figures: Figures, iteration: int, version: str) -> Member:
        """A network not evaluated yet (top-1 0), with its figures."""
        f = figures
        return cls(config, x, 0.0, f.params, f.macs, f.latency, iteration, version, f.flash, f.ram)

    def objective(self, name: str) -> float:
        """The value minimised for objective `name` (top1 -> error)."""
        if name == ACCURACY:
            return self.error
        value = self.figures.value(name)
        if value is None:
            raise ValueError(f"{self.key} has no {name} figure")
        return value

    def with_top1(self, top1: float, iteration: int, version: str) -> Member:
        return replace(self, top1=float(top1), iteration=iteration, version=version)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record (the archive.jsonl line, minus what the engine adds)."""
        return {
            "key": self.key,
            "config": self.config.to_dict(),
            "encoding": [int(v) for v in self.x],
            "top1": float(self.top1),
            "error": float(self.error),
            **self.figures.to_record(),
            "iteration": int(self.iteration),
            "version": self.version,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Member:
        config = SubnetConfig.from_dict(data["config"])
        x = tuple(int(v) for v in data["encoding"])
        member = cls.of(
            config, x, Figures.from_record(data), int(data.get("iteration", 0)), str(data.get("version", ""))
        )
        return replace(member, top1=float(data["top1"]))


def objective_matrix(members: Sequence[Member], objectives: Sequence[str]) -> np.ndarray:
    """(n, m) float array of the minimised objective values."""
    return np.array([[m.objective(o) for o in objectives] for m in members], dtype=np.float64).reshape(
        len(members), len(objectives)
    )


def violation(members: Sequence[Member], budgets: dict[str, int]) -> np.ndarray:
    """Summed relative excess over the budgets per member (0 = feasible)."""
    cv = np.zeros(len(members), dtype=np.float64)
    for name, budget in budgets.items():
        values = np.array([m.objective(name) for m in members], dtype=np.float64)
        cv += np.maximum(0.0, values / budget - 1.0)
    return cv


class Archive:
    """Evaluated sub-networks, unique by config key, in insertion order.

    Args:
        objectives: the minimised objectives, "top1" first.
        budgets: complexity budgets (constrained domination when set).
        capacity: the fixed size NAT2 truncates to; None lets the archive grow (NAT).
    """

    def __init__(self, objectives: Sequence[str], budgets: dict[str, int] | None = None, capacity: int | None = None):
        self.objectives = tuple(objectives)
        self.budgets = dict(budgets or {})
        self.capacity = capacity
        self.members: list[Member] = []

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self):
        return iter(self.members)

    def __contains__(self, item: object) -> bool:
        key = item.config.key() if isinstance(item, Member) else item.key() if isinstance(item, SubnetConfig) else item
        return key in self.keys()

    def keys(self) -> set[str]:
        return {m.key for m in self.members}

    def add(self, members: Iterable[Member]) -> list[Member]:
        """Append the members whose key is new; returns those added."""
        seen = self.keys()
        added = []
        for m in members:
            if m.key not in seen:
                self.members.append(m)
                seen.add(m.key)
                added.append(m)
        return added

    def F(self) -> np.ndarray:
        return objective_matrix(self.members, self.objectives)

    def X(self) -> np.ndarray:
        return np.array([m.x for m in self.members], dtype=np.int64)

    def cv(self) -> np.ndarray:
        return violation(self.members, self.budgets)

    def order(self) -> np.ndarray:
        """Member indices best first (rank, then crowding; feasible first)."""
        return rank_and_crowding(self.F(), self.cv())[0]

    def ranked(self) -> list[Member]:
        return [self.members[i] for i in self.order()]

    def front(self) -> list[Member]:
        """The feasible non-dominated members."""
        if not self.members:
            return []
        return [self.members[i] for i in non_dominated(self.F(), self.cv())]

    def truncate(self, size: int | None = None) -> list[Member]:
        """Keep the best `size` (default: the capacity) by rank + crowding, in archive order; return the dropped."""
        size = self.capacity if size is None else size
        if size is None or len(self.members) <= size:
            return []
        keep = np.sort(self.order()[:size])
        kept = set(keep.tolist())
        dropped = [m for i, m in enumerate(self.members) if i not in kept]
        self.members = [self.members[i] for i in keep]
        return dropped

    def replace_members(self, members: Sequence[Member]) -> None:
        """Swap in re-evaluated members (same keys, same order)."""
        if [m.key for m in members] != [m.key for m in self.members]:
            raise ValueError("replace_members needs the same configs in the same order")
        self.members = list(members)
