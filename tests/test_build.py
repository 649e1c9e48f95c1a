"""`factory build` end to end on tiny data: summary schema, files, budget, parity, interruption and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from factory.cli import main
from factory.data import load_dataset
from factory.export.run import parity_inputs
from factory.finetune.measure import measure_network
from factory.nn.pick_file import load_pick_model
from factory.pipeline import STAGES
from factory.runtime import make_session
from factory.testing import tiny_budget, tiny_build_recipe

from .build_helpers import FLASH, RAM, run_build, write_tiny_recipe

PICK_TYPES = {
    "id": str,
    "exit": int,
    "top1_before": float,
    "top1_after": float,
    "params": int,
    "macs": int,
    "onnx": list,
    "parity_max_abs_diff": float,
    "ort_cpu_p50_ms": float,
    "ort_cpu_p99_ms": float,
    "tensorrt": str,
    "delivered_precision": str,
    "flash_bytes": int,
    "ram_bytes": int,
}


def test_summary_matches_its_schema(finished):
    out, summary = finished
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["budget"] == {"params": tiny_budget(), "macs": None, "flash": FLASH, "ram": RAM, "latency": None}
    assert isinstance(summary["recipe"], str) and summary["device"] == "cpu"
    assert summary["picks"], "a build must choose at least one pick"
    for pick in summary["picks"]:
        for key, kind in PICK_TYPES.items():
            assert isinstance(pick[key], kind), (key, pick[key])
        assert 0.0 <= pick["top1_before"] <= 1.0 and 0.0 <= pick["top1_after"] <= 1.0
        delivered = out / pick["delivered_onnx"]
        assert pick["delivered_precision"] == ("int8" if delivered.name.endswith(".int8.onnx") else "fp32")
        assert pick["flash_bytes"] < delivered.stat().st_size  # the weights, without the graph around them
        size = make_session(delivered).get_inputs()[0].shape[-1]
        assert pick["ram_bytes"] > 3 * size * size * 4  # the float input alone, and more
        assert pick["tensorrt"].startswith("skipped") or not torch.cuda.is_available()
        assert pick["meets_budget"] and set(pick["budget_check"]) == {"params", "flash", "ram"}
        assert pick["latency_predicted_ms"] is None  # no device profile
        int8 = pick["int8"]
        assert int8["method"] in ("ptq", "qat", None) and isinstance(int8["status"], str)
        assert isinstance(int8["top1"], float) and isinstance(int8["agreement"], float)
        if int8["method"]:
            assert int8["drop"] <= 1.0 and int8["onnx"] and int8["weight_bytes"] < int8["fp32_weight_bytes"]
            assert isinstance(int8["ort_cpu_p50_ms"], float) and isinstance(int8["bytes"], int)
            assert all((out / rel).is_file() and rel.endswith(".int8.onnx") for rel in int8["onnx"])
        else:
            assert int8["onnx"] == [] and int8["status"].startswith("FP32 only")
    for name in ("report.md", "report.html", "pareto.png", "build.json", "run.json", "recipe.yaml"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    state = json.loads((out / "build.json").read_text())
    assert set(state["stages"]) == set(STAGES)
    estimate = state["estimates"][0]  # what the build printed first, kept to check against the measured stages
    assert set(estimate["stages"]) == set(STAGES) - {"data"} and estimate["images_per_second"] > 0
    assert estimate["total"] == pytest.approx(sum(estimate["stages"].values()), abs=0.5)


def test_report_renders(finished):
    from html.parser import HTMLParser

    out, summary = finished

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags: list[str] = []
            self.images: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "img":
                self.images.append(dict(attrs)["src"])

    parser = Collect()
    parser.feed((out / "report.html").read_text())
    parser.close()
    assert parser.tags.count("table") == 1 + len(summary["picks"])
    assert parser.images and parser.images[0].startswith("data:image/png;base64,")
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    markdown = (out / "report.md").read_text()
    assert all(p["id"] in markdown for p in summary["picks"]) and "![pareto](pareto.png)" in markdown


def test_every_pick_meets_the_budget_by_fvcore(finished):
    out, summary = finished
    for pick in summary["picks"]:
        net, config = load_pick_model(out / "picks" / pick["id"] / "model.pt")
        counted = measure_network(net, config.resolution)
        assert counted.params == pick["params"] <= tiny_budget()
        assert counted.macs == pick["macs"]


def test_every_onnx_file_runs_with_the_recorded_parity(finished):
    out, summary = finished
    recipe = tiny_build_recipe()
    splits = load_dataset(recipe.data)
    for pick in summary["picks"]:
        net, config = load_pick_model(out / "picks" / pick["id"] / "model.pt")
        inputs = parity_inputs(recipe, splits, config.resolution)
        for rel in pick["onnx"]:
            path = out / rel
            assert path.is_file()
            got = make_session(path).run(["logits"], {"image": inputs.numpy()})[0]
            from factory.graphs.onnx import deployment_graphs

            with torch.no_grad():
                expected = deployment_graphs(net)[path.stem](inputs).numpy()
            diff = float(np.abs(got - expected).max())
            assert diff <= 1e-4 and diff <= pick["parity_max_abs_diff"] + 1e-6
            assert (got.argmax(1) == expected.argmax(1)).all()
        bench = json.loads((out / (pick["deployed_onnx"] + ".bench.json")).read_text())
        assert bench["results"][0]["latency"]["p50"] == pytest.approx(pick["ort_cpu_p50_ms"])


def _stable(summary: dict) -> list[dict]:
    """What must not depend on when the build ran: everything but the timings."""
    drop = {"ort_cpu_p50_ms", "ort_cpu_p99_ms", "ort_cpu_images_per_s", "tensorrt_p50_ms", "tensorrt"}
    drop |= {"tensorrt_max_abs_diff", "tensorrt_top1_agreement"}  # GPU builds: FP16 figures vary slightly
    stable = [{k: v for k, v in p.items() if k not in drop} for p in summary["picks"]]
    for pick in stable:
        pick["int8"] = {k: v for k, v in pick["int8"].items() if k != "ort_cpu_p50_ms"}
    return stable


def test_interrupted_build_resumes_to_the_same_result(finished, tmp_path):
    _, uninterrupted = finished
    out = tmp_path / "run"
    assert run_build(out, stop_after="search", budget_flash=FLASH, budget_ram=RAM) == {}
    stages = json.loads((out / "build.json").read_text())["stages"]
    assert list(stages) == ["data", "train", "transfer", "search"]
    weights = out / "supernet" / "supernet.pt"
    archive = out / "search" / "archive.jsonl"
    stamps = (weights.stat().st_mtime_ns, archive.stat().st_mtime_ns)
    resumed = run_build(out, resume=True, budget_flash=FLASH, budget_ram=RAM)
    assert (weights.stat().st_mtime_ns, archive.stat().st_mtime_ns) == stamps, "a finished stage was redone"
    after = json.loads((out / "build.json").read_text())["stages"]
    assert {k: after[k] for k in stages} == stages
    for got, want in zip(_stable(resumed), _stable(uninterrupted), strict=True):
        assert {k: v for k, v in got.items() if v != want[k]} == {}


def cli(*args: str):
    """Exit code and standard error of the command (progress lines go to standard output)."""
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stderr.strip()


def assert_one_line_error(code: int, error: str, *needles: str) -> None:
    assert code == 2, error
    assert len(error.splitlines()) == 1 and error.startswith("error: "), error
    for needle in needles:
        assert needle in error, error


@pytest.fixture
def recipe_file(tmp_path) -> str:
    return str(write_tiny_recipe(tmp_path))


@pytest.mark.parametrize("budget", ["abc", "0", "-3M", "1.5Q"])
def test_malformed_or_non_positive_budget(budget, recipe_file, tmp_path):
    assert_one_line_error(
        *cli("build", "--budget-params", budget, "--recipe", recipe_file, "--out", str(tmp_path / "r")),
        "--budget-params",
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flag", "size"), [("--budget-flash", "12XB"), ("--budget-ram", "-3KB"), ("--budget-ram", "0")]
)
def test_malformed_memory_budget(flag, size, recipe_file, tmp_path):
    assert_one_line_error(*cli("build", flag, size, "--recipe", recipe_file, "--out", str(tmp_path / "r")), flag)
    assert not (tmp_path / "r").exists()


def test_infeasible_memory_budget_names_the_smallest_graph(recipe_file, tmp_path):
    code, out = cli("build", "--budget-ram", "100B", "--recipe", recipe_file, "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "RAM <= 100 B", "of RAM", "--budget-ram")
    assert_one_line_error(*cli("build", "--objective", "bytes", "--recipe", recipe_file), "objectives")
    code, out = cli("build", "--budget-latency", "5", "--recipe", recipe_file, "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "--budget-latency needs --latency-profile")
    code, out = cli("build", "--budget-latency", "fast", "--latency-profile", recipe_file, "--recipe", recipe_file)
    assert_one_line_error(code, out, "--budget-latency", "milliseconds")
    code, out = cli("build", "--latency-profile", recipe_file, "--recipe", recipe_file, "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "--latency-profile", "not readable JSON")
    assert not (tmp_path / "r").exists()


def test_unknown_dataset_and_recipe(tmp_path):
    assert_one_line_error(
        *cli("build", "--dataset", "mnist-x", "--recipe", "digits", "--out", str(tmp_path / "r")), "unknown dataset"
    )
    assert_one_line_error(*cli("build", "--recipe", "no-such-recipe", "--out", str(tmp_path / "r")), "no-such-recipe")


def test_missing_and_incomplete_data_folder(tmp_path):
    args = ["build", "--dataset", "imagefolder", "--recipe", "cifar10-cpu", "--out", str(tmp_path / "r")]
    assert_one_line_error(*cli(*args, "--data-dir", str(tmp_path / "nowhere")), "not found", "laid out as")
    (tmp_path / "data" / "train").mkdir(parents=True)
    assert_one_line_error(*cli(*args, "--data-dir", str(tmp_path / "data")), "no class folders", "laid out as")
    assert not (tmp_path / "r").exists()


def test_infeasible_budget_names_the_smallest_reachable(recipe_file, tmp_path):
    code, out = cli("build", "--budget-params", "100", "--recipe", recipe_file, "--out", str(tmp_path / "r"))
    assert_one_line_error(code, out, "smallest")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu(recipe_file, tmp_path):
    assert_one_line_error(
        *cli("build", "--recipe", recipe_file, "--device", "cuda", "--out", str(tmp_path / "r")), "--device cuda"
    )


def test_unwritable_output_folder(recipe_file, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(*cli("build", "--recipe", recipe_file, "--out", str(blocker / "run")), "cannot write")
    assert blocker.read_text() == "not a folder"


def test_existing_folder_needs_resume_or_force(recipe_file, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_one_line_error(*cli("build", "--recipe", recipe_file, "--out", str(out)), "--resume", "--force")
    assert_one_line_error(*cli("build", "--recipe", recipe_file, "--out", str(out), "--resume"), "build.json")
    assert_one_line_error(*cli("build", "--recipe", recipe_file, "--out", str(out), "--force"), "not a run folder")
    assert (out / "keep.txt").read_text() == "mine"


def _started_build(tmp_path: Path) -> Path:
    """A build that stopped after its data stage, as an interrupted one would."""
    out = tmp_path / "r"
    run_build(out, stop_after="data")
    return out


def resume_args(recipe: str, budget: int, out: Path) -> list[str]:
    return [
        "build",
        "--recipe",
        recipe,
        "--budget-params",
        str(budget),
        "--out",
        str(out),
        "--resume",
        "--device",
        "cpu",
    ]


def test_resume_with_a_different_budget_or_recipe_says_what_differs(recipe_file, tmp_path):
    out = _started_build(tmp_path)
    before = (out / "build.json").read_text()
    code, output = cli(*resume_args(recipe_file, tiny_budget() - 1, out))
    assert_one_line_error(code, output, "budget.params")
    code, output = cli(*resume_args("digits", tiny_budget(), out))
    assert_one_line_error(code, output, "recipe.")
    assert (out / "build.json").read_text() == before


def test_corrupt_checkpoint_and_state_file(recipe_file, tmp_path):
    out = _started_build(tmp_path)
    checkpoint = out / "supernet" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"garbage")
    args = resume_args(recipe_file, tiny_budget(), out)
    code, output = cli(*args)
    assert_one_line_error(code, output, "checkpoint")
    assert checkpoint.read_bytes() == b"garbage"
    (out / "build.json").write_text("{not json")
    assert_one_line_error(*cli(*args), "build.json", "--force")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    assert_one_line_error(
        *cli("build", "--recipe", recipe_file, "--supernet", str(bad), "--out", str(tmp_path / "s")), "bad.pt"
    )


def test_a_second_build_on_a_held_run_folder_is_refused_and_a_stale_lock_taken_over(recipe_file, tmp_path):
    import os
    import subprocess
    import sys

    from factory.runinfo import LOCK

    out = tmp_path / "r"
    out.mkdir()
    lock = out / LOCK
    lock.write_text(f"{os.getpid()}\n")  # a live build: this very process
    code, error = cli(*resume_args(recipe_file, tiny_budget(), out))
    assert_one_line_error(code, error, "held by a running build", f"process {os.getpid()}")
    assert list(out.iterdir()) == [lock] and lock.read_text() == f"{os.getpid()}\n"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # exited and reaped: its PID names no process
    lock.write_text(f"{dead.pid}\n")  # a build killed before it could give the folder back
    run_build(out, stop_after="data")  # taken over: the folder holds nothing else, so it is a new build
    assert list(json.loads((out / "build.json").read_text())["stages"]) == ["data"]
    assert not lock.exists()  # given back when the build ended


def test_a_full_disk_is_one_line_and_the_build_resumes_once_space_is_freed(recipe_file, tmp_path, monkeypatch):
    import errno

    import factory.pipeline as pipeline

    monkeypatch.setattr(pipeline, "PIPELINE", pipeline.PIPELINE[:1])  # the data stage only: seconds
    real = pipeline.write_json_atomic

    def full_after_a_stage(path, obj):
        if Path(path).name == "build.json" and obj["stages"]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, obj)

    monkeypatch.setattr(pipeline, "write_json_atomic", full_after_a_stage)
    out = tmp_path / "r"
    args = [
        "build",
        "--recipe",
        recipe_file,
        "--budget-params",
        str(tiny_budget()),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    code, error = cli(*args)
    assert_one_line_error(code, error, "no space left", str(out), "--resume")
    assert json.loads((out / "build.json").read_text())["stages"] == {}
    monkeypatch.setattr(pipeline, "write_json_atomic", real)  # space freed
    code, error = cli(*args, "--resume")
    assert code == 0, error
    assert list(json.loads((out / "build.json").read_text())["stages"]) == ["data"]


def test_limits_that_conflict_stop_the_build_before_training(tmp_path):
    out = tmp_path / "r"
    code, error = cli("build", "--recipe", "digits", "--budget-params", "20k", "--budget-ram", "9KB", "--out", str(out))
    assert_one_line_error(code, error, "together", "params and RAM", "--budget-params or --budget-ram")
    assert not out.exists()
