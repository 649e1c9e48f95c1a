"""A normal (non-editable) install: the wheel ships one package, `factory`, with its recipes and stage packages.

The wheel is built from a copy of the working tree and installed without -e into a fresh virtual environment
whose only view of the dependencies is a path line (a `.pth` file) naming this interpreter's site-packages.
A path line does not run the `.pth` files inside that folder, so the editable install's import hook is not
loaded: every `factory` module the new environment imports comes from the wheel.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from factory.testing import tiny_budget

from .build_helpers import build_wheel, write_tiny_recipe

ROOT = Path(__file__).resolve().parent.parent
RECIPE_NAMES = sorted(p.stem for p in (ROOT / "factory" / "recipes").glob("*.yaml"))
STAGES = ("data", "train", "search", "finetune", "export", "bench", "report", "bundle", "profile")


def _run(args: list[str], cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw)
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps` of a copy of the working tree (the copy keeps pip's build/ out of the checkout)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (no -e); returns its bin/ folder."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    try:
        venv.EnvBuilder(with_pip=False).create(env_dir)
    except Exception as exc:  # no venv module support on this interpreter
        pytest.skip(f"cannot create a virtual environment here: {exc}")
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        pytest.skip("cannot create a virtual environment here: it has no python executable")
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=env_dir)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.stdout.strip()) / "_outer_site_packages.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    # the outer pip installs into the new environment (pip --python), offline and without dependencies
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=env_dir,
    )
    return bindir


def _python(bindir: Path) -> str:
    return str(bindir / ("python.exe" if os.name == "nt" else "python"))


def _factory(bindir: Path) -> str:
    return str(bindir / ("factory.exe" if os.name == "nt" else "factory"))


def test_wheel_ships_one_package_with_recipes_and_stages(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
    names = {info.filename for info in infos}
    assert {name.split("/")[0] for name in names} == {"factory", f"{wheel.name.split('-py')[0]}.dist-info"}
    for recipe in RECIPE_NAMES:
        assert f"factory/recipes/{recipe}.yaml" in names
    for stage in STAGES:
        assert f"factory/{stage}/__init__.py" in names
    for module in ("graphs/onnx.py", "bench/onnxruntime_runner.py", "report/summary.py", "py.typed"):
        assert f"factory/{module}" in names
    for info in infos:  # real files, never symlinks
        assert not stat.S_ISLNK(info.external_attr >> 16), info.filename


def test_installed_wheel_prints_a_shipped_recipe(installed: Path, tmp_path: Path):
    probe = (
        "import factory, importlib.util, json, sysconfig; "
        "print(json.dumps({'file': factory.__file__, 'purelib': sysconfig.get_paths()['purelib'], "
        "'others': [n for n in ('benchmarks', 'exporters') if importlib.util.find_spec(n)]}))"
    )
    where = json.loads(_run([_python(installed), "-c", probe], cwd=tmp_path).stdout)
    assert Path(where["file"]).resolve().is_relative_to(Path(where["purelib"]).resolve()), where
    assert where["others"] == [], "the wheel must install no top-level package but factory"

    result = _run([_factory(installed), "recipe", "digits"], cwd=tmp_path)
    assert "name: digits" in result.stdout

    unknown = subprocess.run(
        [_factory(installed), "recipe", "no-such-recipe"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 2
    assert all(name in unknown.stderr + unknown.stdout for name in RECIPE_NAMES)


@pytest.mark.slow
def test_installed_wheel_builds(installed: Path, tmp_path: Path):
    """A whole tiny build from a folder outside the checkout; under umask 022 every file it writes is readable."""
    recipe = write_tiny_recipe(tmp_path)
    out = tmp_path / "run"
    args = [_factory(installed), "build", "--budget-params", str(tiny_budget()), "--dataset", "digits"]
    args += ["--recipe", recipe.name, "--out", out.name, "--device", "cpu"]
    _run(args, cwd=tmp_path, timeout=1800, preexec_fn=(lambda: os.umask(0o022)) if os.name != "nt" else None)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["picks"]
    for pick in summary["picks"]:
        assert pick["onnx"] and all((out / path).is_file() for path in pick["onnx"])
        assert (out / pick["deployed_onnx"]).is_file()
    if os.name != "nt":
        for path in out.rglob("*"):
            if path.is_file():
                assert path.stat().st_mode & 0o044 == 0o044, f"{path.relative_to(out)}: {oct(path.stat().st_mode)}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_imports_run_one_way():
    """factory never imports the measurement scripts or the tests, and the tests never import a measurement script
    (what both need lives in `factory.testing`); the checkout holds no symbolic link."""
    for path in sorted((ROOT / "factory").rglob("*.py")):
        tops = {name.split(".")[0] for name in _imported_modules(path)}
        assert not tops & {"benchmarks", "tests"}, f"{path.relative_to(ROOT)} imports {tops}"
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tops = {name.split(".")[0] for name in _imported_modules(path)}
        assert "benchmarks" not in tops, f"{path.relative_to(ROOT)} imports a benchmark"
    tracked = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=False)
    if tracked.returncode == 0:
        assert not [line for line in tracked.stdout.splitlines() if line.startswith("120000")], "symbolic links"
