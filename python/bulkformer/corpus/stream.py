"""Streaming training rows with ``torch.utils.data``: a sampler that yields, per optimizer
step, the rows this rank reads (:mod:`.order`), a dataset that reads them from memory or
from a prepared corpus (worker processes keep a cache of decompressed chunks), and the
loader over both (pinned memory on CUDA). No rank holds more than its workers' chunk
caches of a corpus.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .order import epoch_order, rank_rows
from .store import PreparedCorpus


@dataclass(frozen=True)
class StepLayout:
    """How one optimizer step's global batch is cut: ``batch_size`` rows per micro-batch
    (split over ``world_size`` ranks), ``grad_accum`` micro-batches."""

    batch_size: int
    grad_accum: int = 1
    rank: int = 0
    world_size: int = 1

    @property
    def step_samples(self) -> int:
        return self.batch_size * self.grad_accum


class StepSampler(Sampler[np.ndarray]):
    """For one epoch from sample offset ``start``: per optimizer step, the storage rows of
    this rank's share of the global batch. ``rows``: the training rows in storage;
    ``blocks``: [start, stop) positions into ``rows``, shuffled ``window`` at a time."""

    def __init__(self, rows: np.ndarray, blocks: Sequence[tuple[int, int]], window: int, seed: int,
                 layout: StepLayout, epoch: int = 0, start: int = 0) -> None:
        self.rows, self.blocks, self.window, self.seed = rows, list(blocks), window, seed
        self.layout, self.epoch, self.start = layout, epoch, start

    def __len__(self) -> int:
        return max(0, (len(self.rows) - self.start) // self.layout.step_samples)

    def global_steps(self) -> Iterator[np.ndarray]:
        order = self.rows[epoch_order(self.blocks, self.window, self.seed, self.epoch)]
        size = self.layout.step_samples
        for k in range(len(self)):
            yield order[self.start + k * size:self.start + (k + 1) * size]

    def __iter__(self) -> Iterator[np.ndarray]:
        layout = self.layout
        for batch in self.global_steps():
            yield rank_rows(batch, layout.batch_size, layout.grad_accum, layout.rank, layout.world_size)


class RowDataset(Dataset):
    """``dataset[rows]``: those rows as float32 (len(rows) x genes), from an array in memory
    or a :class:`PreparedCorpus` (through an LRU cache of ``cache_chunks`` decompressed
    chunks per process: a shuffling window touches each chunk many times)."""

    def __init__(self, source: np.ndarray | PreparedCorpus, cache_chunks: int = 64) -> None:
        self.source, self.cache_chunks = source, max(1, cache_chunks)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.source)

    def _chunk(self, index: int) -> np.ndarray:
        chunk = self._cache.get(index)
        if chunk is None:
            size = self.source.chunk_rows
            chunk = self.source.read(index * size, (index + 1) * size)
            self._cache[index] = chunk
            if len(self._cache) > self.cache_chunks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return chunk

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if isinstance(self.source, np.ndarray):
            return np.ascontiguousarray(self.source[rows], dtype=np.float32)
        size = self.source.chunk_rows
        out = np.empty((len(rows), self.source.n_genes), dtype=np.float32)
        for index in np.unique(rows // size):
            hits = np.flatnonzero(rows // size == index)
            out[hits] = self._chunk(int(index))[rows[hits] - index * size]
        return out


def _ignore_stop_signals(worker_id: int) -> None:
    """Workers leave SIGTERM / SIGINT to the training process: a scheduler (or Ctrl-C) signals
    the whole process group, and a worker dying of it would fail the step that is to write
    the checkpoint. The training process ends them when it stops."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def step_loader(dataset: RowDataset, sampler: StepSampler, *, workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """One epoch's steps in order (workers keep it: the loader returns their results in
    sampler order), each a float32 tensor of this rank's rows."""
    workers = workers if isinstance(dataset.source, PreparedCorpus) else 0  # memory needs no workers
    # a generator of its own: a DataLoader otherwise draws its workers' base seed from torch's
    # global RNG whenever an epoch starts, which a resumed run (restoring that RNG mid-epoch)
    # would draw once more than the uninterrupted one
    generator = torch.Generator().manual_seed(0)
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                      generator=generator,
                      prefetch_factor=4 if workers else None, collate_fn=torch.from_numpy,
                      worker_init_fn=_ignore_stop_signals if workers else None)
