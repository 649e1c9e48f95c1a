"""Helpers the training tests share: an interrupting callback and tiny random data (the tiny recipes live in
`factory.testing`)."""

from __future__ import annotations

from typing import Any

import torch

from factory.data import DatasetSplits, Split


class InterruptAfter:
    """A training callback that stops the run with KeyboardInterrupt once `epochs` epochs are written."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.seen = 0

    def on_epoch_end(self, trainer: Any, result: Any) -> None:
        self.seen += 1
        if self.seen == self.epochs:
            raise KeyboardInterrupt


def tiny_splits(n_train: int = 96, n_eval: int = 64, classes: int = 4, seed: int = 0) -> DatasetSplits:
    """Random but learnable images: each class has its own mean brightness pattern."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> Split:
        labels = torch.arange(n) % classes
        base = (labels.view(-1, 1, 1, 1).float() * 60 + 20).expand(n, 3, 24, 24)
        noise = torch.randint(0, 40, (n, 3, 24, 24), generator=g).float()
        return Split((base + noise).clamp(0, 255).to(torch.uint8).contiguous(), labels.long())

    return DatasetSplits(make(n_train), make(n_eval), make(n_eval), classes, [str(i) for i in range(classes)], "tiny")
