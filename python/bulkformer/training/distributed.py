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

import torch.distributed as dist

from ..runtime import choose_device as choose_runtime_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    launched: bool = False  # started by torchrun: DDP even for one process, the path many ranks take

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.launched


def choose_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """The one device policy of inference and training (:func:`bulkformer.runtime.choose_device`:
    cuda > mps > cpu); under torchrun a bare or default CUDA device is this rank's GPU."""
    chosen = choose_runtime_device(None if device is None or str(device) == "auto" else device)
    if chosen.type == "cuda" and (device is None or str(device) in ("auto", "cuda")):
        chosen = torch.device(f"cuda:{local_rank}")
    return chosen


def init_distributed(device: str | torch.device | None = None) -> DistContext:
    """Join the process group when launched by torchrun (it sets TORCHELASTIC_RUN_ID) or
    with WORLD_SIZE > 1: a 1-GPU torchrun job runs through NCCL and DDP like a multi-GPU one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    launched = "TORCHELASTIC_RUN_ID" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device, local_rank)
    if (world_size > 1 or launched) and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen, launched=launched)


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


def agree_max(ctx: DistContext, values: list[float]) -> list[float]:
    """The element-wise maximum of ``values`` over all ranks (every rank gets it)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()
