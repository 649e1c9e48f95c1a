import numpy as np
import pytest
import torch

from factory.budget.feasibility import Budget, check_feasible, smallest_reachable
from factory.elastic import build_supernet
from factory.errors import FactoryError
from factory.finetune.picks import choose_picks
from factory.finetune.tune import best_exit_subset, finetune_pick
from factory.space import SubnetConfig, largest_config, smallest_config
from factory.space.counting import count_params
from factory.space.footprint import flash_bytes
from factory.testing import tiny_recipe
from tests.train_helpers import tiny_splits


def _archive(n: int = 40, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        params = int(rng.integers(50_000, 1_000_000))
        records.append(
            {
                "config": {"id": i},
                "top1": float(0.5 + 0.4 * np.log(params) / np.log(1e6) - rng.random() * 0.05),
                "params": params,
                "macs": params * 20,
            }
        )
    return records


def test_picks_never_hold_the_same_trade_off_twice():
    # Four records share the best (top1, params) point: the front counts it once, the first of them.
    records = [{"config": {"id": i}, "top1": 0.9, "params": 100, "macs": 10} for i in range(4)]
    records += [{"config": {"id": 4}, "top1": 0.8, "params": 50, "macs": 10}]
    picks = choose_picks(records, Budget(), count=4)
    assert [(p["config"]["id"], p["pick_reason"]) for p in picks] == [(0, "best-accuracy"), (4, "best-params")]


def test_picks_meet_the_budget_and_include_the_extremes():
    records = _archive()
    budget = Budget(params=400_000)
    picks = choose_picks(records, budget, count=4)
    assert 1 <= len(picks) <= 4
    assert all(p["params"] <= 400_000 for p in picks)
    feasible = [r for r in records if r["params"] <= 400_000]
    assert max(p["top1"] for p in picks) == max(r["top1"] for r in feasible)
    assert min(p["params"] for p in picks) <= min(
        r["params"] for r in feasible if r["top1"] >= min(p["top1"] for p in picks)
    )
    reasons = {p["pick_reason"] for p in picks}
    assert "best-accuracy" in reasons and "best-params" in reasons
    assert len({id(p["config"]) for p in picks}) == len(picks)


def test_macs_budget_and_objective():
    records = _archive()
    picks = choose_picks(records, Budget(macs=6_000_000), count=3, objective="macs")
    assert all(p["macs"] <= 6_000_000 for p in picks)


def test_no_feasible_member_is_a_clear_error():
    with pytest.raises(FactoryError, match="raise the budget"):
        choose_picks(_archive(), Budget(params=10), count=4)


def test_infeasible_budget_names_the_smallest_reachable():
    spec = tiny_recipe("ee-dense").space.to_spec(10)
    least = smallest_reachable(spec)
    params = least["params"]
    check_feasible(spec, Budget(**least))
    with pytest.raises(FactoryError) as info:
        check_feasible(spec, Budget(params=params - 1))
    assert "smallest reachable" in str(info.value) and "\n" not in str(info.value)
    # Flash and RAM limits below the smallest network's FP32 graph are refused, naming its figures.
    with pytest.raises(FactoryError, match=r"of flash.*of RAM") as info:
        check_feasible(spec, Budget(ram=least["ram"] - 1), advice="raise --budget-ram")
    assert "RAM <=" in str(info.value) and str(info.value).endswith("raise --budget-ram")
    # A search passes the smallest network its encoding can express, and its own advice.
    last_exit = smallest_config(spec).with_exit(5)
    assert smallest_reachable(spec, [last_exit])["params"] > params
    with pytest.raises(FactoryError, match=r"raise --budget-params$"):
        check_feasible(spec, Budget(params=params), [last_exit], "raise --budget-params")
    check_feasible(spec, Budget.from_dict({}), [last_exit])
    assert Budget.from_dict({"macs": 7}) == Budget(None, 7)
    with pytest.raises(ValueError, match="energy"):
        Budget.from_dict({"energy": 3})
    assert Budget.from_dict({"latency": 3.5}) == Budget(latency=3.5)


def test_best_exit_subset_respects_budget_and_keeps_own_exit():
    spec = tiny_recipe("ee-dense").space.to_spec(4)
    config = largest_config(spec, 1.0, 24).with_exit(3)
    labels = torch.tensor([0, 1, 2, 3] * 4)
    good = torch.nn.functional.one_hot(labels, 4).float() * 5
    logits = [good, -good, good * 0]
    subset = best_exit_subset(logits, labels, (1, 2, 3), spec, config, Budget())
    assert 3 in subset and 2 not in subset
    tight = Budget(params=count_params(spec, config))
    assert best_exit_subset(logits, labels, (1, 2, 3), spec, config, tight) == (3,)
    # The same with a flash limit: the ensemble of exits 1 and 3 carries one more head than exit 3 alone.
    flash = Budget(flash=flash_bytes(spec, config))
    assert best_exit_subset(logits, labels, (1, 2, 3), spec, config, flash) == (3,)
    assert best_exit_subset(logits, labels, (1, 2, 3), spec, config, Budget(flash=10**9)) == subset


@pytest.mark.parametrize("kind", ["ee-dense", "se-base"])
def test_two_step_finetuning_runs_and_reports(kind):
    recipe = tiny_recipe(kind)
    recipe.finetune.max_epochs = 2
    recipe.finetune.patience = 1
    recipe.finetune.batch_size = 32
    splits = tiny_splits(n_train=64, n_eval=32)
    spec = recipe.space.to_spec(splits.num_classes)
    supernet = build_supernet(spec, 1.0)
    base = smallest_config(spec, 1.0, 16)
    config = base.with_exit(3) if spec.early_exit else base
    result, metrics = finetune_pick(recipe, supernet, splits, config, Budget(), torch.device("cpu"), progress=False)
    assert 0 <= metrics["best_epochs"] <= 2
    assert 0.0 <= metrics["top1_before"] <= 1.0 and 0.0 <= metrics["top1_after"] <= 1.0
    if spec.early_exit:
        assert metrics["aep"] and list(metrics["top1_before_per_exit"]) == ["1", "2", "3"]
        assert set(metrics["exits"]) <= {1, 2, 3} and 3 in metrics["exits"]
        assert metrics["params_after"] >= metrics["params_before"]
    else:
        assert not metrics["aep"] and metrics["exits"] == [5]
        assert metrics["params_after"] == metrics["params_before"]
    out = result.model(torch.zeros(2, 3, 16, 16))
    assert isinstance(out, (torch.Tensor, list))
    assert isinstance(config, SubnetConfig)
