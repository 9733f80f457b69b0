"""In-memory expression matrices: DataFrame, NumPy and AnnData as samples x genes
:class:`ExpressionMatrix`, and the gene-ID column of an AnnData's annotations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bulkformer.errors import GENE_COLUMN, ArgumentError, GeneColumnError, InputError

Orientation = Literal["samples_by_genes", "genes_by_samples"]
ORIENTATIONS = ("samples_by_genes", "genes_by_samples")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".tab", ".exp")



@dataclass
class ExpressionMatrix:
    """``values``: samples x genes (a view where possible, any numeric dtype)."""

    values: np.ndarray
    gene_ids: list[str]
    sample_ids: list[str]


def _check_orientation(orientation: str) -> None:
    if orientation not in ORIENTATIONS:
        raise ArgumentError(f"orientation={orientation!r}", argument="orientation", value=orientation,
                            fix="use 'samples_by_genes' (rows are samples) or 'genes_by_samples' (rows are genes, "
                                "as in R/Bioconductor)")


def _labels(values: Sequence[Any]) -> list[str]:
    return [str(v) for v in values]


def _dense(values: Any) -> np.ndarray:
    if hasattr(values, "to_memory") and not hasattr(values, "toarray"):  # sparse X of a backed AnnData
        values = values.to_memory()
    if hasattr(values, "toarray"):  # scipy.sparse
        return values.toarray()
    return np.asarray(values)


def _frame_values(frame: pd.DataFrame) -> np.ndarray:
    non_numeric = [c for c, t in frame.dtypes.items() if not (pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t))]
    if non_numeric:
        shown = ", ".join(repr(str(c)) for c in non_numeric[:5])
        raise InputError(
            f"non-numeric columns: {shown}{' ...' if len(non_numeric) > 5 else ''} hold text, not expression values",
            fix=f"If a column carries gene or sample IDs make it the index (df.set_index({str(non_numeric[0])!r})); "
                "otherwise drop annotation columns, or convert numbers stored as text with pd.to_numeric.",
            joiner=". ")
    if any(isinstance(t, pd.api.extensions.ExtensionDtype) for t in frame.dtypes):
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return frame.to_numpy()


def as_matrix(data: Any, *, genes: Sequence[Any] | None = None, samples: Sequence[Any] | None = None,
              orientation: Orientation = "samples_by_genes", layer: str | None = None) -> ExpressionMatrix:
    """An in-memory input (DataFrame, NumPy array, scipy sparse, AnnData) as samples x genes.

    ``genes``: one ID per gene overriding the labels, or for AnnData the name of the
    ``var`` column holding them (``obs`` for ``orientation="genes_by_samples"``; the
    file readers take the same name for h5ad files)."""
    _check_orientation(orientation)
    transpose = orientation == "genes_by_samples"
    if isinstance(genes, str) and not is_anndata(data):
        raise GeneColumnError(f"genes={genes!r} is one name, not one ID per gene", argument=GENE_COLUMN, value=genes,
                              fix="a column name picks the gene IDs of an AnnData's var (obs for "
                                  "orientation='genes_by_samples'); otherwise give a list of IDs")
    if layer is not None and not is_anndata(data):
        raise ArgumentError("layer= applies to AnnData inputs only", argument="layer", value=layer, fix="leave it out")
    if is_anndata(data):
        matrix = data.layers[_layer_name(data, layer)] if layer is not None else data.X
        if matrix is None:
            raise ArgumentError(f"the AnnData object has no X (layers: {list(data.layers)})", argument="layer",
                                fix="pass layer= to name the layer holding the values")
        rows, cols = _labels(data.obs_names), _labels(data.var_names)
        values = _dense(matrix)
        if isinstance(genes, str):  # the name of the var column that holds the gene IDs
            genes = _annotation_column(data.obs if transpose else data.var, genes, "obs" if transpose else "var")
    elif isinstance(data, pd.DataFrame):
        values = _frame_values(data)
        rows, cols = _labels(data.index), _labels(data.columns)
        # an explicit genes= / samples= overrides the labels
    elif isinstance(data, pd.Series):
        raise InputError("a pandas Series is one sample or one gene",
                         fix="pass a DataFrame (e.g. series.to_frame().T)")
    else:
        values = _dense(data)
        if values.dtype.kind not in "biuf":
            raise InputError(f"non-numeric array (dtype {values.dtype})", fix="pass numbers (counts, TPM or log1p TPM)")
        if values.ndim != 2:
            raise InputError(f"expected a 2-D matrix, got an array of shape {values.shape}")
        if genes is None:
            raise GeneColumnError("a NumPy matrix carries no gene IDs", argument=GENE_COLUMN,
                                  fix=f"pass genes=[...] (one ID per gene, {'rows' if transpose else 'columns'} for "
                                      f"orientation={orientation!r})")
        rows = cols = None
    if transpose:
        values = values.T
        rows, cols = cols, rows
    if genes is not None:
        genes = _labels(genes)
        if len(genes) != values.shape[1]:
            other = values.shape[0]
            hint = (" — that is the number of samples: the matrix may be the other way round, set "
                    f"orientation={'samples_by_genes' if transpose else 'genes_by_samples'!r}") if len(genes) == other else ""
            raise GeneColumnError(f"genes= has {len(genes):,} IDs but the matrix has {values.shape[1]:,} genes "
                                  f"({'rows' if transpose else 'columns'} for orientation={orientation!r}){hint}",
                                  argument=GENE_COLUMN)
        cols = genes
    if samples is not None:
        samples = _labels(samples)
        if len(samples) != values.shape[0]:
            raise ArgumentError(f"samples= has {len(samples):,} names but the matrix has {values.shape[0]:,} samples",
                                argument="samples")
        rows = samples
    if rows is None:
        rows = [f"sample_{i}" for i in range(values.shape[0])]
    return ExpressionMatrix(values=values, gene_ids=cols, sample_ids=rows)


def gene_column_argument(name: Any = None) -> str:
    """How messages name the argument that picks the gene-ID column: ``genes=`` in
    prepare, build_graph and the readers here, ``gene_names=`` where ``genes=`` means a
    gene subset (the command line's ``--gene-column``; it translates this phrase)."""
    value = "" if name is None else repr(str(name))
    return f"genes={value} (gene_names={value} in impute, embed, finetune, the tasks and pretrain)"


def _annotation_column(annotations: pd.DataFrame, name: str, where: str, owner: str = "the AnnData's") -> list[Any]:
    if name not in annotations.columns:
        raise GeneColumnError(f"the gene ID column {name!r} is not a column of {owner} {where} (its columns: "
                              f"{list(map(str, annotations.columns))[:10]})", argument=GENE_COLUMN, value=name,
                              fix=f"name the {where} column that holds the gene IDs, or leave it out to use the "
                                  f"{where} names")
    column = annotations[name]
    # integer columns may hold Entrez IDs; fractions (lengths, means, dispersions) are no IDs
    if pd.api.types.is_bool_dtype(column) or (pd.api.types.is_numeric_dtype(column)
                                              and not pd.api.types.is_integer_dtype(column)):
        raise GeneColumnError(f"the gene ID column {name!r} of {owner} {where} holds {column.dtype} values, not gene "
                              "IDs", argument=GENE_COLUMN, value=name,
                              fix=f"name the {where} column that holds the gene IDs")
    # a gap would become the label 'nan' and its gene would be lost among the unmatched
    gaps = np.flatnonzero(column.isna().to_numpy() | (column.astype(str).str.strip() == "").to_numpy())
    if gaps.size:
        raise GeneColumnError(f"the gene ID column {name!r} of {owner} {where} has {gaps.size:,} empty or missing gene "
                              f"IDs (e.g. row {gaps[0] + 1}, {where} name {str(annotations.index[gaps[0]])!r})",
                              argument=GENE_COLUMN, value=name, fix="fill them in or drop those genes first")
    return column.tolist()


def is_anndata(data: Any) -> bool:
    """An in-memory AnnData (checked by type, without importing anndata where it is not
    loaded yet)."""
    return type(data).__name__ == "AnnData" and hasattr(data, "obs_names")


def _layer_name(adata: Any, layer: str) -> str:
    if layer not in adata.layers:
        raw = ("; the values of .raw are not a layer: pass adata.raw.to_adata() to read them"
               if getattr(adata, "raw", None) is not None else "")
        raise ArgumentError(f"layer {layer!r} is not in the AnnData object (layers: {list(adata.layers)})",
                            argument="layer", value=layer, fix=f"omit layer= to use X{raw}", joiner="; ")
    return layer
