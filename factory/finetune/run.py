"""`factory finetune`: choose the picks from a finished search and post-process each one.

RUN/picks/picks.json lists the picks (chosen once, so a resumed run post-processes the same ones);
RUN/picks/<id>/ holds subnet.json, model.pt and metrics.json. A pick whose metrics.json exists is done
and skipped, so an interrupted run continues with the next unfinished pick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.budget.feasibility import BUDGETED, Budget, check_feasible, delivered_precision, int8_layout
from factory.errors import FactoryError
from factory.finetune.measure import measure_config, measure_network
from factory.finetune.picks import choose_picks, pick_id
from factory.finetune.tune import finetune_pick
from factory.io import write_json_atomic
from factory.nn.pick_file import save_pick_model
from factory.runfolder import pick_steps
from factory.runinfo import run_recipe
from factory.space import SpaceSpec, SubnetConfig
from factory.space.counting import count_macs, count_params
from factory.training.device import resolve_device
from factory.training.trainer import FINAL, load_supernets


def read_search_result(run: Path) -> dict[str, Any]:
    """RUN/search/result.json, or a clear error when the search has not finished."""
    path = run / "search" / "result.json"
    if not path.is_file():
        raise FactoryError(f"{path} not found; run `factory search --run {run}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise FactoryError(f"{path} is corrupt; rerun `factory search --run {run} --force`") from None


def finetune_run(
    run_dir: str | Path,
    pick: str | None = None,
    budget: Budget | None = None,
    device: str = "auto",
    latency_profile: str | Path | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Choose the picks (once) and post-process each unfinished one; returns every pick's metrics. `budget`: the
    limits to pick under, each one not given taken from the search's."""
    run = Path(run_dir)
    result = read_search_result(run)
    weights = Path(result["supernet"]) if result.get("supernet") else run / "supernet" / FINAL
    spec, supernets, checkpoint = load_supernets(weights)
    recipe = run_recipe(run, checkpoint.get("recipe"))
    budget = picking_budget(budget, result, spec, recipe, latency_profile)
    index = choose_once(run / "picks" / "picks.json", result, budget, recipe)
    if pick is not None and pick not in {p["id"] for p in index["picks"]}:
        raise FactoryError(f"no pick {pick!r}; choose one of {', '.join(p['id'] for p in index['picks'])}")
    from factory.data import load_dataset

    splits = load_dataset(recipe.data)
    torch_device = resolve_device(device)
    done = []
    for step in pick_steps(run, index["picks"], only=pick, is_done=finetuned):
        if step.done:
            done.append(json.loads((step.folder / "metrics.json").read_text()))
            continue
        if progress:
            print(f"post-processing pick {step.number}/{len(index['picks'])}: {step.entry['id']}", flush=True)
        number = step.number - 1  # seeds count from 0
        done.append(
            finetune_entry(run, step.entry, number, spec, supernets, recipe, splits, budget, torch_device, progress)
        )
    return done


def finetuned(folder: Path) -> bool:
    """Whether a pick is post-processed: its metrics.json is written last."""
    return (folder / "metrics.json").is_file()


def picking_budget(
    given: Budget | None, result: dict[str, Any], spec: SpaceSpec, recipe: Any, latency_profile: str | Path | None
) -> Budget:
    """The limits the picks must meet: those `given`, the search's for the rest; with the latency model of the
    device profile and the delivered precision's INT8 layout; a budget no network meets is an error here."""
    limits = given.limits() if given is not None else {}
    budget = Budget.from_dict({**(result.get("budgets") or {}), **limits})
    profile = latency_profile or result.get("latency_profile")
    if budget.latency is not None:
        if not profile:
            raise FactoryError("a latency budget needs the search's --latency-profile; rerun the search with it")
        from factory.budget.latency_model import LatencyModel

        budget = budget.with_model(LatencyModel(spec, profile, delivered_precision(recipe)))
    budget = budget.with_int8(int8_layout(recipe))  # flash and RAM in the precision the picks are delivered in
    check_feasible(spec, budget)
    return budget


def choose_once(index_path: Path, result: dict[str, Any], budget: Budget, recipe: Any) -> dict[str, Any]:
    """RUN/picks/picks.json: the picks chosen from the search's archive under `budget`, written the first time and
    read back after (so a resumed run post-processes the same picks); a different budget is an error."""
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        if index.get("budget") != budget.to_dict():
            raise FactoryError(
                f"{index_path} was chosen for budget {index.get('budget')}, not {budget.to_dict()}; "
                "delete RUN/picks to choose again"
            )
        return index
    objectives = [o for o in result.get("objectives", ["top1", "params"]) if o != "top1"]
    objective = objectives[0] if objectives and objectives[0] in BUDGETED else "params"
    chosen = choose_picks(result["archive"], budget, recipe.finetune.picks, objective)
    index: dict[str, Any] = {"budget": budget.to_dict(), "objective": objective, "picks": []}
    for i, record in enumerate(chosen):
        config = SubnetConfig.from_dict(record["config"])
        ident = pick_id(config, i)
        write_json_atomic(index_path.parent / ident / "subnet.json", {"id": ident, **config.to_dict()})
        index["picks"].append(
            {
                "id": ident,
                "reason": record["pick_reason"],
                "val_top1": record["top1"],
                "params": record["params"],
                "macs": record["macs"],
                "config": record["config"],
            }
        )
    write_json_atomic(index_path, index)
    return index


def finetune_entry(
    run: Path,
    entry: dict[str, Any],
    number: int,
    spec: SpaceSpec,
    supernets: dict[float, Any],
    recipe: Any,
    splits: Any,
    budget: Budget,
    device: Any,
    progress: bool,
) -> dict[str, Any]:
    """Post-process one pick: the two fine-tuning steps, its counts per exit and fvcore's; writes model.pt and
    metrics.json (written last: it marks the pick done) and returns the metrics."""
    folder = run / "picks" / entry["id"]
    config = SubnetConfig.from_dict(entry["config"])
    outcome, metrics = finetune_pick(
        recipe,
        supernets[config.width],
        splits,
        config,
        budget,
        device,
        seed=recipe.train.seed + number,
        progress=progress,
    )
    exits = [e for e in range(1, config.exit + 1) if e in spec.exits()]
    metrics = {
        "id": entry["id"],
        "reason": entry["reason"],
        "val_top1_search": entry["val_top1"],
        "params_per_exit": {str(e): count_params(spec, config.with_exit(e)) for e in exits},
        "macs_per_exit": {str(e): count_macs(spec, config.with_exit(e)) for e in exits},
        **metrics,
    }
    metrics["fvcore"] = {
        "convention": "macs: conv + linear multiply-adds at batch 1; macs_full adds BN, pooling, elementwise",
        "extracted": measure_config(spec, config).to_dict(),
        "deployed": measure_network(outcome.model, config.resolution).to_dict(),
    }
    save_pick_model(folder / "model.pt", spec, config, outcome.exits, outcome.model)
    write_json_atomic(folder / "metrics.json", metrics)
    return metrics
