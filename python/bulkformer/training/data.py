"""Training data: shards streamed from disk (h5ad, parquet, zarr, csv/tsv) or arrays in
memory, aligned to the model vocabulary through ``bulkformer.preprocess.prepare``.

Only ``shards_in_memory`` shards are held at once. Each epoch visits the shards in a
seeded random order, pools the samples of each window of ``shards_in_memory`` shards
and shuffles them (shuffling across shards), and cuts the stream into global batches.
The order is a pure function of (seed, epoch), so a run resumes from a sample offset and
every rank sees the same global batches (each keeps its own slice).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..model import MASK_VALUE

SHARD_SUFFIXES = (".h5ad", ".parquet", ".pq", ".zarr", ".csv", ".tsv", ".csv.gz", ".tsv.gz")


@dataclass
class Shard:
    """One unit of data: its size, and how to read it as aligned log1p TPM values."""

    name: str
    n_samples: int
    read: Callable[[], np.ndarray]


def prepare_values(data: Any, vocabulary: pd.DataFrame, *, input: str = "counts", layer: str | None = None,
                   lengths: Any = None) -> np.ndarray:
    """samples x vocabulary float32 log1p TPM (-10 where unmeasured) via the data-preparation
    module; ``input="aligned"`` takes an array already in that form."""
    if input == "aligned":
        values = np.asarray(data, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != len(vocabulary):
            raise ValueError(f"aligned input must be samples x {len(vocabulary)} (vocabulary order), got {values.shape}")
        return values
    from ..preprocess import prepare

    return np.asarray(prepare(data, vocabulary, input=input, layer=layer, lengths=lengths).values, dtype=np.float32)


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
        incomplete batch is dropped."""
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.shards))
        windows = [order[i:i + self.shards_in_memory] for i in range(0, len(order), self.shards_in_memory)]
        window_seeds = rng.integers(0, 2**63 - 1, size=len(windows))
        window_start = 0  # stream position of the window's first sample
        buffer: np.ndarray | None = None
        buffer_start = start
        for window, window_seed in zip(windows, window_seeds):
            size = sum(self.shards[i].n_samples for i in window)
            window_end = window_start + size
            if window_end <= start:  # wholly before the resume point: never read
                window_start = window_end
                continue
            pooled = np.concatenate([self.shards[i].read() for i in window], axis=0)
            pooled = pooled[np.random.default_rng(window_seed).permutation(len(pooled))]
            if window_start < start:
                pooled = pooled[start - window_start:]
            window_start = window_end
            buffer = pooled if buffer is None or not len(buffer) else np.concatenate([buffer, pooled], axis=0)
            while len(buffer) >= batch_size:
                buffer_start += batch_size
                yield buffer_start, buffer[:batch_size]
                buffer = buffer[batch_size:]

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.n_samples // batch_size

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Up to ``n`` samples drawn from the shards (used to build a graph and baselines)."""
        rows: list[np.ndarray] = []
        for shard in self.shards:
            rows.append(shard.read())
            if sum(len(r) for r in rows) >= n:
                break
        pooled = np.concatenate(rows, axis=0)
        keep = np.random.default_rng(seed).permutation(len(pooled))[:n]
        return pooled[np.sort(keep)]


def in_memory_corpus(values: np.ndarray, rows_per_shard: int = 4096, shards_in_memory: int = 2) -> Corpus:
    """Aligned values already in memory, cut into virtual shards."""
    shards = []
    for start in range(0, len(values), rows_per_shard):
        part = values[start:start + rows_per_shard]
        shards.append(Shard(name=f"rows {start}-{start + len(part)}", n_samples=len(part), read=lambda part=part: part))
    return Corpus(shards, shards_in_memory=shards_in_memory)


def shard_paths(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """A directory (its shard files, sorted), a single file, or a list of files."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.is_dir() and not path.name.endswith(".zarr"):
            found = sorted(p for p in path.iterdir() if p.name.endswith(SHARD_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"no shard files ({', '.join(SHARD_SUFFIXES)}) in {path}")
            return found
        paths = [path]
    else:
        paths = [Path(p) for p in data]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such shard: {path}")
        if not path.name.endswith(SHARD_SUFFIXES):
            raise ValueError(f"unsupported shard format {path.name}; use one of {', '.join(SHARD_SUFFIXES)}")
    return paths


def file_shard(path: Path, vocabulary: pd.DataFrame, *, input: str, layer: str | None = None,
               lengths: Any = None, orientation: str = "samples_by_genes") -> Shard:
    """A shard on disk: its sample count is read from metadata, its values on demand."""
    name = path.name
    if name.endswith(".parquet") or name.endswith(".pq"):
        import pyarrow.parquet as pq

        n = pq.ParquetFile(path).metadata.num_rows
        reader: Callable[[], Any] = lambda: pd.read_parquet(path)
    elif name.endswith(".h5ad"):
        import anndata

        backed = anndata.read_h5ad(path, backed="r")
        n = backed.n_obs
        backed.file.close()
        reader = lambda: anndata.read_h5ad(path)
    elif name.endswith(".zarr"):
        import anndata
        import zarr

        group = zarr.open_group(str(path), mode="r")
        x = group["X"]
        n = int(x.shape[0]) if hasattr(x, "shape") else int(x.attrs["shape"][0])
        reader = lambda: anndata.read_zarr(str(path))
    else:  # csv / tsv: genes are columns in the default orientation
        sep = "\t" if ".tsv" in name else ","
        frame = pd.read_csv(path, sep=sep, index_col=0, usecols=[0])
        n = len(frame) if orientation == "samples_by_genes" else len(pd.read_csv(path, sep=sep, index_col=0, nrows=0).columns)
        reader = lambda: pd.read_csv(path, sep=sep, index_col=0)
    if orientation != "samples_by_genes" and not name.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
        raise ValueError("orientation='genes_by_samples' is supported for csv/tsv shards only")

    def read() -> np.ndarray:
        data = reader()
        if orientation != "samples_by_genes":
            data = data.T
        values = prepare_values(data, vocabulary, input=input, layer=layer, lengths=lengths)
        if len(values) != n:
            raise ValueError(f"shard {path} has {len(values)} samples, its metadata said {n}")
        return values

    return Shard(name=name, n_samples=int(n), read=read)


def build_corpus(data: Any, vocabulary: pd.DataFrame, *, input: str = "counts", layer: str | None = None,
                 lengths: Any = None, shards_in_memory: int = 2) -> Corpus:
    """Any supported data description -> Corpus (see :func:`bulkformer.pretrain`)."""
    if isinstance(data, Corpus):
        return data
    if isinstance(data, (str, Path)) or (isinstance(data, (list, tuple)) and data and isinstance(data[0], (str, Path))):
        paths = shard_paths(data)
        return Corpus([file_shard(p, vocabulary, input=input, layer=layer, lengths=lengths) for p in paths], shards_in_memory)
    if hasattr(data, "counts") and hasattr(data, "lengths") and hasattr(data, "measured"):  # SimulatedCohort
        values = prepare_values(data.counts, vocabulary, input="counts", lengths=data.lengths)
        return in_memory_corpus(apply_measured(values, data, vocabulary), shards_in_memory=shards_in_memory)
    return in_memory_corpus(prepare_values(data, vocabulary, input=input, layer=layer, lengths=lengths),
                            shards_in_memory=shards_in_memory)


def apply_measured(values: np.ndarray, cohort: Any, vocabulary: pd.DataFrame) -> np.ndarray:
    """Set -10 where a simulated sample's batch did not measure the gene."""
    position = pd.Index(vocabulary["ensembl_id"]).get_indexer(cohort.measured.columns)
    found = position >= 0
    unmeasured = ~cohort.measured.to_numpy()[:, found]
    values = values.copy()
    block = values[:, position[found]]
    block[unmeasured] = MASK_VALUE
    values[:, position[found]] = block
    return values
