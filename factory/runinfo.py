"""What a run folder records about itself: the resolved recipe, the seed, the device and the versions."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import write_json_atomic
from factory.recipe import Recipe, save_recipe

_PACKAGES = ("factory", "torch", "torchvision", "numpy", "onnx", "onnxruntime", "fvcore", "lightgbm", "pymoo")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on (missing ones are left out)."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def ensure_writable(folder: str | os.PathLike[str]) -> Path:
    """Create `folder` (and parents) or fail with a one-line error before any work starts.

    The probe file is unique to the process: torchrun's ranks check the same folder at the same moment, and a
    shared probe name let one rank delete the other's probe.
    """
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise FactoryError(f"cannot write to {path} ({exc.strerror or exc}); choose another --out folder") from None
    return path


LOCK = ".build.lock"  # in the run folder: the PID of the build that holds it


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine); a process of another user counts as alive."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _holder(path: Path) -> int | None:
    """The PID in a lock file; None when it is gone or holds no PID (never a half-written one: see `_publish`)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _publish(lock: Path) -> bool:
    """Create `lock` holding this process's PID, atomically: the PID is written to a file of this process's own
    and hard-linked to the lock's name, which fails when the name exists. False when another holds it."""
    tmp = lock.with_name(f"{lock.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(f"{os.getpid()}\n")
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def acquire_run_lock(folder: str | os.PathLike[str]) -> Path:
    """Hold run folder `folder` (created if needed) for this process: one build per run folder, or two would
    overwrite each other's files. A lock whose process is gone (killed) is taken over; a live one is a one-line
    error naming its PID. Returns the lock file; `release_run_lock` gives it back."""
    run = ensure_writable(folder)
    lock = run / LOCK
    for _ in range(5):
        try:
            if _publish(lock):
                return lock
        except OSError as exc:
            raise FactoryError(f"cannot write to {run} ({exc.strerror or exc}); choose another --out folder") from None
        pid = _holder(lock)
        if pid is not None and _alive(pid):
            raise FactoryError(
                f"{run} is held by a running build (process {pid}, lock {lock}); wait for it to finish or stop it, "
                "or build into another --out folder"
            )
        # Stale (its process was killed) or unreadable: move it aside under a name of our own, then check that what
        # we moved is the stale lock and not one a third process published in between (put that one back).
        aside = lock.with_name(f"{lock.name}.{os.getpid()}.stale")
        try:
            os.rename(lock, aside)
        except FileNotFoundError:
            continue
        moved = _holder(aside)
        if moved != pid and moved is not None and _alive(moved):
            with contextlib.suppress(FileExistsError):
                os.link(aside, lock)
        aside.unlink(missing_ok=True)
    raise FactoryError(f"could not take the lock {lock}: other builds keep taking it; build one at a time")


def release_run_lock(lock: Path) -> None:
    """Give the run folder back (only a lock this process holds is removed)."""
    if _holder(lock) == os.getpid():
        lock.unlink(missing_ok=True)


def record_run(run_dir: str | os.PathLike[str], recipe: Recipe, device: str, **extra: Any) -> None:
    """Write RUN/recipe.yaml (the resolved recipe) and RUN/run.json (versions, device, command line)."""
    run = Path(run_dir)
    save_recipe(recipe, run / "recipe.yaml")
    info = {"recipe": recipe.name, "device": device, "versions": versions(), "argv": sys.argv, **extra}
    write_json_atomic(run / "run.json", info)


def run_recipe(run_dir: str | os.PathLike[str], stored: dict[str, Any] | None = None) -> Recipe:
    """The run's resolved recipe: RUN/recipe.yaml, else `stored` (the recipe a super-network file carries).

    Every stage reads the recipe through here, so a run answers the same whichever command asks.
    """
    from factory.recipe import load_recipe, recipe_from_dict

    run = Path(run_dir)
    if (run / "recipe.yaml").is_file():
        return load_recipe(run / "recipe.yaml")
    if stored is not None:
        return recipe_from_dict(stored, f"{run}/supernet/supernet.pt")
    raise FactoryError(
        f"{run / 'recipe.yaml'} not found; is {run} a run folder written by `factory train` or `factory build`?"
    )
