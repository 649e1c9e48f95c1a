"""AEP (Anticipate, Ensemble and Prune): exit weighting, the ensemble prediction and exit pruning.

With n exits and logits o_i, the training loss is sum_i alpha_i * CE(o_i, y) and the prediction is
argmax sum_i beta_i * o_i. The weightings are the OFAv2 ones (method note, "AEP and ENS-KD").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from factory.errors import FactoryError
from factory.training.evaluate import top1

WEIGHTINGS = ("unif", "asc", "desc", "mix")


def _ascending(n: int) -> list[float]:
    total = n * (n + 1) / 2
    return [i / total for i in range(1, n + 1)]


def aep_weights(weighting: str, n: int) -> tuple[list[float], list[float]]:
    """(alpha, beta) for `n` exits: alpha weighs the training losses, beta the ensemble of logits.

    UNIF: 1/n each. ASC: i / (1 + ... + n), later exits weigh more. DESC: ASC reversed.
    MIX: alpha descending (train early exits harder), beta ascending (trust later exits more).
    """
    if n < 1:
        raise ValueError("AEP needs at least one exit")
    name = weighting.lower()
    if name == "unif":
        w = [1.0 / n] * n
        return w, list(w)
    if name == "asc":
        w = _ascending(n)
        return w, list(w)
    if name == "desc":
        w = _ascending(n)[::-1]
        return w, list(w)
    if name == "mix":
        return _ascending(n)[::-1], _ascending(n)
    raise FactoryError(f"unknown AEP weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")


def aep_loss(
    logits: Sequence[torch.Tensor], target: torch.Tensor, alpha: Sequence[float], label_smoothing: float = 0.0
) -> torch.Tensor:
    """sum_i alpha_i * CE(o_i, y)."""
    return sum(
        a * F.cross_entropy(o, target, label_smoothing=label_smoothing) for a, o in zip(alpha, logits, strict=True)
    )


def ensemble_logits(logits: Sequence[torch.Tensor], beta: Sequence[float]) -> torch.Tensor:
    """sum_i beta_i * o_i: the AEP ensemble output (its argmax is the prediction)."""
    return sum(b * o for b, o in zip(beta, logits, strict=True))


def prune_exits(
    logits: Sequence[torch.Tensor],
    target: torch.Tensor,
    weighting: str = "unif",
    keep: Sequence[int] = (),
    allowed: Callable[[tuple[int, ...]], bool] | None = None,
) -> tuple[tuple[int, ...], float] | None:
    """AEP's prune step: of the 2^n - 1 exit subsets, the one whose ensemble is most accurate on validation.

    `logits` are the validation outputs of every exit (computed once); a subset's ensemble weighs its
    exits with `weighting` over the subset (UNIF: equally). Every subset holds the indices in `keep`
    (listed last; e.g. the exit that sets the network's depth) and must pass `allowed` (e.g. a budget).
    Ties go to the subset with fewer exits and then the earliest exits, i.e. the cheaper ensemble.

    Returns:
        (0-based exit indices, top-1), or None when `allowed` rejects every subset.
    """
    keep = tuple(keep)
    others = [i for i in range(len(logits)) if i not in keep]
    best: tuple[tuple[int, ...], float] | None = None
    for size in range(0 if keep else 1, len(others) + 1):
        for chosen in itertools.combinations(others, size):
            subset = (*chosen, *keep)
            if allowed is not None and not allowed(subset):
                continue
            beta = aep_weights(weighting, len(subset))[1]
            accuracy = top1(ensemble_logits([logits[i] for i in subset], beta), target)
            if best is None or accuracy > best[1]:
                best = (subset, accuracy)
    return best
