"""The NAT2 / NAT loop end to end on a tiny untrained super-network: archive, cache, budgets, resume."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import factory.search.evaluation as evaluation
from factory.budget.feasibility import Budget
from factory.elastic import build_supernets
from factory.errors import FactoryError
from factory.search.engine import run_search
from factory.search.evaluation import SubnetEvaluator
from factory.space.config import SubnetConfig
from factory.space.encoding import get_encoding
from factory.space.sampling import largest_vector, sample_configs, smallest_vector
from factory.testing import tiny_recipe
from factory.training.checkpoint import load_checkpoint, save_checkpoint
from tests.train_helpers import tiny_splits

SEARCH = {
    "iterations": 2,
    "archive_size": 8,
    "init_multiplier": 2,
    "candidates_per_iteration": 2,
    "predictor_folds": 3,
    "population": 12,
    "generations": 3,
    "distribution_top": 4,
    "adapt_epochs": 0,
    "hv_reference": (1.0, 1_000_000.0),
    "nat_initial_samples": 10,
}


def make_recipe(**search):
    recipe = tiny_recipe("ee-dense", bn_calib_images=32, eval_batch_size=64)
    return dataclasses.replace(recipe, search=dataclasses.replace(recipe.search, **{**SEARCH, **search}))


@pytest.fixture(scope="module")
def splits():
    return tiny_splits(n_train=64, n_eval=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, splits) -> Path:
    """A run folder holding an untrained tiny super-network checkpoint (mechanics only)."""
    run = tmp_path_factory.mktemp("run")
    recipe = make_recipe()
    spec = recipe.space.to_spec(splits.num_classes)
    torch.manual_seed(0)
    nets = build_supernets(spec)
    state = {"recipe": recipe.to_dict(), "spec": spec, "supernets": {w: n.state_dict() for w, n in nets.items()}}
    save_checkpoint(run / "supernet" / "supernet.pt", {**state, "metrics": {}})
    return run


def fresh_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def search(run: Path, splits, recipe=None, **kw):
    """`run_search` on the test's data; budget_<name>= keywords are the limits, as the command line gives them."""
    kw.setdefault("device", "cpu")
    kw.setdefault("progress", False)
    limits = {key.removeprefix("budget_"): kw.pop(key) for key in list(kw) if key.startswith("budget_")}
    if limits:
        kw["budget"] = Budget.parse(**limits, profile=kw.get("latency_profile"))
    return run_search(run, recipe=recipe or make_recipe(), splits=splits, backend="eager", **kw)


def log(run: Path) -> list[dict]:
    lines = (run / "search" / "archive.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "eval_s"} for line in lines]


def test_nat2_end_to_end(trained, splits, tmp_path) -> None:
    run = fresh_run(trained, tmp_path)
    result = search(run, splits)
    folder = run / "search"
    assert {"archive.jsonl", "state.json", "history.json", "result.json"} <= {p.name for p in folder.iterdir()}
    history = json.loads((folder / "history.json").read_text())
    assert [h["iteration"] for h in history] == [0, 1, 2]
    assert all(0.0 <= h["hypervolume"] <= 1.0 for h in history)
    assert history[0]["new_evaluations"] == 16 and history[1]["new_evaluations"] == 2
    assert {"fit", "search", "select", "evaluate"} <= set(history[1]["seconds"])
    assert len(result["archive"]) == 8 and result["front"]
    assert result["evaluations"] == len(log(run)) == 16 + 2 + 2
    first = log(run)[0]
    assert {"config", "encoding", "top1", "params", "macs", "iteration", "version", "phase"} <= set(first)
    # The initial archive: the size asked for, with the smallest and the largest network.
    encoding = get_encoding("nat2", json_spec(run))
    state = json.loads((folder / "state.json").read_text())
    init = [r for r in log(run) if r["phase"] == "init"]
    assert len(init) == 16
    keys = {r["key"] for r in state["archive"]}
    assert len(keys) == 8
    assert encoding.decode(smallest_vector(encoding, 1.0)).key() == init[0]["key"]
    assert encoding.decode(largest_vector(encoding, 1.2)).key() == init[1]["key"]
    # Resuming a finished search evaluates nothing.
    again = search(run, splits)
    assert again["evaluations"] == result["evaluations"] and len(log(run)) == result["evaluations"]


def test_initial_archive_keeps_the_extremes(trained, splits, tmp_path) -> None:
    run = fresh_run(trained, tmp_path)
    result = search(run, splits, recipe=make_recipe(iterations=0, init_multiplier=2))
    encoding = get_encoding("nat2", json_spec(run))
    keys = {r["key"] for r in result["archive"]}
    assert len(keys) == 8
    assert encoding.decode(smallest_vector(encoding, 1.0)).key() in keys
    assert encoding.decode(largest_vector(encoding, 1.2)).key() in keys
    assert len(log(run)) == 16


def json_spec(run: Path):
    return load_checkpoint(run / "supernet" / "supernet.pt")["spec"]


def test_nat_baseline_grows_its_archive(trained, splits, tmp_path) -> None:
    run = fresh_run(trained, tmp_path)
    result = search(run, splits, recipe=make_recipe(iterations=1), algorithm="nat")
    history = result["history"]
    assert result["algorithm"] == "nat"
    assert [h["archive_size"] for h in history] == [10, 18]  # K = 8, no truncation
    assert all(len(r["encoding"]) == 22 for r in result["archive"])  # no exit gene
    assert all(r["config"]["exit"] == 5 for r in result["archive"])


def test_budgets_bind_candidates_and_infeasible_budgets_fail(trained, splits, tmp_path) -> None:
    run = fresh_run(trained, tmp_path)
    encoding = get_encoding("nat2", json_spec(run))
    from factory.space.counting import count_params

    smallest = count_params(encoding.spec, encoding.decode(smallest_vector(encoding)))
    budget = smallest * 3
    search(run, splits, budget_params=budget)
    candidates = [r for r in log(run) if r["phase"] == "candidate"]
    assert candidates and all(r["params"] <= budget for r in candidates)
    with pytest.raises(FactoryError, match="smallest reachable network"):
        search(run, splits, budget_params=smallest - 1, force=True)


def test_flash_and_ram_budgets_bind_candidates(trained, splits, tmp_path) -> None:
    from factory.budget.feasibility import figures, int8_layout

    run = fresh_run(trained, tmp_path)
    encoding = get_encoding("nat2", json_spec(run))
    layout = int8_layout(make_recipe())  # flash and RAM of the precision the build delivers

    def sizes(config):
        values = figures(encoding.spec, config, int8=layout)
        return values.flash, values.ram

    smallest = encoding.decode(smallest_vector(encoding))
    flash, ram = 3 * sizes(smallest)[0], 2 * sizes(smallest)[1]
    search(run, splits, budget_flash=f"{flash}B", budget_ram=ram, objectives="flash")
    records = log(run)
    candidates = [r for r in records if r["phase"] == "candidate"]
    assert candidates and all(r["flash_bytes"] <= flash and r["ram_bytes"] <= ram for r in candidates)
    for r in records:  # the archive records carry the exact figures of each network's delivered graph
        assert (r["flash_bytes"], r["ram_bytes"]) == sizes(SubnetConfig.from_dict(r["config"]))
    result = json.loads((run / "search" / "result.json").read_text())
    assert result["budgets"] == {"flash": flash, "ram": ram} and result["objectives"] == ["top1", "flash"]
    assert result["flash_ram_precision"] == ("fp32" if layout is None else "int8")
    with pytest.raises(FactoryError, match=r"smallest reachable network.*raise --budget-ram$"):
        search(run, splits, budget_ram=sizes(smallest)[1] - 1, force=True)


def test_a_latency_budget_binds_through_the_profile_predictor(trained, splits, tmp_path) -> None:
    from factory.budget.latency_model import feature_matrix

    run = fresh_run(trained, tmp_path)
    spec = json_spec(run)
    encoding = get_encoding("nat2", spec)
    configs = sample_configs(encoding, 40, np.random.default_rng(0))
    X = feature_matrix(spec, configs)
    latency = 0.01 + 2e-7 * X[:, 3] + 1e-3 * X[:, 1]  # a device whose cost is dispatch plus dense MACs
    networks = [{"config": c.to_dict(), "latency_ms": float(t)} for c, t in zip(configs, latency, strict=True)]
    profile = tmp_path / "device.json"
    profile.write_text(
        json.dumps({"format": "factory-profile/1", "space_fingerprint": spec.fingerprint(), "networks": networks})
    )
    limit = float(np.median(latency))
    search(run, splits, budget_latency=f"{limit}ms", latency_profile=profile)
    candidates = [r for r in log(run) if r["phase"] == "candidate"]
    assert candidates and all(r["latency_ms"] <= limit for r in candidates)
    result = json.loads((run / "search" / "result.json").read_text())
    assert result["budgets"] == {"latency": limit} and result["latency_profile"] == str(profile)
    with pytest.raises(FactoryError, match="--budget-latency needs --latency-profile"):
        search(run, splits, budget_latency=1.0, force=True)


def test_resume_ends_with_the_same_archive(trained, splits, tmp_path, monkeypatch) -> None:
    recipe = make_recipe(adapt_epochs=1)
    full_run = fresh_run(trained, tmp_path / "full")
    full = search(full_run, splits, recipe=recipe)

    assert full["evaluations"] == 16 + 2 * (2 + 8)
    saved = full["history"][1]["evaluations"]  # iteration 1 is saved after this many evaluations
    real = evaluation.evaluate_config
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == saved + 5:  # iteration 2: 2 candidates and 2 re-evaluations after adaptation logged
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    part_run = fresh_run(trained, tmp_path / "part")
    monkeypatch.setattr(evaluation, "evaluate_config", flaky)
    with pytest.raises(KeyboardInterrupt):
        search(part_run, splits, recipe=recipe)
    state = json.loads((part_run / "search" / "state.json").read_text())
    assert state["iteration"] == 1
    with pytest.raises(FactoryError, match="--resume"):
        search(part_run, splits, recipe=recipe, resume=False)
    calls["n"] = -1000
    resumed = search(part_run, splits, recipe=recipe)
    assert calls["n"] == -1000 + (full["evaluations"] - saved - 4)  # logged results are reused, not recomputed
    assert [(r["key"], r["top1"]) for r in resumed["archive"]] == [(r["key"], r["top1"]) for r in full["archive"]]
    assert log(part_run) == log(full_run)
    assert resumed["version"] == full["version"] and resumed["hypervolume"] == full["hypervolume"]
    assert not (part_run / "search" / "supernet.prev.pt").exists()


def test_resume_rejects_other_settings_and_corrupt_state(trained, splits, tmp_path) -> None:
    run = fresh_run(trained, tmp_path)
    small = {"init_multiplier": 1, "candidates_per_iteration": 1}
    search(run, splits, recipe=make_recipe(iterations=0, **small))
    with pytest.raises(FactoryError, match="other settings"):
        search(run, splits, recipe=make_recipe(iterations=0, **small), objectives="macs")
    extended = search(run, splits, recipe=make_recipe(iterations=1, **small))  # more iterations may be added
    assert [h["iteration"] for h in extended["history"]] == [0, 1]
    (run / "search" / "state.json").write_text("{not json")
    with pytest.raises(FactoryError, match=r"corrupt.*--force"):
        search(run, splits)
    assert search(run, splits, recipe=make_recipe(iterations=0, **small), force=True)["iterations"] == 0


def test_cache_hits_avoid_reevaluation(trained, splits, monkeypatch) -> None:
    from factory.training.trainer import load_supernets

    spec, nets, _ = load_supernets(trained / "supernet" / "supernet.pt")
    evaluator = SubnetEvaluator(nets, splits, make_recipe(), backend="eager")
    calls = {"n": 0}
    real = evaluation.evaluate_config

    def counted(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_config", counted)
    config = sample_configs(get_encoding("nat2", spec), 1, np.random.default_rng(0))[0]
    first, cached = evaluator.top1(config)
    again, cached_again = evaluator.top1(config)
    assert (cached, cached_again) == (False, True) and first == again and calls["n"] == 1
    assert evaluator.cache_hits == 1 and evaluator.evaluations == 1
    old = evaluator.version
    with torch.no_grad():
        next(nets[config.width].parameters()).add_(0.1)
    assert evaluator.refresh() != old  # new weights, new version: evaluated again
    evaluator.top1(config)
    assert calls["n"] == 2


def test_stepping_with_ask_and_tell_matches_run(trained, splits, tmp_path) -> None:
    from factory.search.engine import SearchEngine
    from factory.search.settings import resolve_settings
    from factory.training.trainer import load_supernets

    recipe = make_recipe(iterations=1, init_multiplier=1)
    ran = search(fresh_run(trained, tmp_path / "ran"), splits, recipe=recipe)
    run = fresh_run(trained, tmp_path / "stepped")
    spec, nets, _ = load_supernets(run / "supernet" / "supernet.pt")
    seen = []

    class Record:
        def on_iteration_end(self, engine, record):
            seen.append((record["iteration"], engine.iteration))

    engine = SearchEngine(
        recipe, spec, nets, splits, resolve_settings(recipe.search), run / "search", backend="eager", progress=False
    )
    engine.callbacks.append(Record())
    assert not engine.has_next()  # nothing before setup
    engine.setup()
    while engine.has_next():
        candidates = engine.ask()
        with pytest.raises(ValueError):
            engine.tell([])
        assert len(candidates) == 2
        record = engine.tell(engine.evaluate(candidates))
        assert record["iteration"] == engine.iteration == 1
    with pytest.raises(RuntimeError):
        engine.tell([])  # nothing asked
    result = engine.finish()
    assert seen == [(0, 0), (1, 1)]
    assert [(r["key"], r["top1"]) for r in result["archive"]] == [(r["key"], r["top1"]) for r in ran["archive"]]
    assert log(run) == log(tmp_path / "ran" / "run")
