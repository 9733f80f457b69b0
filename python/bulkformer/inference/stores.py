"""On-disk store of gene-level embeddings (zarr), written batch by batch.

Layout of ``<out>.zarr`` (a directory)::

    embeddings   float16/float32 array, samples x genes x features, one chunk per sample
    attrs        format, sample_ids, gene_ids, feature_dim, model, mapping_report, complete

The store is written under a temporary sibling name and renamed when complete, so a
reader never sees a partial store at ``out``. One chunk per sample lets several
torchrun ranks write their own samples into the same store concurrently.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import check_replaceable, replace_directory
from ..locks import OutputLock
from ..preprocess import vocabulary_positions
from ..json_safe import json_safe

STORE_FORMAT = "bulkformer-gene-embeddings"
STORE_FORMAT_VERSION = 1
ARRAY_NAME = "embeddings"
_DTYPES = {"float32": "float32", "float16": "float16"}
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def check_dtype(dtype: str) -> str:
    key = str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype
    if key not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    return _DTYPES[key]


# file formats a store path must not pretend to be (a store is a zarr directory)
_FILE_SUFFIXES = frozenset({".h5", ".hdf5", ".hdf", ".he5", ".h5ad", ".loom", ".npy", ".npz", ".csv", ".tsv", ".txt",
                            ".gz", ".parquet", ".pt", ".pth", ".safetensors", ".pkl", ".pickle", ".json", ".nc", ".rds"})


def check_store_path(out: str | Path) -> Path:
    """A store is a zarr directory: refuse names of other formats (genes.h5 silently became
    a zarr directory that HDF5 readers cannot open); *.zarr or no suffix are fine."""
    out = Path(out)
    if out.suffix.lower() in _FILE_SUFFIXES:
        raise ValueError(f"gene-level embeddings are written as a zarr store (a directory), not {out.suffix}: "
                         f"name the output *.zarr, e.g. {out.with_suffix('.zarr').name}, got {out}")
    return out


def cast_checked(values: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """``values`` as ``dtype``; float16 overflow (|x| > 65504 becomes inf) is an error, not silent."""
    dtype = np.dtype(dtype)
    if dtype == np.float16 and values.size and float(np.nanmax(np.abs(values))) > _FLOAT16_MAX:
        raise ValueError(f"embedding values up to {float(np.nanmax(np.abs(values))):.4g} exceed the float16 range "
                         f"(+-{_FLOAT16_MAX:.0f}) and would be stored as inf: use dtype='float32'")
    return values.astype(dtype, copy=False)


def staging_path(out: Path) -> Path:
    """Temporary sibling of ``out`` (same directory, so the final rename is atomic)."""
    return out.with_name(f".{out.name}.partial")


# stores this process is writing, by path: only their writer may remove their staging
_LOCKS: dict[Path, OutputLock] = {}


def _lock_key(out: Path) -> Path:
    return out.parent.resolve() / out.name


# what marks an earlier zarr store (v2 / v3), which a new one may replace
STORE_MARKERS = (".zgroup", "zarr.json")


class GeneEmbeddingWriter:
    """Create a store at a staging path, write sample rows, then :meth:`complete`."""

    def __init__(self, out: str | Path, *, create: bool = True, n_samples: int = 0, n_genes: int = 0,
                 feature_dim: int = 0, dtype: str = "float32") -> None:
        import zarr

        self.out = Path(out)
        self.staging = staging_path(self.out)
        if create:
            check_replaceable(self.out, STORE_MARKERS, "a gene-embedding store")
            self.out.parent.mkdir(parents=True, exist_ok=True)
            # one writer per store: the staging name is shared by this job's ranks, so a
            # second job writing the same store would interleave its chunks with ours
            _LOCKS[_lock_key(self.out)] = OutputLock(self.out).acquire()
            shutil.rmtree(self.staging, ignore_errors=True)  # a killed run's leftover (its lock died with it)
            group = zarr.open_group(str(self.staging), mode="w")
            create = getattr(group, "create_array", None) or group.create_dataset  # zarr 3 / zarr 2
            create(
                ARRAY_NAME, shape=(n_samples, n_genes, feature_dim), chunks=(1, max(n_genes, 1), max(feature_dim, 1)),
                dtype=check_dtype(dtype), fill_value=0,
            )
            group.attrs["complete"] = False
        self.group = zarr.open_group(str(self.staging), mode="r+")
        self.array = self.group[ARRAY_NAME]

    def write(self, start: int, values: np.ndarray) -> None:
        """Rows ``start:start+len(values)`` (samples x genes x features)."""
        self.array[start:start + values.shape[0]] = cast_checked(values, self.array.dtype)

    def complete(self, *, sample_ids: Sequence[str], gene_ids: Sequence[str], metadata: dict[str, Any]) -> Path:
        """Write the index and metadata, then move the store into place (replacing an old one)."""
        attrs = {
            "format": STORE_FORMAT,
            "format_version": STORE_FORMAT_VERSION,
            "sample_ids": [str(s) for s in sample_ids],
            "gene_ids": [str(g) for g in gene_ids],
            "feature_dim": int(self.array.shape[2]),
            **json_safe(metadata),  # NaN/inf as null: zarr writes the attributes as JSON
            "complete": True,
        }
        self.group.attrs.update(attrs)
        check_replaceable(self.out, STORE_MARKERS, "a gene-embedding store")
        replace_directory(self.staging, self.out)
        lock = _LOCKS.pop(_lock_key(self.out), None)
        if lock is not None:
            lock.release()
        return self.out


def discard_staging(out: str | Path) -> None:
    """Remove an unfinished store's staging directory (if any). zarr may still be finishing
    chunk writes it had started (after a full disk, say), so removal is tried a few times.
    Only the process writing the store removes it: a writer refused because another
    process holds the store must leave that one's staging alone."""
    lock = _LOCKS.pop(_lock_key(Path(out)), None)
    if lock is None:
        return
    try:
        _remove(staging_path(Path(out)))
    finally:
        lock.release()


def _remove(staging: Path) -> None:
    for _ in range(20):
        shutil.rmtree(staging, ignore_errors=True)
        if not staging.exists():
            return
        time.sleep(0.05)


@dataclass
class GeneEmbeddings:
    """Gene-level embeddings read back from a store: ``values`` is samples x genes x
    features (``np.asarray(result)`` gives it too)."""

    values: np.ndarray
    sample_ids: list[str]
    gene_ids: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape


def _positions(wanted: Sequence[str] | None, available: list[str], what: str) -> np.ndarray | None:
    if wanted is None:
        return None
    if isinstance(wanted, str):
        wanted = [wanted]
    lookup = {name: i for i, name in enumerate(available)}
    missing = [w for w in wanted if str(w) not in lookup]
    if missing:
        raise ValueError(f"{len(missing)} requested {what} are not in the store, e.g. {missing[:3]}; "
                         f"the store holds {len(available)} {what} (see its sample_ids/gene_ids)")
    return np.array([lookup[str(w)] for w in wanted], dtype=np.int64)


def open_store(path: str | Path):
    """The zarr group of a complete store (clear errors for anything else)."""
    import zarr

    path = Path(path)
    if not path.exists():
        partial = staging_path(path)
        hint = f" (an unfinished write exists at {partial}; rerun the embedding)" if partial.exists() else ""
        raise FileNotFoundError(f"no gene-embedding store at {path}{hint}")
    try:
        group = zarr.open_group(str(path), mode="r")
    except (OSError, ValueError):  # zarr's GroupNotFoundError: a plain file or folder
        group = None
    if group is None or group.attrs.get("format") != STORE_FORMAT or not group.attrs.get("complete"):
        raise ValueError(f"{path} is not a complete bulkformer gene-embedding store; give the path that "
                         "embed(..., level='gene', out=...) returned")
    return group


def read_gene_embeddings(path: str | Path, samples: Sequence[str] | None = None,
                         genes: Sequence[str] | None = None) -> GeneEmbeddings:
    """Read a store written by ``embed(..., level="gene", out=path)``; ``samples`` /
    ``genes`` select IDs (in the order given) so only those chunks are read."""
    group = open_store(path)
    attrs = dict(group.attrs)
    sample_ids, gene_ids = list(attrs["sample_ids"]), list(attrs["gene_ids"])
    rows = _positions(samples, sample_ids, "samples")
    cols = None if genes is None else vocabulary_positions(genes, gene_ids, where="the store")
    array = group[ARRAY_NAME]
    row_sel = slice(None) if rows is None else rows
    col_sel = slice(None) if cols is None else cols
    values = np.asarray(array.oindex[row_sel, col_sel])
    metadata = {k: v for k, v in attrs.items() if k not in ("sample_ids", "gene_ids")}
    return GeneEmbeddings(
        values=values,
        sample_ids=sample_ids if rows is None else [sample_ids[i] for i in rows],
        gene_ids=gene_ids if cols is None else [gene_ids[i] for i in cols],
        metadata=metadata,
    )
