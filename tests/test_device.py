"""Device, precision and process-group placement: the decisions the GPU path depends on, checked on a CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from factory.testing import tiny_recipe
from factory.training import distributed
from factory.training.device import autocast, grad_scaler, resolve_precision
from factory.training.distributed import DistInfo, all_mean, placement
from factory.training.evaluate import Evaluator

from .train_helpers import tiny_splits

CUDA0 = torch.device("cuda", 0)


def test_each_torchrun_rank_gets_its_own_gpu() -> None:
    for local in range(4):
        env = {"WORLD_SIZE": "4", "RANK": str(local), "LOCAL_RANK": str(local)}
        info = placement(CUDA0, env)
        assert info.device == torch.device("cuda", local) and info.backend == "nccl" and info.rank == local


def test_cpu_ranks_use_gloo_and_a_single_process_keeps_its_device() -> None:
    info = placement(torch.device("cpu"), {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert info.device == torch.device("cpu") and info.backend == "gloo" and info.enabled
    alone = placement(CUDA0, {})
    assert alone.device == CUDA0 and not alone.enabled
    one = placement(CUDA0, {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"})
    assert one.enabled and one.backend == "nccl"  # a one-process torchrun still runs its process group


def test_all_mean_reduces_on_the_process_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """NCCL reduces CUDA tensors only: the reduced tensor must be on the rank's device, never the CPU."""
    seen: list[torch.device] = []

    class Stop(Exception):
        pass

    def all_reduce(tensor: torch.Tensor) -> None:
        seen.append(tensor.device)
        raise Stop

    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    with pytest.raises(Stop):
        all_mean(0.5, DistInfo(0, 2, 0, torch.device("meta"), launched=True))
    assert seen == [torch.device("meta")]


def test_all_mean_alone_returns_the_value() -> None:
    assert all_mean(0.25, DistInfo()) == 0.25
    assert all_mean(torch.tensor(0.5, dtype=torch.float64), DistInfo()) == 0.5


@pytest.mark.parametrize(
    ("requested", "device", "bf16", "expected"),
    [
        ("auto", "cpu", True, "fp32"),
        ("auto", "cuda", True, "bf16"),
        ("auto", "cuda", False, "fp16"),  # V100, T4, RTX 6000: fp16 with a gradient scaler
        ("fp32", "cuda", True, "fp32"),
        ("fp16", "cuda", True, "fp16"),
        ("bf16", "cpu", False, "bf16"),
    ],
)
def test_precision_follows_the_gpu_unless_the_recipe_forces_it(requested, device, bf16, expected) -> None:
    assert resolve_precision(requested, torch.device(device), bf16_supported=bf16) == expected


def test_only_fp16_scales_the_loss() -> None:
    cpu = torch.device("cpu")
    assert grad_scaler(cpu, "fp16").is_enabled()
    assert not grad_scaler(cpu, "bf16").is_enabled() and not grad_scaler(cpu, "fp32").is_enabled()


class _Probe(nn.Module):
    """Records whether autocast was on during its forward."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.autocast_seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return self.linear(x.mean((2, 3)))


@pytest.mark.parametrize(("precision", "autocast_on"), [("fp32", False), ("bf16", True)])
def test_evaluation_runs_at_the_runs_precision(precision: str, autocast_on: bool) -> None:
    split = tiny_splits(n_train=8, n_eval=8).val
    evaluator = Evaluator(split, (0.5,) * 3, (0.5,) * 3, 4, backend="eager", precision=precision)
    probe = _Probe()
    assert len(evaluator.top1(probe, 24)) == 1
    assert probe.autocast_seen and set(probe.autocast_seen) == {autocast_on}


def test_eager_top1_matches_the_logits_path() -> None:
    split = tiny_splits(n_train=8, n_eval=40).val
    evaluator = Evaluator(split, (0.5,) * 3, (0.5,) * 3, 16, backend="eager")
    probe = _Probe()
    from factory.training.evaluate import top1

    assert evaluator.top1(probe, 24) == [top1(evaluator.logits(probe, 24)[0], split.labels)]


def test_autocast_is_a_no_op_for_fp32() -> None:
    with autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")


def test_training_records_its_precision_and_fp16_trains_with_a_scaler(tmp_path) -> None:
    from factory.training.trainer import SupernetTrainer

    recipe = tiny_recipe("ee-base", space={"widths": [1.0]}, precision="fp16", warmup_epochs=1, epochs=1)
    trainer = SupernetTrainer(recipe, tmp_path, device="cpu", splits=tiny_splits(), progress=False)
    assert trainer.precision == "fp16"
    metrics = trainer.run()
    assert metrics["precision"] == "fp16"
    assert all(torch.isfinite(p).all() for p in trainer.supernets[1.0].parameters())
    from factory.training.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "supernet" / "supernet.pt")["metrics"]["precision"] == "fp16"


def test_an_unknown_precision_is_a_recipe_error() -> None:
    from factory.errors import FactoryError

    with pytest.raises(FactoryError, match=r"train\.precision"):
        tiny_recipe(precision="fp8")
