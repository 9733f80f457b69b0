"""Training data as pretraining reads them: shards (in memory or read on demand) and the
seeded, resumable batch stream over them (:mod:`bulkformer.corpus.order`). The shard
readers live in :mod:`bulkformer.corpus.sources` (re-exported here)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..corpus.order import BLOCK_ROWS, epoch_windows, window_permutation
from ..corpus.store import CorpusSettings, open_shards
from ..corpus.sources import (SHARD_SUFFIXES, ModelTarget, Shard, apply_measured, check_distinct_samples, file_shard,
                              prepare_values, prepared_with_ids, shard_paths)

__all__ = ["SHARD_SUFFIXES", "Corpus", "ModelTarget", "Shard", "apply_measured", "build_corpus",
           "check_distinct_samples", "file_shard", "in_memory_corpus", "prepare_values", "prepared_with_ids",
           "shard_paths"]


class Corpus:
    """An ordered list of shards plus the seeded, resumable batch stream over them."""

    def __init__(self, shards: Sequence[Shard], shards_in_memory: int = 2) -> None:
        if not shards:
            raise ValueError("no training data: the shard list is empty")
        if shards_in_memory < 1:
            raise ValueError(f"shards_in_memory must be >= 1, got {shards_in_memory}")
        self.shards = list(shards)
        self.shards_in_memory = shards_in_memory

    @property
    def n_samples(self) -> int:
        return sum(s.n_samples for s in self.shards)

    def batches(self, batch_size: int, epoch: int, seed: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(offset_after_batch, global batch)`` for one epoch, skipping the first
        ``start`` samples (a multiple of batch_size, from a checkpoint). The last
        incomplete batch is dropped. Windows wholly before ``start`` are never read."""
        window_start = 0  # stream position of the window's first sample
        buffer: np.ndarray | None = None
        buffer_start = start
        sizes = [s.n_samples for s in self.shards]
        for window, window_seed in epoch_windows(sizes, self.shards_in_memory, seed, epoch):
            window_end = window_start + sum(sizes[i] for i in window)
            if window_end <= start:
                window_start = window_end
                continue
            pooled = np.concatenate([self.shards[i].read() for i in window], axis=0)
            pooled = pooled[window_permutation(len(pooled), window_seed)]
            if window_start < start:
                pooled = pooled[start - window_start:]
            window_start = window_end
            buffer = pooled if buffer is None or not len(buffer) else np.concatenate([buffer, pooled], axis=0)
            while len(buffer) >= batch_size:
                buffer_start += batch_size
                yield buffer_start, buffer[:batch_size]
                buffer = buffer[batch_size:]

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Up to ``n`` samples drawn from the shards (used to build a graph and baselines)."""
        return sample_rows((s.read for s in self.shards), n, seed)


def sample_rows(readers: Any, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` rows drawn from the blocks ``readers`` return, read in order until
    there are ``n`` (rows kept in storage order)."""
    rows: list[np.ndarray] = []
    for read in readers:
        rows.append(read())
        if sum(len(r) for r in rows) >= n:
            break
    pooled = np.concatenate(rows, axis=0)
    keep = np.random.default_rng(seed).permutation(len(pooled))[:n]
    return pooled[np.sort(keep)]


def in_memory_corpus(values: np.ndarray, rows_per_shard: int = BLOCK_ROWS, shards_in_memory: int = 2,
                     sample_ids: Sequence[str] | None = None) -> Corpus:
    """Aligned values already in memory, cut into virtual shards."""
    shards = []
    for start in range(0, len(values), rows_per_shard):
        part = values[start:start + rows_per_shard]
        shards.append(Shard(name=f"rows {start}-{start + len(part)}", n_samples=len(part), read=lambda part=part: part,
                            sample_ids=None if sample_ids is None else sample_ids[start:start + len(part)]))
    return Corpus(shards, shards_in_memory=shards_in_memory)


def is_shard_files(data: Any) -> bool:
    return isinstance(data, (str, Path)) or (isinstance(data, (list, tuple)) and bool(data)
                                             and isinstance(data[0], (str, Path)))


def build_corpus(data: Any, vocabulary: Any, *, input: str = "counts", layer: str | None = None,
                 lengths: Any = None, shards_in_memory: int = 2, orientation: str = "samples_by_genes",
                 min_matched_fraction: float = 0.5, gene_names: str | None = None) -> Corpus:
    """Any supported data description -> Corpus (see :func:`bulkformer.pretrain`)."""
    if isinstance(data, Corpus):
        return data
    if isinstance(data, (list, tuple)) and not data:
        raise ValueError("no training data: the list of shard files is empty")
    if is_shard_files(data):
        settings = CorpusSettings(input=input, layer=layer, orientation=orientation, genes=gene_names,
                                  min_matched_fraction=min_matched_fraction)
        return Corpus([s for s in open_shards(shard_paths(data), vocabulary, settings, lengths) if s is not None],
                      shards_in_memory)
    if hasattr(data, "counts") and hasattr(data, "lengths") and hasattr(data, "measured"):  # SimulatedCohort
        values = prepare_values(data.counts, vocabulary, input="counts", lengths=data.lengths)
        return in_memory_corpus(apply_measured(values, data, vocabulary), shards_in_memory=shards_in_memory,
                                sample_ids=[str(s) for s in data.counts.index])
    values, sample_ids = prepared_with_ids(data, vocabulary, input=input, layer=layer, lengths=lengths,
                                           orientation=orientation, min_matched_fraction=min_matched_fraction,
                                           gene_names=gene_names)
    return in_memory_corpus(values, shards_in_memory=shards_in_memory, sample_ids=sample_ids)
