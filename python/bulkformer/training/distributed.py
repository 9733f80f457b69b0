"""torchrun / DDP plumbing: one process per device, nccl on GPU, gloo on CPU.

Launch lines (the same script on every node)::

    # one machine, 4 GPUs
    torchrun --nproc-per-node 4 $(which bulkformer) pretrain shards/ -o run/
    # two machines with 8 GPUs each: run on both, HOST = the first machine
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        $(which bulkformer) pretrain shards/ -o run/
    # CPU only (gloo), e.g. for tests
    torchrun --nproc-per-node 2 $(which bulkformer) pretrain shards/ -o run/ --device cpu
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..inference.execution import choose_device as choose_inference_device
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def choose_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = choose_inference_device(device)  # same checks: a typo or a missing GPU is a clear error
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device: str | torch.device | None = None) -> DistContext:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
