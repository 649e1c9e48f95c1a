"""Fine-tuning a static network with the AEP loss (NAT2 section 3.5), the loop that post-processing and
quantization-aware training share: cosine schedule, optional early stopping on validation loss."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from tqdm.auto import tqdm

from factory.data import Split, iterate_batches
from factory.recipe import Recipe
from factory.training.aep import aep_loss


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


def fit(model, train, recipe, resolution, alpha, epochs, seed, device, val=None, desc="") -> tuple[int, list[float]]:
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
