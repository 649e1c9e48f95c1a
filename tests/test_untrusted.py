"""Files from someone else: a pickle that would run code is refused before any of it runs."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from factory.errors import FactoryError
from factory.recipe import save_recipe
from factory.testing import tiny_build_recipe
from factory.untrusted import UnsafeFileError, load_plain, safe_extract

from .build_helpers import write_tiny_recipe
from .test_build import assert_one_line_error, cli


class _Payload:
    """Unpickling this creates `marker`: what a hostile checkpoint would do with os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_hostile(path: Path, marker: Path, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": fmt, "spec": _Payload(marker)}, path)
    return path


def test_load_plain_refuses_objects_without_running_them(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write_hostile(tmp_path / "x.pt", marker, "factory-supernet/2")
    with pytest.raises(UnsafeFileError, match="factory convert --trust"):
        load_plain(path)
    assert not marker.exists()


def test_hostile_supernet_is_refused_by_build(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = write_hostile(tmp_path / "evil.pt", marker, "factory-supernet/2")
    out = tmp_path / "run"
    code, error = cli(
        "build", "--budget-params", "0.3M", "--dataset", "digits", "--supernet", str(evil), "--out", str(out)
    )
    assert_one_line_error(code, error, "holds Python objects", "evil.pt")
    assert not marker.exists() and not out.exists()


def test_hostile_checkpoint_is_refused_on_resume(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    out = tmp_path / "run"
    write_hostile(out / "supernet" / "checkpoint.pt", marker, "factory-supernet/2")
    recipe = write_tiny_recipe(tmp_path)
    code, error = cli("train", "--recipe", str(recipe), "--out", str(out), "--resume")
    assert_one_line_error(code, error, "holds Python objects", "checkpoint.pt")
    assert not marker.exists()


def test_hostile_supernet_is_refused_by_finetune(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    write_hostile(run / "supernet" / "supernet.pt", marker, "factory-supernet/2")
    (run / "search").mkdir(parents=True)
    (run / "search" / "result.json").write_text(json.dumps({"budgets": {}, "supernet": None, "archive": []}))
    code, error = cli("finetune", "--run", str(run))
    assert_one_line_error(code, error, "holds Python objects", "supernet.pt")
    assert not marker.exists()


def test_hostile_pick_model_is_refused_by_export(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    save_recipe(tiny_build_recipe(), run / "recipe.yaml")
    write_hostile(run / "picks" / "p1" / "model.pt", marker, "factory-pick/2")
    (run / "picks" / "p1" / "metrics.json").write_text("{}")
    (run / "picks" / "picks.json").write_text(json.dumps({"picks": [{"id": "p1"}]}))
    code, error = cli("export", "--run", str(run))
    assert_one_line_error(code, error, "holds Python objects", "model.pt")
    assert not marker.exists()


def test_convert_needs_trust_then_writes_plain_data(tmp_path: Path) -> None:
    from factory.space import SpaceSpec

    legacy = tmp_path / "supernet.pt"
    torch.save({"format": "factory-supernet/1", "spec": SpaceSpec(kind="ee-base"), "supernets": {}}, legacy)
    before = legacy.read_bytes()
    code, error = cli("convert", str(legacy))
    assert_one_line_error(code, error, "--trust")
    assert legacy.read_bytes() == before
    code, _ = cli("convert", "--trust", str(legacy))
    assert code == 0
    state = load_plain(legacy)
    assert state["format"] == "factory-supernet/2" and state["spec"]["kind"] == "ee-base"
    from factory.training.checkpoint import load_checkpoint

    assert load_checkpoint(legacy)["spec"] == SpaceSpec(kind="ee-base")


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "a/../../escape.txt"])
def test_archives_cannot_write_outside_their_folder(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ok.txt", "fine")
        z.writestr(name, "escaped")
    target = tmp_path / "target"
    with pytest.raises(FactoryError, match="outside"):
        safe_extract(archive, target)
    assert not (tmp_path / "escape.txt").exists() and not target.exists()


def test_safe_extract_writes_plain_members(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("dir/a.txt", "a")
    written = safe_extract(archive, tmp_path / "t")
    assert [p.read_text() for p in written] == ["a"]
