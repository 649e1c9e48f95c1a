"""Distillation losses: plain KD from the width-1.2 maximal network and OFAv2's ENS-KD.

ENS-KD: the teacher target is p_T = softmax(sum_i beta_i * z_i^T) over all teacher exits (no temperature);
the student loss is kd * soft-CE(z_S, p_T) + CE(z_S, y). With one teacher exit this is plain KD.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from factory.training.aep import ensemble_logits


def soft_cross_entropy(student_logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """-sum p_T log softmax(z_S), averaged over the batch."""
    return -(target_probs * F.log_softmax(student_logits, dim=1)).sum(dim=1).mean()


def ensemble_teacher_probs(teacher_logits: Sequence[torch.Tensor], beta: Sequence[float]) -> torch.Tensor:
    """softmax of the AEP ensemble of the teacher's exits; detached, since the teacher is not trained by it."""
    return F.softmax(ensemble_logits(teacher_logits, beta).detach().float(), dim=1)


def distillation_loss(
    student_logits: torch.Tensor,
    target: torch.Tensor,
    teacher_probs: torch.Tensor | None,
    kd_weight: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """kd_weight * soft-CE(student, teacher) + CE(student, labels); plain CE without a teacher."""
    loss = F.cross_entropy(student_logits, target, label_smoothing=label_smoothing)
    if teacher_probs is not None and kd_weight > 0:
        loss = loss + kd_weight * soft_cross_entropy(student_logits, teacher_probs)
    return loss
