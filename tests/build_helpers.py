"""A tiny build recipe on the embedded digits data: every stage of `factory build` in well under a minute."""

from __future__ import annotations

from pathlib import Path

from benchmarks.gpu_smoke import TINY
from factory.recipe import Recipe, recipe_from_dict, save_recipe
from factory.space import SpaceSpec, largest_config, smallest_config
from factory.space.counting import count_params

from .train_helpers import TINY_DATA, TINY_SPACE


def tiny_build_recipe() -> Recipe:
    """The smoke script's tiny digits build, on the training tests' data and space, without adaptation."""
    return recipe_from_dict(
        {
            **TINY,
            "name": "tiny-build",
            "data": dict(TINY_DATA),
            "space": {"kind": "ee-dense", **TINY_SPACE},
            "search": {**TINY["search"], "adapt_epochs": 0},
        }
    )


def write_tiny_recipe(folder: Path) -> Path:
    path = folder / "tiny-build.yaml"
    save_recipe(tiny_build_recipe(), path)
    return path


def tiny_budget() -> int:
    """A parameter budget halfway (geometrically) between the smallest and largest tiny network."""
    spec: SpaceSpec = tiny_build_recipe().space.to_spec(10)
    low = min(count_params(spec, smallest_config(spec, w).with_exit(1)) for w in spec.widths)
    high = count_params(spec, largest_config(spec))
    return int((low * high) ** 0.5)


ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "factory")


def build_wheel(base: Path) -> Path:
    """`pip wheel --no-deps`, offline, of a copy of the working tree under `base` (the copy keeps pip's build/
    and egg-info out of the checkout); returns the wheel."""
    import shutil
    import subprocess
    import sys

    src = base / "src"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    offline = ["--no-deps", "--no-index", "--no-build-isolation", "-q", "--disable-pip-version-check"]
    command = [sys.executable, "-m", "pip", "wheel", *offline, "-w", str(dist), str(src)]
    done = subprocess.run(command, cwd=base, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (found,) = dist.glob("factory-*.whl")
    return found
