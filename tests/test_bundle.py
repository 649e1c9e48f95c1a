"""The hand-off bundle of a tiny build: its files, its preprocessing reference, `factory verify` on a device
environment holding only onnxruntime, numpy, click and the project wheel, and device results merged back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

from factory.bundle.reference import preprocess
from factory.bundle.verify import verify_bundle
from factory.cli import main
from factory.data import model_inputs

from .build_helpers import build_wheel


def _bundle(out: Path, summary: dict) -> Path:
    return out / "handoff" / summary["picks"][0]["id"]


def test_every_pick_is_bundled_with_what_a_device_team_needs(finished):
    out, summary = finished
    for pick in summary["picks"]:
        folder = out / "handoff" / pick["id"]
        names = {p.name for p in folder.iterdir()}
        assert {"MODEL_CARD.md", "labels.txt", "preprocess.json", "samples.npz", "SHA256SUMS", "bundle.json"} <= names
        assert Path(pick["deployed_onnx"]).name in names and folder.with_suffix(".zip").is_file()
        manifest = json.loads((folder / "bundle.json").read_text())
        assert {g["precision"] for g in manifest["graphs"]} == (
            {"fp32", "int8"} if pick["int8"]["method"] else {"fp32"}
        )
        card = (folder / "MODEL_CARD.md").read_text()
        assert f"{100 * pick['top1_after']:.2f}%" in card and "confusion.png" in card and "## Reproduce" in card
        samples = np.load(folder / "samples.npz")
        assert len(samples["images"]) == len(samples["ids"]) and samples["outputs_fp32"].shape[0] == len(samples["ids"])


def test_the_numpy_reference_preprocesses_as_the_factory_does():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    for resolution in (20, 24, 32, 40):
        spec = {"scale": 1 / 255, "mean": mean, "std": std, "resolution": resolution}
        ours = model_inputs(torch.from_numpy(images), mean, std, resolution).numpy()
        for i in range(len(images)):
            reference = preprocess(images[i].transpose(1, 2, 0), spec)
            assert np.abs(reference - ours[i : i + 1]).max() < 1e-4, resolution


DEVICE_PACKAGES = ("onnxruntime", "numpy", "numpy.libs", "click")  # and their .dist-info folders


def _device_env(tmp_path: Path) -> Path:
    """A virtual environment holding only onnxruntime, numpy, click (linked from this interpreter's
    site-packages, so no download) and the project wheel installed without its dependencies."""
    env = tmp_path / "device"
    try:
        venv.EnvBuilder(with_pip=False).create(env)
    except Exception as exc:  # no venv support on this interpreter
        pytest.skip(f"cannot create a virtual environment here: {exc}")
    python = env / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    outer = Path(sysconfig.get_paths()["purelib"])
    for entry in outer.iterdir():
        name = entry.name.split("-")[0].lower()
        if entry.name in DEVICE_PACKAGES or (entry.name.endswith(".dist-info") and name in DEVICE_PACKAGES):
            (target / entry.name).symlink_to(entry)
    wheel = build_wheel(tmp_path / "wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env


def test_verify_passes_in_a_device_environment_and_names_an_altered_sample(finished, tmp_path):
    out, summary = finished
    bundle = tmp_path / "bundle"
    shutil.copytree(_bundle(out, summary), bundle)
    env = _device_env(tmp_path)
    factory = str(env / "bin" / "factory")
    done = subprocess.run([factory, "verify", str(bundle)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    probe = "import importlib.util as u; print([m for m in ('torch', 'onnx', 'sklearn', 'yaml') if u.find_spec(m)])"
    found = subprocess.run([str(env / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"  # nothing else is importable there
    report = json.loads((bundle / "device-report.json").read_text())
    assert report["ok"] and report["machine"]["onnxruntime"] and all(g["latency_ms"] > 0 for g in report["graphs"])
    # One sample's expected output altered: exit 1, one line naming it (and the file whose hash changed).
    samples = dict(np.load(bundle / "samples.npz"))
    victim = str(samples["ids"][3])
    samples["outputs_fp32"][3] += 5.0
    np.savez_compressed(bundle / "samples.npz", **samples)
    done = subprocess.run([factory, "verify", str(bundle)], capture_output=True, text=True)
    assert done.returncode == 1
    mismatches = [line for line in done.stderr.splitlines() if line.startswith("MISMATCH")]
    assert any(f"sample {victim} " in line for line in mismatches), done.stderr
    assert any("samples.npz: SHA-256" in line for line in mismatches)


def test_device_results_are_merged_into_the_report(finished, tmp_path):
    from click.testing import CliRunner

    out, summary = finished
    run = tmp_path / "run"
    shutil.copytree(out, run)
    bundle = run / "handoff" / summary["picks"][0]["id"]
    verify_bundle(bundle, threads=1, out=tmp_path / "device-report.json", runs=5, rounds=1)
    result = CliRunner().invoke(
        main, ["report", "--run", str(run), "--device-results", str(tmp_path / "device-report.json")]
    )
    assert result.exit_code == 0, result.output
    merged = json.loads((run / "summary.json").read_text())["devices"]
    assert len(merged) == 1 and merged[0]["results"][0]["pick"] == summary["picks"][0]["id"]
    page = (run / "report.html").read_text()
    assert "On device:" in page and (run / "device-1.png").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = CliRunner().invoke(main, ["report", "--run", str(run), "--device-results", str(bad)])
    assert result.exit_code == 2 and "factory-device-report/1" in result.output


def test_the_confusion_picture_of_a_thousand_classes_stays_small(tmp_path, monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from factory.bundle.bundle import _plot_confusion, confusion

    real = plt.subplots

    def subplots(*args, figsize=None, **kw):  # refuse before allocating: the uncapped picture needs ~8 GB
        assert figsize is not None and max(figsize) <= 20, figsize
        return real(*args, figsize=figsize, **kw)

    monkeypatch.setattr(plt, "subplots", subplots)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 1000, 5000)
    matrix = confusion(labels, np.where(rng.random(5000) < 0.5, labels, rng.integers(0, 1000, 5000)), 1000)
    _plot_confusion(matrix, [f"class-{i}" for i in range(1000)], tmp_path / "confusion.png")
    with Image.open(tmp_path / "confusion.png") as picture:
        assert max(picture.size) <= 2000
