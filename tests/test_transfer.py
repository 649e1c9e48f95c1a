"""Transfer: a source super-network (3 classes, one resolution) serves a target (5 classes, another resolution)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from factory.cli import main
from factory.errors import FactoryError
from factory.pipeline import BuildRequest, build
from factory.recipe import load_recipe, recipe_from_dict, save_recipe
from factory.runtime import make_session
from factory.search.distribution import width_epochs
from factory.space.config import SubnetConfig
from factory.space.counting import count_params
from factory.testing import middle_budget, tiny_build_recipe
from factory.train.run import train_supernet
from factory.train.transfer import (
    body_differences,
    plan_transfer,
    require_source,
    retargeted_supernets,
    transfer_phases,
    transfer_supernet,
)
from factory.training.trainer import FINAL, load_supernets

from .train_helpers import InterruptAfter

SOURCE_RES, TARGET_RES = [16], [16, 24]


def write_folder(root: Path, classes: int, per_class: int, test_per_class: int, seed: int) -> Path:
    """An image folder of `classes` learnable classes: each class its own colour pattern plus noise."""
    rng = np.random.default_rng(seed)
    for part, n in (("train", per_class), ("test", test_per_class)):
        for c in range(classes):
            folder = root / part / f"class{c}"
            folder.mkdir(parents=True)
            base = np.zeros((24, 24, 3))
            base[..., c % 3] = 60 + 40 * c
            base[: 12 * (1 + c % 2)] += 50
            for i in range(n):
                image = np.clip(base + rng.integers(0, 60, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


def tiny_recipe_for(data_dir: Path, resolutions: list[int], **sections) -> object:
    data = tiny_build_recipe().to_dict()
    data["data"] = {**data["data"], "dataset": "imagefolder", "data_dir": str(data_dir)}
    data["space"] = {**data["space"], "resolutions": resolutions}
    data["train"] = {**data["train"], "warmup_epochs": 2}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return recipe_from_dict(data)


def target_recipe(data_dir: Path, **transfer):
    return tiny_recipe_for(data_dir, TARGET_RES, transfer={"role": "target", "head_epochs": 2, **transfer})


def test_the_transfer_trains_what_the_recipe_asks(folders):
    recipe = target_recipe(folders["target"], tune_epochs=1, tune_lr=0.03, elastic_epochs=3)
    phases = transfer_phases(recipe, [1.0, 1.2])
    assert [(p.kind, p.width, p.epochs) for p in phases] == [
        ("heads", 1.0, 2),
        ("heads", 1.2, 2),
        ("warmup", 1.0, 1),
        ("warmup", 1.2, 1),
        ("adapt", 1.0, 3),
        ("adapt", 1.2, 3),
    ]
    assert [p.lr for p in phases[2:4]] == [0.03, 0.03]
    assert phases[-1].lr == (recipe.search.adapt_lr or recipe.train.lr)
    assert [p.kind for p in transfer_phases(target_recipe(folders["target"]), [1.0])] == ["heads"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("transfer")
    source = write_folder(root / "source", classes=3, per_class=40, test_per_class=8, seed=0)
    target = write_folder(root / "target", classes=5, per_class=24, test_per_class=8, seed=1)
    run = root / "source-run"
    train_supernet(tiny_recipe_for(source, SOURCE_RES), run, device="cpu", progress=False)
    return {"source": source, "target": target, "supernet": run / "supernet" / FINAL, "root": root}


@pytest.fixture(scope="module")
def transferred(folders) -> tuple[Path, dict]:
    out = folders["root"] / "target-run"
    recipe = target_recipe(folders["target"], tune_epochs=1, elastic_epochs=1)
    request = BuildRequest(recipe, out, device="cpu", supernet=folders["supernet"], progress=False, log=lambda _: None)
    return out, build(request)


def test_the_heads_are_rebuilt_for_the_target_and_the_body_kept(folders):
    plan = plan_transfer(folders["supernet"], target_recipe(folders["target"]), num_classes=5)
    assert plan.mode == "transfer"
    assert (plan.source_spec.num_classes, plan.target_spec.num_classes) == (3, 5)
    _, sources, _ = load_supernets(folders["supernet"])
    nets = retargeted_supernets(plan)
    for width, net in nets.items():
        source = sources[width].state_dict()
        for key, value in net.state_dict().items():
            if ".classifier." in key:
                assert value.shape[0] == 5 and source[key].shape[0] == 3
            else:
                assert torch.equal(value, source[key]), key


def test_the_head_warm_up_trains_only_the_heads(folders, tmp_path):
    recipe = target_recipe(folders["target"])
    plan = plan_transfer(folders["supernet"], recipe, num_classes=5)
    before = retargeted_supernets(plan)[1.0].state_dict()
    metrics = transfer_supernet(plan, recipe, tmp_path, device="cpu", progress=False)
    _, nets, state = load_supernets(tmp_path / "supernet" / FINAL)
    after = nets[1.0].state_dict()
    weights = [k for k in after if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(before[k], after[k]) for k in weights if not k.startswith("heads."))
    assert any(not torch.equal(before[k], after[k]) for k in weights if k.startswith("heads."))
    assert [h["phase"] for h in metrics["history"]] == ["heads-w1", "heads-w1", "heads-w1.2", "heads-w1.2"]
    assert state["spec"].num_classes == 5 and list(state["spec"].resolutions) == TARGET_RES
    assert state["source"]["mode"] == "transfer" and state["source"]["classes"] == 3


def test_the_transfer_s_elastic_epochs_sample_within_the_build_s_budget(folders, tmp_path):
    recipe = tiny_recipe_for(
        folders["target"],
        TARGET_RES,
        transfer={"role": "target", "head_epochs": 0, "elastic_epochs": 1},
        train={"budget_share": 1.0},
    )
    plan = plan_transfer(folders["supernet"], recipe, num_classes=5)
    budget = middle_budget(plan.target_spec)
    metrics = transfer_supernet(plan, recipe, tmp_path, device="cpu", progress=False, budget=budget)
    assert metrics["trained_for_budget"] == {"params": budget.params, "macs": None, "share": 1.0}
    assert metrics["source"]["mode"] == "transfer"  # the source is recorded beside the budget, not instead


def test_an_interrupted_head_warm_up_resumes_to_the_same_weights(folders, tmp_path):
    recipe = target_recipe(folders["target"])
    plan = plan_transfer(folders["supernet"], recipe, num_classes=5)
    transfer_supernet(plan, recipe, tmp_path / "whole", device="cpu", progress=False)
    with pytest.raises(KeyboardInterrupt):
        transfer_supernet(plan, recipe, tmp_path / "cut", device="cpu", progress=False, callbacks=[InterruptAfter(1)])
    assert not (tmp_path / "cut" / "supernet" / FINAL).exists()
    transfer_supernet(plan, recipe, tmp_path / "cut", device="cpu", progress=False)
    whole = load_supernets(tmp_path / "whole" / "supernet" / FINAL)[1][1.0].state_dict()
    cut = load_supernets(tmp_path / "cut" / "supernet" / FINAL)[1][1.0].state_dict()
    assert all(torch.equal(whole[k], cut[k]) for k in whole)


def test_a_transferred_build_delivers_picks_for_the_target_classes(transferred, folders):
    out, summary = transferred
    state = json.loads((out / "build.json").read_text())
    assert state["stages"]["transfer"]["mode"] == "transfer"
    history = json.loads((out / "supernet" / "metrics.json").read_text())["history"]
    heads = ["heads-w1", "heads-w1", "heads-w1.2", "heads-w1.2"]
    assert [h["phase"] for h in history] == [*heads, "warmup-w1", "warmup-w1.2", "adapt-w1", "adapt-w1.2"]
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["source"]["path"] == str(folders["supernet"]) and run_info["source"]["classes"] == 3
    assert summary["source"]["mode"] == "transfer" and summary["source"]["target_classes"] == 5
    assert "source super-network" in (out / "report.html").read_text()
    spec = load_supernets(out / "supernet" / FINAL)[0]
    assert spec.num_classes == 5
    assert summary["picks"]
    for pick in summary["picks"]:
        session = make_session(out / pick["deployed_onnx"])
        size = session.get_inputs()[0].shape[-1]
        (logits,) = session.run(None, {"image": np.zeros((2, 3, size, size), np.float32)})
        assert logits.shape == (2, 5)
    source_spec = load_supernets(folders["supernet"])[0]
    for entry in json.loads((out / "picks" / "picks.json").read_text())["picks"]:
        config = SubnetConfig.from_dict(entry["config"])
        assert entry["params"] == count_params(spec, config) != count_params(source_spec, config)


def test_a_build_interrupted_around_the_transfer_resumes(folders, tmp_path):
    out = tmp_path / "run"
    recipe = target_recipe(folders["target"])

    def request(stop: str | None) -> BuildRequest:
        return BuildRequest(
            recipe,
            out,
            device="cpu",
            supernet=folders["supernet"],
            resume=True,
            progress=False,
            stop_after=stop,
            log=lambda _: None,
        )

    build(request("train"))
    assert "transfer" not in json.loads((out / "build.json").read_text())["stages"]
    assert not (out / "supernet" / FINAL).exists()
    build(request("transfer"))
    stages = json.loads((out / "build.json").read_text())["stages"]
    assert stages["transfer"]["mode"] == "transfer" and "search" not in stages
    assert load_supernets(out / "supernet" / FINAL)[0].num_classes == 5
    build(request("search"))
    assert "search" in json.loads((out / "build.json").read_text())["stages"]


def test_a_supernet_with_another_body_is_a_one_line_error(folders, tmp_path):
    recipe = tiny_recipe_for(folders["target"], TARGET_RES, space={"kind": "ee-base"})
    path = tmp_path / "other.yaml"
    save_recipe(recipe, path)
    result = CliRunner().invoke(
        main,
        ["build", "--recipe", str(path), "--supernet", str(folders["supernet"]), "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "kind ee-dense -> ee-base" in lines[0]
    assert not (tmp_path / "r").exists()


def test_reuse_on_the_same_data_keeps_the_heads(folders):
    recipe = tiny_recipe_for(folders["source"], SOURCE_RES)
    assert plan_transfer(folders["supernet"], recipe, num_classes=3).mode == "reuse"
    other_res = tiny_recipe_for(folders["source"], TARGET_RES)
    assert plan_transfer(folders["supernet"], other_res, num_classes=3).mode == "retarget"


def test_body_differences_name_the_fields():
    recipe = tiny_build_recipe()
    a = recipe.space.to_spec(3)
    b = recipe_from_dict({**recipe.to_dict(), "space": {**recipe.to_dict()["space"], "strides": [2, 2, 2, 1, 1]}})
    assert body_differences(a, b.space.to_spec(7)) == ["strides [2, 2, 2, 1, 2] -> [2, 2, 2, 1, 1]"]
    assert body_differences(a, recipe.space.to_spec(100)) == []


def test_a_target_recipe_without_a_source_names_the_source_to_train(tmp_path):
    with pytest.raises(FactoryError, match="factory train --recipe tinyimagenet"):
        require_source(load_recipe("cifar10"), None)
    require_source(load_recipe("transfer-cpu"), None)  # trains from scratch with its own settings
    result = CliRunner().invoke(main, ["train", "--recipe", "cifar100", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "--supernet" in result.output and not (tmp_path / "r").exists()


def test_the_shipped_target_recipes_match_their_sources():
    for target in ("cifar10", "cifar100", "transfer-cpu"):
        recipe = load_recipe(target)
        source = load_recipe(recipe.transfer.source)
        assert recipe.transfer.role == "target" and source.transfer.role == "source"
        assert body_differences(source.space.to_spec(10), recipe.space.to_spec(10)) == []


@pytest.mark.parametrize(
    ("total", "widths", "expected"),
    [
        (5, [1.0] * 4, {1.0: 5}),
        (5, [1.0, 1.2, 1.2, 1.2], {1.0: 1, 1.2: 4}),
        (3, [1.0, 1.2], {1.0: 1, 1.2: 2}),  # a tie goes to the wider (the teacher's) width
        (4, [1.2] * 3, {1.2: 4}),
        (0, [1.0, 1.2], {1.0: 0, 1.2: 0}),
    ],
)
def test_adaptation_epochs_follow_the_widths_the_search_uses(total, widths, expected):
    split = width_epochs(total, widths)
    assert split == expected and sum(split.values()) == total
