"""Device budgets: does a network fit them, and can any network of the space fit them at all.

The search (before it samples anything), the build (before it trains anything), the picks (which archive
members qualify) and AEP pruning (which exit subsets qualify) all ask these two questions, so they are
answered only here: one predicate, one error naming the smallest reachable counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from factory.budget import format_count
from factory.errors import FactoryError
from factory.space.config import SpaceSpec, SubnetConfig, smallest_config
from factory.space.counting import count_macs, count_params

BUDGETED = ("params", "macs")


@dataclass(frozen=True)
class Budget:
    """Device limits; None means unlimited."""

    params: int | None = None
    macs: int | None = None

    @classmethod
    def from_dict(cls, budgets: Mapping[str, int | None]) -> Budget:
        """From a {"params": n, "macs": m} mapping, missing keys unlimited (e.g. `SearchSettings.budgets`)."""
        unknown = sorted(set(budgets) - set(BUDGETED))
        if unknown:
            raise ValueError(f"unknown budget {', '.join(unknown)}; budgets are {', '.join(BUDGETED)}")
        return cls(budgets.get("params"), budgets.get("macs"))

    @property
    def limited(self) -> bool:
        return self.params is not None or self.macs is not None

    def allows(self, params: int, macs: int) -> bool:
        """Whether a network with these counts meets every limit (limits are inclusive)."""
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


def smallest_configs(spec: SpaceSpec) -> list[SubnetConfig]:
    """The smallest config of every width at every exit, at the lowest resolution: whatever the space has."""
    configs = []
    for width in spec.widths:
        base = smallest_config(spec, width=width, resolution=min(spec.resolutions))
        configs += [base.with_exit(exit_) for exit_ in spec.exits()]
    return configs


def smallest_reachable(spec: SpaceSpec, configs: Iterable[SubnetConfig] | None = None) -> tuple[int, int]:
    """The fewest params and the fewest MACs (each minimised on its own) over `configs`.

    `configs` defaults to `smallest_configs(spec)`; a search passes the smallest network its encoding can
    express instead (an encoding without an exit gene never reaches the early exits).
    """
    configs = smallest_configs(spec) if configs is None else list(configs)
    return min(count_params(spec, c) for c in configs), min(count_macs(spec, c) for c in configs)


def check_feasible(
    spec: SpaceSpec,
    budget: Budget,
    configs: Iterable[SubnetConfig] | None = None,
    advice: str = "raise the budget",
) -> None:
    """Fail early, naming the smallest reachable counts, when no network of `configs` (see
    `smallest_reachable`) can meet `budget`; `advice` ends the one-line message (e.g. the flags to change)."""
    if not budget.limited:
        return
    params, macs = smallest_reachable(spec, configs)
    if not budget.allows(params, macs):
        raise FactoryError(
            f"no sub-network can meet {budget.describe()}: the smallest reachable network has "
            f"{format_count(params)} params and {format_count(macs)} MACs; {advice}"
        )
