"""`factory train`: train the super-network (or continue it) into RUN/supernet/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.budget.feasibility import Budget
from factory.errors import FactoryError
from factory.recipe import Recipe
from factory.runinfo import ensure_writable, record_run
from factory.training.trainer import CHECKPOINT, SupernetTrainer


def train_supernet(
    recipe: Recipe,
    out_dir: str | Path,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Library entry point of `factory train`: train (or continue) and return the final metrics. `budget` (a
    build's) steers the elastic phase's sampling when the recipe's `train.budget_share` asks for it."""
    checkpoint = Path(out_dir) / "supernet" / CHECKPOINT
    if not resume and checkpoint.exists():
        raise FactoryError(f"{checkpoint} exists; pass --resume to continue that run, or choose another --out folder")
    ensure_writable(out_dir)
    trainer = SupernetTrainer(recipe, out_dir, device=device, progress=progress, budget=budget)
    if resume:
        trainer.resume()
    if trainer.info.is_main:
        info = {"seed": trainer.seed, "world_size": trainer.info.world_size, "precision": trainer.precision}
        record_run(out_dir, recipe, str(trainer.device), **info)
    return trainer.run()
