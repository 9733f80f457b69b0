"""How to read one expression table, described once (scvi-tools' ``setup_anndata`` is the model).

A :class:`DataSpec` holds the source and everything needed to read it: input kind,
orientation, the gene IDs (or the AnnData / h5ad column holding them), layer, gene
lengths and the matching threshold. Every public function takes ``data``: a raw table,
a path, an AnnData, or a DataSpec::

    spec = bulkformer.DataSpec("adata.h5ad", layer="counts", genes="gene_ids")
    emb = bulkformer.embed(spec, model)
    prepared = spec.prepare(model)          # = bulkformer.prepare(spec, model)

``genes`` is the one name of the gene IDs everywhere (a list of IDs for an array, or a
column name for AnnData / h5ad); ``gene_names=`` of earlier releases still works where
``genes=`` meant something else (a gene subset in ``embed``), with a DeprecationWarning.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ArgumentError

# the fields that describe how to read the source (everything but the source itself)
DATA_FIELDS = ("input", "genes", "samples", "orientation", "layer", "lengths", "min_matched_fraction")


@dataclass(frozen=True)
class DataSpec:
    """How to read one table.

    source: a path (CSV/TSV(.gz), parquet, h5ad), DataFrame, NumPy array, AnnData, or an
        already prepared input; input: "counts", "tpm" or "logtpm" (natural log1p TPM),
        or "aligned" where a function takes the model's input as it is;
        genes: gene IDs replacing the data's labels (required for an array), or for
        AnnData / h5ad the var column holding them (obs for genes x samples);
        samples: sample names for an in-memory matrix; orientation: "samples_by_genes"
        or "genes_by_samples"; layer: AnnData layer instead of X; lengths: a Series gene
        -> bp, or a per-sample length matrix in the data's orientation;
        min_matched_fraction: error when fewer vocabulary genes are measured.
    """

    source: Any
    input: str = "counts"
    genes: Any = None
    samples: Any = None
    orientation: str = "samples_by_genes"
    layer: str | None = None
    lengths: Any = None
    min_matched_fraction: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.source, DataSpec):  # DataSpec(spec) would hide the inner settings
            raise ArgumentError("source is already a DataSpec", argument="source",
                                fix="use DataSpec.of(spec, field=value) to change its fields")

    @classmethod
    def of(cls, data: Any, **fields_: Any) -> "DataSpec":
        """``data`` as a DataSpec: a raw source gets the given fields; a DataSpec keeps its own
        and the given ones override them. Fields given as None are left as they are."""
        unknown = sorted(set(fields_) - set(DATA_FIELDS))
        if unknown:
            raise ArgumentError(f"unknown data-description field {unknown[0]!r}", argument=unknown[0],
                                fix=f"the fields are {', '.join(DATA_FIELDS)}")
        given = {k: v for k, v in fields_.items() if v is not None}
        if isinstance(data, DataSpec):
            return replace(data, **given) if given else data
        return cls(source=data, **given)

    def settings(self) -> dict[str, Any]:
        """The fields other than the source (for provenance and fingerprints)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}

    def settings_identity(self) -> dict[str, Any]:
        """Each setting as a JSON-able, comparable value (tables and lengths by digest): what a
        resumed training run must repeat, field by field."""
        return {name: lengths_identity(value) if name == "lengths" else _identity(value)
                for name, value in self.settings().items()}

    def fingerprint(self) -> str:
        """A stable hash of the settings and the source's identity: a path (resolved, with its
        size), or the content of an in-memory table. Same spec, same data: same fingerprint."""
        record = self.settings_identity()
        record["source"] = _identity(self.source)
        text = json.dumps(record, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def prepare(self, vocabulary: Any, **prepare_options: Any) -> Any:
        """:func:`bulkformer.preprocess.prepare` of this table (``prepare_options``: backend,
        n_threads, chunk_samples) -> ``PreparedInput``."""
        from .preprocess.prepared import prepare_spec  # heavy (pandas I/O, the kernel): not at import time

        return prepare_spec(self, vocabulary, **prepare_options)

    def prepare_kwargs(self) -> dict[str, Any]:
        """The settings as ``prepare``'s keyword arguments."""
        return self.settings()

    def describe(self) -> dict[str, Any]:
        """A plain record of the settings (the source by name), for provenance."""
        record = {name: _describe(value) for name, value in self.settings().items()}
        record["source"] = _describe(self.source)
        return record


def lengths_identity(lengths: Any) -> Any:
    """User gene lengths (they change every TPM value of counts), short and comparable:
    None for the model's own lengths, "N gene lengths (sha256 X)" for a table, the path
    and size of a file."""
    if lengths is None or isinstance(lengths, (str, Path)):
        return _identity(lengths)
    if isinstance(lengths, (pd.Series, Mapping)):
        table = _numeric_by_key(lengths)
        what = f"{len(table)} gene lengths"
    else:  # a samples x genes matrix of effective lengths
        table = pd.DataFrame(np.asarray(lengths, dtype=np.float64))
        what = f"{table.shape[0]} x {table.shape[1]} length matrix"
    digest = hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()).hexdigest()[:12]
    return f"{what} (sha256 {digest})"


def _identity(value: Any) -> Any:
    """A JSON-able identity of a setting or source."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (str, Path)):
        path = Path(value)
        if path.exists():
            size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            return {"path": str(path.resolve()), "bytes": size}
        return str(value)
    if isinstance(value, (pd.Series, Mapping)):
        return {"series": _digest(_numeric_by_key(value))}
    if isinstance(value, pd.DataFrame):
        return {"frame": _digest(value), "shape": list(value.shape)}
    if isinstance(value, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16],
                "shape": list(value.shape), "dtype": str(value.dtype)}
    if hasattr(value, "obs_names") and hasattr(value, "var_names"):  # AnnData: names and shape (X can be backed)
        names = pd.DataFrame({"n": list(map(str, value.obs_names)) + list(map(str, value.var_names))})
        return {"anndata": _digest(names), "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        return [_identity(v) for v in value]
    return repr(value)


def _numeric_by_key(values: pd.Series | Mapping) -> pd.DataFrame:
    """key -> value as a table sorted by key, values as float64 where numeric: the same
    lengths read as integers (pandas) or floats (the command line) are the same lengths."""
    series = values if isinstance(values, pd.Series) else pd.Series(dict(values))
    table = pd.DataFrame({"key": series.index.astype(str),
                          "value": pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)})
    return table.sort_values("key", kind="stable")


def _digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _describe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}{'' if shape is None else ' ' + ' x '.join(map(str, shape))}"


__all__ = ["DATA_FIELDS", "DataSpec"]
