"""Super-network training: warm-up of the maximal networks, then elastic training with distillation.

Phases, in order (each width is its own super-network with its own optimiser):
  1. warm-up of each width's maximal network; early-exit kinds train all exits with AEP;
  2. elastic training of each width: every elastic value available from the start (the last phase of
     OFAv2's Extended Progressive Shrinking), after OFA's channel re-organisation (mid channels sorted
     by importance, so smaller expand ratios keep the most important ones); each batch samples
     `subnets_per_batch` single-exit sub-networks (depth-uniform, exit sampled) whose losses are summed
     (`train.subnet_loss`: OFA's accumulated gradients; "mean" scales by 1/k) into one backward pass
     (with the recipe's `sandwich`, the maximal network joins each batch with its warm-up objective and
     `sandwich_share` of the loss); the teacher is the frozen width-max maximal network after its warm-up,
     with ENS-KD (the AEP ensemble of all its exits) for early-exit kinds.
The search's adaptation (`adapt_supernets`) is the same trainer over 'adapt' phases: elastic steps on
sub-networks from the search's sampler, on the trained weights as they are, writing nothing.
A transfer (`factory.train.transfer`) runs 'heads' phases: the warm-up's objective with the body frozen, for the
exit heads rebuilt for a new dataset.

`SupernetTrainer` is a loop with a public step: `has_next()` / `next()` train one epoch and call the
callbacks (`factory.training.callbacks`: progress line, epoch file and checkpoint, a caller's own), `run()`
loops and finishes. Every source of randomness is derived from (seed, phase, epoch), so an interrupted
run resumed from its last checkpoint ends with exactly the weights an uninterrupted run would have.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from factory.budget.feasibility import Budget
from factory.data import DatasetSplits, Split, augment_batch, load_dataset, normalize, resize_batch
from factory.elastic import OFASupernet, build_supernet
from factory.errors import FactoryError
from factory.io import write_json_atomic
from factory.recipe import Recipe
from factory.space import SpaceSpec, SubnetConfig, largest_config, smallest_config
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_configs
from factory.training.aep import aep_weights
from factory.training.batchnorm import calibration_subset, recalibrate_bn
from factory.training.budget_sampler import BudgetSampler
from factory.training.callbacks import EpochCallback, EpochFiles, EpochSummary
from factory.training.checkpoint import load_checkpoint, save_checkpoint
from factory.training.device import autocast, grad_scaler, memory_format, resolve_device, resolve_precision
from factory.training.distributed import DistInfo, all_mean, all_min, barrier, cleanup, init_distributed
from factory.training.evaluate import Evaluator
from factory.training.losses import ensemble_teacher_probs
from factory.training.phases import MAXIMAL_KINDS, PHASE_KINDS, EpochResult, Phase, plan_phases
from factory.training.step_loss import StepLoss, StepTarget

CHECKPOINT = "checkpoint.pt"
BAR_REFRESH_STEPS = 20  # on CUDA the progress bar reads the running loss (a host sync) every this many steps
FINITE_CHECK_STEPS = BAR_REFRESH_STEPS  # on CUDA a non-finite loss is looked for (a host sync) every this many steps
ConfigSampler = Callable[[int, np.random.Generator], list[SubnetConfig]]
FINAL = "supernet.pt"


class TrainingDiverged(FactoryError):
    """A loss or weight became NaN or infinite: training stops before anything later is written."""


def _epoch_seed(seed: int, phase_index: int, epoch: int) -> int:
    return (seed * 1_000_003 + phase_index * 10_007 + epoch) % (2**62)


def _shard_batches(n: int, batch_size: int, generator: torch.Generator, info: DistInfo) -> list[torch.Tensor]:
    """Shuffled batches of indices; each process takes its share of every batch."""
    order = torch.randperm(n, generator=generator)
    batches = [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)] or [order]
    return [b[info.rank :: info.world_size] for b in batches]


@dataclass
class _PhaseRun:
    """What the epochs of the running phase share: the phase, its network, the (DDP-wrapped) objective and the
    optimiser."""

    index: int
    phase: Phase
    net: OFASupernet
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


class SupernetTrainer:
    """Trains `phases` (default `plan_phases(recipe)`) epoch by epoch.

    `next()` trains one epoch and calls the callbacks; `run()` trains every epoch left and finishes. With
    `out_dir`, every epoch is written to RUN/supernet/ (record and checkpoint, `resume()` continues from it)
    and `run()` ends with the evaluation, supernet.pt and metrics.json; without, nothing is written or
    evaluated (adaptation). `seed` (default `train.seed`) derives every epoch's randomness.
    """

    def __init__(
        self,
        recipe: Recipe,
        out_dir: str | Path | None = None,
        device: str = "auto",
        splits: DatasetSplits | None = None,
        progress: bool = True,
        supernets: dict[float, OFASupernet] | None = None,
        config_sampler: ConfigSampler | None = None,
        *,
        phases: Sequence[Phase] | None = None,
        seed: int | None = None,
        callbacks: Sequence[EpochCallback] = (),
        budget: Budget | None = None,
    ) -> None:
        self.recipe = recipe
        self.seed = recipe.train.seed if seed is None else seed
        self.config_sampler = config_sampler
        self.out = None if out_dir is None else Path(out_dir) / "supernet"
        self.info = init_distributed(resolve_device(device))
        self.device = self.info.device  # under torchrun: this rank's own GPU
        self.precision = resolve_precision(recipe.train.precision, self.device)
        self.splits = splits if splits is not None else load_dataset(recipe.data)
        train = self.splits.train
        # The uint8 training split lives on the training device (on CUDA: no host copy per batch; a CIFAR- or
        # Tiny ImageNet-sized split is 0.15-1.2 GB); on a CPU this is the split itself.
        self.train_data = Split(train.images.to(self.device), train.labels.to(self.device))
        self.spec: SpaceSpec = recipe.space.to_spec(self.splits.num_classes)
        self.encoding = get_encoding("nat2", self.spec)
        self.progress = progress and self.info.is_main
        torch.manual_seed(recipe.train.seed)  # new super-networks start from train.seed whatever `seed` is
        self.layout = memory_format(recipe.train.channels_last)
        if supernets is None:
            supernets = {w: build_supernet(self.spec, w) for w in self.spec.widths}
        self.supernets = {w: net.to(self.device, memory_format=self.layout) for w, net in supernets.items()}
        self.phases = list(plan_phases(recipe) if phases is None else phases)
        unknown = sorted({p.kind for p in self.phases} - set(PHASE_KINDS))
        if unknown:
            raise FactoryError(f"unknown phase kind {', '.join(unknown)}; choose one of {', '.join(PHASE_KINDS)}")
        # Batches per epoch, the same on every process (`_shard_batches` before sharding).
        self.steps_per_epoch = max(1, len(self.splits.train.labels) // recipe.train.batch_size)
        self.teacher: OFASupernet | None = None
        self.provenance: dict[str, Any] = {}  # where the starting weights came from; recorded in the final files
        if budget is not None and budget.limited and recipe.train.budget_share > 0 and config_sampler is None:
            self.config_sampler = BudgetSampler(self.encoding, self.spec, budget, recipe.train.budget_share)
            self.provenance["trained_for_budget"] = budget.to_dict() | {"share": recipe.train.budget_share}
        self.history: list[dict[str, Any]] = []
        self.train_seconds = 0.0
        self.phase_index, self.epoch = 0, 0  # the next epoch to train
        self.callbacks: list[EpochCallback] = [EpochSummary()] if self.progress else []
        if self.out is not None:
            self.callbacks.append(EpochFiles(self.out, self.out / CHECKPOINT))
        self.callbacks.extend(callbacks)
        self._run: _PhaseRun | None = None
        self._resume_optimizer: dict[str, Any] | None = None
        self._resume_scaler: dict[str, Any] | None = None

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The resume state at the current position: weights, teacher, the running phase's optimiser (none
        between phases), history."""
        optimizer = self._run.optimizer.state_dict() if self._run is not None else self._resume_optimizer
        scaler = self._run.scaler.state_dict() if self._run is not None else self._resume_scaler
        return {
            "recipe": self.recipe.to_dict(),
            "spec": self.spec,
            "phase_index": self.phase_index,
            "epoch": self.epoch,
            "supernets": {w: net.state_dict() for w, net in self.supernets.items()},
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "optimizer": optimizer,
            "scaler": scaler or None,
            "history": self.history,
            "train_seconds": self.train_seconds,
        }

    def resume(self) -> bool:
        """Load the last checkpoint, if any; True when training continues from it."""
        path = None if self.out is None else self.out / CHECKPOINT
        if path is None or not path.exists():
            return False
        state = load_checkpoint(path, expect_recipe=self.recipe.to_dict())
        for w, sd in state["supernets"].items():
            self.supernets[w].load_state_dict(sd)
        if state["teacher"] is not None:
            self.teacher = self.make_teacher()
            self.teacher.load_state_dict(state["teacher"])
        self.history = state["history"]
        self.train_seconds = state["train_seconds"]
        self.phase_index, self.epoch = state["phase_index"], state["epoch"]
        self._run = None
        self._resume_optimizer = state["optimizer"]
        self._resume_scaler = state.get("scaler")
        return True

    def make_teacher(self) -> OFASupernet:
        """A frozen copy of the widest super-network, as it is now."""
        teacher = copy.deepcopy(self.supernets[max(self.spec.widths)]).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # ----------------------------------------------------------------- the loop
    def has_next(self) -> bool:
        """True while an epoch is left to train."""
        return any(
            phase.epochs > (self.epoch if i == self.phase_index else 0)
            for i, phase in enumerate(self.phases[self.phase_index :], start=self.phase_index)
        )

    def next(self) -> EpochResult:
        """Train the next epoch, record it, move on, and call the callbacks (raising from one stops here)."""
        if not self.has_next():
            raise RuntimeError("every phase is trained; call finish()")
        run = self._enter_phases()
        record = self._train_epoch(run, self.epoch)
        self.history.append(record)
        result = EpochResult(run.index, run.phase, self.epoch + 1, record)
        self.epoch += 1
        if self.epoch == run.phase.epochs:
            self.phase_index, self.epoch, self._run = self.phase_index + 1, 0, None
        for callback in self.callbacks:
            callback.on_epoch_end(self, result)
        return result

    def run(self) -> dict[str, Any]:
        """Train every epoch left (from the resume point), then `finish()`."""
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        while self.has_next():
            self.next()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Enter the phases left (an elastic phase without epochs still sorts channels); with an out folder,
        evaluate and write supernet.pt and metrics.json. Returns the metrics (without: only the history)."""
        self._enter_phases()
        for net in self.supernets.values():  # a heads phase froze the body
            net.requires_grad_(True)
        if self.out is None:
            return {"history": self.history}
        metrics = {**self.evaluate(), **self.provenance} if self.info.is_main else {}
        if self.info.is_main:
            save_checkpoint(
                self.out / FINAL,
                {
                    "recipe": self.recipe.to_dict(),
                    "spec": self.spec,
                    "supernets": {w: n.state_dict() for w, n in self.supernets.items()},
                    "metrics": metrics,
                    **self.provenance,
                },
            )
            write_json_atomic(self.out / "metrics.json", metrics)
        barrier(self.info)
        cleanup(self.info)
        return metrics

    def _enter_phases(self) -> _PhaseRun | None:
        """Set up phases from the current one until one has an epoch left (None: all done). Entering a phase
        gives it a teacher when it needs one (the first elastic phase sorts channels first, as OFA does),
        its objective and its optimiser (restored when resuming mid-phase)."""
        while self.phase_index < len(self.phases):
            if self._run is None:
                self._run = self._enter(self.phase_index)
            if self.epoch < self._run.phase.epochs:
                return self._run
            self.phase_index, self.epoch, self._run = self.phase_index + 1, 0, None
        return None

    def _enter(self, index: int) -> _PhaseRun:
        phase = self.phases[index]
        if phase.kind not in MAXIMAL_KINDS and self.teacher is None:
            if phase.kind == "elastic":
                for supernet in self.supernets.values():
                    supernet.sort_channels()
            self.teacher = self.make_teacher()
        net = self.supernets[phase.width]
        for name, p in net.named_parameters():  # a heads phase freezes the body: no gradient flows into it
            p.requires_grad_(phase.kind != "heads" or name.startswith("heads."))
        model: nn.Module = StepLoss(net, self.layout)
        if self.info.enabled:
            devices = [self.device] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=devices, find_unused_parameters=True)
        optimizer = self._optimizer(net, phase)
        scaler = grad_scaler(self.device, self.precision)
        if self.epoch > 0 and self._resume_optimizer is not None:
            optimizer.load_state_dict(self._resume_optimizer)
            if self._resume_scaler:
                scaler.load_state_dict(self._resume_scaler)
        self._resume_optimizer = self._resume_scaler = None
        return _PhaseRun(index, phase, net, model, optimizer, scaler)

    # ----------------------------------------------------------------- training
    def _optimizer(self, net: nn.Module, phase: Phase) -> torch.optim.Optimizer:
        t = self.recipe.train
        decay, no_decay = [], []
        for name, p in net.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or "transform" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=phase.lr, momentum=t.momentum, nesterov=t.nesterov)

    def _lr(self, phase: Phase, step: int, total: int) -> float:
        return 0.5 * phase.lr * (1 + math.cos(math.pi * step / max(1, total)))

    def _maximal_target(self, width: float, share: float) -> StepTarget:
        """The warm-up step's target: the maximal network, all exits with AEP for early-exit kinds."""
        config = largest_config(self.spec, width=width, resolution=max(self.spec.resolutions))
        if self.spec.early_exit:
            exits = tuple(self.spec.exits())
            alpha = aep_weights(self.recipe.train.aep_weighting, len(exits))[0]
            return StepTarget(config, exits, tuple(alpha), share)
        return StepTarget(config, None, (1.0,), share)

    def step_targets(self, phase: Phase, rng: np.random.Generator | None, k: int) -> list[StepTarget]:
        """The sub-networks of one step of `phase`: the maximal network for warm-up, else `k` sampled ones
        (from `config_sampler` when given, drawing on `rng`), with the maximal network first under sandwich."""
        if phase.kind in MAXIMAL_KINDS:
            return [self._maximal_target(phase.width, 1.0)]
        sampled = self.config_sampler(k, rng) if self.config_sampler else sample_configs(self.encoding, k, rng)
        configs = [SubnetConfig(c.resolution, phase.width, c.exit, c.blocks) for c in sampled]
        t = self.recipe.train
        if not t.sandwich:
            targets = [StepTarget(c, share=1.0 / k) for c in configs]
        else:
            share = t.sandwich_share or 1.0 / (k + 1)
            targets = [self._maximal_target(phase.width, share)] + [
                StepTarget(c, share=(1 - share) / k) for c in configs
            ]
        if t.subnet_loss == "sum":  # one backward per sub-network, gradients accumulated (OFA, NAT)
            targets = [dataclasses.replace(x, share=x.share * len(targets)) for x in targets]
        return targets

    @torch.no_grad()
    def _teacher_probs(self, images: torch.Tensor, resolutions: set[int]) -> dict[int, torch.Tensor | None]:
        if self.teacher is None:
            return {}
        t = self.recipe.train
        out: dict[int, torch.Tensor | None] = {}
        for res in resolutions:
            config = largest_config(self.spec, width=max(self.spec.widths), resolution=res)
            if self.spec.early_exit and t.ens_kd:
                exits = tuple(self.spec.exits())
                self.teacher.set_active(config, exits=exits)
                with autocast(self.device, self.precision):
                    logits = self.teacher(resize_batch(images, res).contiguous(memory_format=self.layout))
                out[res] = ensemble_teacher_probs(logits, aep_weights(t.aep_weighting, len(exits))[1])
            else:
                self.teacher.set_active(config)
                with autocast(self.device, self.precision):
                    inputs = resize_batch(images, res).contiguous(memory_format=self.layout)
                    out[res] = ensemble_teacher_probs([self.teacher(inputs)], [1.0])
        return out

    def forward_step(
        self, run: _PhaseRun, images: torch.Tensor, labels: torch.Tensor, targets: Sequence[StepTarget]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and top-1 of one step of `targets` on a normalised batch (the teacher's ENS-KD targets first,
        outside a maximal phase); gradients cleared, nothing updated yet."""
        t = self.recipe.train
        resolutions = {target.config.resolution for target in targets}
        probs = self._teacher_probs(images, resolutions) if run.phase.kind not in MAXIMAL_KINDS else {}
        run.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            return run.model(images, labels, targets, probs, t.kd_weight, t.label_smoothing)

    def backward_step(self, run: _PhaseRun, loss: torch.Tensor) -> None:
        """Backward through `loss` (scaled under fp16), clip the gradients, update the weights."""
        t = self.recipe.train
        run.scaler.scale(loss).backward()
        if t.grad_clip > 0:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.net.parameters(), t.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()

    def _train_epoch(self, run: _PhaseRun, epoch: int) -> dict[str, Any]:
        """Epoch `epoch` (from 0) of the running phase; returns its record."""
        t, d = self.recipe.train, self.recipe.data
        phase, net, optimizer = run.phase, run.net, run.optimizer
        seed = _epoch_seed(self.seed, run.index, epoch)
        torch.manual_seed(seed)  # dropout draws from torch's default generator
        order_gen = torch.Generator().manual_seed(seed)
        aug_gen = torch.Generator(device=self.device).manual_seed(seed + 1 + self.info.rank)
        rng = np.random.default_rng(seed)
        train = self.train_data
        batches = _shard_batches(len(train.labels), t.batch_size, order_gen, self.info)
        net.train()
        steps_per_epoch = self.steps_per_epoch
        total_steps = phase.epochs * steps_per_epoch
        bar = tqdm(
            batches,
            desc=f"{phase.name} {epoch + 1}/{phase.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=False,
        )
        # Summed on the device and read only when the bar is refreshed: a read is a host sync on CUDA.
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        acc_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        # The first step whose loss was not finite (len(batches): none yet), kept on the device; read every step
        # on a CPU, every FINITE_CHECK_STEPS steps on CUDA (no host sync per step) and at the epoch's end.
        first_bad = torch.full((), len(batches), dtype=torch.int64, device=self.device)
        check_every = 1 if self.device.type == "cpu" else FINITE_CHECK_STEPS
        images_seen = 0
        start = time.perf_counter()
        for step, index in enumerate(bar):
            lr = self._lr(phase, epoch * steps_per_epoch + step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = index.to(self.device)
            images, labels = train.images[index], train.labels[index]
            images = normalize(augment_batch(images, d.crop_padding, d.flip, aug_gen), d.mean, d.std)
            targets = self.step_targets(phase, rng, t.subnets_per_batch)
            loss, acc = self.forward_step(run, images, labels, targets)
            first_bad = torch.where(torch.isfinite(loss.detach()), first_bad, first_bad.clamp(max=step))
            if step % check_every == 0:  # before the step: a diverged loss never updates the weights on a CPU
                self._stop_if_diverged(phase, epoch, first_bad, len(batches))
            self.backward_step(run, loss)
            loss_sum += loss.detach().double()
            acc_sum += acc.detach().double()
            images_seen += len(labels) * self.info.world_size
            if self.progress and (self.device.type == "cpu" or step % BAR_REFRESH_STEPS == 0):
                elapsed = time.perf_counter() - start
                bar.set_postfix(
                    loss=f"{loss_sum.item() / (step + 1):.3f}",
                    acc=f"{acc_sum.item() / (step + 1):.3f}",
                    img_s=f"{images_seen / max(elapsed, 1e-9):.0f}",
                    lr=f"{lr:.2e}",
                )
        self._stop_if_diverged(phase, epoch, first_bad, len(batches), net)  # before the epoch's checkpoint
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        n = max(1, len(batches))
        return {
            "phase": phase.name,
            "epoch": epoch + 1,
            "epochs": phase.epochs,
            "loss": all_mean(loss_sum.item() / n, self.info),
            "train_top1": all_mean(acc_sum.item() / n, self.info),
            "images_per_s": images_seen / max(seconds, 1e-9),
            "seconds": seconds,
            "world_size": self.info.world_size,
            "process_group": self.info.backend if self.info.enabled else None,
        }

    def _stop_if_diverged(
        self, phase: Phase, epoch: int, first_bad: torch.Tensor, steps: int, net: nn.Module | None = None
    ) -> None:
        """Raise `TrainingDiverged` when a loss of this epoch was not finite (or, with `net`, a weight or BatchNorm
        statistic is not), on every process alike: NaN weights never reach a checkpoint, the search or an export.

        Reads `first_bad` (one host sync); under torchrun the processes agree on the earliest step first."""
        bad = first_bad
        if net is not None:
            tensors = [v for v in net.state_dict().values() if v.is_floating_point()]
            finite = torch.stack([torch.isfinite(v).all() for v in tensors]).all()
            bad = torch.where(finite, first_bad, first_bad.clamp(max=steps - 1))
        step = int(all_min(bad, self.info).item())
        if step >= steps:
            return
        what = "the loss" if int(first_bad.item()) == step else "the weights"
        raise TrainingDiverged(
            f"training diverged: {what} became NaN or infinite in {phase.name} epoch {epoch + 1}/{phase.epochs}, "
            f"step {step + 1}/{steps}; lower {phase.lr_key} (now {phase.lr:g}) and start over (the checkpoint "
            f"of the last finished epoch is kept, nothing later is written)"
        )

    # ----------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, Any]:
        """Test top-1 of the largest and smallest width-1.0 sub-networks (every exit for early-exit kinds)."""
        t, d = self.recipe.train, self.recipe.data
        subset = calibration_subset(self.splits.train, t.bn_calib_images, t.seed, self.device)
        evaluator = Evaluator(
            self.splits.test, d.mean, d.std, t.eval_batch_size, device=self.device, precision=self.precision
        )
        width = min(self.spec.widths)
        res = max(self.spec.resolutions)
        metrics: dict[str, Any] = {
            "train_seconds": round(self.train_seconds, 2),
            "kind": self.spec.kind,
            "precision": self.precision,
            "width": width,
            "resolution": res,
            "test_size": len(self.splits.test.labels),
        }
        for label, make in (("largest", largest_config), ("smallest", smallest_config)):
            base = make(self.spec, width=width, resolution=res)
            per_exit = {}
            for exit_ in self.spec.exits():
                config = base.with_exit(exit_)
                top1 = evaluate_config(
                    self.supernets[width], config, subset, evaluator, d.mean, d.std, t.bn_calib_batch, self.device
                )
                per_exit[str(exit_)] = top1
            metrics[f"{label}_test_top1"] = per_exit[str(self.spec.exits()[-1])]
            metrics[f"{label}_test_top1_per_exit"] = per_exit
        metrics["history"] = self.history
        return metrics


def evaluate_config(
    supernet: OFASupernet,
    config: SubnetConfig,
    calib: Split,
    evaluator: Evaluator,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    calib_batch: int,
    device: torch.device | str = "cpu",
) -> float:
    """Extract `config`, recalibrate its BatchNorm on `calib`, and return its top-1 on the evaluator's split."""
    supernet.set_active(config)
    static = supernet.get_active_subnet().to(device)
    recalibrate_bn(static, calib, mean, std, config.resolution, calib_batch, device)
    return evaluator.top1(static.cpu() if evaluator.backend == "onnxruntime" else static, config.resolution)[0]


def adapt_supernets(
    recipe: Recipe,
    supernets: dict[float, OFASupernet],
    splits: DatasetSplits,
    sampler: ConfigSampler,
    epochs: dict[float, int],
    seed: int,
    device: str = "auto",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """NAT's super-network adaptation: elastic-phase epochs (same loss, teacher and schedule as training)
    whose sub-networks come from `sampler`, the search's distribution over the best archive members.

    One 'adapt' phase per width with epochs left in `epochs` (in increasing width, at `train.lr`), seeded
    by `seed`. Trains `supernets` in place and writes nothing; returns the per-epoch records.
    """
    phases = [Phase("adapt", width, epochs.get(width, 0), recipe.train.lr) for width in sorted(supernets)]
    trainer = SupernetTrainer(
        recipe,
        None,
        device=device,
        splits=splits,
        progress=progress,
        supernets=supernets,
        config_sampler=sampler,
        phases=[p for p in phases if p.epochs > 0],
        seed=seed,
    )
    trainer.run()
    for net in supernets.values():
        net.eval()
    return trainer.history


def load_supernets(path: str | Path) -> tuple[SpaceSpec, dict[float, OFASupernet], dict[str, Any]]:
    """Rebuild the trained super-networks from `supernet.pt` alone."""
    state = load_checkpoint(path)
    spec: SpaceSpec = state["spec"]
    nets = {}
    for w, sd in state["supernets"].items():
        net = build_supernet(spec, w)
        net.load_state_dict(sd)
        nets[w] = net.eval()
    return spec, nets, state


def dump_metrics(metrics: dict[str, Any]) -> str:
    """Compact one-line summary for the terminal."""
    keep = {k: v for k, v in metrics.items() if k != "history"}
    return json.dumps(keep)
