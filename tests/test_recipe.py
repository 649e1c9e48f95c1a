from pathlib import Path

import pytest
import yaml

from factory.errors import FactoryError
from factory.recipe import RECIPES_DIR, Recipe, load_recipe, recipe_from_dict, save_recipe

SHIPPED = ["digits", "cifar10", "cifar100", "tinyimagenet", "cifar10-cpu", "source-cpu", "transfer-cpu"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_load(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    spec = recipe.space.to_spec(num_classes=10)
    assert spec.kind == recipe.space.kind
    assert isinstance(recipe.space.resolutions, tuple)


def test_every_shipped_recipe_is_tested():
    assert sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) == sorted(SHIPPED)


def test_unknown_key_names_key_and_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochz: 3\n")
    with pytest.raises(FactoryError) as info:
        load_recipe(path)
    assert "epochz" in str(info.value) and "bad.yaml" in str(info.value) and "train" in str(info.value)


def test_unknown_section(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(FactoryError, match="trian"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"train": {"epochs": "ten"}}, "train.epochs"),
        ({"train": {"epochs": 2.5}}, "train.epochs"),
        ({"train": {"nesterov": "yes"}}, "train.nesterov"),
        ({"space": {"resolutions": 32}}, "space.resolutions"),
        ({"space": {"resolutions": [32, "x"]}}, "space.resolutions[1]"),
        ({"data": {"mean": [0.5, 0.5]}}, "data.mean"),
        ({"export": {"tensorrt": {"fp16": 1}}}, "export.tensorrt.fp16"),
        ({"search": []}, "search"),
        ({"train": {"sandwich_share": 1.0}}, "train.sandwich_share"),
        ({"train": {"sandwich_share": -0.1}}, "train.sandwich_share"),
        ({"train": {"subnet_loss": "avg"}}, "train.subnet_loss"),
        ({"transfer": {"role": "teacher"}}, "transfer.role"),
        ({"transfer": {"head_epochs": -1}}, "transfer.head_epochs"),
        # what the search would reject, after the training: refused when the recipe is read
        ({"search": {"archive_size": 4}}, "search.archive_size"),
        ({"search": {"nat_initial_samples": 4}}, "search.nat_initial_samples"),
        ({"search": {"mutation_eta": 0}}, "search.mutation_eta"),
        ({"search": {"algorithm": "nat3"}}, "search.algorithm"),
        ({"search": {"objectives": ["top1", "flops"]}}, "search.objectives"),
        ({"search": {"objectives": ["top1", "params", "params"]}}, "search.objectives"),
    ],
)
def test_mistyped_keys_are_named(data, needle):
    with pytest.raises(FactoryError) as info:
        recipe_from_dict(data, "my.yaml")
    assert needle in str(info.value) and "my.yaml" in str(info.value)


def test_ints_accepted_for_floats_and_lists_become_tuples():
    recipe = recipe_from_dict({"train": {"lr": 1}, "space": {"widths": [1, 1.2]}})
    assert recipe.train.lr == 1.0 and isinstance(recipe.train.lr, float)
    assert recipe.space.widths == (1.0, 1.2)


def test_resolved_recipe_round_trips_through_yaml(tmp_path: Path):
    recipe = load_recipe("digits")
    out = tmp_path / "recipe.yaml"
    save_recipe(recipe, out)
    again = load_recipe(out)
    assert again == recipe
    assert yaml.safe_load(out.read_text())["search"]["archive_size"] == recipe.search.archive_size


def test_invalid_yaml_is_clear(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: [\n")
    with pytest.raises(FactoryError, match="not valid YAML"):
        load_recipe(path)


def test_unknown_recipe_lists_shipped():
    with pytest.raises(FactoryError, match="digits"):
        load_recipe("no-such-recipe")


def test_defaults_are_paper_values():
    recipe = Recipe()
    assert recipe.search.archive_size == 300 and recipe.search.candidates_per_iteration == 25
    assert recipe.train.lr == 2.5e-3 and recipe.train.warmup_lr == 7.5e-3
    assert recipe.finetune.patience == 30 and recipe.finetune.max_epochs == 150


def test_a_recipe_with_the_old_postprocess_section_still_reads() -> None:
    from factory.recipe import recipe_from_dict

    recipe = recipe_from_dict({"finetune": {"picks": 2}}, "new")
    old = recipe_from_dict({"postprocess": {"picks": 2}}, "old")
    assert old == recipe and old.finetune.picks == 2
