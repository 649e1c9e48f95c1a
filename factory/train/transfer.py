"""Transfer: a super-network trained on one dataset (the source) serves builds on others (the targets).

NAT's transfer, as the factory runs it: the source's body is reused as trained; on other data every exit
head's classifier is rebuilt for the target's classes and the heads are warmed up on the target with the body
frozen (`transfer.head_epochs`); optionally the whole maximal network and then the elastic sub-networks are
tuned on the target (`transfer.tune_epochs`, `transfer.elastic_epochs`); the search's adaptation epochs
(ENS-KD from the adapted maximal network) then adapt the whole super-network where the search is heading.
Resolution is elastic, so a source trained at one resolution serves a target searched at others. The body
must match: kind, channel plan, strides, elastic choices and head sizes; the class count, resolutions and
dropout may differ.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import FactoryError
from factory.io import file_sha256
from factory.recipe import Recipe
from factory.space.config import SpaceSpec

if TYPE_CHECKING:
    from factory.budget.feasibility import Budget

TARGET_ONLY = ("num_classes", "resolutions", "dropout")  # what a target may change; the rest shapes the weights
MODES = ("reuse", "retarget", "transfer")


def body_differences(source: SpaceSpec, target: SpaceSpec) -> list[str]:
    """`name source -> target` for every weight-shaping space field that differs."""
    out = []
    for f in fields(SpaceSpec):
        a, b = getattr(source, f.name), getattr(target, f.name)
        if f.name not in TARGET_ONLY and a != b:
            out.append(f"{f.name} {_plain(a)} -> {_plain(b)}")
    return out


def _plain(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _data_identity(dataset: Any, data_dir: Any) -> tuple[str, str | None]:
    return str(dataset), None if data_dir is None else os.path.realpath(str(data_dir))


@dataclass(frozen=True)
class TransferPlan:
    """How a build uses a given super-network.

    mode: "reuse" (trained on the target's data with the target's space: used as it is), "retarget" (same data,
    other resolutions or dropout: heads kept, no warm-up) or "transfer" (other data: classifiers rebuilt and the
    heads warmed up).
    """

    mode: str
    path: Path
    source_spec: SpaceSpec
    target_spec: SpaceSpec
    source_recipe: dict[str, Any]
    trained_for_budget: dict[str, Any] | None = None  # the budget the source's training sampled within, if any

    def describe(self) -> dict[str, Any]:
        """What run.json, summary.json and the report say about the source."""
        data = self.source_recipe.get("data", {})
        return {
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "mode": self.mode,
            "recipe": self.source_recipe.get("name"),
            "dataset": data.get("dataset"),
            "data_dir": data.get("data_dir"),
            "classes": self.source_spec.num_classes,
            "resolutions": list(self.source_spec.resolutions),
            "trained_for_budget": self.trained_for_budget,
            "target_classes": self.target_spec.num_classes,
            "target_resolutions": list(self.target_spec.resolutions),
        }


def plan_transfer(path: Path, recipe: Recipe, num_classes: int) -> TransferPlan:
    """Read the super-network file at `path` and decide how a build of `recipe` (with `num_classes` classes)
    uses it; a body that does not match the recipe's space is a one-line error naming what differs."""
    from factory.training.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    source: SpaceSpec = state["spec"]
    target = recipe.space.to_spec(num_classes)
    differs = body_differences(source, target)
    if differs:
        shown = "; ".join(differs[:3]) + ("; ..." if len(differs) > 3 else "")
        raise FactoryError(
            f"--supernet {path} has another body than recipe {recipe.name} ({shown}); train a source with the "
            "same space section (kind, channel plan, strides), or use a recipe that matches it"
        )
    stored = state.get("recipe") or {}
    data = stored.get("data", {})
    same_data = _data_identity(data.get("dataset"), data.get("data_dir")) == _data_identity(
        recipe.data.dataset, recipe.data.data_dir
    ) and (source.num_classes == num_classes)
    mode = "transfer" if not same_data else ("reuse" if source == target else "retarget")
    return TransferPlan(mode, Path(path), source, target, stored, state.get("trained_for_budget"))


def require_source(recipe: Recipe, supernet: Path | None) -> None:
    """A target recipe that cannot train from scratch needs `--supernet`: a one-line error naming its source."""
    t = recipe.transfer
    if supernet is None and t.role == "target" and not t.scratch:
        source = t.source or "a source recipe"
        raise FactoryError(
            f"recipe {recipe.name} adapts a pre-trained super-network (its learning rates are for adapting, not for "
            f"training from scratch): train one once with `factory train --recipe {source} --data-dir ... --out SRC` "
            "and pass --supernet SRC/supernet/supernet.pt, or choose a recipe that trains from scratch"
        )


def retargeted_supernets(plan: TransferPlan, seed: int = 0) -> dict[float, Any]:
    """The source's super-networks rebuilt for the target's space; on other data the exit heads' classifiers are
    new (initialised from `seed`, so an interrupted transfer resumes to the same weights), everything else keeps
    the source's weights."""
    import torch

    from factory.elastic import build_supernet
    from factory.training.trainer import load_supernets

    _, sources, _ = load_supernets(plan.path)
    nets = {}
    for width, source in sources.items():
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = build_supernet(plan.target_spec, width)
        state = source.state_dict()
        if plan.mode == "transfer":
            state = {k: v for k, v in state.items() if ".classifier." not in k}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(".classifier." not in k for k in missing):
            raise FactoryError(f"--supernet {plan.path}: its weights do not fit the target's super-network")
        nets[width] = net
    return nets


def transfer_phases(recipe: Recipe, widths: Sequence[float]) -> list[Any]:
    """The transfer's training, width by width in each step: the heads (body frozen), then the whole maximal
    network, then elastic epochs with ENS-KD from it; steps without epochs are left out."""
    from factory.training.trainer import Phase

    t = recipe.transfer
    elastic_lr = recipe.search.adapt_lr or recipe.train.lr
    elastic_key = "search.adapt_lr" if recipe.search.adapt_lr else "train.lr"
    steps = [
        ("heads", t.head_epochs, t.head_lr, "transfer.head_lr"),
        ("warmup", t.tune_epochs, t.tune_lr, "transfer.tune_lr"),
        ("adapt", t.elastic_epochs, elastic_lr, elastic_key),
    ]
    return [Phase(kind, width, epochs, lr, key) for kind, epochs, lr, key in steps if epochs > 0 for width in widths]


def transfer_supernet(
    plan: TransferPlan,
    recipe: Recipe,
    out_dir: str | Path,
    device: str = "auto",
    progress: bool = True,
    splits: Any = None,
    callbacks: Sequence[Any] = (),
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Write RUN/supernet/supernet.pt for the target: the source retargeted, its new heads warmed up and, as
    the recipe asks, the whole network tuned (`transfer_phases`; resumable epoch by epoch like any training,
    `callbacks` as the trainer's), evaluated on the target's test split. Returns the metrics. `budget` (the
    build's) steers the elastic epochs' sampling as in training, when `train.budget_share` asks for it."""
    from factory.training.trainer import SupernetTrainer

    nets = retargeted_supernets(plan, recipe.train.seed)
    phases = transfer_phases(recipe, sorted(nets)) if plan.mode == "transfer" else []
    trainer = SupernetTrainer(
        recipe,
        out_dir,
        device=device,
        splits=splits,
        progress=progress,
        supernets=nets,
        phases=phases,
        callbacks=callbacks,
        budget=budget,
    )
    trainer.provenance["source"] = plan.describe()  # beside the budget its elastic epochs sampled within, if any
    trainer.resume()
    return trainer.run()
