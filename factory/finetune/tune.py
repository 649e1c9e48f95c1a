"""The paper's two-step post-processing of a pick (NAT2 section 3.5).

Step 1 fine-tunes the extracted sub-network on the training split with early stopping on validation loss
(patience and max epochs from the recipe, cosine schedule) to find the best epoch count e. Step 2 starts
again from the extracted weights, fine-tunes on train + validation for e epochs, and measures test top-1.

Single-exit picks are fine-tuned plainly. An early-exit pick with exit x reconnects exits 1..x and is
fine-tuned with AEP (UNIF weights by default, AdamW lr 1e-4, weight decay 5e-4); the exit ensemble is then
optionally pruned on validation (with the step-1 model, which never saw the validation images) to the best
subset of exits whose ensemble network still meets the budget. e = 0 keeps the extracted weights.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from factory.budget.feasibility import Budget
from factory.data import DatasetSplits, Split, iterate_batches
from factory.elastic import OFASupernet
from factory.nn import StaticNetwork
from factory.recipe import Recipe
from factory.space import SpaceSpec, SubnetConfig
from factory.space.counting import count_macs, count_params
from factory.training.aep import aep_loss, aep_weights, ensemble_logits, prune_exits
from factory.training.batchnorm import calibration_subset, recalibrate_bn
from factory.training.evaluate import top1


@dataclass
class FinetuneResult:
    """What post-processing found: epochs, the exits kept, the network and its accuracy."""

    best_epochs: int
    exits: tuple[int, ...]
    model: StaticNetwork
    val_losses: list[float]
    seconds: float


def _outputs(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    out = model(images)
    return list(out) if isinstance(out, (list, tuple)) else [out]


@torch.no_grad()
def split_logits(
    model: nn.Module, split: Split, recipe: Recipe, resolution: int, device: torch.device
) -> list[torch.Tensor]:
    """Logits of every exit of `model` over a whole split (eval mode, no augmentation)."""
    model.eval()
    parts: list[list[torch.Tensor]] = []
    for images, _ in iterate_batches(
        split, 500, shuffle=False, generator=None, device=device, augment=False, cfg=recipe.data, resolution=resolution
    ):
        parts.append([o.float().cpu() for o in _outputs(model, images)])
    return [torch.cat(p) for p in zip(*parts, strict=True)]


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    p = recipe.finetune
    if p.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=p.lr, momentum=0.9, weight_decay=p.weight_decay, nesterov=True)
    return torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)


def _train_epoch(model, optimizer, split, recipe, resolution, alpha, generator, device, lr_at) -> None:
    model.train()
    smoothing = recipe.train.label_smoothing
    for step, (images, labels) in enumerate(
        iterate_batches(
            split,
            recipe.finetune.batch_size,
            shuffle=True,
            generator=generator,
            device=device,
            augment=True,
            cfg=recipe.data,
            resolution=resolution,
            drop_last=len(split) > recipe.finetune.batch_size,
        )
    ):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        aep_loss(_outputs(model, images), labels, alpha, smoothing).backward()
        optimizer.step()


def _val_loss(model: nn.Module, split: Split, recipe: Recipe, resolution: int, alpha, device) -> float:
    logits = split_logits(model, split, recipe, resolution, device)
    return float(aep_loss(logits, split.labels, alpha).item())


def _fit(model, train, recipe, resolution, alpha, epochs, seed, device, val=None, desc="") -> tuple[int, list[float]]:
    """Fine-tune for up to `epochs`; with `val`, stop after `patience` epochs without a lower val loss and
    restore the best weights. Returns (best epoch count, validation losses)."""
    p = recipe.finetune
    optimizer = _optimizer(model, recipe)
    steps = max(1, len(train) // p.batch_size)
    total = max(1, epochs * steps)
    generator = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)  # dropout draws from torch's default generator: a resumed run must draw the same
    losses: list[float] = []
    best_epoch, best_loss, best_state = 0, math.inf, None
    if val is not None:
        best_loss = _val_loss(model, val, recipe, resolution, alpha, device)
        best_state = copy.deepcopy(model.state_dict())
        losses.append(best_loss)
    for epoch in tqdm(range(epochs), desc=desc, unit="epoch", leave=False):
        _train_epoch(
            model,
            optimizer,
            train,
            recipe,
            resolution,
            alpha,
            generator,
            device,
            lambda s, e=epoch: p.lr * 0.5 * (1 + math.cos(math.pi * (e * steps + s) / total)),
        )
        if val is None:
            continue
        loss = _val_loss(model, val, recipe, resolution, alpha, device)
        losses.append(loss)
        if loss < best_loss:
            best_epoch, best_loss, best_state = epoch + 1, loss, copy.deepcopy(model.state_dict())
        elif epoch + 1 - best_epoch >= p.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return (best_epoch if val is not None else epochs), losses


def merge(a: Split, b: Split) -> Split:
    return Split(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]))


def best_exit_subset(
    logits: list[torch.Tensor],
    labels: torch.Tensor,
    exits: tuple[int, ...],
    spec: SpaceSpec,
    config: SubnetConfig,
    budget: Budget,
) -> tuple[int, ...]:
    """AEP pruning (`prune_exits`, UNIF ensembles) of a pick's `exits`, whose `logits` are given.

    The subset always contains the pick's own exit x (it sets the network's depth), and its ensemble
    network must meet the budget; when none does, x alone is kept.
    """

    def fits(subset: tuple[int, ...]) -> bool:
        kept = tuple(exits[i] for i in subset)
        return budget.fits(spec, config, kept)

    best = prune_exits(logits, labels, "unif", keep=(exits.index(config.exit),), allowed=fits)
    return (config.exit,) if best is None else tuple(exits[i] for i in best[0])


def finetune_pick(
    recipe: Recipe,
    supernet: OFASupernet,
    splits: DatasetSplits,
    config: SubnetConfig,
    budget: Budget,
    device: torch.device,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FinetuneResult, dict[str, Any]]:
    """Run both steps for one pick; returns the fine-tuned network and its metrics (before and after)."""
    start = time.perf_counter()
    spec, p, res = supernet.spec, recipe.finetune, config.resolution
    aep = spec.early_exit and config.exit > 1
    exits = tuple(range(1, config.exit + 1)) if aep else (config.exit,)
    weighting = p.aep_weighting if aep else "unif"
    alpha = aep_weights(weighting, len(exits))[0]
    supernet.set_active(config)
    extracted = supernet.get_active_subnet(exits=exits).to(device).to(memory_format=torch.contiguous_format)
    calib = calibration_subset(splits.train, recipe.train.bn_calib_images, recipe.train.seed)
    recalibrate_bn(extracted, calib, recipe.data.mean, recipe.data.std, res, recipe.train.bn_calib_batch, device)

    before_logits = split_logits(extracted, splits.test, recipe, res, device)
    before = {str(e): top1(lg, splits.test.labels) for e, lg in zip(exits, before_logits, strict=True)}

    step1 = copy.deepcopy(extracted)
    best_epochs, losses = _fit(
        step1,
        splits.train,
        recipe,
        res,
        alpha,
        p.max_epochs,
        seed,
        device,
        val=splits.val,
        desc="step 1" if progress else "",
    )
    kept = (config.exit,)
    if aep:
        val_logits = split_logits(step1, splits.val, recipe, res, device)
        kept = best_exit_subset(val_logits, splits.val.labels, exits, spec, config, budget) if p.prune else exits
    step2 = copy.deepcopy(extracted)
    if best_epochs > 0:
        _fit(
            step2,
            merge(splits.train, splits.val),
            recipe,
            res,
            alpha,
            best_epochs,
            seed + 1,
            device,
            desc="step 2" if progress else "",
        )
    after_logits = split_logits(step2, splits.test, recipe, res, device)
    after = {str(e): top1(lg, splits.test.labels) for e, lg in zip(exits, after_logits, strict=True)}
    idx = [exits.index(e) for e in kept]
    ensemble = ensemble_logits([after_logits[i] for i in idx], aep_weights("unif", len(kept))[1])
    metrics = {
        "exit": config.exit,
        "exits": list(kept),
        "aep": aep,
        "best_epochs": best_epochs,
        "top1_before": before[str(config.exit)],
        "top1_after": top1(ensemble, splits.test.labels),
        "top1_before_per_exit": before,
        "top1_after_per_exit": after,
        "params_before": count_params(spec, config),
        "macs_before": count_macs(spec, config),
        "params_after": count_params(spec, config, kept),
        "macs_after": count_macs(spec, config, kept),
        "val_losses": losses,
        "seconds": round(time.perf_counter() - start, 2),
    }
    model = _keep_exits(spec, config, step2, exits, kept)
    return FinetuneResult(best_epochs, kept, model, losses, metrics["seconds"]), metrics


def _keep_exits(spec: SpaceSpec, config: SubnetConfig, model: StaticNetwork, exits, kept) -> StaticNetwork:
    """The deployable network: the fine-tuned weights with only the kept exits' heads."""
    if tuple(kept) == tuple(exits):
        return model.cpu().eval()
    net = StaticNetwork(spec, config, tuple(kept))
    state = {k: v for k, v in model.state_dict().items() if k in net.state_dict()}
    net.load_state_dict(state, strict=True)
    return net.eval()
