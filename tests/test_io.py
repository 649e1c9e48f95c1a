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


def test_atomic_writes_sync_the_folder_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename is on disk only once the folder is synced: a power loss would otherwise lose the new name."""
    import stat

    synced: list[bool] = []
    real = os.fsync

    def record(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(io.os, "fsync", record)
    write_json_atomic(tmp_path / "build.json", {"stages": {}})
    assert synced == [False, True]  # the file, then its folder


def test_a_full_disk_is_one_line_naming_the_folder_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import errno

    from factory.errors import FactoryError

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    write_json_atomic(tmp_path / "run" / "build.json", {"old": True})
    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(FactoryError) as info:
        write_json_atomic(tmp_path / "run" / "build.json", {"new": True})
    message = str(info.value)
    assert "\n" not in message and "no space left" in message and str(tmp_path / "run") in message
    assert "--resume" in message
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["build.json"]  # the old file whole, no temporary
    assert '"old"' in (tmp_path / "run" / "build.json").read_text()


def test_a_run_folder_lock_is_refused_while_its_holder_lives_and_taken_over_once_it_is_gone(tmp_path: Path) -> None:
    import subprocess
    import sys

    from factory.errors import FactoryError
    from factory.runinfo import LOCK, acquire_run_lock, release_run_lock

    run = tmp_path / "run"
    lock = acquire_run_lock(run)  # this process holds it
    assert lock == run / LOCK and lock.read_text().split() == [str(os.getpid())]
    with pytest.raises(FactoryError, match=rf"held by a running build \(process {os.getpid()}"):
        acquire_run_lock(run)
    release_run_lock(lock)
    assert not lock.exists()

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{child.pid}\n")  # a live build in another process
        with pytest.raises(FactoryError, match=rf"process {child.pid}") as info:
            acquire_run_lock(run)
        assert "\n" not in str(info.value)
    finally:
        child.kill()
        child.wait()
    # The child is gone (killed and reaped): its lock is stale and taken over.
    assert acquire_run_lock(run) == lock and lock.read_text().split() == [str(os.getpid())]
    release_run_lock(lock)
    assert list(run.iterdir()) == []  # no temporary or moved-aside lock left behind
