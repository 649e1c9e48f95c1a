"""Latency on the user's device: a kit of a run's space, its profile (device side), the predictor."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from factory.budget.latency_model import LatencyModel, LatencyPredictor, cross_validated, read_profile
from factory.elastic import build_supernets
from factory.errors import FactoryError
from factory.profile.kit import make_kit
from factory.space.config import SubnetConfig, smallest_config
from factory.testing import tiny_recipe
from factory.training.checkpoint import save_checkpoint
from tests.space_helpers import tiny_spec

DEVICE_SIDE = {"click", "numpy", "onnxruntime", "factory", "cython_runtime"}  # the last: numpy's extensions


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run folder with an (untrained) tiny super-network and a build that asked for a parameter budget."""
    folder = tmp_path_factory.mktemp("run")
    recipe = tiny_recipe("ee-dense")
    spec = recipe.space.to_spec(4)
    torch.manual_seed(0)
    nets = build_supernets(spec)
    state = {"recipe": recipe.to_dict(), "spec": spec, "supernets": {w: n.state_dict() for w, n in nets.items()}}
    save_checkpoint(folder / "supernet" / "supernet.pt", {**state, "metrics": {}})
    (folder / "build.json").write_text(json.dumps({"request": {"budget": {"params": 60_000, "macs": None}}}))
    return folder


def _profile(kit: Path, out: Path) -> set[str]:
    """`factory profile` in a fresh interpreter; returns the top-level non-stdlib modules it imported."""
    code = (
        "import sys\nfrom factory.cli import main\n"
        f"try:\n    main(['profile', {str(kit)!r}, '--out', {str(out)!r}, '--runs', '3', '--warmup', '1',"
        " '--rounds', '2'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "mods = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
        "print(','.join(sorted(m for m in mods if not m.startswith('_'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.strip().splitlines()[-1].split(","))


def test_kit_profile_and_predictor_round_trip(run, tmp_path):
    kit = tmp_path / "kit"
    manifest = json.loads(make_kit(run, kit, count=16).read_text())
    assert len(manifest["networks"]) == 16 and len({json.dumps(n["config"]) for n in manifest["networks"]}) == 16
    near = [n for n in manifest["networks"] if 30_000 <= n["params"] <= 60_000]
    assert len(near) >= 8  # half of the kit near the build's budget
    imported = _profile(kit, tmp_path / "device.json")
    assert imported <= DEVICE_SIDE, imported - DEVICE_SIDE
    profile = json.loads((tmp_path / "device.json").read_text())
    assert profile["space_fingerprint"] == manifest["space_fingerprint"] and profile["machine"]["onnxruntime"]
    assert all(0 < n["latency_ms"] <= n["median_ms"] for n in profile["networks"])
    assert profile["settings"] == {"threads": 1, "runs": 3, "warmup": 1, "rounds": 2, "batch": 1}
    spec = tiny_recipe("ee-dense").space.to_spec(4)
    model = LatencyModel(spec, tmp_path / "device.json")
    assert model.report["heldout"]["networks"] == 16 and model.precision == "fp32"
    first = SubnetConfig.from_dict(manifest["networks"][0]["config"])
    assert model(first) > 0
    # the run delivers INT8, so the kit holds each network's INT8 graph and the device times it too
    assert all(n["int8_file"].endswith(".int8.onnx") and (kit / n["int8_file"]).is_file() for n in manifest["networks"])
    assert all(0 < n["int8"]["latency_ms"] <= n["int8"]["median_ms"] for n in profile["networks"])
    int8 = LatencyModel(spec, tmp_path / "device.json", "int8")
    assert int8.precision == "int8" and int8.report["precision"] == "int8" and int8(first) > 0
    for network in profile["networks"]:  # a profile of an FP32-only kit: FP32 latency, and the report says so
        del network["int8"]
    (tmp_path / "fp32.json").write_text(json.dumps(profile))
    fallback = LatencyModel(spec, tmp_path / "fp32.json", "int8")
    assert fallback.precision == "fp32" and "no INT8 timings" in fallback.report["note"]


def test_profiles_of_other_spaces_and_corrupt_profiles_are_refused(run, tmp_path):
    spec = tiny_recipe("ee-dense").space.to_spec(4)
    path = tmp_path / "device.json"
    path.write_text(json.dumps({"format": "factory-profile/1", "space_fingerprint": "0" * 16, "networks": [{}]}))
    with pytest.raises(FactoryError, match="corrupt"):
        read_profile(path, spec)
    network = {"config": smallest_config(spec).to_dict(), "latency_ms": 1.0}
    path.write_text(json.dumps({"format": "factory-profile/1", "space_fingerprint": "0" * 16, "networks": [network]}))
    with pytest.raises(FactoryError, match="another space") as info:
        read_profile(path, spec)
    assert spec.fingerprint() in str(info.value)
    path.write_text("{not json")
    with pytest.raises(FactoryError, match="not readable"):
        read_profile(path, spec)
    with pytest.raises(FactoryError, match="not found"):
        read_profile(tmp_path / "missing.json", spec)
    assert spec.fingerprint() != tiny_spec("ee-base").fingerprint()


def test_predictor_recovers_a_linear_cost_and_reports_heldout_error():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(60), rng.uniform(10, 60, 60), rng.uniform(1e5, 1e7, 60)])
    y = 0.05 + 0.01 * X[:, 1] + 2e-8 * X[:, 2]
    model = LatencyPredictor.fit(X, y)
    assert np.allclose(model.predict(X), y, rtol=1e-6)
    heldout = cross_validated(X, y * rng.uniform(0.98, 1.02, 60))
    assert heldout["within_10pct"] == 1.0 and heldout["spearman_rho"] > 0.95


# Tamper tests: a kit is checked (keys, names inside it, each graph's SHA-256 and content) before any network is
# timed; a changed graph is a mismatch (exit 1), anything malformed one line and exit 2.


@pytest.fixture(scope="module")
def small_kit(run, tmp_path_factory) -> Path:
    kit = tmp_path_factory.mktemp("kit") / "kit"
    make_kit(run, kit, count=10)
    return kit


def _profile_cli(kit: Path, out: Path):
    from click.testing import CliRunner

    from factory.cli import main

    args = ["profile", str(kit), "--out", str(out), "--runs", "1", "--warmup", "0", "--rounds", "1"]
    return CliRunner().invoke(main, args)


def _edit(kit: Path, change) -> None:
    manifest = json.loads((kit / "manifest.json").read_text())
    change(manifest)
    (kit / "manifest.json").write_text(json.dumps(manifest))


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _old_kit(kit: Path) -> None:
    def strip(manifest: dict) -> None:
        for net in manifest["networks"]:
            net.pop("sha256", None)
            net.pop("int8_sha256", None)

    _edit(kit, strip)


def _no_fingerprint(kit: Path) -> None:
    _edit(kit, lambda m: m.pop("space_fingerprint"))


def _no_resolution(kit: Path) -> None:
    _edit(kit, lambda m: m["networks"][3].pop("resolution"))


def _outside(kit: Path) -> None:
    outside = kit.parent / "outside.onnx"
    shutil.copyfile(kit / "nets" / "0000.onnx", outside)
    _edit(kit, lambda m: m["networks"][0].update(file="../outside.onnx", sha256=_sha(outside)))


def _absolute(kit: Path) -> None:
    graph = kit / "nets" / "0000.onnx"
    _edit(kit, lambda m: m["networks"][0].update(file=str(graph.resolve()), sha256=_sha(graph)))


def _external_data(kit: Path) -> None:
    import onnx

    graph = kit / "nets" / "0001.onnx"
    model = onnx.load(str(graph))
    onnx.save_model(model, str(graph), save_as_external_data=True, location="0001.bin", size_threshold=0)
    _edit(kit, lambda m: m["networks"][1].update(sha256=_sha(graph)))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_old_kit, "regenerate it"),
        (_no_fingerprint, "space_fingerprint"),
        (_no_resolution, "resolution"),
        (_outside, "outside its folder"),
        (_absolute, "outside its folder"),
        (_external_data, "external data"),
    ],
    ids=["old-kit", "no-fingerprint", "no-resolution", "dotdot", "absolute", "external-data"],
)
def test_a_malformed_kit_is_refused_before_any_network_is_timed(small_kit, tmp_path, monkeypatch, tamper, message):
    import factory.device_side as target

    kit = tmp_path / "kit"
    shutil.copytree(small_kit, kit)
    tamper(kit)

    def not_now(*args, **kwargs):
        raise AssertionError("a network was timed before the kit was checked")

    monkeypatch.setattr(target, "time_network", not_now)
    result = _profile_cli(kit, tmp_path / "device.json")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "device.json").exists()


def test_a_changed_kit_graph_is_a_mismatch_and_nothing_is_timed(small_kit, tmp_path):
    import onnx

    kit = tmp_path / "kit"
    shutil.copytree(small_kit, kit)
    graph = kit / "nets" / "0002.int8.onnx"
    model = onnx.load(str(graph))
    onnx.helper.set_model_props(model, {"altered": "yes"})  # same computation: only the hash tells
    onnx.save(model, str(graph))
    result = _profile_cli(kit, tmp_path / "device.json")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "MISMATCH nets/0002.int8.onnx: SHA-256 differs" in result.output
    assert not (tmp_path / "device.json").exists()
    # The untouched kit profiles.
    assert _profile_cli(small_kit, tmp_path / "device.json").exit_code == 0
