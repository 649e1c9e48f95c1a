"""The phases of super-network training and the record of a trained epoch (what the trainer and its callbacks share)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factory.recipe import Recipe

PHASE_KINDS = ("warmup", "elastic", "adapt", "heads")
MAXIMAL_KINDS = ("warmup", "heads")  # phases that train the maximal network (all exits) without a teacher


@dataclass(frozen=True)
class Phase:
    """One stretch of training of the super-network of `width`. `kind`: 'warmup' (maximal network),
    'elastic' (sampled sub-networks with distillation; the first one sorts channels), 'adapt' (elastic
    steps on the weights as they are, sub-networks from the trainer's `config_sampler`) or 'heads' (the
    warm-up's objective with only the exit heads trained: a transferred super-network's new heads). `lr_key`
    is the recipe key `lr` comes from, so a diverging phase can say which one to lower."""

    kind: str
    width: float
    epochs: int
    lr: float
    lr_key: str = "train.lr"

    @property
    def name(self) -> str:
        return f"{self.kind}-w{self.width:g}"


def plan_phases(recipe: Recipe) -> list[Phase]:
    """Warm-up of every width, then elastic training of every width."""
    widths = recipe.space.widths
    train = recipe.train
    return [Phase("warmup", w, train.warmup_epochs, train.warmup_lr, "train.warmup_lr") for w in widths] + [
        Phase("elastic", w, train.epochs, train.lr) for w in widths
    ]


@dataclass(frozen=True)
class EpochResult:
    """A trained epoch, as `next()` returns it and callbacks receive it; `epoch` counts from 1, as in `record`."""

    phase_index: int
    phase: Phase
    epoch: int
    record: dict[str, Any]
