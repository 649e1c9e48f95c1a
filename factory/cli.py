"""The `factory` command line: thin Click commands over library functions.

Each command parses options, loads the recipe and calls one library function. A FactoryError (a mistake
the user can fix) is printed on one line and exits with code 2, with no traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from factory.errors import FactoryError

if TYPE_CHECKING:
    from factory.budget.feasibility import Budget


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn FactoryError (and a full disk) into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FactoryError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # a full disk anywhere (a library's own write): one line, and the run resumes
            from pathlib import Path

            from factory.io import disk_full

            full = disk_full(exc, Path(exc.filename).parent if exc.filename else "the output folder")
            if full is None:
                raise
            click.echo(f"error: {full}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; rerun the same command (with --resume for train and build) to continue", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="factory")
def main() -> None:
    """Edge model factory: small, accurate image classifiers that fit a device budget."""


@main.command("data")
@click.option("--dataset", default="digits", show_default=True, help="Dataset name (see --list).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder holding the dataset.")
@click.option("--recipe", default=None, help="Recipe file or shipped recipe name; defaults to the dataset's.")
@click.option("--list", "list_only", is_flag=True, help="List the known datasets and exit.")
@_friendly
def data_command(dataset: str, data_dir: str | None, recipe: str | None, list_only: bool) -> None:
    """Load a dataset and print its split sizes and class count."""
    from factory.data import dataset_names, load_dataset
    from factory.recipe import DataSection, load_recipe

    if list_only:
        click.echo("\n".join(dataset_names()))
        return
    base = load_recipe(recipe).data if recipe else DataSection()
    cfg = dataclasses.replace(base, dataset=dataset, data_dir=data_dir if data_dir is not None else base.data_dir)
    splits = load_dataset(cfg)
    sizes = splits.sizes()
    click.echo(f"dataset      {splits.name}")
    click.echo(f"classes      {splits.num_classes}")
    click.echo(f"image size   {cfg.image_size}x{cfg.image_size}")
    for name in ("train", "val", "test"):
        click.echo(f"{name:<12} {sizes[name]}")


@main.command("train")
@click.option("--recipe", "recipe_name", default=None, help="Recipe file or shipped name; defaults to the dataset's.")
@click.option("--dataset", default=None, help="Dataset name; overrides the recipe's.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder holding the dataset.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=click.IntRange(0), default=None, help="Training seed; overrides the recipe's.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@_friendly
def train_command(
    recipe_name: str | None,
    dataset: str | None,
    data_dir: str | None,
    out_dir: str,
    device: str,
    seed: int | None,
    resume: bool,
) -> None:
    """Train the super-networks of the recipe's kind into RUN/supernet/."""
    from factory.recipe import choose_recipe
    from factory.train.run import train_supernet
    from factory.train.transfer import require_source
    from factory.training.trainer import dump_metrics

    recipe = choose_recipe(recipe_name, dataset, data_dir, device, seed, seeded=("train",))
    require_source(recipe, None)
    metrics = train_supernet(recipe, out_dir, device=device, resume=resume)
    if metrics:
        click.echo(dump_metrics(metrics))


def budget_options(latency: bool = False, note: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--budget-params, --budget-macs, --budget-flash, --budget-ram (and --budget-latency with `latency`), each a
    constraint when given, parsed once into the one `Budget` the command receives as `budget`; a malformed flag is
    a one-line error naming it."""
    from factory.budget.feasibility import BUDGETED, Budget

    options = [
        ("--budget-params", f"Parameter budget, e.g. 0.3M, 300k{note}."),
        ("--budget-macs", f"MACs budget, e.g. 10M{note}."),
        (
            "--budget-flash",
            f"Flash budget: bytes of the delivered graph's weights (INT8 when the recipe exports INT8), "
            f"e.g. 256KB, 1.5MB, 256KiB{note}.",
        ),
        ("--budget-ram", f"RAM budget: peak activation bytes of the delivered graph at batch 1, e.g. 64KB{note}."),
    ]
    if latency:
        options.append(("--budget-latency", "Latency budget in ms at batch 1 (needs --latency-profile)."))

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @_friendly
        @functools.wraps(function)
        def parsed(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(f"budget_{name}", None) for name in BUDGETED}
            kwargs["budget"] = Budget.parse(**given, profile=kwargs.get("latency_profile"))
            return function(*args, **kwargs)

        for flag, text in reversed(options):
            parsed = click.option(flag, default=None, help=text)(parsed)
        return parsed

    return decorate


OBJECTIVES_HELP = "Second objective: params, macs, flash, ram or latency (default: the recipe's)."


@main.command("search")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder with supernet/.")
@click.option("--objectives", "--objective", "objectives", default=None, help=OBJECTIVES_HELP)
@budget_options(latency=True)
@click.option(
    "--latency-profile", type=click.Path(dir_okay=False), default=None, help="Device profile from `factory profile`."
)
@click.option(
    "--algorithm", type=click.Choice(["nat2", "nat"]), default=None, help="NAT2 (default) or the NAT baseline."
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue a search found in RUN/search.")
@click.option("--force", is_flag=True, help="Delete RUN/search and start the search over.")
@_friendly
def search_command(
    run_dir: str,
    objectives: str | None,
    budget: Budget,
    latency_profile: str | None,
    algorithm: str | None,
    device: str,
    resume: bool,
    force: bool,
) -> None:
    """Run the NAT2 search on the trained super-network of RUN and write RUN/search/."""
    from factory.search.engine import run_search

    result = run_search(
        run_dir,
        objectives=objectives,
        budget=budget,
        algorithm=algorithm,
        device=device,
        resume=resume,
        force=force,
        latency_profile=latency_profile,
    )
    click.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}))


@main.command("finetune")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder with search/.")
@click.option("--pick", default=None, help="Post-process only this pick (an id under RUN/picks/).")
@budget_options(note=" (default: the search's)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@_friendly
def finetune_command(
    run_dir: str,
    pick: str | None,
    budget: Budget,
    device: str,
) -> None:
    """Choose the picks under the budget and run the two-step post-processing on each."""
    from factory.finetune.run import finetune_run

    results = finetune_run(run_dir, pick=pick, budget=budget, device=device)
    for m in results:
        click.echo(
            f"{m['id']:<24} exit {m['exit']}  exits {m['exits']}  top-1 {m['top1_before']:.4f} -> {m['top1_after']:.4f}"
            f"  params {m['params_before']} -> {m['params_after']}  MACs {m['macs_before']} -> {m['macs_after']}"
        )


@main.command("export")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder with picks/.")
@click.option("--int8/--no-int8", default=True, help="Quantize every graph to INT8 (default: as the recipe says).")
@_friendly
def export_command(run_dir: str, int8: bool) -> None:
    """Export every pick to ONNX (one graph per exit, plus the AEP ensemble), check parity, build TensorRT engines
    and check each against its graph, then quantize each graph to INT8 with the accuracy guard."""
    from factory.export.run import export_run

    records = export_run(run_dir, int8=int8)
    click.echo(f"exported {sum(len(r['graphs']) for r in records)} graphs of {len(records)} picks")


def _batch_sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise FactoryError(f"--batch {value!r} is not a list of positive integers; write e.g. --batch 1,32")
    return sizes


@main.command("bench")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--run", "run_dir", default=None, type=click.Path(file_okay=False), help="Benchmark every exported model of a run."
)
@click.option(
    "--runtime", type=click.Choice(["onnxruntime", "tensorrt", "torch"]), default="onnxruntime", show_default=True
)
@click.option("--provider", default=None, help="onnxruntime: cpu, cuda or tensorrt; torch: cpu or cuda.")
@click.option("--batch", "batch", default="1,32", show_default=True, help="Comma-separated batch sizes.")
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True)
@click.option("--iterations", type=click.IntRange(1), default=200, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds per batch size instead of a fixed count.",
)
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True, help="0: the runtime's default.")
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Where to write the JSON (default MODEL.bench.json).",
)
@click.option("--force", is_flag=True, help="With --run: measure again models that already have a bench file.")
@_friendly
def bench_command(
    model: str | None,
    run_dir: str | None,
    runtime: str,
    provider: str | None,
    batch: str,
    warmup: int,
    iterations: int,
    duration: float,
    threads: int,
    out_path: str | None,
    force: bool,
) -> None:
    """Measure the latency of MODEL (.onnx, or .engine with --runtime tensorrt) on this machine.

    Needs only onnxruntime and this package for ONNX files, so it runs on the target device itself.
    """
    from pathlib import Path

    if run_dir is not None:
        from factory.bench.run import bench_run

        bench_run(run_dir, force=force)
        return
    if model is None:
        raise FactoryError("give a model file (factory bench exit3.onnx) or --run RUN")
    path = Path(model)
    if not path.is_file():
        raise FactoryError(f"{path} not found; pass the .onnx (or .engine) file written by `factory export`")
    from factory.bench import bench_model
    from factory.io import write_json_atomic

    if path.name.endswith(".engine.failed"):
        raise FactoryError(f"{path} failed its accuracy check (see {path.name}.json); it is not benchmarked")
    if path.suffix == ".engine" and runtime == "onnxruntime":
        runtime = "tensorrt"
    sizes = _batch_sizes(batch)
    try:
        record = bench_model(path, runtime, sizes, warmup, iterations, duration, threads, provider)
    except Exception as exc:  # runtimes raise their own types (onnxruntime's InvalidProtobuf, ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FactoryError(f"cannot benchmark {path} with {runtime}: {reason}") from None
    out = Path(out_path) if out_path else path.with_name(path.name + ".bench.json")
    write_json_atomic(out, record)
    runtime_line = f"{record['runtime']} {record['runtime_version']}, {record['provider']}"
    click.echo(f"{record['model']} [{runtime_line}, threads {record['threads']}]")
    for r in record["results"]:
        lat = r["latency"]
        click.echo(
            f"  batch {r['batch']:>4}: p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f}  p99 {lat['p99']:.3f}  "
            f"mean {lat['mean']:.3f} ± {lat['std']:.3f}  {r['throughput']['value']:,.0f} images/s"
        )
    click.echo(f"wrote {out}")


@main.command("report")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Exported, benchmarked run.")
@click.option(
    "--device-results",
    "device_results",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A device-report.json from `factory verify`; repeat for several. Kept in RUN/devices/.",
)
@_friendly
def report_command(run_dir: str, device_results: tuple[str, ...]) -> None:
    """Write RUN/summary.json, report.md, report.html and pareto.png (with every device's results)."""
    from pathlib import Path

    from factory.report.devices import add_device_reports
    from factory.report.summary import write_summary_and_report

    if not (Path(run_dir) / "picks" / "picks.json").is_file():
        raise FactoryError(f"{run_dir} has no picks; run `factory build` (or finetune and export) first")
    add_device_reports(Path(run_dir), list(device_results))
    paths = write_summary_and_report(run_dir)
    click.echo(f"wrote {paths['html']}")


@main.command("bundle")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="A finished build.")
@click.option("--pick", default=None, help="One pick's id (default: every pick, as --all).")
@click.option("--all", "every", is_flag=True, help="Bundle every pick (the default).")
@_friendly
def bundle_command(run_dir: str, pick: str | None, every: bool) -> None:
    """Write RUN/handoff/<id>/ and <id>.zip: graphs, labels, preprocessing, model card, samples, hashes."""
    from factory.bundle.bundle import bundle_run

    if pick and every:
        raise FactoryError("--pick and --all contradict each other; pass one of them")
    for folder in bundle_run(run_dir, pick):
        click.echo(f"wrote {folder} and {folder.with_suffix('.zip')}")


@main.command("verify")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--threads", type=click.IntRange(0), default=1, show_default=True, help="onnxruntime threads.")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False), help="[BUNDLE/device-report.json]")
@_friendly
def verify_command(bundle: str, threads: int, out_file: str | None) -> None:
    """On the device: check BUNDLE's hashes, rerun its samples through each graph, time each graph.

    Exit 0 only when every graph bundle.json lists was hashed, run and matched; 1 with one line per mismatch
    (a graph whose hash differs is not run); 2 for a malformed bundle. Needs only onnxruntime, numpy and click
    (install the factory wheel with --no-deps beside them).
    """
    from pathlib import Path

    from factory.bundle.verify import verify_bundle

    report, problems = verify_bundle(bundle, threads, out_file)
    for graph in report["graphs"]:
        diff = graph["max_scaled_diff"]
        click.echo(
            f"{graph['file']} ({graph['precision']}): {graph['samples']} samples, top-1 agreement "
            f"{graph['top1_agreement']:.3f}, max scaled diff {'not finite' if diff is None else f'{diff:.2g}'}, "
            f"fastest {graph['latency_ms']:.4g} ms, median {graph['median_ms']:.4g} ms"
        )
    target = out_file or str(Path(bundle) / "device-report.json")
    if report["unlisted"]:
        click.echo(f"note: not in SHA256SUMS, so not checked: {', '.join(report['unlisted'])}", err=True)
    for line in problems:
        click.echo(f"MISMATCH {line}", err=True)
    click.echo(f"wrote {target}; send it back for `factory report --run RUN --device-results {Path(target).name}`")
    if problems:
        sys.exit(1)


@main.command("profile-kit")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder with supernet/.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Kit folder to write.")
@click.option("--count", type=click.IntRange(1), default=200, show_default=True, help="Sample networks in the kit.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@_friendly
def profile_kit_command(run_dir: str, out_dir: str, count: int, seed: int) -> None:
    """Write a kit of sample sub-networks of RUN's space (ONNX + manifest) to time on a device."""
    from factory.profile.kit import make_kit

    manifest = make_kit(run_dir, out_dir, count=count, seed=seed)
    click.echo(f"wrote {manifest}; on the device: factory profile {out_dir} --out device.json")


@main.command("profile")
@click.argument("kit", type=click.Path(file_okay=False))
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="Profile JSON to write.")
@click.option(
    "--threads", type=click.IntRange(0), default=1, show_default=True, help="onnxruntime threads (0: its default)."
)
@click.option("--runs", type=click.IntRange(1), default=50, show_default=True, help="Timed runs per network.")
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True, help="Untimed runs first.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True, help="Passes over the kit.")
@_friendly
def profile_command(kit: str, out_file: str, threads: int, runs: int, warmup: int, rounds: int) -> None:
    """On the device: time every network of KIT (onnxruntime, batch 1) and write the profile.

    The kit is checked first (its manifest's keys, names inside KIT, each graph's SHA-256): a malformed kit
    exits 2, a changed graph 1, before any network is timed. Needs only onnxruntime, numpy and click (install
    the factory wheel with --no-deps beside them).
    """
    from factory.device_side import HashMismatch, profile_kit, read_manifest

    try:
        total = len(read_manifest(kit)["networks"]) * rounds  # checked (keys, names, hashes) before any timing
        with click.progressbar(length=total, label="profiling", file=sys.stderr, show_eta=True) as bar:
            profile_kit(kit, out_file, threads, runs, warmup, rounds, on_network=bar.update)
    except HashMismatch as exc:
        click.echo(f"MISMATCH {exc}; copy the kit again", err=True)
        sys.exit(1)
    click.echo(f"wrote {out_file}; pass it to the build with --latency-profile {out_file}")


@main.command("build")
@budget_options(latency=True)
@click.option(
    "--latency-profile", type=click.Path(dir_okay=False), default=None, help="Device profile from `factory profile`."
)
@click.option("--objectives", "--objective", "objectives", default=None, help=OBJECTIVES_HELP)
@click.option("--dataset", default=None, help="Dataset name (digits, cifar10, cifar100, tinyimagenet, imagefolder).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder holding the dataset.")
@click.option("--recipe", "recipe_name", default=None, help="Recipe file or shipped name; defaults to the dataset's.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Run folder [runs/<dataset>].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=click.IntRange(0), default=None, help="Seed of every stage; overrides the recipe's.")
@click.option(
    "--supernet", type=click.Path(dir_okay=False, exists=False), default=None, help="Reuse a trained supernet.pt."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted build at its first unfinished stage.")
@click.option("--force", is_flag=True, help="Delete an existing run folder and build from scratch.")
@_friendly
def build_command(
    budget: Budget,
    latency_profile: str | None,
    objectives: str | None,
    dataset: str | None,
    data_dir: str | None,
    recipe_name: str | None,
    out_dir: str | None,
    device: str,
    seed: int | None,
    supernet: str | None,
    resume: bool,
    force: bool,
) -> None:
    """The whole factory: train, search under the budget, post-process, export, benchmark, report."""
    from pathlib import Path

    from factory.pipeline import BuildRequest, build
    from factory.recipe import choose_recipe

    if resume and force:
        raise FactoryError("--resume and --force contradict each other; pass one of them")
    if latency_profile is not None and not Path(latency_profile).is_file():
        raise FactoryError(f"--latency-profile {latency_profile} not found; run `factory profile KIT --out FILE`")
    if objectives is not None:
        from factory.search.settings import parse_objectives

        parse_objectives(objectives, ())  # a bad name is an error before anything is written
    recipe = choose_recipe(recipe_name, dataset, data_dir, device, seed)
    if supernet is not None and not Path(supernet).is_file():
        raise FactoryError(f"--supernet {supernet} not found; pass the supernet.pt of a finished `factory train`")
    out = Path(out_dir) if out_dir else Path("runs") / recipe.data.dataset
    reuse = Path(supernet) if supernet else None
    request = BuildRequest(
        recipe,
        out,
        device=device,
        supernet=reuse,
        resume=resume,
        force=force,
        log=click.echo,
        objectives=objectives,
        latency_profile=Path(latency_profile) if latency_profile else None,
        budget=budget,
    )
    summary = build(request)
    if summary:
        _print_summary(summary, out)


def _print_summary(summary: dict[str, Any], out: Any) -> None:
    """The final table: one line per pick."""
    columns = [("pick", "<18"), ("exit", ">4"), ("top-1 before", ">12"), ("top-1 after", ">11"), ("params", ">9")]
    columns += [("MACs", ">11"), ("ORT p50 ms", ">10")]
    header = " ".join(f"{name:{fmt}}" for name, fmt in columns)
    click.echo(header)
    click.echo("-" * len(header))
    for p in summary["picks"]:
        p50 = "-" if p["ort_cpu_p50_ms"] is None else f"{p['ort_cpu_p50_ms']:.3f}"
        click.echo(
            f"{p['id']:<18} {p['exit']:>4} {100 * p['top1_before']:>11.2f}% {100 * p['top1_after']:>10.2f}% "
            f"{p['params']:>9,} {p['macs']:>11,} {p50:>10}"
        )
    click.echo(f"TensorRT: {summary['picks'][0]['tensorrt'] if summary['picks'] else '-'}")
    if summary.get("front_shape"):
        click.echo(summary["front_shape"])
    click.echo(f"report: {out}/report.html   summary: {out}/summary.json")


@main.command("convert")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--trust", is_flag=True, help="Confirm that the file comes from a source you trust (it is unpickled once)."
)
@_friendly
def convert_command(path: str, trust: bool) -> None:
    """Rewrite a super-network or pick file of the earlier, pickled format as plain data (once, for a trusted file)."""
    from factory.convert import convert_file

    click.echo(convert_file(path, trust=trust))


@main.command("recipe")
@click.argument("name")
@_friendly
def recipe_command(name: str) -> None:
    """Validate a recipe (file or shipped name) and print it resolved, with every default filled in."""
    from factory.recipe import load_recipe

    click.echo(load_recipe(name).to_yaml(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
