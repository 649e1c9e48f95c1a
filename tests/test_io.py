"""The atomic writers: whole files only, with the permissions an ordinary write would give."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from factory import io
from factory.io import save_torch_atomic, write_bytes_atomic, write_json_atomic, write_text_atomic

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")


@pytest.fixture
def restore_umask():
    """Tests set the process umask; put the old one back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def write_all(folder: Path) -> list[Path]:
    paths = [folder / "summary.json", folder / "report.md", folder / "exit1.onnx", folder / "sub" / "model.pt"]
    write_json_atomic(paths[0], {"picks": []})
    write_text_atomic(paths[1], "# report\n")
    write_bytes_atomic(paths[2], b"\x08\x09")
    save_torch_atomic(paths[3], {"weights": [1.0, 2.0]})
    return paths


def test_files_are_readable_by_group_and_others_under_umask_022(tmp_path: Path, restore_umask):
    os.umask(0o022)
    for path in write_all(tmp_path):
        mode = path.stat().st_mode & 0o777
        assert mode & 0o044 == 0o044, f"{path.name}: {oct(mode)}"
        assert mode == 0o644, f"{path.name}: {oct(mode)}, where open() would give 0o644"


def test_files_follow_a_stricter_umask(tmp_path: Path, restore_umask):
    os.umask(0o077)
    for path in write_all(tmp_path):
        assert path.stat().st_mode & 0o777 == 0o600, path.name


def test_umask_is_read_without_changing_it(restore_umask, monkeypatch: pytest.MonkeyPatch):
    os.umask(0o027)
    assert io.current_umask() == 0o027

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(io, "open", no_proc, raising=False)  # the fallback: set and restore os.umask
    assert io.current_umask() == 0o027
    assert os.umask(0o027) == 0o027


def test_rewrite_keeps_the_mode_and_leaves_no_temporary_file(tmp_path: Path, restore_umask):
    os.umask(0o022)
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert '"a": 2' in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failed_write_leaves_nothing(tmp_path: Path):
    with pytest.raises(Exception):  # noqa: B017 - torch.save fails part-way: a lambda does not pickle
        save_torch_atomic(tmp_path / "x.pt", {"weights": [1.0], "hook": lambda: None})
    assert list(tmp_path.iterdir()) == []


def test_ranks_checking_one_folder_at_once_do_not_trip_each_other(tmp_path: Path) -> None:
    """torchrun's ranks all check the run folder at start: one's probe must not be the other's."""
    from concurrent.futures import ThreadPoolExecutor

    from factory.runinfo import ensure_writable

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ensure_writable(tmp_path / "run"), range(400)))
    assert all(r == tmp_path / "run" for r in results)
    assert list((tmp_path / "run").iterdir()) == []
