"""The `factory` command line: thin Click commands over library functions.

Each command parses options, loads the recipe and calls one library function. A FactoryError (a mistake
the user can fix) is printed on one line and exits with code 2, with no traceback.
"""

from __future__ import annotations

import functools
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


@main.command("recipe")
@click.argument("name")
@_friendly
def recipe_command(name: str) -> None:
    """Validate a recipe (file or shipped name) and print it resolved, with every default filled in."""
    from factory.recipe import load_recipe

    click.echo(load_recipe(name).to_yaml(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
