"""Bad input that used to start a build: refused on one line, exit 2, before anything is written."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .test_build import assert_one_line_error, cli


def test_one_class_folder_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    for i in range(3):
        (data / "train" / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i, i, i)).save(data / "train" / "cat" / f"{i}.png")
    monkeypatch.setenv("FACTORY_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code, error = cli(
        "build", "--budget-params", "0.3M", "--dataset", "imagefolder", "--data-dir", str(data), "--out", str(out)
    )
    assert_one_line_error(code, error, "one class folder (cat)", "at least two")
    assert not out.exists()
    assert not (tmp_path / "cache").exists()


def test_out_of_range_recipe_value_is_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "neg.yaml"
    recipe.write_text("train:\n  warmup_epochs: -3\n")
    code, error = cli("recipe", str(recipe))
    assert_one_line_error(code, error, "train.warmup_epochs", "-3", ">= 0", "neg.yaml")
    out = tmp_path / "run"
    code, error = cli(
        "build", "--budget-params", "0.3M", "--dataset", "digits", "--recipe", str(recipe), "--out", str(out)
    )
    assert_one_line_error(code, error, "train.warmup_epochs", "neg.yaml")
    assert not out.exists()
