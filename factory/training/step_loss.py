"""The training objective of one step: several sub-networks of one super-network on one batch.

Each sub-network is a `StepTarget` (config, active exits, AEP exit weights, share of the loss); the trainer
builds them per step (`SupernetTrainer.step_targets`) and `StepLoss` sums their losses in a single
forward, the one DistributedDataParallel wraps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from factory.data import resize_batch
from factory.elastic import OFASupernet
from factory.space import SubnetConfig
from factory.training.aep import aep_loss
from factory.training.losses import distillation_loss


@dataclass(frozen=True)
class StepTarget:
    """One sub-network of a training step: `config` with `exits` active (None: its own exit only), `alpha`
    weighing the exits' losses (AEP), and `share` of the step's loss."""

    config: SubnetConfig
    exits: tuple[int, ...] | None = None
    alpha: tuple[float, ...] = (1.0,)
    share: float = 1.0


class StepLoss(nn.Module):
    """The summed loss of several sub-networks on one batch, as one module so DDP sees one forward.

    Every process samples the same configs (same seed), so DistributedDataParallel reduces matching
    gradients; parameters a step leaves unused are declared with find_unused_parameters.
    """

    def __init__(self, supernet: OFASupernet, layout: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        self.supernet = supernet
        self.layout = layout

    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        targets: Sequence[StepTarget],
        teacher_probs: dict[int, torch.Tensor | None],
        kd_weight: float,
        label_smoothing: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The targets' losses weighted by their shares, and their mean top-1. Single-exit targets distil from
        `teacher_probs` at their resolution; multi-exit ones train every exit with AEP."""
        total = images.new_zeros(())
        correct = images.new_zeros(())
        for target in targets:
            config = target.config
            self.supernet.set_active(config, exits=target.exits)
            out = self.supernet(resize_batch(images, config.resolution).contiguous(memory_format=self.layout))
            if isinstance(out, (list, tuple)):
                loss = aep_loss(out, labels, target.alpha, label_smoothing)
                head = out[-1]
            else:
                loss = distillation_loss(out, labels, teacher_probs.get(config.resolution), kd_weight, label_smoothing)
                head = out
            total = total + target.share * loss
            correct = correct + (head.argmax(1) == labels).float().mean() / len(targets)
        return total, correct.detach()
