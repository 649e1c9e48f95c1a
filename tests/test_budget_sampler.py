"""Budget-aware elastic sampling: the sub-networks a build trains come from where its picks will."""

from __future__ import annotations

import json

import numpy as np
import pytest

from factory.budget.feasibility import Budget
from factory.space.counting import count_params
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_configs
from factory.testing import middle_budget, tiny_recipe
from factory.training.budget_sampler import BudgetSampler
from factory.training.trainer import FINAL, Phase, SupernetTrainer, load_supernets

from .train_helpers import tiny_splits


def _fits(spec, budget: Budget, config) -> bool:
    wide = config.__class__(config.resolution, max(spec.widths), config.exit, config.blocks)
    return count_params(spec, wide) <= budget.params


def test_a_full_share_draws_only_networks_within_the_budget():
    spec = tiny_recipe().space.to_spec(10)
    budget = middle_budget(spec)
    encoding = get_encoding("nat2", spec)
    uniform = sample_configs(encoding, 200, np.random.default_rng(0))
    assert not all(_fits(spec, budget, c) for c in uniform)  # the budget binds
    drawn = BudgetSampler(encoding, spec, budget, 1.0)(200, np.random.default_rng(0))
    assert all(_fits(spec, budget, c) for c in drawn)


@pytest.mark.parametrize("share", [0.25, 0.5, 0.75])
def test_a_partial_share_draws_at_least_that_share_within_the_budget(share):
    spec = tiny_recipe().space.to_spec(10)
    budget = middle_budget(spec)
    encoding = get_encoding("nat2", spec)
    base = np.mean([_fits(spec, budget, c) for c in sample_configs(encoding, 600, np.random.default_rng(1))])
    drawn = BudgetSampler(encoding, spec, budget, share)(600, np.random.default_rng(1))
    rate = np.mean([_fits(spec, budget, c) for c in drawn])
    expected = share + (1 - share) * base  # the forced share, plus the uniform draws that happen to fit
    assert rate == pytest.approx(expected, abs=0.06)


def test_the_trainer_samples_within_the_budget_only_when_the_recipe_asks(tmp_path):
    recipe = tiny_recipe("ee-dense", budget_share=1.0)
    spec = recipe.space.to_spec(4)
    budget = middle_budget(spec)
    trainer = SupernetTrainer(recipe, None, device="cpu", splits=tiny_splits(), progress=False, budget=budget)
    targets = trainer.step_targets(Phase("elastic", 1.0, 1, 0.01), np.random.default_rng(0), 40)
    assert all(count_params(spec, t.config) <= budget.params for t in targets)
    assert trainer.provenance["trained_for_budget"] == {"params": budget.params, "macs": None, "share": 1.0}
    plain = SupernetTrainer(tiny_recipe("ee-dense"), None, device="cpu", splits=tiny_splits(), progress=False)
    assert plain.config_sampler is None and "trained_for_budget" not in plain.provenance


def test_a_trained_super_network_records_the_budget_it_was_trained_for(tmp_path):
    recipe = tiny_recipe("ee-dense", {"widths": [1.0]}, budget_share=0.8, warmup_epochs=0)
    budget = middle_budget(recipe.space.to_spec(4))
    trainer = SupernetTrainer(recipe, tmp_path, device="cpu", splits=tiny_splits(), progress=False, budget=budget)
    metrics = trainer.run()
    expected = {"params": budget.params, "macs": None, "share": 0.8}
    assert metrics["trained_for_budget"] == expected
    assert json.loads((tmp_path / "supernet" / "metrics.json").read_text())["trained_for_budget"] == expected
    assert load_supernets(tmp_path / "supernet" / FINAL)[2]["trained_for_budget"] == expected
