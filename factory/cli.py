"""The `factory` command line: thin Click commands over library functions.

Each command parses options, loads the recipe and calls one library function. A FactoryError (a mistake
the user can fix) is printed on one line and exits with code 2, with no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from factory.errors import FactoryError


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn FactoryError into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FactoryError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; rerun the same command with --resume to continue", err=True)
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
    from factory.recipe import DataConfig, load_recipe

    if list_only:
        click.echo("\n".join(dataset_names()))
        return
    cfg = load_recipe(recipe).data if recipe else DataConfig()
    cfg.dataset = dataset
    if data_dir is not None:
        cfg.data_dir = data_dir
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
@click.option("--seed", type=int, default=None, help="Training seed; overrides the recipe's.")
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
    from factory.train.trainer import dump_metrics, train_supernet

    recipe = resolve_recipe(recipe_name, dataset, data_dir)
    if seed is not None:
        recipe.train.seed = seed
    metrics = train_supernet(recipe, out_dir, device=device, resume=resume)
    if metrics:
        click.echo(dump_metrics(metrics))


@main.command("search")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder with supernet/.")
@click.option("--objectives", default=None, help="Second objective: params, macs or latency (default: the recipe's).")
@click.option("--budget-params", default=None, help="Parameter budget, e.g. 0.3M, 300k.")
@click.option("--budget-macs", default=None, help="MACs budget, e.g. 10M.")
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
    budget_params: str | None,
    budget_macs: str | None,
    algorithm: str | None,
    device: str,
    resume: bool,
    force: bool,
) -> None:
    """Run the NAT2 search on the trained super-network of RUN and write RUN/search/."""
    from factory.budget import parse_budget
    from factory.search.engine import run_search

    result = run_search(
        run_dir,
        objectives=objectives,
        budget_params=parse_budget(budget_params, "--budget-params"),
        budget_macs=parse_budget(budget_macs, "--budget-macs"),
        algorithm=algorithm,
        device=device,
        resume=resume,
        force=force,
    )
    click.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}))


@main.command("finetune")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder with search/.")
@click.option("--pick", default=None, help="Post-process only this pick (an id under RUN/picks/).")
@click.option("--budget-params", default=None, help="Parameter budget (default: the search's).")
@click.option("--budget-macs", default=None, help="MACs budget (default: the search's).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@_friendly
def finetune_command(
    run_dir: str, pick: str | None, budget_params: str | None, budget_macs: str | None, device: str
) -> None:
    """Choose the picks under the budget and run the two-step post-processing on each."""
    from factory.budget import parse_budget
    from factory.postprocess.run import finetune_run

    results = finetune_run(
        run_dir,
        pick=pick,
        budget_params=parse_budget(budget_params, "--budget-params"),
        budget_macs=parse_budget(budget_macs, "--budget-macs"),
        device=device,
    )
    for m in results:
        click.echo(
            f"{m['id']:<24} exit {m['exit']}  exits {m['exits']}  top-1 {m['top1_before']:.4f} -> {m['top1_after']:.4f}"
            f"  params {m['params_before']} -> {m['params_after']}  MACs {m['macs_before']} -> {m['macs_after']}"
        )


def resolve_recipe(recipe_name: str | None, dataset: str | None, data_dir: str | None):
    """The recipe to use: the named one, else the dataset's own (its CPU variant without a GPU)."""
    import torch

    from factory.recipe import load_recipe, resolve_recipe_path

    if recipe_name is None:
        name = dataset or "digits"
        if not torch.cuda.is_available():
            try:
                resolve_recipe_path(f"{name}-cpu")
                name = f"{name}-cpu"
            except FactoryError:
                pass
        try:
            recipe_name = str(resolve_recipe_path(name))
        except FactoryError:
            recipe_name = "cifar10-cpu" if not torch.cuda.is_available() else "cifar10"
    recipe = load_recipe(recipe_name)
    if dataset is not None:
        recipe.data.dataset = dataset
    if data_dir is not None:
        recipe.data.data_dir = data_dir
    return recipe


@main.command("recipe")
@click.argument("name")
@_friendly
def recipe_command(name: str) -> None:
    """Validate a recipe (file or shipped name) and print it resolved, with every default filled in."""
    from factory.recipe import load_recipe

    click.echo(load_recipe(name).to_yaml(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
