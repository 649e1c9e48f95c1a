"""Device budgets: does a network fit them, and can any network of the space fit them at all.

The search (before it samples anything), the build (before it trains anything), the picks (which archive
members qualify) and AEP pruning (which exit subsets qualify) all ask these two questions, so they are
answered only here: one predicate, one error naming the smallest reachable counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from factory.budget.figures import BUDGETED, Figures
from factory.budget.parse import format_bytes, format_count
from factory.errors import FactoryError
from factory.space.config import SpaceSpec, SubnetConfig, smallest_config
from factory.space.counting import count_macs, count_params
from factory.space.footprint_int8 import Int8Layout, delivered_footprint

FLAGS = {
    "params": "--budget-params",
    "macs": "--budget-macs",
    "flash": "--budget-flash",
    "ram": "--budget-ram",
    "latency": "--budget-latency",
}

LABELS = {"params": "params", "macs": "MACs", "flash": "flash", "ram": "RAM", "latency": "latency"}


@dataclass(frozen=True)
class Budget:
    """Device limits; None means unlimited. flash and ram are bytes of the graph the build delivers: its
    initializers and its peak activation memory at batch 1, of the INT8 QDQ graph when `int8` gives the
    quantizer's layout (`factory.space.footprint_int8`), else of the exported FP32 graph
    (`factory.space.footprint`)."""

    params: int | None = None
    macs: int | None = None
    flash: int | None = None
    ram: int | None = None
    latency: float | None = None  # milliseconds at batch 1, predicted by `latency_model`
    latency_model: Callable[..., float] | None = field(default=None, compare=False, repr=False)
    int8: Int8Layout | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in BUDGETED:
            value = getattr(self, name)
            if value is None:
                continue
            counted = name != "latency"
            wrong_type = isinstance(value, bool) or not isinstance(value, int if counted else (int, float))
            if wrong_type or value <= 0:
                example = "a count like 300k" if counted else "milliseconds like 2.5"
                raise FactoryError(f"{FLAGS[name]} must be positive, {example}; got {value!r}")

    @classmethod
    def parse(
        cls,
        params: str | int | None = None,
        macs: str | int | None = None,
        flash: str | int | None = None,
        ram: str | int | None = None,
        latency: str | float | None = None,
        profile: object | None = None,
    ) -> Budget:
        """The limits as a user writes them ("0.3M", "10M", "256KB", "1.5MiB", "2.5ms", or numbers); a malformed
        or non-positive one, or a latency limit without the device `profile` it is predicted from, is a one-line
        error naming its flag."""
        from factory.budget.parse import parse_budget, parse_latency, parse_size

        return cls(
            parse_budget(params, FLAGS["params"]),
            parse_budget(macs, FLAGS["macs"]),
            parse_size(flash, FLAGS["flash"]),
            parse_size(ram, FLAGS["ram"]),
            parse_latency(latency, profile),
        )

    @classmethod
    def from_dict(cls, budgets: Mapping[str, float | None]) -> Budget:
        """From a {"params": n, "macs": m, ...} mapping, missing keys unlimited (e.g. `SearchSettings.budgets`)."""
        unknown = sorted(set(budgets) - set(BUDGETED))
        if unknown:
            raise ValueError(f"unknown budget {', '.join(unknown)}; budgets are {', '.join(BUDGETED)}")
        return cls(*(budgets.get(name) for name in BUDGETED))

    def with_model(self, model: Callable[..., float] | None) -> Budget:
        """The same limits, latency predicted by `model` (config, exits) -> ms."""
        return replace(self, latency_model=model)

    def with_int8(self, layout: Int8Layout | None) -> Budget:
        """The same limits, flash and RAM counted in the INT8 graph of `layout` (None: the FP32 graph)."""
        return replace(self, int8=layout)

    def limits(self) -> dict[str, int | float]:
        """The limits that are set, {"params": 300000, "flash": 262144, ...}: the search's constraints."""
        return {name: getattr(self, name) for name in BUDGETED if getattr(self, name) is not None}

    @property
    def limited(self) -> bool:
        return any(getattr(self, name) is not None for name in BUDGETED)

    @property
    def needs_footprint(self) -> bool:
        """Whether checking it needs the flash / RAM walk (slower than the counts)."""
        return self.flash is not None or self.ram is not None

    def allows(
        self, params: int, macs: int, flash: int | None = None, ram: int | None = None, latency: float | None = None
    ) -> bool:
        """Whether a network with these figures meets every limit (limits are inclusive). A flash, RAM or
        latency limit needs its figure: leaving it out is a programming error, not a pass."""
        values = {"params": params, "macs": macs, "flash": flash, "ram": ram, "latency": latency}
        for name in BUDGETED:
            limit = getattr(self, name)
            if limit is None:
                continue
            if values[name] is None:
                raise ValueError(f"a {name} budget is set but no {name} figure was given")
            if values[name] > limit:
                return False
        return True

    def admits(self, figures: Figures) -> bool:
        """Whether a network with these figures meets every limit (see `allows`)."""
        return self.allows(figures.params, figures.macs, figures.flash, figures.ram, figures.latency)

    def fits(self, spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> bool:
        """Whether the network of `config` with `exits` (default: its own exit) meets every limit."""
        values = figures(spec, config, exits, footprint=self.needs_footprint, int8=self.int8)
        return self.admits(replace(values, latency=self.predicted(config, exits)))

    def predicted(self, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> float | None:
        """The latency model's milliseconds when a latency limit is set (None otherwise)."""
        if self.latency is None:
            return None
        if self.latency_model is None:
            raise ValueError("a latency budget needs a latency model (from --latency-profile)")
        return self.latency_model(config, exits)

    def describe(self) -> str:
        parts = []
        if self.params is not None:
            parts.append(f"params <= {format_count(self.params)}")
        if self.macs is not None:
            parts.append(f"MACs <= {format_count(self.macs)}")
        if self.flash is not None:
            parts.append(f"flash <= {format_bytes(self.flash)}")
        if self.ram is not None:
            parts.append(f"RAM <= {format_bytes(self.ram)}")
        if self.needs_footprint:
            parts[-1] += f" ({'FP32' if self.int8 is None else 'INT8'} graph)"
        if self.latency is not None:
            parts.append(f"latency <= {self.latency:g} ms")
        return " and ".join(parts) or "no budget"

    def to_dict(self) -> dict[str, int | None]:
        """params and macs always (None when unlimited), flash and ram when set: older run folders compare equal."""
        out: dict[str, int | None] = {"params": self.params, "macs": self.macs}
        out.update({n: getattr(self, n) for n in ("flash", "ram", "latency") if getattr(self, n) is not None})
        return out

    def flags(self) -> str:
        """The command-line flags of the limits that are set, for advice in error messages."""
        return " / ".join(FLAGS[name] for name in BUDGETED if getattr(self, name) is not None) or "the budget"


def figures(
    spec: SpaceSpec,
    config: SubnetConfig,
    exits: tuple[int, ...] | None = None,
    footprint: bool = True,
    int8: Int8Layout | None = None,
) -> Figures:
    """params, MACs and (when `footprint`) the flash and RAM bytes of `config` with `exits`: of its INT8
    graph when `int8` gives the layout (an ensemble's weights counted as distinct), else of its FP32 graph.
    Latency is left to the caller's model (`Budget.predicted`)."""
    flash, ram = delivered_footprint(spec, config, exits, int8) if footprint else (None, None)
    return Figures(count_params(spec, config, exits), count_macs(spec, config, exits), flash, ram)


def delivered_precision(recipe: Any) -> str:
    """ "int8" when a build with `recipe` delivers INT8 graphs (as `int8_layout` counts them), else "fp32"."""
    return "fp32" if int8_layout(recipe) is None else "int8"


def int8_layout(recipe: Any) -> Int8Layout | None:
    """The INT8 layout a build with `recipe` delivers its picks in (None: FP32). A recipe that keeps some ops
    in float (export.int8.exclude_ops) is counted in FP32, an upper bound of what it delivers."""
    settings = recipe.export.int8
    if not settings.enabled or settings.exclude_ops:
        return None
    return Int8Layout(per_channel=settings.per_channel, symmetric_activations=settings.symmetric_activations)


def smallest_configs(spec: SpaceSpec, exits: Iterable[int] | None = None) -> list[SubnetConfig]:
    """The smallest config of every width at every exit (default: all the space has) and resolution. At one width,
    exit and resolution the smallest blocks are the least of every figure, but across them the figures disagree
    (an earlier exit has fewer parameters, yet its head may need more RAM), so a joint check needs them all."""
    exits = tuple(spec.exits() if exits is None else exits)
    configs = []
    for width in spec.widths:
        for resolution in sorted(spec.resolutions):
            base = smallest_config(spec, width=width, resolution=resolution)
            configs += [base.with_exit(exit_) for exit_ in exits]
    return configs


def _figures_of(spec: SpaceSpec, configs: Iterable[SubnetConfig], budget: Budget | None) -> list[Figures]:
    """Every config's figures, with the predicted latency when `budget` has a latency limit."""
    int8 = budget.int8 if budget else None
    return [replace(figures(spec, c, int8=int8), latency=budget.predicted(c) if budget else None) for c in configs]


def _least(every: list[Figures]) -> dict[str, Any]:
    least: dict[str, Any] = {
        name: min(int(getattr(f, name)) for f in every) for name in ("params", "macs", "flash", "ram")
    }
    latencies = [f.latency for f in every if f.latency is not None]
    least["latency"] = min(latencies) if latencies else None
    return least


def smallest_reachable(
    spec: SpaceSpec, configs: Iterable[SubnetConfig] | None = None, budget: Budget | None = None
) -> dict[str, Any]:
    """The fewest params, MACs, flash and RAM bytes (each minimised on its own) over `configs`, and the
    least predicted latency when `budget` has a latency limit (None otherwise).

    `configs` defaults to `smallest_configs(spec)`; a search passes the smallest network its encoding can
    express instead (an encoding without an exit gene never reaches the early exits).
    """
    configs = smallest_configs(spec) if configs is None else list(configs)
    return _least(_figures_of(spec, configs, budget))


SAMPLED = 256  # draws of the constrained sampling, when no smallest config meets every limit at once


def _sampled_fit(spec: SpaceSpec, budget: Budget, seen: list[Figures]) -> bool:
    """Whether a seeded sample of the space holds a network within every limit at once (the figures of the ones
    tried are added to `seen`). The cheap counts reject most draws before the footprint walk and latency model."""
    import numpy as np

    from factory.space.encoding import get_encoding
    from factory.space.sampling import sample_configs

    encoding = get_encoding("nat2", spec)
    for config in sample_configs(encoding, SAMPLED, np.random.default_rng(0)):
        counts = figures(spec, config, footprint=False)
        if not Budget(params=budget.params, macs=budget.macs).admits(counts):
            continue
        (full,) = _figures_of(spec, [config], budget)
        seen.append(full)
        if budget.admits(full):
            return True
    return False


def _only(budget: Budget, names: Iterable[str]) -> Budget:
    """`budget` with only the limits `names` (its latency model and INT8 layout kept)."""
    keep = set(names)
    return replace(budget, **{name: None for name in BUDGETED if name not in keep})


def _least_text(name: str, value: float) -> str:
    if name == "latency":
        return f"the least predicted latency is {value:.3g} ms"
    if name in ("flash", "ram"):
        return f"the least {'flash' if name == 'flash' else 'RAM'} is {format_bytes(int(value))}"
    return f"the fewest {'params' if name == 'params' else 'MACs'} are {format_count(int(value))}"


def _conflicts(budget: Budget, every: list[Figures]) -> list[tuple[str, ...]]:
    """The pairs of limits that no network of `every` meets together (each is met alone); all the limits when only
    more than two conflict."""
    names = tuple(budget.limits())
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    found = [pair for pair in pairs if not any(_only(budget, pair).admits(f) for f in every)]
    return found or [names]


def _conflict_text(budget: Budget, group: tuple[str, ...], every: list[Figures]) -> str:
    """A conflicting group, e.g. 'params and RAM (within RAM <= 9.0 KB the fewest params are 49.0k; ...)'."""
    within = []
    for name in group:
        others = _only(budget, [n for n in group if n != name])
        best = min((f.value(name) for f in every if others.admits(f)), default=None)
        if best is not None:
            within.append(f"within {others.describe()} {_least_text(name, best)}")
    label = " and ".join(LABELS[name] for name in group)
    return label + (f" ({'; '.join(within)})" if within else "")


def check_feasible(
    spec: SpaceSpec,
    budget: Budget,
    configs: Iterable[SubnetConfig] | None = None,
    advice: str = "raise the budget",
) -> None:
    """Fail early when no network of `configs` (default: the smallest of every width, exit and resolution, then a
    seeded sample of the space) meets every limit of `budget` at once. A limit no network meets even alone names
    the smallest reachable figures; limits met alone but not together name the pairs that conflict. `advice`
    ends the first message (e.g. the flags to change); the second names the conflicting limits' flags."""
    if not budget.limited:
        return
    given = configs is not None
    every = _figures_of(spec, smallest_configs(spec) if configs is None else list(configs), budget)
    least = _least(every)
    if not budget.allows(**least):
        shown = [f"{format_count(least['params'])} params", f"{format_count(least['macs'])} MACs"]
        if budget.needs_footprint:
            shown += [f"{format_bytes(least['flash'])} of flash", f"{format_bytes(least['ram'])} of RAM"]
        if least["latency"] is not None:
            shown += [f"{least['latency']:.3g} ms predicted"]
        raise FactoryError(
            f"no sub-network can meet {budget.describe()}: the smallest reachable network has "
            f"{', '.join(shown)}; {advice}"
        )
    if any(budget.admits(f) for f in every) or (not given and _sampled_fit(spec, budget, every)):
        return
    groups = _conflicts(budget, every)
    named = sorted({name for group in groups for name in group}, key=BUDGETED.index)
    raise FactoryError(
        f"no single sub-network meets {budget.describe()} together, though each limit alone is reachable: "
        f"{', and '.join(_conflict_text(budget, group, every) for group in groups)} conflict; "
        f"raise {' or '.join(FLAGS[name] for name in named)}"
    )
