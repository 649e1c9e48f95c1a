"""Two CPU processes under torchrun train a tiny super-network with DistributedDataParallel (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from factory.testing import TINY_SPACE

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is exercised on Linux")


def test_torchrun_two_processes_train_tiny_supernet(tmp_path: Path):
    recipe = {
        "name": "tiny-ddp",
        "data": {
            "dataset": "digits",
            "image_size": 16,
            "crop_padding": 1,
            "flip": False,
            "val_size": 64,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "cache_dir": str(tmp_path / "cache"),
        },
        "space": {"kind": "ee-base", **TINY_SPACE, "resolutions": [16], "widths": [1.0]},
        "train": {
            "batch_size": 256,
            "warmup_epochs": 1,
            "epochs": 1,
            "subnets_per_batch": 2,
            "bn_calib_images": 64,
            "bn_calib_batch": 64,
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "factory",
        "train",
        "--recipe",
        str(path),
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "supernet" / "metrics.json").read_text())
    assert 0.0 <= metrics["largest_test_top1"] <= 1.0
    epochs = sorted((tmp_path / "run" / "supernet" / "epochs").glob("*.json"))
    assert len(epochs) == 2  # one warm-up and one elastic epoch, written once (by rank 0)
    record = json.loads(epochs[-1].read_text())
    assert record["world_size"] == 2
