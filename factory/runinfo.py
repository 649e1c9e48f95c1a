"""What a run folder records about itself: the resolved recipe, the seed, the device and the versions."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
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
