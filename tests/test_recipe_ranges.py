"""Every numeric recipe key has a range, checked when the recipe is validated (a key added later is covered)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any

import pytest

from factory.bounds import Range
from factory.errors import FactoryError
from factory.recipe import Recipe, recipe_from_dict


def _numeric_leaves(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """(key path, annotation, default) of every int or float field (or tuple of them) in the recipe's tree."""
    hints = typing.get_type_hints(cls, include_extras=True)
    leaves = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(tp):
            leaves += _numeric_leaves(tp, (*prefix, f.name))
        elif _base(_element(tp)) in (int, float):
            leaves.append(((*prefix, f.name), tp, default))
    return leaves


def _strip_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, type(int | None)) and len(args) == 1 else tp


def _element(tp: Any) -> Any:
    """The element annotation of a tuple field (the field's own annotation otherwise)."""
    tp = _strip_optional(tp)
    return typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp


def _base(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp


def _bound(tp: Any) -> Range | None:
    if typing.get_origin(tp) is not Annotated:
        return None
    return next((x for x in typing.get_args(tp)[1:] if isinstance(x, Range)), None)


LEAVES = _numeric_leaves(Recipe)


def test_the_walk_finds_the_recipe_keys() -> None:
    keys = {".".join(path) for path, _, _ in LEAVES}
    assert {"train.warmup_epochs", "train.lr", "data.image_size", "space.resolutions", "search.adapt_epochs"} <= keys
    assert {"export.tensorrt.max_batch", "bench.batch_sizes", "finetune.lr"} <= keys


@pytest.mark.parametrize(("path", "tp", "default"), LEAVES, ids=[".".join(p) for p, _, _ in LEAVES])
def test_every_numeric_key_refuses_a_value_out_of_its_range(path, tp, default) -> None:
    bound = _bound(_element(tp))
    assert bound is not None, f"recipe key {'.'.join(path)} has no range: annotate it with factory.bounds"
    bad = bound.outside()
    if _base(_element(tp)) is int:
        bad = int(bad)
    value: Any = [bad] * len(default) if isinstance(default, tuple) else bad
    data: dict[str, Any] = {}
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(FactoryError) as info:
        recipe_from_dict(data, "my-recipe.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("my-recipe.yaml: ")
    assert ".".join(path) in message and repr(bad) in message and bound.describe() in message


@pytest.mark.parametrize(("path", "tp", "default"), LEAVES, ids=[".".join(p) for p, _, _ in LEAVES])
def test_every_default_is_in_range(path, tp, default) -> None:
    bound = _bound(_element(tp))
    values = default if isinstance(default, tuple) else (default,)
    assert all(v is None or bound.contains(v) for v in values)


def test_out_of_range_value_in_a_file_names_the_file(tmp_path) -> None:
    from factory.recipe import load_recipe

    path = tmp_path / "neg.yaml"
    path.write_text("train:\n  warmup_epochs: -3\n")
    with pytest.raises(FactoryError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}: train.warmup_epochs: -3 is out of range; expected an integer >= 0"


def test_tensorrt_batch_profile_must_be_ordered() -> None:
    with pytest.raises(FactoryError, match="min_batch"):
        recipe_from_dict({"export": {"tensorrt": {"min_batch": 16, "opt_batch": 8}}}, "my.yaml")


def test_boundaries_are_accepted() -> None:
    recipe = recipe_from_dict(
        {"train": {"warmup_epochs": 0, "sandwich_share": 0.0, "grad_clip": 0}, "search": {"iterations": 0}}
    )
    assert recipe.train.warmup_epochs == 0 and recipe.search.iterations == 0


def test_a_replaced_key_says_what_to_write_instead() -> None:
    with pytest.raises(FactoryError, match=r"train\.precision: auto"):
        recipe_from_dict({"train": {"amp": True}}, "old/recipe.yaml")
