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


# Tamper tests: each alters a copy of a real bundle the way a damaged copy or a hostile one could, and expects
# `factory verify` to exit 0 only when every graph it lists was hashed, run and matched.


def _copy(finished, tmp_path: Path) -> Path:
    out, summary = finished
    bundle = tmp_path / "bundle"
    shutil.copytree(_bundle(out, summary), bundle)
    return bundle


def _verify(bundle: Path):
    from click.testing import CliRunner

    return CliRunner().invoke(main, ["verify", str(bundle)])


def _mismatches(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("MISMATCH")]


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reseal(bundle: Path, graphs: bool = True) -> None:
    """Rewrite SHA256SUMS (and, with `graphs`, bundle.json's graph hashes) to the files now in the bundle, as a
    forger would: verify must then judge the content itself."""
    manifest_path = bundle / "bundle.json"
    if graphs and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        for graph in manifest.get("graphs", []):
            if (bundle / graph["file"]).is_file():
                graph["sha256"] = _sha(bundle / graph["file"])
        manifest_path.write_text(json.dumps(manifest))
    names = sorted(p.name for p in bundle.iterdir() if p.is_file() and p.name != "SHA256SUMS")
    (bundle / "SHA256SUMS").write_text("".join(f"{_sha(bundle / n)}  {n}\n" for n in names))


def _graph(bundle: Path, precision: str = "fp32") -> Path:
    manifest = json.loads((bundle / "bundle.json").read_text())
    return bundle / next(g["file"] for g in manifest["graphs"] if g["precision"] == precision)


def _sums_without(bundle: Path, name: str) -> None:
    lines = (bundle / "SHA256SUMS").read_text().splitlines(keepends=True)
    (bundle / "SHA256SUMS").write_text("".join(line for line in lines if not line.rstrip().endswith(f"  {name}")))


def _add_metadata(path: Path) -> None:
    """Alter a graph without changing what it computes (so only its hash can tell)."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"altered": "yes"})
    onnx.save(model, str(path))


def test_verify_refuses_graphs_nothing_vouches_for(finished, tmp_path):
    # A graph left out of SHA256SUMS, then altered: not run, a mismatch.
    bundle = _copy(finished, tmp_path)
    graph = _graph(bundle)
    _sums_without(bundle, graph.name)
    _add_metadata(graph)
    result = _verify(bundle)
    assert result.exit_code == 1, result.output
    assert any(f"{graph.name}: not listed in SHA256SUMS" in line for line in _mismatches(result)), result.output
    assert graph.name not in {g["file"] for g in json.loads((bundle / "device-report.json").read_text())["graphs"]}
    # Altered with SHA256SUMS rewritten to match, but not bundle.json: its record must agree too.
    _reseal(bundle, graphs=False)
    result = _verify(bundle)
    assert result.exit_code == 1 and any("differs from the one bundle.json records" in m for m in _mismatches(result))
    # An empty SHA256SUMS with the graphs deleted is no pass with zero graphs.
    for file in bundle.glob("*.onnx"):
        file.unlink()
    (bundle / "SHA256SUMS").write_text("")
    result = _verify(bundle)
    assert result.exit_code == 1 and "not listed in SHA256SUMS" in result.output, result.output
    # Nor is a bundle.json that lists no graph at all.
    manifest = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**manifest, "graphs": []}))
    result = _verify(bundle)
    assert result.exit_code == 2 and "lists no graphs" in result.output, result.output


def test_verify_never_runs_a_graph_whose_hash_differs(finished, tmp_path):
    bundle = _copy(finished, tmp_path)
    graph = _graph(bundle)
    graph.write_bytes(b"\x08\x07 not a graph, and onnxruntime must never be handed it")
    result = _verify(bundle)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert any(f"{graph.name}: SHA-256 differs from SHA256SUMS" in m and "not run" in m for m in _mismatches(result))


def test_verify_reports_files_sha256sums_does_not_list(finished, tmp_path):
    bundle = _copy(finished, tmp_path)
    (bundle / "notes.txt").write_text("added after bundling\n")
    result = _verify(bundle)
    assert result.exit_code == 0, result.output
    assert "not in SHA256SUMS, so not checked: notes.txt" in result.output
    assert json.loads((bundle / "device-report.json").read_text())["unlisted"] == ["notes.txt"]
    assert _verify(bundle).exit_code == 0  # its own device-report.json is not one of them


def _outside_graph(bundle: Path) -> None:
    """bundle.json and SHA256SUMS name a graph beside the bundle (hash and content right)."""
    graph = _graph(bundle)
    outside = bundle.parent / "outside.onnx"
    shutil.copyfile(graph, outside)
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["graphs"] = [
        {**g, "file": "../outside.onnx"} if g["file"] == graph.name else g for g in manifest["graphs"]
    ]
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    _reseal(bundle)
    with (bundle / "SHA256SUMS").open("a") as sums:
        sums.write(f"{_sha(outside)}  ../outside.onnx\n")


def _absolute_sum(bundle: Path) -> None:
    secret = bundle.parent / "secret.txt"
    secret.write_text("a file elsewhere on the device\n")
    with (bundle / "SHA256SUMS").open("a") as sums:
        sums.write(f"{_sha(secret)}  {secret}\n")


def _external_data(bundle: Path) -> None:
    """The FP32 graph re-saved with its initializers as external data (a file beside it), resealed."""
    import onnx

    graph = _graph(bundle)
    model = onnx.load(str(graph))
    onnx.save_model(model, str(graph), save_as_external_data=True, location="weights.bin", size_threshold=0)
    _reseal(bundle)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_outside_graph, "outside its folder"),
        (_absolute_sum, "outside its folder"),
        (_external_data, "external data"),
    ],
    ids=["dotdot-graph", "absolute-sum", "external-data"],
)
def test_verify_keeps_every_path_inside_the_bundle(finished, tmp_path, tamper, message):
    bundle = _copy(finished, tmp_path)
    tamper(bundle)
    result = _verify(bundle)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def _rewrite_samples(bundle: Path, change) -> None:
    samples = dict(np.load(bundle / "samples.npz"))
    change(samples)
    np.savez_compressed(bundle / "samples.npz", **samples)
    _reseal(bundle)


def _nan_expected(samples: dict) -> None:
    samples["outputs_fp32"][1, 0] = np.nan


def _inf_expected(samples: dict) -> None:
    samples["outputs_fp32"][1, 0] = np.inf


def _nan_image(samples: dict) -> None:  # the graphs then produce NaN for that sample
    samples["images"][1] = np.nan


@pytest.mark.parametrize("change", [_nan_expected, _inf_expected, _nan_image], ids=["nan", "inf", "nan-produced"])
def test_verify_fails_non_finite_outputs(finished, tmp_path, change):
    bundle = _copy(finished, tmp_path)
    _rewrite_samples(bundle, change)
    sample = str(np.load(bundle / "samples.npz")["ids"][1])
    result = _verify(bundle)
    assert result.exit_code == 1, result.output
    assert any(f"sample {sample} has NaN or infinite outputs" in m for m in _mismatches(result)), result.output


def _bad_sums_line(bundle: Path) -> None:
    with (bundle / "SHA256SUMS").open("a") as sums:
        sums.write("this-is-not-a-hash\n")


def _no_samples(bundle: Path) -> None:
    (bundle / "samples.npz").unlink()


def _unreadable_samples(bundle: Path) -> None:
    (bundle / "samples.npz").write_bytes(b"PK\x03\x04 truncated")
    _reseal(bundle)


def _object_samples(bundle: Path) -> None:
    samples = dict(np.load(bundle / "samples.npz"))
    samples["ids"] = np.array([{"id": str(i)} for i in samples["ids"]], dtype=object)
    np.savez_compressed(bundle / "samples.npz", **samples)
    _reseal(bundle)


def _no_graphs_key(bundle: Path) -> None:
    manifest = json.loads((bundle / "bundle.json").read_text())
    del manifest["graphs"]
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    _reseal(bundle)


def _graph_key_missing(bundle: Path) -> None:
    manifest = json.loads((bundle / "bundle.json").read_text())
    del manifest["graphs"][0]["outputs"]
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    _reseal(bundle)


def _not_onnx(bundle: Path) -> None:
    _graph(bundle).write_bytes(b"\x08\x07:\x04junk")  # an IR version and a 'graph' that is no graph
    _reseal(bundle)


@pytest.mark.parametrize(
    "tamper",
    [_bad_sums_line, _no_samples, _unreadable_samples, _object_samples, _no_graphs_key, _graph_key_missing, _not_onnx],
    ids=["sums-line", "no-samples", "bad-samples", "object-samples", "no-graphs", "graph-key", "not-onnx"],
)
def test_verify_malformed_bundles_are_one_line_and_exit_2(finished, tmp_path, tamper):
    bundle = _copy(finished, tmp_path)
    tamper(bundle)
    result = _verify(bundle)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output


def test_device_results_are_checked_before_they_are_kept(finished, tmp_path):
    from click.testing import CliRunner

    out, summary = finished
    run = tmp_path / "run"
    shutil.copytree(out, run)
    report_path = tmp_path / "device-report.json"
    verify_bundle(run / "handoff" / summary["picks"][0]["id"], threads=1, out=report_path, runs=3, rounds=1)
    report = json.loads(report_path.read_text())
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps({**report, "pick": "../../x"}))
    result = CliRunner().invoke(main, ["report", "--run", str(run), "--device-results", str(hostile)])
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("x-*.json")) and not list(run.glob("x-*.json"))  # nothing outside RUN/devices
    (kept,) = (run / "devices").iterdir()
    assert kept.name.startswith("x-") and kept.resolve().parent == (run / "devices").resolve()
    # A graph row without its latency is refused, and every later report still works.
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**report, "graphs": [*report["graphs"], {"file": "x.onnx", "precision": "fp32"}]}))
    result = CliRunner().invoke(main, ["report", "--run", str(run), "--device-results", str(broken)])
    assert result.exit_code == 2 and "graph" in result.output and "latency_ms" in result.output, result.output
    assert len(list((run / "devices").iterdir())) == 1
    assert CliRunner().invoke(main, ["report", "--run", str(run)]).exit_code == 0


def test_a_bundle_is_on_disk_before_it_counts_and_its_temporaries_are_this_process_s(finished, tmp_path, monkeypatch):
    """Every bundle file, its folder, the zip and the hand-off folder are fsynced before bundle_run returns (so
    build.json never marks a bundle done that a power loss could take back), and the temporary folder and zip
    carry this process's id (two `factory bundle` runs never share one)."""
    import os

    from factory.bundle import bundle as module

    out, summary = finished
    run = tmp_path / "run"
    shutil.copytree(out, run)
    shutil.rmtree(run / "handoff")
    synced: list[str] = []
    monkeypatch.setattr(module, "sync_file", lambda path: synced.append(Path(path).name))
    monkeypatch.setattr(module, "sync_folder", lambda path: synced.append(Path(path).name + "/"))
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    pick = summary["picks"][0]["id"]
    (folder,) = module.bundle_run(run, pick)
    assert {p.name for p in folder.iterdir()} <= set(synced)
    assert {f".{pick}.4242.tmp/", f".{pick}.zip.4242.tmp", "handoff/"} <= set(synced)
    assert (run / "handoff" / f"{pick}.zip").is_file() and not list((run / "handoff").glob(".*"))
