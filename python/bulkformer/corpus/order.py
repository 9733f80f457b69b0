"""The order training visits samples in: a pure function of (seed, epoch).

Samples come in blocks (a shard file, or at most ``BLOCK_ROWS`` consecutive samples of
one). Each epoch visits the blocks in a seeded random order, pools the samples of each
window of ``window`` blocks and shuffles them (shuffling across blocks), and the stream
is cut into global batches. Because the order is a function of (seed, epoch) only, a run
resumes from a sample offset, and every rank computes the same global batches and reads
only its own rows of them.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

# a block is at most this many consecutive samples: a window of them is what a reader
# holds at once (8,192 samples x 19,417 genes of float32: 636 MB with the default window of 2)
BLOCK_ROWS = 4096


def epoch_windows(sizes: Sequence[int], window: int, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, int]]:
    """(block indices, window seed) of each window of one epoch, in visiting order."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(sizes))
    windows = [order[i:i + window] for i in range(0, len(order), window)]
    window_seeds = rng.integers(0, 2**63 - 1, size=len(windows))
    yield from zip(windows, (int(s) for s in window_seeds))


def window_permutation(n: int, window_seed: int) -> np.ndarray:
    return np.random.default_rng(window_seed).permutation(n)


def epoch_order(blocks: Sequence[tuple[int, int]], window: int, seed: int, epoch: int) -> np.ndarray:
    """Positions ``[start, stop)`` of ``blocks`` in the order one epoch visits them."""
    parts = []
    for members, window_seed in epoch_windows([stop - start for start, stop in blocks], window, seed, epoch):
        rows = np.concatenate([np.arange(*blocks[i]) for i in members]) if len(members) else np.zeros(0, np.int64)
        parts.append(rows[window_permutation(len(rows), window_seed)])
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def split_blocks(starts_stops: Sequence[tuple[int, int]], block_rows: int = BLOCK_ROWS) -> list[tuple[int, int]]:
    """Each ``[start, stop)`` range cut into blocks of at most ``block_rows``."""
    return [(s, min(s + block_rows, stop)) for start, stop in starts_stops for s in range(start, stop, block_rows)]


def rank_rows(global_batch: np.ndarray, batch_size: int, grad_accum: int, rank: int, world_size: int) -> np.ndarray:
    """This rank's rows of one optimizer step's global batch (``batch_size * grad_accum``
    samples): its ``batch_size / world_size`` rows of each micro-batch, in order."""
    local = batch_size // world_size
    return np.concatenate([global_batch[m * batch_size + rank * local:m * batch_size + (rank + 1) * local]
                           for m in range(grad_accum)])
