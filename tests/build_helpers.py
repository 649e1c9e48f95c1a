"""The build tests' helpers: a tiny recipe file, the tiny build itself, and a wheel of the working tree.

The recipe and budget live in `factory.testing` (the benchmarks use them too); what is here only tests need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.budget.feasibility import Budget
from factory.pipeline import BuildRequest, build
from factory.recipe import save_recipe
from factory.testing import tiny_budget, tiny_build_recipe

FLASH, RAM = 2_000_000, 400_000  # bytes of the delivered graph: generous, but every stage checks them


def write_tiny_recipe(folder: Path) -> Path:
    """`tiny_build_recipe()` saved as a YAML file in `folder`, for the CLI and the installed wheel."""
    path = folder / "tiny-build.yaml"
    save_recipe(tiny_build_recipe(), path)
    return path


def run_build(out: Path, **kw: Any) -> dict:
    """The tiny build on the CPU into `out`, quietly, within `tiny_budget()` parameters; budget_<name>= keywords
    add limits to it, the other `kw` go to the request."""
    limits = {key.removeprefix("budget_"): kw.pop(key) for key in list(kw) if key.startswith("budget_")}
    budget = Budget(params=tiny_budget(), **limits)
    request = BuildRequest(tiny_build_recipe(), out, budget, device="cpu", progress=False, log=lambda _: None, **kw)
    return build(request)


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
