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


def _two_by_two(root: Path) -> None:
    for name, color in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.new("RGB", (8, 8), color).save(root / "train" / name / f"{i}.png")


def test_empty_splits_are_refused_when_the_build_starts(tmp_path: Path) -> None:
    from .build_helpers import write_tiny_recipe

    _two_by_two(tmp_path / "data")
    recipe = write_tiny_recipe(tmp_path)
    out = tmp_path / "run"
    code, error = cli(
        "build", "--budget-params", "0.3M", "--recipe", str(recipe), "--dataset", "imagefolder",
        "--data-dir", str(tmp_path / "data"), "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    last = error.splitlines()[-1]  # after the decoding progress bar
    assert_one_line_error(code, last, "training 4 / validation 0 / test 0", "splits are empty")
    assert not out.exists()


def test_val_size_zero_is_refused_when_the_build_starts(tmp_path: Path) -> None:
    import yaml

    from .build_helpers import write_tiny_recipe

    path = write_tiny_recipe(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["data"]["val_size"] = 0
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    code, error = cli("build", "--budget-params", "0.3M", "--recipe", str(path), "--device", "cpu", "--out", str(out))
    assert_one_line_error(code, error, "validation 0", "data.val_size")
    assert not out.exists()


def test_search_settings_are_refused_before_training(tmp_path: Path) -> None:
    from .build_helpers import write_tiny_recipe

    path = write_tiny_recipe(tmp_path)
    path.write_text(path.read_text().replace("archive_size: 10", "archive_size: 4"))
    out = tmp_path / "run"
    code, error = cli("build", "--budget-params", "0.3M", "--recipe", str(path), "--device", "cpu", "--out", str(out))
    assert_one_line_error(code, error, "search.archive_size", "4", ">= 8")
    assert not out.exists()


def test_resume_against_changed_data_is_refused(tmp_path: Path, monkeypatch) -> None:
    import dataclasses

    import pytest

    from factory.data import clear_memory_cache, load_dataset
    from factory.errors import FactoryError
    from factory.pipeline import BuildRequest, prepare_run_folder
    from factory.testing import tiny_build_recipe

    data = tmp_path / "data"
    for name, color in (("cat", (200, 0, 0)), ("dog", (0, 200, 0)), ("emu", (0, 0, 200))):
        (data / "train" / name).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (8, 8), (color[0], color[1] + i, color[2])).save(data / "train" / name / f"{i}.png")
    monkeypatch.setenv("FACTORY_CACHE", str(tmp_path / "cache"))
    base = tiny_build_recipe()
    recipe = dataclasses.replace(base, data=dataclasses.replace(base.data, dataset="imagefolder", data_dir=str(data)))

    def request(resume: bool) -> BuildRequest:
        clear_memory_cache()
        return BuildRequest(recipe, tmp_path / "run", resume=resume, splits=load_dataset(recipe.data))

    prepare_run_folder(request(False))  # the build started; then it was killed
    prepare_run_folder(request(True))  # the same data: resumes
    (data / "train" / "cat").rename(data / "train" / "kitten")  # labels would now be dog 0, emu 1, kitten 2
    with pytest.raises(FactoryError) as info:
        prepare_run_folder(request(True))
    message = str(info.value)
    assert "built on other data" in message and "removed cat" in message and "added kitten" in message
    assert "\n" not in message
