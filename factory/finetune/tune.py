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
import time
from dataclasses import dataclass
from typing import Any

import torch

from factory.budget.feasibility import Budget
from factory.data import DatasetSplits
from factory.elastic import OFASupernet
from factory.nn import StaticNetwork
from factory.recipe import Recipe
from factory.space import SpaceSpec, SubnetConfig
from factory.space.counting import count_macs, count_params
from factory.training.aep import aep_weights, ensemble_logits, prune_exits
from factory.training.aep_fit import fit, split_logits
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
    best_epochs, losses = fit(
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
        fit(
            step2,
            splits.train.joined(splits.val),
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
