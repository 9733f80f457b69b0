"""Sharding samples across torchrun ranks.

Under ``torchrun`` (``WORLD_SIZE > 1``) the same ``impute``/``embed`` calls split
the samples into contiguous per-rank ranges. In-memory results are gathered so
every rank returns the whole result; on-disk stores are written by every rank
into its own sample chunks and completed (metadata, rename) by rank 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Shard:
    """This process's share of ``n`` samples."""

    rank: int
    world_size: int
    rows: range

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def ensure_process_group(device: torch.device | None = None) -> None:
    """Initialise torch.distributed from the torchrun environment if not done yet
    (NCCL for CUDA devices, gloo otherwise)."""
    import torch.distributed as dist

    if not launched_by_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)


def local_device(device: str | torch.device | None = None) -> str | torch.device | None:
    """``device`` as this rank should use it: under torchrun on a GPU machine, no device
    or a bare "cuda" means cuda:LOCAL_RANK (a bare "cuda" would put every rank on GPU 0);
    anything else is returned unchanged for ``choose_device`` to check."""
    bare_cuda = device is None or (isinstance(device, (str, torch.device)) and str(device) == "cuda")
    if launched_by_torchrun() and torch.cuda.is_available() and bare_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return device


def shard_rows(n_samples: int, batch_size: int = 1) -> Shard:
    """Contiguous, balanced ranges of whole batches per rank: rank r gets batches
    r*B/W .. (r+1)*B/W of the single-process batching, so every sample is computed in
    the same batch as in one process and results are bit-identical."""
    import torch.distributed as dist

    if not (launched_by_torchrun() and dist.is_available() and dist.is_initialized()):
        return Shard(0, 1, range(n_samples))
    rank, world = dist.get_rank(), dist.get_world_size()
    n_batches = -(-n_samples // batch_size)
    start = min(rank * n_batches // world * batch_size, n_samples)
    stop = min((rank + 1) * n_batches // world * batch_size, n_samples)
    return Shard(rank, world, range(start, stop))


def barrier(shard: Shard) -> None:
    if shard.distributed:
        import torch.distributed as dist

        dist.barrier()


def gather_rows(shard: Shard, part: np.ndarray) -> np.ndarray:
    """Concatenate every rank's rows (in rank order) on every rank."""
    if not shard.distributed:
        return part
    import torch.distributed as dist

    parts: list = [None] * shard.world_size
    dist.all_gather_object(parts, part)
    return np.concatenate(parts, axis=0)
