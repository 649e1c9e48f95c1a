import math

import pytest
import torch

from factory.errors import FactoryError
from factory.training.aep import aep_loss, aep_weights, ensemble_logits, prune_exits
from factory.training.losses import distillation_loss, ensemble_teacher_probs


def test_documented_weights_for_five_exits():
    asc = [0.0667, 0.1333, 0.2, 0.2667, 0.3333]
    alpha, beta = aep_weights("asc", 5)
    assert alpha == pytest.approx(asc, abs=1e-4) and beta == pytest.approx(asc, abs=1e-4)
    alpha, beta = aep_weights("desc", 5)
    assert alpha == pytest.approx(asc[::-1], abs=1e-4) and beta == pytest.approx(asc[::-1], abs=1e-4)
    alpha, beta = aep_weights("mix", 5)
    assert alpha == pytest.approx(asc[::-1], abs=1e-4) and beta == pytest.approx(asc, abs=1e-4)
    alpha, beta = aep_weights("unif", 5)
    assert alpha == beta == [0.2] * 5


@pytest.mark.parametrize("name", ["unif", "asc", "desc", "mix"])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_weights_sum_to_one(name, n):
    alpha, beta = aep_weights(name, n)
    assert sum(alpha) == pytest.approx(1.0) and sum(beta) == pytest.approx(1.0)


def test_unknown_weighting():
    with pytest.raises(FactoryError, match="unif"):
        aep_weights("fancy", 3)


def test_aep_loss_and_ensemble_by_hand():
    o1 = torch.tensor([[2.0, 0.0]])
    o2 = torch.tensor([[0.0, 1.0]])
    y = torch.tensor([1])
    ce1 = math.log(math.exp(2) + 1)  # -log softmax(o1)[1]
    ce2 = -(1 - math.log(1 + math.e))
    assert aep_loss([o1, o2], y, [0.25, 0.75]).item() == pytest.approx(0.25 * ce1 + 0.75 * ce2, rel=1e-6)
    assert ensemble_logits([o1, o2], [0.25, 0.75]).tolist() == [[0.5, 0.75]]


def test_ens_kd_by_hand():
    # Teacher exits z1=[1,0], z2=[0,2] with UNIF beta: ensemble [0.5, 1.0]; student [2, 0]; label 1.
    teacher = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])]
    student = torch.tensor([[2.0, 0.0]])
    p1 = math.exp(1.0) / (math.exp(0.5) + math.exp(1.0))
    p0 = 1 - p1
    log_z = math.log(math.exp(2.0) + 1.0)
    log_s0, log_s1 = 2.0 - log_z, -log_z
    soft_ce = -(p0 * log_s0 + p1 * log_s1)
    ce = -log_s1
    probs = ensemble_teacher_probs(teacher, [0.5, 0.5])
    assert probs.tolist()[0] == pytest.approx([p0, p1], rel=1e-6)
    loss = distillation_loss(student, torch.tensor([1]), probs, kd_weight=0.7)
    assert loss.item() == pytest.approx(0.7 * soft_ce + ce, rel=1e-6)


def test_no_teacher_is_plain_ce():
    student = torch.tensor([[0.3, -0.2, 1.0]])
    y = torch.tensor([2])
    assert distillation_loss(student, y, None).item() == pytest.approx(
        torch.nn.functional.cross_entropy(student, y).item()
    )


def test_prune_finds_best_subset():
    y = torch.tensor([0, 1, 0, 1])
    good = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    bad = -good * 5
    subset, accuracy = prune_exits([bad, good, bad], y)
    assert subset == (1,) and accuracy == 1.0


def test_prune_keeps_required_exits_and_respects_allowed():
    y = torch.tensor([0, 1, 0, 1])
    good = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    half = torch.tensor([[0.5, 0.0]] * 4)  # right on half the rows, and less sure than `good`
    logits = [good, good * 0, half]
    # Exit index 2 must stay; (0, 2) and (0, 1, 2) reach 1.0, the smaller subset wins the tie.
    assert prune_exits(logits, y, keep=(2,)) == ((0, 2), 1.0)
    assert prune_exits(logits, y, keep=(2,), allowed=lambda s: 0 not in s) == ((2,), 0.5)
    assert prune_exits(logits, y, allowed=lambda s: False) is None
