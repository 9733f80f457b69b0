"""Pretraining's data as rows of one store (an array in memory or a prepared corpus on
disk), the validation split, and the step stream over the training rows.

In-memory data are cut into blocks of ``BLOCK_ROWS`` (virtual shards); a corpus keeps its
source shards as the parts, each cut into such blocks. Validation holds out rows of one
part, or whole parts (the last ones) of several, so that no shard file is read twice.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..corpus.order import split_blocks
from ..corpus.sources import Shard
from ..corpus.store import PreparedCorpus
from ..corpus.stream import RowDataset, StepLayout, StepSampler, step_loader
from .data import Corpus, sample_rows


@dataclass
class TrainingRows:
    """``source`` rows ``rows`` in parts ``[(name, start, stop)]`` (positions into ``rows``),
    with their sample IDs (None where unknown), shuffled ``window`` blocks at a time."""

    source: np.ndarray | PreparedCorpus
    rows: np.ndarray
    parts: list[tuple[str, int, int]]
    sample_ids: list[str] | None
    window: int = 2

    @classmethod
    def from_corpus(cls, corpus: Corpus) -> "TrainingRows":
        """In-memory shards (read once) as rows; each shard is a part."""
        parts_read = [s.read() for s in corpus.shards]
        values = parts_read[0] if len(parts_read) == 1 else np.concatenate(parts_read, axis=0)
        parts, start = [], 0
        for shard in corpus.shards:
            parts.append((shard.name, start, start + shard.n_samples))
            start += shard.n_samples
        ids = [] if all(s.sample_ids is not None for s in corpus.shards) else None
        for shard in corpus.shards if ids is not None else ():
            ids.extend(str(i) for i in shard.sample_ids)
        return cls(values, np.arange(len(values)), parts, ids, corpus.shards_in_memory)

    @classmethod
    def from_prepared(cls, corpus: PreparedCorpus, window: int, shards: list[str] | None = None) -> "TrainingRows":
        """A prepared corpus; ``shards``: only these source shards (resolved paths), in that order."""
        records = corpus.shards if shards is None else [next(s for s in corpus.shards if s["path"] == p) for p in shards]
        rows = np.concatenate([np.arange(s["start"], s["stop"]) for s in records]) if records else np.zeros(0, np.int64)
        parts, start = [], 0
        for record in records:
            parts.append((record["name"], start, start + record["n_samples"]))
            start += record["n_samples"]
        return cls(corpus, rows, parts, [corpus.sample_ids[r] for r in rows], window)

    @property
    def n_samples(self) -> int:
        return len(self.rows)

    def blocks(self) -> list[tuple[int, int]]:
        return split_blocks([(start, stop) for _, start, stop in self.parts])

    def read(self, positions: np.ndarray) -> np.ndarray:
        return RowDataset(self.source)[self.rows[positions]]

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Up to ``n`` samples for the graph, the init and the baseline: blocks read in order."""
        return sample_rows((lambda b=b: self.read(np.arange(*b)) for b in self.blocks()), n, seed)

    def subset(self, positions: np.ndarray, parts: list[tuple[str, int, int]]) -> "TrainingRows":
        ids = None if self.sample_ids is None else [self.sample_ids[p] for p in positions]
        return TrainingRows(self.source, self.rows[positions], parts, ids, self.window)

    def shards(self) -> list[Shard]:
        """The parts as shards (names, sizes and sample IDs; for the distinct-samples check)."""
        return [Shard(name=name, n_samples=stop - start, read=lambda: None,
                      sample_ids=None if self.sample_ids is None else self.sample_ids[start:stop])
                for name, start, stop in self.parts]

    def steps(self, layout: StepLayout, epoch: int, seed: int, start: int, *, workers: int = 0,
              pin_memory: bool = False) -> Iterator[tuple[int, Any]]:
        """``(offset after the step, this rank's rows as a float32 tensor)`` per optimizer
        step of one epoch from sample offset ``start`` (an incomplete last step is dropped)."""
        sampler = StepSampler(self.rows, self.blocks(), self.window, seed, layout, epoch=epoch, start=start)
        loader = step_loader(RowDataset(self.source), sampler, workers=workers, pin_memory=pin_memory)
        for k, batch in enumerate(loader):
            yield start + (k + 1) * layout.step_samples, batch


def validation_split(data: TrainingRows, val_fraction: float, max_val_samples: int,
                     seed: int) -> tuple[TrainingRows, np.ndarray | None, str]:
    """(training rows, validation rows or None, what was held out, for the log). One part
    (or in-memory data) is split by rows; several shard files by whole shards (the last
    ``ceil(val_fraction * n)``), so that no file is read twice."""
    if val_fraction <= 0:
        return data, None, "none (val_fraction=0)"
    n = data.n_samples
    if len(data.parts) == 1 or all(name.startswith("rows ") for name, _, _ in data.parts):
        order = np.random.default_rng([seed, 99]).permutation(n)
        n_val = min(max_val_samples, max(1, int(round(val_fraction * n))))
        if n - n_val < 1:
            raise ValueError(f"too few samples ({n}) to hold out {n_val} for validation; set val_fraction=0")
        train = np.sort(order[n_val:])
        parts = [(f"rows {s}-{e}", s, e) for s, e in split_blocks([(0, len(train))])]
        return data.subset(train, parts), data.read(np.sort(order[:n_val])), f"{n_val} of {n} samples"
    n_val_shards = max(1, int(math.ceil(val_fraction * len(data.parts))))
    held = data.parts[-n_val_shards:]
    values = data.read(np.arange(held[0][1], held[-1][2]))
    keep = np.sort(np.random.default_rng(seed).permutation(len(values))[:max_val_samples])
    n_leaving = held[-1][2] - held[0][1]
    share = n_leaving / max(n, 1)
    note = (f"{len(keep)} samples from the last {n_val_shards} of {len(data.parts)} shard files "
            f"({', '.join(name for name, _, _ in held)}); whole shards, so {n_leaving} samples ({share:.0%} of "
            f"{n}) leave training")
    if share > 2 * val_fraction:
        warnings.warn(f"validation takes {share:.0%} of the samples (val_fraction={val_fraction}) because whole shard "
                      f"files are held out ({n_val_shards} of {len(data.parts)}): give the validation samples with "
                      "val_data=, or split the data into more, smaller shards", UserWarning, stacklevel=3)
    kept = data.parts[:-n_val_shards]
    return data.subset(np.arange(kept[-1][2]), kept), values[keep], note
