"""Reading expression files whole or in sample chunks, and their IDs and annotations
without their values."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from .formats import (TEXT_ENCODING, _backed_x, _h5ad_gene_ids, _h5ad_source, _no_rows, _parquet_source, _reading,
                      _require, _Source, _text_header, _text_source, file_format, open_h5ad)
from .matrix import (ExpressionMatrix, Orientation, _check_orientation, _labels, _layer_name,
                     gene_column_argument)

CHUNK_BYTES = 1 << 30  # default raw-value budget per chunk (1 GiB of float64)

from bulkformer.errors import GENE_COLUMN, ArgumentError, GeneColumnError, InputError

def read_gene_ids(path: str | Path, *, orientation: Orientation = "samples_by_genes",
                  genes: str | None = None) -> list[str]:
    """Gene IDs of a file without reading its values (rows of a genes_by_samples text
    file are read, first column only). ``genes``: for an h5ad file, the ``var`` column
    holding them (``obs`` for genes_by_samples) instead of the var (obs) names."""
    _check_orientation(orientation)
    return _open_file(_require(path), orientation, None, genes).gene_ids


def read_sample_ids(path: str | Path, *, orientation: Orientation = "samples_by_genes",
                    layer: str | None = None, genes: str | None = None) -> list[str]:
    """Sample IDs of a file without reading its values (for a samples_by_genes text file,
    the first column only, parsed as the chunked reader parses it so the IDs compare equal).
    ``layer`` and ``genes`` (the h5ad gene-ID column) are checked as the readers check them,
    so that a wrong one is reported before the values are read."""
    _check_orientation(orientation)
    path = _require(path)
    check_layer(path, layer)
    check_gene_column(path, genes)
    if file_format(path) == "text" and orientation == "samples_by_genes":
        separator, _ = _text_header(path)
        if _no_rows(path):
            return []
        with _reading(path):
            return _labels(pd.read_csv(path, sep=separator, header=None, skiprows=1, usecols=[0],
                                       dtype={0: str}, encoding=TEXT_ENCODING).iloc[:, 0])
    if file_format(path) == "h5ad":
        backed = open_h5ad(path)  # names only, closed at once: callers may list many files
        try:
            if layer is not None:
                _layer_name(backed, layer)
            else:
                _backed_x(backed, path)
            _h5ad_gene_ids(backed, path, orientation, genes)
            return _labels(backed.obs_names if orientation == "samples_by_genes" else backed.var_names)
        finally:
            backed.file.close()
    return list(_open_file(path, orientation, layer).sample_ids)


def read_annotations(path: str | Path, *, of: Literal["genes", "samples"] = "genes",
                     orientation: Orientation = "samples_by_genes") -> pd.DataFrame | None:
    """An h5ad file's annotations of its genes (``var``; ``obs`` for genes_by_samples: the
    columns that may hold the gene IDs) or of its samples (``obs``; ``var`` for
    genes_by_samples), without its values; None for other files, which have none."""
    _check_orientation(orientation)
    if of not in ("genes", "samples"):
        raise ArgumentError(f"of must be 'genes' or 'samples', got {of!r}", argument="of", value=of)
    var_side = (of == "genes") != (orientation == "genes_by_samples")
    return _read_backed(path, lambda backed: (backed.var if var_side else backed.obs).copy())


def _read_backed(path: str | Path, read: Callable[[Any], Any]) -> Any:
    """``read`` applied to an h5ad file opened backed (X stays on disk; annotations are
    read into memory) and closed at once; None for other files, which have no annotations."""
    path = _require(path)
    if file_format(path) != "h5ad":
        return None
    backed = open_h5ad(path)
    try:
        return read(backed)
    finally:
        backed.file.close()


@dataclass
class SampleSlots:
    """The per-sample parts of an AnnData that outputs over the same samples keep:
    annotations (``obs``), matrices (``obsm``: a PCA, a UMAP), pairwise graphs (``obsp``)
    and ``uns`` (colours, parameters); for a genes x samples AnnData its var, varm, varp."""

    obs: pd.DataFrame
    obsm: dict[str, Any]
    obsp: dict[str, Any]
    uns: dict[str, Any]

    @classmethod
    def of(cls, adata: Any, orientation: Orientation = "samples_by_genes") -> SampleSlots:
        """Copies of ``adata``'s sample-side slots (in memory or backed)."""
        import copy

        _check_orientation(orientation)
        transposed = orientation == "genes_by_samples"
        return cls(obs=(adata.var if transposed else adata.obs).copy(),
                   obsm=dict(adata.varm if transposed else adata.obsm),
                   obsp=dict(adata.varp if transposed else adata.obsp),
                   uns=copy.deepcopy(dict(adata.uns)))

    def attach(self, target: Any) -> None:
        """Give ``target``, an AnnData over the same samples in the same order, the
        matrices, graphs and uns (its own uns entries win); obs is the caller's to set,
        since sample IDs may have been renamed."""
        if target.n_obs != len(self.obs):
            raise InputError(f"the output has {target.n_obs} samples, the input {len(self.obs)}",
                             fix="per-sample matrices can only follow the same samples")
        for key, matrix in self.obsm.items():
            target.obsm[key] = matrix.set_axis(target.obs_names) if isinstance(matrix, pd.DataFrame) else matrix
        for key, matrix in self.obsp.items():
            target.obsp[key] = matrix
        target.uns.update({key: value for key, value in self.uns.items() if key not in target.uns})


def read_sample_slots(path: str | Path, *, orientation: Orientation = "samples_by_genes") -> SampleSlots | None:
    """An h5ad file's :class:`SampleSlots` without its values; None for other files."""
    _check_orientation(orientation)
    return _read_backed(path, lambda backed: SampleSlots.of(backed, orientation))


@dataclass
class ExpressionFile:
    """An opened expression file: its gene IDs, its number of samples where the format
    tells it without reading the values (None for a samples x genes text file, which is
    read front to back), and its samples x genes chunks."""

    gene_ids: list[str]
    n_samples: int | None
    chunks: Iterator[ExpressionMatrix]


def open_expression(path: str | Path, *, orientation: Orientation = "samples_by_genes", layer: str | None = None,
                    chunk_samples: int | None = None, genes: str | None = None) -> ExpressionFile:
    """Open a file to read it ``chunk_samples`` samples at a time (default: ~1 GiB of
    values), so that a file larger than memory can be processed; ``genes``: for an h5ad
    file, the ``var`` column holding the gene IDs (``obs`` for genes_by_samples), e.g.
    ``"gene_ids"`` where var_names are symbols."""
    _check_orientation(orientation)
    source = _open_file(_require(path), orientation, layer, genes)
    n_genes = max(len(source.gene_ids), 1)
    chunk = chunk_samples or max(1, CHUNK_BYTES // (8 * n_genes))
    n_samples = None if source.sample_ids is None else len(source.sample_ids)
    return ExpressionFile(source.gene_ids, n_samples, source.chunks(chunk))


def iter_file(path: str | Path, *, orientation: Orientation = "samples_by_genes", layer: str | None = None,
              chunk_samples: int | None = None, genes: str | None = None) -> tuple[list[str], Iterator[ExpressionMatrix]]:
    """(gene_ids, iterator of samples x genes chunks) of a file, as :func:`open_expression`."""
    opened = open_expression(path, orientation=orientation, layer=layer, chunk_samples=chunk_samples, genes=genes)
    return opened.gene_ids, opened.chunks


def read_expression(path: str | Path, *, orientation: Orientation = "samples_by_genes",
                    layer: str | None = None, genes: str | None = None) -> ExpressionMatrix:
    """A whole file as one :class:`ExpressionMatrix` (samples x genes); ``genes`` as in
    :func:`open_expression`. Where the format tells the sample count, the chunks are
    copied into one matrix as they are read (a concatenation would hold the values twice)."""
    opened = open_expression(path, orientation=orientation, layer=layer, genes=genes)
    values: np.ndarray | None = None
    parts: list[np.ndarray] = []
    sample_ids: list[str] = []
    for chunk in opened.chunks:
        if opened.n_samples is not None:
            if values is None:
                values = np.empty((opened.n_samples, chunk.values.shape[1]), dtype=chunk.values.dtype)
            elif chunk.values.dtype != values.dtype:  # e.g. a parquet row group whose integers have gaps
                values = values.astype(np.result_type(values.dtype, chunk.values.dtype))
            values[len(sample_ids):len(sample_ids) + len(chunk.sample_ids)] = chunk.values
        else:
            parts.append(chunk.values)
        sample_ids.extend(chunk.sample_ids)
    if values is None:
        values = np.concatenate(parts) if parts else np.empty((0, len(opened.gene_ids)))
    return ExpressionMatrix(values=values, gene_ids=opened.gene_ids, sample_ids=sample_ids)


def check_layer(path: Path, layer: str | None) -> None:
    """``layer=`` only for h5ad files (text and parquet have no layers: it would be ignored)."""
    if layer is not None and file_format(path) != "h5ad":  # text and parquet have no layers: it was ignored
        raise ArgumentError(f"layer= names a layer of an h5ad file, and {path.name} is not one", argument="layer",
                            value=layer, fix="leave layer= out")


def check_gene_column(path: Path, genes: Any) -> None:
    """``genes=`` for a file: only the name of an h5ad file's gene-ID column (text and
    parquet files have no annotation columns; their labels are the gene IDs)."""
    if genes is None:
        return
    if not isinstance(genes, str):  # a list would relabel the file's genes, which no reader does
        raise GeneColumnError(f"a file carries its own gene IDs: a list in {gene_column_argument()} relabels "
                              "in-memory data only", argument=GENE_COLUMN, joiner="; ",
                              fix="for an h5ad file give the name of the var column that holds the IDs, otherwise "
                                  "leave it out")
    if file_format(path) != "h5ad":
        raise GeneColumnError(f"{gene_column_argument(genes)} names the column of an h5ad file's var (obs) that holds "
                              f"the gene IDs, and {Path(path).name} is not an h5ad file: its gene IDs are its labels "
                              "(the header, or the first column for orientation='genes_by_samples')",
                              argument=GENE_COLUMN, value=genes, fix="leave it out", joiner="; ")


def _open_file(path: Path, orientation: str, layer: str | None, genes: str | None = None) -> _Source:
    kind = file_format(path)
    check_layer(path, layer)
    check_gene_column(path, genes)
    if kind == "text":
        return _text_source(path, orientation)
    if kind == "parquet":
        return _parquet_source(path, orientation)
    return _h5ad_source(path, orientation, layer, genes)
