"""`factory build`: data -> super-network (trained, or transferred from --supernet) -> NAT2 search -> picks and
post-processing -> ONNX / TensorRT -> latency -> report, in one resumable command.

Each stage reads the previous stages' files in the run folder and writes its own; RUN/build.json records
what the build was asked for (budget, recipe, seed) and which stages finished, so rerunning the same
command with --resume continues at the first unfinished stage (and inside it, from the stage's own resume
point: the last training epoch, the last search iteration, the next pick).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.budget.feasibility import Budget
from factory.errors import FactoryError
from factory.io import disk_full, sync_file, sync_folder, write_json_atomic
from factory.recipe import Recipe
from factory.train.transfer import TransferPlan

BUILD_FORMAT = "factory-build/1"


@dataclass
class BuildRequest:
    """What `factory build` was asked for, after the recipe is resolved."""

    recipe: Recipe
    out: Path
    budget: Budget = field(default_factory=Budget)  # the limits given (latency predicted from latency_profile)
    latency_profile: Path | None = None  # the device profile given; the build works from its copy in the run
    latency_model: Any = None  # the predictor fitted on it, once the space is known
    objectives: str | None = None  # the search's second objective; None: the recipe's
    device: str = "auto"
    supernet: Path | None = None
    resume: bool = False
    force: bool = False
    progress: bool = True
    stop_after: str | None = None  # tests: end the build after this stage, as an interruption would
    log: Callable[[str], None] = print
    device_used: str = ""
    plan: TransferPlan | None = None  # how --supernet is used, decided before anything is written
    splits: Any = None  # the loaded dataset, once `build` has checked it

    def checked_budget(self) -> Budget:
        """The limits with what checking them needs: the latency model and the delivered graph's INT8 layout."""
        from factory.budget.feasibility import int8_layout

        return self.budget.with_model(self.latency_model).with_int8(int8_layout(self.recipe))

    def run_profile(self) -> Path:
        """Where the build keeps its copy of the device profile."""
        return self.out / "latency" / "profile.json"

    def stage_options(self) -> dict[str, Any]:
        """The options the search and post-processing stages take from the request."""
        return {
            "budget": self.budget,
            "latency_profile": self.run_profile() if self.latency_profile else None,
            "device": self.device,
            "progress": self.progress,
        }

    def identity(self) -> dict[str, Any]:
        """What must match for a resumed build to continue this one."""
        return {
            "budget": self.budget.to_dict(),
            **({"latency_profile": _digest(self.latency_profile)} if self.latency_profile else {}),
            **({"objectives": self.objectives} if self.objectives else {}),
            "recipe": self.recipe.to_dict(),
            "supernet": str(self.supernet) if self.supernet else None,
        }


def read_build_state(out: Path) -> dict[str, Any] | None:
    """RUN/build.json, None when absent; a corrupt file is a clear error."""
    path = out / "build.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        if state.get("format") != BUILD_FORMAT:
            raise ValueError
        return state
    except (json.JSONDecodeError, ValueError):
        raise FactoryError(f"{path} is corrupt; rerun with --force to start the build over") from None


def _contents(out: Path) -> list[Path]:
    """What the run folder holds, without the build's lock (and the lock's own temporary files)."""
    from factory.runinfo import LOCK

    return [p for p in out.iterdir() if not p.name.startswith(LOCK)] if out.is_dir() else []


def prepare_run_folder(request: BuildRequest) -> dict[str, Any]:
    """Check the run folder against --resume / --force and return the build state to continue (the caller holds
    the folder's lock: `build`)."""
    from factory.runinfo import ensure_writable
    from factory.training.checkpoint import recipe_differences

    out = request.out
    exists = bool(_contents(out))
    if exists and not (request.resume or request.force):
        raise FactoryError(f"{out} already holds a run; pass --resume to continue it or --force to start over")
    state = read_build_state(out) if exists and request.resume else None
    if exists and request.resume and state is None:
        raise FactoryError(f"{out} holds no build.json, so it is not a build to resume; use another --out or --force")
    if state is not None:
        differs = recipe_differences(state["request"], request.identity())
        if differs:
            raise FactoryError(
                f"{out} was built with different settings: {'; '.join(differs[:3])}; "
                "rerun with the original options, or --force to start over"
            )
        _check_same_data(out, state, request)
        return state
    ensure_writable(out.parent if out.parent != Path("") else Path("."))
    if exists and request.force:
        if not ((out / "build.json").is_file() or (out / "run.json").is_file()):
            raise FactoryError(f"{out} is not a run folder (no build.json or run.json); --force only replaces runs")
        if request.supernet is not None and out.resolve() in request.supernet.resolve().parents:
            raise FactoryError(
                f"--supernet {request.supernet} lies inside {out}, which --force would delete; copy it out"
            )
        for path in _contents(out):  # everything but the lock this build holds
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    ensure_writable(out)
    state = {"format": BUILD_FORMAT, "request": request.identity(), "stages": {}}
    if request.splits is not None:
        state["data"] = request.splits.fingerprint()
    write_json_atomic(out / "build.json", state)
    return state


def _check_same_data(out: Path, state: dict[str, Any], request: BuildRequest) -> None:
    """A resume against other data than the build started with is refused, saying what changed: the same path
    can hold other images (a class folder renamed between a kill and --resume would permute the labels)."""
    from factory.data.splits import fingerprint_changes

    if "data" not in state or request.splits is None:  # builds of earlier versions recorded no fingerprint
        return
    changes = fingerprint_changes(state["data"], request.splits.fingerprint())
    if changes:
        raise FactoryError(
            f"{out} was built on other data: {'; '.join(changes)}; restore the data it was built on, or --force to "
            "start over"
        )


def _check_search_settings(request: BuildRequest) -> None:
    """What the search stage would reject, refused before training: the objectives and the predictor's name
    (the recipe's own search section was checked when it was read)."""
    from factory.search.predictors import predictor_names
    from factory.search.settings import resolve_settings

    resolve_settings(request.recipe.search, request.objectives)
    predictor = request.recipe.search.predictor
    if predictor not in predictor_names():
        raise FactoryError(f"search.predictor: {predictor!r} is not one of {', '.join(predictor_names())}")


def _digest(path: Path) -> str:
    from factory.budget import latency_profile_digest

    return str(latency_profile_digest(path))


def _check_budget(request: BuildRequest, num_classes: int) -> Any:
    """An infeasible budget (or a latency profile of another space) is an error before any training, naming
    the smallest reachable figures. Returns the latency model fitted on the profile (None without one)."""
    from factory.budget.feasibility import check_feasible

    spec = request.recipe.space.to_spec(num_classes)
    budget, model = request.checked_budget(), None
    if request.latency_profile is not None:
        from factory.budget.feasibility import delivered_precision
        from factory.budget.latency_model import LatencyModel

        model = LatencyModel(spec, request.latency_profile, delivered_precision(request.recipe))
        budget = budget.with_model(model)
    check_feasible(spec, budget, advice=f"raise {budget.flags()}")
    return model


def _keep_profile(request: BuildRequest, model: Any) -> None:
    """The run keeps the device profile it was built for, and the predictor's held-out accuracy on it."""
    if model is None:
        return
    copy = request.run_profile()
    copy.parent.mkdir(parents=True, exist_ok=True)
    if not copy.is_file():
        tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        shutil.copyfile(request.latency_profile, tmp)
        sync_file(tmp)
        tmp.replace(copy)
        sync_folder(copy.parent)
    write_json_atomic(copy.parent / "predictor.json", {**model.report, "model": model.predictor.to_dict()})
    heldout = model.report["heldout"]
    request.log(
        f"latency predictor ({model.precision.upper()} graphs) from {request.latency_profile}: "
        f"{100 * heldout['within_10pct']:.0f}% of held-out networks within 10%, "
        f"Spearman rho {heldout['spearman_rho']:.3f}" + (f"; {model.report['note']}" if "note" in model.report else "")
    )


def _stage_train(request: BuildRequest) -> dict[str, Any]:
    """Train the super-network, or take --supernet: as it is (same data and space) or as the transfer's source."""
    from factory.runinfo import record_run
    from factory.train.run import train_supernet
    from factory.training.trainer import FINAL

    final = request.out / "supernet" / FINAL
    plan = request.plan
    if plan is not None:
        if plan.mode == "reuse":
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            shutil.copyfile(plan.path, tmp)
            sync_file(tmp)
            tmp.replace(final)
            sync_folder(final.parent)
        source = plan.describe()
        record_run(request.out, request.recipe, request.device_used, seed=request.recipe.train.seed, source=source)
        return {"source": source["path"], "mode": plan.mode}
    if final.is_file() and (request.out / "supernet" / "metrics.json").is_file():
        return {"already_trained": True}
    budget = request.checked_budget()
    metrics = train_supernet(
        request.recipe, request.out, device=request.device, resume=True, progress=request.progress, budget=budget
    )
    keep = ("largest_test_top1", "smallest_test_top1", "train_seconds", "trained_for_budget")
    return {k: metrics.get(k) for k in keep}


def _stage_transfer(request: BuildRequest) -> dict[str, Any]:
    """The source's heads rebuilt for the target and warmed up (other data), or its space retargeted."""
    from factory.train.transfer import transfer_supernet

    plan = request.plan
    if plan is None or plan.mode == "reuse":
        return {"skipped": "no --supernet" if plan is None else "the super-network was trained on this data"}
    metrics = transfer_supernet(
        plan,
        request.recipe,
        request.out,
        device=request.device,
        progress=request.progress,
        budget=request.checked_budget(),
    )
    keep = ("largest_test_top1", "smallest_test_top1", "train_seconds", "trained_for_budget")
    return {"mode": plan.mode, "head_epochs": request.recipe.transfer.head_epochs} | {k: metrics.get(k) for k in keep}


def _stage_search(request: BuildRequest) -> dict[str, Any]:
    from factory.search.engine import run_search

    result = run_search(request.out, resume=True, objectives=request.objectives, **request.stage_options())
    return {k: result.get(k) for k in ("evaluations", "hypervolume", "seconds")}


def _stage_finetune(request: BuildRequest) -> dict[str, Any]:
    from factory.finetune.run import finetune_run

    picks = finetune_run(request.out, **request.stage_options())
    return {"picks": [p["id"] for p in picks]}


def _stage_export(request: BuildRequest) -> dict[str, Any]:
    from factory.export.run import export_run

    records = export_run(request.out, progress=request.progress)
    return {"graphs": sum(len(r["graphs"]) for r in records)}


def _stage_bench(request: BuildRequest) -> dict[str, Any]:
    from factory.bench.run import bench_run

    return {"models": len(bench_run(request.out, progress=request.progress))}


def _stage_report(request: BuildRequest) -> dict[str, Any]:
    from factory.report.summary import write_summary_and_report

    write_summary_and_report(request.out, request.device_used)
    return {"summary": "summary.json", "report": "report.html"}


def _stage_bundle(request: BuildRequest) -> dict[str, Any]:
    """A hand-off bundle per pick (RUN/handoff/<id>/ and .zip) for the device team."""
    from factory.bundle.bundle import bundle_run

    folders = bundle_run(request.out)
    return {"bundles": [str(f.relative_to(request.out)) for f in folders]}


@dataclass(frozen=True)
class Stage:
    """One stage of `factory build`: what it reads from the run folder, what it writes there, and how it runs.

    A stage runs once per build (build.json records it done); inside, it resumes from its own files (the
    trainer's checkpoint, the search's state, each pick's finished files), so a rerun skips finished work.
    Adding a stage is a package for it and one line below."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[BuildRequest], dict[str, Any]]

    def done(self, state: dict[str, Any]) -> bool:
        """Whether build.json's `state` records this stage finished."""
        return self.name in state["stages"]


def _stage_data(request: BuildRequest) -> dict[str, Any]:
    """The splits were loaded (and cached) before any stage, to check the data first: their sizes are recorded."""
    return {"images": request.splits.sizes()}


PIPELINE: tuple[Stage, ...] = (
    Stage("data", ("--data-dir",), ("the decoded-image cache",), _stage_data),
    Stage("train", ("--supernet",), ("supernet/",), _stage_train),
    Stage("transfer", ("supernet/supernet.pt",), ("supernet/supernet.pt",), _stage_transfer),
    Stage("search", ("supernet/supernet.pt",), ("search/",), _stage_search),
    Stage("finetune", ("search/result.json", "search/supernet.pt"), ("picks/<id>/model.pt",), _stage_finetune),
    Stage("export", ("picks/<id>/model.pt",), ("picks/<id>/*.onnx", "picks/<id>/int8.json"), _stage_export),
    Stage("bench", ("picks/<id>/export.json", "picks/<id>/int8.json"), ("picks/<id>/*.bench.json",), _stage_bench),
    Stage("report", ("search/", "picks/"), ("summary.json", "report.md", "report.html", "pareto.png"), _stage_report),
    Stage("bundle", ("summary.json", "picks/"), ("handoff/<id>/", "handoff/<id>.zip"), _stage_bundle),
)
STAGES = tuple(stage.name for stage in PIPELINE)


def build(request: BuildRequest) -> dict[str, Any]:
    """Run every unfinished stage in order; returns summary.json's content."""
    from factory.data import load_dataset
    from factory.runinfo import acquire_run_lock, release_run_lock
    from factory.train.transfer import plan_transfer, require_source
    from factory.training.device import resolve_device

    device = resolve_device(request.device)
    request.device_used = str(device)
    _check_search_settings(request)
    splits = load_dataset(request.recipe.data)  # a missing or malformed data folder fails before anything is written
    splits.require_usable(request.recipe.data.val_size)  # an empty split fails now, not after the last epoch
    request.splits = splits
    request.latency_model = _check_budget(request, splits.num_classes)
    require_source(request.recipe, request.supernet)
    if request.supernet is not None:
        from factory.training.trainer import load_supernets

        load_supernets(request.supernet)  # a corrupt or foreign file fails before anything is written
        request.plan = plan_transfer(request.supernet, request.recipe, splits.num_classes)
    created = not request.out.exists()
    lock = acquire_run_lock(request.out)  # one build per run folder: a second one is refused here
    try:
        return _build_held(request, device, splits)
    except OSError as exc:  # a full disk mid-stage: the stage resumes from its own files once space is freed
        full = disk_full(exc, Path(exc.filename).parent if exc.filename else request.out)
        if full is None:
            raise
        raise full from None
    finally:
        release_run_lock(lock)
        if created and request.out.is_dir() and not any(request.out.iterdir()):
            request.out.rmdir()


def _build_held(request: BuildRequest, device: Any, splits: Any) -> dict[str, Any]:
    """`build`'s stages, run while it holds the run folder."""
    from factory.estimate import describe_estimate, estimate_stages

    state = prepare_run_folder(request)
    _keep_profile(request, request.latency_model)
    done = state["stages"]
    request.log(f"recipe {request.recipe.name}, device {device}, run folder {request.out}")
    todo = [s for s in STAGES if s not in done]
    if todo:
        transfer = request.plan is not None and request.plan.mode == "transfer"
        reuse = request.supernet is not None
        estimate = estimate_stages(request.recipe, splits, device, skip=set(done), reuse=reuse, transfer=transfer)
        state.setdefault("estimates", []).append(estimate)  # one per start: a resumed build estimates what is left
        request.log(describe_estimate(estimate))
    for stage in PIPELINE:
        if stage.done(state):
            request.log(f"[{stage.name}] done earlier, skipped")
            continue
        started = time.perf_counter()
        request.log(f"[{stage.name}] starting")
        outcome = stage.run(request)
        seconds = round(time.perf_counter() - started, 2)
        done[stage.name] = {"seconds": seconds, **outcome}
        write_json_atomic(request.out / "build.json", state)
        request.log(f"[{stage.name}] finished in {seconds:.1f} s")
        if request.stop_after == stage.name:
            break
    summary_path = request.out / "summary.json"
    return json.loads(summary_path.read_text()) if "report" in done and summary_path.is_file() else {}
