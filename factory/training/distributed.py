"""Multi-process training through PyTorch's own engine (torchrun): gloo on CPU, NCCL on GPU.

Each process trains on its own device: under torchrun, rank with LOCAL_RANK k uses GPU k, chosen before the
process group starts (NCCL fails when two ranks meet on one GPU). Collectives run on tensors of that device:
NCCL reduces CUDA tensors only, gloo CPU ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Who this process is and where it computes: rank 0 writes files and shows progress."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    launched: bool = False  # started by torchrun: a process group exists, even of one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether collectives and DistributedDataParallel run (every torchrun process, one alone included)."""
        return self.launched

    @property
    def backend(self) -> str:
        """The process-group backend for this process's device."""
        return "nccl" if self.device.type == "cuda" else "gloo"


def placement(device: torch.device, env: Mapping[str, str]) -> DistInfo:
    """Rank, world size and device of this process from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK).

    A process not started by torchrun keeps `device`; a torchrun process on CUDA gets `cuda:LOCAL_RANK`. A
    torchrun run of one process still forms its process group, so the multi-GPU code path can be checked on
    a single GPU.
    """
    if "WORLD_SIZE" not in env or "LOCAL_RANK" not in env:
        return DistInfo(device=device)
    local = int(env["LOCAL_RANK"])
    own = torch.device("cuda", local) if device.type == "cuda" else torch.device("cpu")
    return DistInfo(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), local, own, launched=True)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up, on this process's own device, or run alone."""
    info = placement(device, os.environ)
    if not info.enabled:
        return info
    if info.device.type == "cuda":
        torch.cuda.set_device(info.device)  # before the group starts, so NCCL binds this rank to its own GPU
    if not dist.is_initialized():
        dist.init_process_group(backend=info.backend)
    return replace(info, rank=dist.get_rank(), world_size=dist.get_world_size())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_mean(value: float | torch.Tensor, info: DistInfo) -> float:
    """Average a scalar over processes (for logged metrics), reduced on the process's own device."""
    tensor = torch.as_tensor(value, dtype=torch.float64).reshape(1).to(info.device)
    if info.enabled:
        dist.all_reduce(tensor)
    return float(tensor.item() / info.world_size)


def all_min(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise minimum of `tensor` over processes (a copy), so every process takes the same decision."""
    out = tensor.reshape(-1).clone()
    if info.enabled:
        dist.all_reduce(out, op=dist.ReduceOp.MIN)
    return out


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
