"""The resolved settings of one search: the algorithm's mode (NAT2 or the NAT baseline), objectives, budgets.

The recipe's `search` section holds NAT2's values; NAT differs in a handful of choices (growing archive
from uniform-gene samples, one-hot predictor features, "push" repair, K = 8), which live here in one
registry entry each so the loop itself never branches on the algorithm's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from factory.budget.feasibility import Budget
from factory.errors import FactoryError
from factory.recipe import ACCURACY_OBJECTIVE, COMPLEXITY_OBJECTIVES, MIN_ARCHIVE, SearchSection
from factory.space.sampling import Sampler

ACCURACY = ACCURACY_OBJECTIVE  # always the first objective, minimised as the error 1 - top1
COMPLEXITY = COMPLEXITY_OBJECTIVES


@dataclass(frozen=True)
class AlgorithmMode:
    """What distinguishes NAT2 from NAT in the loop.

    Attributes:
        encoding: gene encoding ("nat2": exit gene, fill repair; "nat": 22 genes, push repair).
        sampler: initial sampler (depth-uniform for NAT2, uniform over genes for NAT).
        features: predictor input ("integer" for NAT2, "onehot" for NAT).
        fixed_archive: NAT2 keeps `archive_size` members by rank + crowding; NAT's archive only grows.
        candidates: K per iteration; None takes the recipe's `candidates_per_iteration`.
    """

    name: str
    encoding: str
    sampler: Sampler
    features: str
    fixed_archive: bool
    candidates: int | None


ALGORITHMS: dict[str, AlgorithmMode] = {
    "nat2": AlgorithmMode("nat2", "nat2", "depth_uniform", "integer", fixed_archive=True, candidates=None),
    "nat": AlgorithmMode("nat", "nat", "uniform_genes", "onehot", fixed_archive=False, candidates=8),
}


def get_algorithm(name: str) -> AlgorithmMode:
    """The mode `name`; an unknown name is a user error listing the known ones."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise FactoryError(f"unknown search algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}") from None


def parse_objectives(value: str | Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """Objectives as a tuple starting with "top1".

    Accepts the CLI's short form ("params", "macs", "latency": accuracy plus that objective), a comma list
    ("params,macs"), or a sequence; "top1" alone is single-objective. None takes `default` (the recipe's).
    """
    if value is None:
        value = default
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    names = [n for n in names if n]
    if names and names[0] != ACCURACY:
        names = [ACCURACY, *(n for n in names if n != ACCURACY)]
    known = (ACCURACY, *COMPLEXITY)
    bad = [n for n in names if n not in known]
    if not names or bad or len(set(names)) != len(names) or names.count(ACCURACY) != 1:
        raise FactoryError(
            f"objectives {value!r} are not valid; give top1 plus any of {', '.join(COMPLEXITY)}, "
            "each at most once (e.g. --objectives params)"
        )
    return tuple(names)


@dataclass(frozen=True)
class SearchSettings:
    """Everything that decides the result of a search; `fingerprint()` is checked when resuming."""

    mode: AlgorithmMode
    objectives: tuple[str, ...]
    config: SearchSection
    budget: Budget = dataclasses.field(
        default_factory=Budget
    )  # the limits only (flash and RAM in bytes, latency in ms from the profile)
    latency_profile: str | None = None  # digest of the device profile the latency comes from

    @property
    def candidates(self) -> int:
        return self.mode.candidates if self.mode.candidates is not None else self.config.candidates_per_iteration

    @property
    def initial_samples(self) -> int:
        """Sub-networks of the initial archive, the two extremes included."""
        if self.mode.fixed_archive:
            return self.config.init_multiplier * self.config.archive_size
        return self.config.nat_initial_samples

    @property
    def capacity(self) -> int | None:
        return self.config.archive_size if self.mode.fixed_archive else None

    @property
    def budgets(self) -> dict[str, int | float]:
        """The complexity budgets that are set, as inequality constraints value <= budget."""
        return self.budget.limits()

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed search must share; `iterations` may grow, so it is left out."""
        search = {k: v for k, v in dataclasses.asdict(self.config).items() if k != "iterations"}
        search = {k: list(v) if isinstance(v, tuple) else v for k, v in search.items()}
        b = self.budget
        optional = {f"budget_{name}": getattr(b, name) for name in ("flash", "ram", "latency")}
        optional["latency_profile"] = self.latency_profile
        return {
            "algorithm": self.mode.name,
            "objectives": list(self.objectives),
            "budget_params": b.params,
            "budget_macs": b.macs,
            **{key: value for key, value in optional.items() if value is not None},
            "search": search,
        }


def resolve_settings(
    config: SearchSection,
    objectives: str | Sequence[str] | None = None,
    budget: Budget | None = None,
    algorithm: str | None = None,
    latency_profile: str | None = None,
) -> SearchSettings:
    """Validate the recipe's search section and the overrides into one `SearchSettings`."""
    mode = get_algorithm(algorithm or config.algorithm)
    objs = parse_objectives(objectives, config.objectives)
    checks = {
        "archive_size": config.archive_size >= MIN_ARCHIVE,
        "init_multiplier": config.init_multiplier >= 1,
        "candidates_per_iteration": config.candidates_per_iteration >= 1,
        "population": config.population >= 2,
        "generations": config.generations >= 1,
        "predictor_folds": config.predictor_folds >= 2,
        "distribution_top": config.distribution_top >= 1,
        "adapt_epochs": config.adapt_epochs >= 0,
        "iterations": config.iterations >= 0,
        "nat_initial_samples": config.nat_initial_samples >= MIN_ARCHIVE,
        "crossover_prob": 0.0 <= config.crossover_prob <= 1.0,
        "mutation_eta": config.mutation_eta > 0,
        "adapt_lr": config.adapt_lr >= 0,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        shown = ", ".join(f"search.{k} = {getattr(config, k)!r}" for k in bad)
        raise FactoryError(
            f"recipe {shown} is out of range (archive sizes >= {MIN_ARCHIVE}, counts >= 1, probabilities in 0..1); "
            "fix the recipe's search section"
        )
    limits = Budget.from_dict(budget.limits()) if budget is not None else Budget()  # the limits alone
    return SearchSettings(mode, objs, config, limits, latency_profile)
