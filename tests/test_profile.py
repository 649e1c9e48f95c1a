"""Latency on the user's device: a kit of a run's space, its profile (device side), the predictor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from factory.elastic import build_supernets
from factory.errors import FactoryError
from factory.profile.kit import make_kit, space_fingerprint
from factory.profile.predictor import LatencyModel, LatencyPredictor, cross_validated, read_profile
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
    assert space_fingerprint(spec) in str(info.value)
    path.write_text("{not json")
    with pytest.raises(FactoryError, match="not readable"):
        read_profile(path, spec)
    with pytest.raises(FactoryError, match="not found"):
        read_profile(tmp_path / "missing.json", spec)
    assert space_fingerprint(spec) != space_fingerprint(tiny_spec("ee-base"))


def test_predictor_recovers_a_linear_cost_and_reports_heldout_error():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(60), rng.uniform(10, 60, 60), rng.uniform(1e5, 1e7, 60)])
    y = 0.05 + 0.01 * X[:, 1] + 2e-8 * X[:, 2]
    model = LatencyPredictor.fit(X, y)
    assert np.allclose(model.predict(X), y, rtol=1e-6)
    heldout = cross_validated(X, y * rng.uniform(0.98, 1.02, 60))
    assert heldout["within_10pct"] == 1.0 and heldout["spearman_rho"] > 0.95
