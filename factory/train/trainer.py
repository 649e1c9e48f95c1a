"""Super-network training: warm-up of the maximal networks, then elastic training with distillation.

Phases, in order (each width is its own super-network with its own optimiser):
  1. warm-up of each width's maximal network; early-exit kinds train all exits with AEP;
  2. elastic training of each width: every elastic value available from the start (the last phase of
     OFAv2's Extended Progressive Shrinking), after OFA's channel re-organisation (mid channels sorted
     by importance, so smaller expand ratios keep the most important ones); each batch samples
     `subnets_per_batch` single-exit sub-networks (depth-uniform, exit sampled) whose losses are averaged
     into one backward pass (with the recipe's `sandwich`, the maximal network joins each batch with its
     warm-up objective and `sandwich_share` of the loss); the teacher is the frozen width-max maximal
     network after its warm-up, with ENS-KD (the AEP ensemble of all its exits) for early-exit kinds.

Every source of randomness is derived from (seed, phase, epoch), so an interrupted run resumed from its
last checkpoint ends with exactly the weights an uninterrupted run would have.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from factory.data import DatasetSplits, Split, augment_batch, load_dataset, normalize, resize_batch
from factory.elastic import OFASupernet, build_supernet
from factory.errors import FactoryError
from factory.io import write_json_atomic
from factory.recipe import Recipe
from factory.runinfo import ensure_writable, record_run
from factory.space import SpaceSpec, SubnetConfig, largest_config, smallest_config
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_configs
from factory.train.aep import aep_loss, aep_weights
from factory.train.batchnorm import calibration_subset, recalibrate_bn
from factory.train.checkpoint import load_checkpoint, save_checkpoint
from factory.train.device import autocast, memory_format, resolve_device
from factory.train.distributed import DistInfo, all_mean, barrier, cleanup, init_distributed
from factory.train.evaluate import Evaluator
from factory.train.losses import distillation_loss, ensemble_teacher_probs

CHECKPOINT = "checkpoint.pt"
ConfigSampler = Callable[[int, np.random.Generator], list[SubnetConfig]]
FINAL = "supernet.pt"


@dataclass(frozen=True)
class Phase:
    """One stretch of training: `kind` is 'warmup' or 'elastic', for the super-network of `width`."""

    kind: str
    width: float
    epochs: int
    lr: float

    @property
    def name(self) -> str:
        return f"{self.kind}-w{self.width:g}"


def plan_phases(recipe: Recipe) -> list[Phase]:
    """Warm-up of every width, then elastic training of every width."""
    widths = recipe.space.widths
    train = recipe.train
    return [Phase("warmup", w, train.warmup_epochs, train.warmup_lr) for w in widths] + [
        Phase("elastic", w, train.epochs, train.lr) for w in widths
    ]


class ElasticObjective(nn.Module):
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
        configs: list[SubnetConfig],
        exits: list[tuple[int, ...] | None],
        alphas: list[list[float]],
        teacher_probs: dict[int, torch.Tensor | None],
        kd_weight: float,
        label_smoothing: float,
        shares: list[float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss weighted by `shares` (each config's fraction of the step, equal by default) and mean top-1."""
        total = images.new_zeros(())
        correct = images.new_zeros(())
        shares = shares or [1.0 / len(configs)] * len(configs)
        for config, exit_set, alpha, share in zip(configs, exits, alphas, shares, strict=True):
            self.supernet.set_active(config, exits=exit_set)
            out = self.supernet(resize_batch(images, config.resolution).contiguous(memory_format=self.layout))
            if isinstance(out, (list, tuple)):
                loss = aep_loss(out, labels, alpha, label_smoothing)
                head = out[-1]
            else:
                loss = distillation_loss(out, labels, teacher_probs.get(config.resolution), kd_weight, label_smoothing)
                head = out
            total = total + share * loss
            correct = correct + (head.argmax(1) == labels).float().mean() / len(configs)
        return total, correct.detach()


def _epoch_seed(seed: int, phase_index: int, epoch: int) -> int:
    return (seed * 1_000_003 + phase_index * 10_007 + epoch) % (2**62)


def _shard_batches(n: int, batch_size: int, generator: torch.Generator, info: DistInfo) -> list[torch.Tensor]:
    """Shuffled batches of indices; each process takes its share of every batch."""
    order = torch.randperm(n, generator=generator)
    batches = [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)] or [order]
    return [b[info.rank :: info.world_size] for b in batches]


class SupernetTrainer:
    """Runs the phases of `plan_phases` with checkpoints after every epoch."""

    def __init__(
        self,
        recipe: Recipe,
        out_dir: str | Path,
        device: str = "auto",
        splits: DatasetSplits | None = None,
        progress: bool = True,
        supernets: dict[float, OFASupernet] | None = None,
        config_sampler: ConfigSampler | None = None,
    ) -> None:
        self.recipe = recipe
        self.seed = recipe.train.seed
        self.config_sampler = config_sampler
        self.out = Path(out_dir) / "supernet"
        self.device = resolve_device(device)
        self.info = init_distributed(self.device)
        self.splits = splits if splits is not None else load_dataset(recipe.data)
        self.spec: SpaceSpec = recipe.space.to_spec(self.splits.num_classes)
        self.encoding = get_encoding("nat2", self.spec)
        self.progress = progress and self.info.is_main
        torch.manual_seed(recipe.train.seed)
        self.layout = memory_format(recipe.train.channels_last)
        if supernets is None:
            supernets = {w: build_supernet(self.spec, w) for w in self.spec.widths}
        self.supernets = {w: net.to(self.device, memory_format=self.layout) for w, net in supernets.items()}
        self.phases = plan_phases(recipe)
        self.teacher: OFASupernet | None = None
        self.history: list[dict[str, Any]] = []
        self.train_seconds = 0.0
        self.start_phase, self.start_epoch = 0, 0

    # ----------------------------------------------------------------- checkpoints
    def _state(self, phase_index: int, epoch: int, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_dict(),
            "spec": self.spec,
            "phase_index": phase_index,
            "epoch": epoch,
            "supernets": {w: net.state_dict() for w, net in self.supernets.items()},
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "history": self.history,
            "train_seconds": self.train_seconds,
        }

    def resume(self) -> bool:
        """Load the last checkpoint, if any; True when training continues from it."""
        path = self.out / CHECKPOINT
        if not path.exists():
            return False
        state = load_checkpoint(path, expect_recipe=self.recipe.to_dict())
        for w, sd in state["supernets"].items():
            self.supernets[w].load_state_dict(sd)
        if state["teacher"] is not None:
            self.teacher = self._make_teacher()
            self.teacher.load_state_dict(state["teacher"])
        self.history = state["history"]
        self.train_seconds = state["train_seconds"]
        self.start_phase, self.start_epoch = state["phase_index"], state["epoch"]
        self._resume_optimizer = state["optimizer"]
        return True

    def _make_teacher(self) -> OFASupernet:
        teacher = copy.deepcopy(self.supernets[max(self.spec.widths)]).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # ----------------------------------------------------------------- training
    def _optimizer(self, net: nn.Module, phase: Phase) -> torch.optim.Optimizer:
        t = self.recipe.train
        decay, no_decay = [], []
        for name, p in net.named_parameters():
            (no_decay if p.ndim <= 1 or "transform" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=phase.lr, momentum=t.momentum, nesterov=t.nesterov)

    def _lr(self, phase: Phase, step: int, total: int) -> float:
        return 0.5 * phase.lr * (1 + math.cos(math.pi * step / max(1, total)))

    def run(self) -> dict[str, Any]:
        """Train every phase (from the resume point), then evaluate and write supernet.pt and metrics.json."""
        self.out.mkdir(parents=True, exist_ok=True)
        train = self.splits.train
        steps_per_epoch = len(
            _shard_batches(len(train.labels), self.recipe.train.batch_size, torch.Generator(), DistInfo())
        )
        for phase_index in range(self.start_phase, len(self.phases)):
            phase = self.phases[phase_index]
            if phase.kind == "elastic" and self.teacher is None:
                for supernet in self.supernets.values():
                    supernet.sort_channels()
                self.teacher = self._make_teacher()
            net = self.supernets[phase.width]
            model: nn.Module = ElasticObjective(net, self.layout)
            if self.info.enabled:
                model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
            optimizer = self._optimizer(net, phase)
            first_epoch = self.start_epoch if phase_index == self.start_phase else 0
            if first_epoch > 0 and getattr(self, "_resume_optimizer", None) is not None:
                optimizer.load_state_dict(self._resume_optimizer)
            for epoch in range(first_epoch, phase.epochs):
                record = self._epoch(model, net, optimizer, phase, phase_index, epoch, steps_per_epoch)
                self.history.append(record)
                if self.info.is_main:
                    write_json_atomic(
                        self.out / "epochs" / f"{phase_index:02d}-{phase.name}-e{epoch + 1:03d}.json", record
                    )
                    done_phase = epoch + 1 == phase.epochs
                    nxt = (phase_index + 1, 0) if done_phase else (phase_index, epoch + 1)
                    save_checkpoint(self.out / CHECKPOINT, self._state(*nxt, None if done_phase else optimizer))
                barrier(self.info)
            self.start_epoch = 0
        metrics = self.evaluate() if self.info.is_main else {}
        if self.info.is_main:
            save_checkpoint(
                self.out / FINAL,
                {
                    "recipe": self.recipe.to_dict(),
                    "spec": self.spec,
                    "supernets": {w: n.state_dict() for w, n in self.supernets.items()},
                    "metrics": metrics,
                },
            )
            write_json_atomic(self.out / "metrics.json", metrics)
        barrier(self.info)
        cleanup(self.info)
        return metrics

    def _maximal_targets(self, width: float):
        """The warm-up step's targets: the maximal network, all exits with AEP for early-exit kinds."""
        config = largest_config(self.spec, width=width, resolution=max(self.spec.resolutions))
        if self.spec.early_exit:
            exits = tuple(self.spec.exits())
            return [config], [exits], [aep_weights(self.recipe.train.aep_weighting, len(exits))[0]]
        return [config], [None], [[1.0]]

    def _phase_targets(self, phase: Phase, rng: np.random.Generator, k: int):
        """Configs, exit sets, exit weights and each config's share of the step's loss."""
        if phase.kind == "warmup":
            return (*self._maximal_targets(phase.width), [1.0])
        sampled = self.config_sampler(k, rng) if self.config_sampler else sample_configs(self.encoding, k, rng)
        configs = [SubnetConfig(c.resolution, phase.width, c.exit, c.blocks) for c in sampled]
        targets = configs, [None] * k, [[1.0]] * k
        t = self.recipe.train
        if not t.sandwich:
            return (*targets, [1.0 / k] * k)
        share = t.sandwich_share or 1.0 / (k + 1)
        merged = (m + s for m, s in zip(self._maximal_targets(phase.width), targets, strict=True))
        return (*merged, [share] + [(1 - share) / k] * k)

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
                with autocast(self.device, t.amp):
                    logits = self.teacher(resize_batch(images, res).contiguous(memory_format=self.layout))
                out[res] = ensemble_teacher_probs(logits, aep_weights(t.aep_weighting, len(exits))[1])
            else:
                self.teacher.set_active(config)
                with autocast(self.device, t.amp):
                    inputs = resize_batch(images, res).contiguous(memory_format=self.layout)
                    out[res] = ensemble_teacher_probs([self.teacher(inputs)], [1.0])
        return out

    def _epoch(self, model, net, optimizer, phase, phase_index, epoch, steps_per_epoch) -> dict[str, Any]:
        t, d = self.recipe.train, self.recipe.data
        seed = _epoch_seed(self.seed, phase_index, epoch)
        torch.manual_seed(seed)  # dropout draws from torch's default generator
        order_gen = torch.Generator().manual_seed(seed)
        aug_gen = torch.Generator(device=self.device).manual_seed(seed + 1 + self.info.rank)
        rng = np.random.default_rng(seed)
        train = self.splits.train
        batches = _shard_batches(len(train.labels), t.batch_size, order_gen, self.info)
        net.train()
        total_steps = phase.epochs * steps_per_epoch
        bar = tqdm(
            batches,
            desc=f"{phase.name} {epoch + 1}/{phase.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=False,
        )
        loss_sum = acc_sum = 0.0
        images_seen = 0
        start = time.perf_counter()
        for step, index in enumerate(bar):
            lr = self._lr(phase, epoch * steps_per_epoch + step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = train.images[index].to(self.device, non_blocking=True)
            labels = train.labels[index].to(self.device, non_blocking=True)
            images = normalize(augment_batch(images, d.crop_padding, d.flip, aug_gen), d.mean, d.std)
            configs, exits, alphas, shares = self._phase_targets(phase, rng, t.subnets_per_batch)
            probs = self._teacher_probs(images, {c.resolution for c in configs}) if phase.kind != "warmup" else {}
            optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, t.amp):
                loss, acc = model(images, labels, configs, exits, alphas, probs, t.kd_weight, t.label_smoothing, shares)
            loss.backward()
            if t.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
            optimizer.step()
            loss_sum += float(loss.item())
            acc_sum += float(acc.item())
            images_seen += len(labels) * self.info.world_size
            elapsed = time.perf_counter() - start
            bar.set_postfix(
                loss=f"{loss_sum / (step + 1):.3f}",
                acc=f"{acc_sum / (step + 1):.3f}",
                img_s=f"{images_seen / max(elapsed, 1e-9):.0f}",
                lr=f"{lr:.2e}",
            )
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        n = max(1, len(batches))
        record = {
            "phase": phase.name,
            "epoch": epoch + 1,
            "epochs": phase.epochs,
            "loss": all_mean(loss_sum / n, self.info),
            "train_top1": all_mean(acc_sum / n, self.info),
            "images_per_s": images_seen / max(seconds, 1e-9),
            "seconds": seconds,
            "world_size": self.info.world_size,
        }
        if self.progress:
            tqdm.write(
                f"{phase.name} epoch {epoch + 1}/{phase.epochs}: loss {record['loss']:.3f} "
                f"train top-1 {record['train_top1']:.3f} {record['images_per_s']:.0f} img/s"
            )
        return record

    # ----------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, Any]:
        """Test top-1 of the largest and smallest width-1.0 sub-networks (every exit for early-exit kinds)."""
        t, d = self.recipe.train, self.recipe.data
        subset = calibration_subset(self.splits.train, t.bn_calib_images, t.seed)
        evaluator = Evaluator(self.splits.test, d.mean, d.std, t.eval_batch_size, device=self.device)
        width = min(self.spec.widths)
        res = max(self.spec.resolutions)
        metrics: dict[str, Any] = {
            "train_seconds": round(self.train_seconds, 2),
            "kind": self.spec.kind,
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


def train_supernet(
    recipe: Recipe, out_dir: str | Path, device: str = "auto", resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Library entry point of `factory train`: train (or continue) and return the final metrics."""
    checkpoint = Path(out_dir) / "supernet" / CHECKPOINT
    if not resume and checkpoint.exists():
        raise FactoryError(f"{checkpoint} exists; pass --resume to continue that run, or choose another --out folder")
    ensure_writable(out_dir)
    trainer = SupernetTrainer(recipe, out_dir, device=device, progress=progress)
    if resume:
        trainer.resume()
    if trainer.info.is_main:
        record_run(out_dir, recipe, str(trainer.device), seed=trainer.seed, world_size=trainer.info.world_size)
    return trainer.run()


def adapt_supernets(
    recipe: Recipe,
    supernets: dict[float, OFASupernet],
    splits: DatasetSplits,
    sampler: ConfigSampler,
    epochs: int,
    seed: int,
    device: str = "auto",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """NAT's super-network adaptation: elastic-phase epochs (same loss, teacher and schedule as training)
    whose sub-networks come from `sampler`, the search's distribution over the best archive members.

    Trains `supernets` in place and writes nothing; returns the per-epoch records.
    """
    trainer = SupernetTrainer(
        recipe, ".", device=device, splits=splits, progress=progress, supernets=supernets, config_sampler=sampler
    )
    trainer.seed = seed
    trainer.teacher = trainer._make_teacher()
    widths = sorted(supernets)
    steps = len(_shard_batches(len(splits.train.labels), recipe.train.batch_size, torch.Generator(), DistInfo()))
    for index, width in enumerate(widths):
        phase = Phase("adapt", width, epochs, recipe.train.lr)
        net = supernets[width]
        optimizer = trainer._optimizer(net, phase)
        for epoch in range(epochs):
            record = trainer._epoch(ElasticObjective(net, trainer.layout), net, optimizer, phase, index, epoch, steps)
            trainer.history.append(record)
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
