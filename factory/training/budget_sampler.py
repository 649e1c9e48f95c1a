"""Budget-aware sampling of the elastic phase's sub-networks: train where a build's picks will come from.

`factory build` knows its budget before it trains. With `train.budget_share` > 0 that share of the elastic
phase's sampled sub-networks is drawn from the budget's feasible region (rejection sampling from the space's
own sampler, so the region keeps the shape the sampler gives it), the rest from the whole space. A network
is feasible when it meets the budget at the space's widest width (the trainer then runs it at the width it
is training, which only makes it smaller).
"""

from __future__ import annotations

import numpy as np

from factory.budget.feasibility import Budget
from factory.space.config import SpaceSpec, SubnetConfig, smallest_config
from factory.space.encoding import Encoding
from factory.space.sampling import sample_configs

MAX_TRIES = 256  # draws per feasible network before falling back to the smallest one
DRAWS = 16  # drawn at once (one call of the sampler), the first that fits is taken


class BudgetSampler:
    """A trainer `config_sampler`: `share` of the networks within `budget`, the rest from the whole space."""

    def __init__(self, encoding: Encoding, spec: SpaceSpec, budget: Budget, share: float) -> None:
        self.encoding, self.spec, self.budget, self.share = encoding, spec, budget, share
        self.widest = max(spec.widths)

    def fits(self, config: SubnetConfig) -> bool:
        """Within the budget at the widest width."""
        wide = SubnetConfig(config.resolution, self.widest, config.exit, config.blocks)
        return self.budget.fits(self.spec, wide)

    def feasible(self, rng: np.random.Generator) -> SubnetConfig:
        """One network within the budget (the smallest one at exit 1 if none turns up)."""
        for _ in range(MAX_TRIES // DRAWS):
            for config in sample_configs(self.encoding, DRAWS, rng):
                if self.fits(config):
                    return config
        return smallest_config(self.spec, self.widest, min(self.spec.resolutions)).with_exit(min(self.spec.exits()))

    def __call__(self, k: int, rng: np.random.Generator) -> list[SubnetConfig]:
        return [
            self.feasible(rng) if rng.random() < self.share else sample_configs(self.encoding, 1, rng)[0]
            for _ in range(k)
        ]
