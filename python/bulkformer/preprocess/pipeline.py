"""The loose-argument front of the prepare pipeline: ``prepare(data, vocabulary, input=...,
genes=...)`` builds the :class:`~bulkformer.dataspec.DataSpec` and runs
:mod:`bulkformer.preprocess.prepared` on it."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from bulkformer.dataspec import DataSpec
from bulkformer.io import Orientation
from bulkformer.preprocess.normalize import InputKind
from bulkformer.preprocess.prepared import PreparedInput, prepare_spec, prepare_spec_chunks

__all__ = ["PreparedInput", "prepare", "prepare_chunks"]


def prepare(
    data: Any,
    vocabulary: Any,
    *,
    input: InputKind | None = None,
    genes: Sequence[Any] | str | None = None,
    samples: Sequence[Any] | None = None,
    orientation: Orientation | None = None,
    lengths: pd.Series | Mapping | np.ndarray | pd.DataFrame | None = None,
    layer: str | None = None,
    min_matched_fraction: float | None = None,
    backend: Literal["auto", "native", "numpy"] = "auto",
    n_threads: int | None = None,
    chunk_samples: int | None = None,
) -> PreparedInput:
    """Expression data -> :class:`PreparedInput` for a model vocabulary.

    Args:
        data: DataFrame, NumPy array (with ``genes``), AnnData (X or ``layer``), a path
            to CSV/TSV(.gz), parquet or h5ad (read in chunks of ``chunk_samples``), or a
            :class:`~bulkformer.dataspec.DataSpec` holding one of these and the arguments
            ``input`` ... ``min_matched_fraction`` (given here, they override its own;
            None keeps them, and the defaults are the DataSpec's).
        vocabulary: a Bundle, a DataFrame[ensembl_id, symbol, length], or None for
            :func:`bulkformer.annotation.default_vocabulary`.
        input: "counts" (-> TPM -> log1p), "tpm" (-> log1p) or "logtpm" (natural log1p TPM).
        genes, samples: gene IDs / sample names for an in-memory matrix (required
            ``genes`` for a NumPy array; for a DataFrame or AnnData they replace its labels).
            For AnnData and h5ad files ``genes`` may also name the ``var`` column holding
            the gene IDs (``obs`` for genes_by_samples), e.g. ``genes="gene_ids"``.
        orientation: rows x columns of ``data``: "samples_by_genes" or "genes_by_samples".
        lengths: None (vocabulary / shipped lengths, 1,000 bp when unknown), a Series
            gene ID -> bp overriding them, or a samples x genes matrix of per-sample
            lengths (tximport avgTxLength) in the same orientation as ``data``.
        layer: AnnData layer to read instead of ``X`` (in memory or h5ad).
        min_matched_fraction: error when fewer than this share of vocabulary genes is measured.
        backend: "auto" uses the native kernel when built, else NumPy.
        n_threads: threads of the native kernel (default: ``BULKFORMER_NUM_THREADS`` or
            ``OMP_NUM_THREADS``, else the CPU count; small inputs run on one).
        chunk_samples: samples per block (files: default ~1 GiB of values; in-memory
            data: 4,096).

    Many-to-one matches are summed (counts, TPM) or averaged (log1p TPM) with a warning.
    TPM is computed over all input genes, matched or not.
    """
    spec = DataSpec.of(data, input=input, genes=genes, samples=samples, orientation=orientation, lengths=lengths,
                       layer=layer, min_matched_fraction=min_matched_fraction)
    return prepare_spec(spec, vocabulary, backend=backend, n_threads=n_threads, chunk_samples=chunk_samples)


def prepare_chunks(data: Any, vocabulary: Any, *, input: InputKind | None = None, genes=None, samples=None,
                   orientation: Orientation | None = None, lengths=None, layer: str | None = None,
                   min_matched_fraction: float | None = None, backend: str = "auto", n_threads: int | None = None,
                   chunk_samples: int | None = None) -> Iterator[PreparedInput]:
    """:func:`prepare` one block of samples at a time (same arguments): for cohorts whose
    raw matrix, or whose prepared matrix, does not fit in memory. Every block carries
    the same report and mask; sample names are checked for repeats across blocks."""
    spec = DataSpec.of(data, input=input, genes=genes, samples=samples, orientation=orientation, lengths=lengths,
                       layer=layer, min_matched_fraction=min_matched_fraction)
    yield from prepare_spec_chunks(spec, vocabulary, backend=backend, n_threads=n_threads, chunk_samples=chunk_samples)
