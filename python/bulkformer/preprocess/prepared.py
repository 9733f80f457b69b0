"""The prepare pipeline, driven by a :class:`~bulkformer.dataspec.DataSpec`: read the table
in blocks of samples, align it to the vocabulary, normalise to log1p TPM, and report what
was matched. (The spec is only read here, never built: ``bulkformer.dataspec`` imports
this module, and :mod:`bulkformer.preprocess.pipeline` is the loose-argument front.)"""
from __future__ import annotations

import warnings
from contextlib import closing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bulkformer.io import ExpressionMatrix, as_matrix, is_anndata, open_expression, read_annotations
from bulkformer.errors import GENE_COLUMN, GeneMatchError
from bulkformer.preprocess.advice import better_gene_column, gene_column_fix, symbol_names_advice, too_few_matched
from bulkformer.preprocess.align import AlignmentPlan, plan_alignment
from bulkformer.preprocess.id_warnings import id_warnings
from bulkformer.preprocess.ids import VocabularyIndex, n_outside_vocabulary, vocabulary_index
from bulkformer.preprocess.conventions import InputConventions, conventions_of
from bulkformer.preprocess.normalize import INPUT_KINDS, MASK_VALUE, transform_aligned
from bulkformer.preprocess.report import MappingReport
from bulkformer.preprocess.validate import (check_not_empty, check_sample_lengths, check_unique_samples,
                                            check_values, plausibility_warnings)
from bulkformer.preprocess.vocabulary import resolve_vocabulary

_BLOCK_SAMPLES = 4096  # in-memory inputs are transformed in blocks of samples (bounded temporaries)


@dataclass
class PreparedInput:
    """``values`` float32 (n_samples, G) natural log1p TPM in vocabulary order, -10 where
    the vocabulary gene is not measured (``measured`` False); ``mask_prob`` = share of
    vocabulary genes not measured; ``input_ids``: per vocabulary gene, the input gene
    label that measured it (several joined by ";" where they were merged; None where
    unmeasured), to join results back to the input's rows."""

    values: np.ndarray
    measured: np.ndarray
    sample_ids: list[str]
    gene_ids: list[str]
    report: MappingReport
    mask_prob: float
    input_ids: list[str | None] | None = None

    def to_frame(self) -> pd.DataFrame:
        """samples x vocabulary genes DataFrame (a copy-free view of ``values``)."""
        return pd.DataFrame(self.values, index=pd.Index(self.sample_ids, name="sample"),
                            columns=pd.Index(self.gene_ids, name="ensembl_id"), copy=False)


def prepare_spec(spec: Any, vocabulary: Any, *, backend: Literal["auto", "native", "numpy"] = "auto",
                 n_threads: int | None = None, chunk_samples: int | None = None) -> PreparedInput:
    """:func:`bulkformer.preprocess.prepare` of a DataSpec (``spec``)."""
    source = _Source.of(spec, chunk_samples=chunk_samples)
    allocated: list[np.ndarray] = []

    def allocate(n_vocab: int) -> np.ndarray | None:
        # a known sample count (in memory, h5ad, parquet, genes x samples text): the blocks are written
        # straight into one output, without a second copy to concatenate them
        if source.n_samples is None:
            return None
        allocated.append(np.empty((source.n_samples, n_vocab), dtype=np.float32))
        return allocated[0]

    with closing(source.blocks):  # a failing block closes the file now, not when the traceback is collected
        parts = list(_prepare_blocks(source, vocabulary, spec, backend=backend, n_threads=n_threads, out=allocate))
    if allocated:
        values = allocated[0]
    else:
        values = parts[0].values if len(parts) == 1 else np.concatenate([p.values for p in parts])
    last = parts[-1]
    return PreparedInput(values=values, measured=last.measured, sample_ids=[s for p in parts for s in p.sample_ids],
                         gene_ids=last.gene_ids, report=last.report, mask_prob=last.report.mask_prob,
                         input_ids=last.input_ids)




def prepare_spec_chunks(spec: Any, vocabulary: Any, *, backend: str = "auto", n_threads: int | None = None,
                        chunk_samples: int | None = None) -> Iterator[PreparedInput]:
    """:func:`bulkformer.preprocess.prepare_chunks` of a DataSpec (``spec``)."""
    source = _Source.of(spec, chunk_samples=chunk_samples)
    with closing(source.blocks):  # as in prepare_spec; and a caller that stops early closes the file
        yield from _prepare_blocks(source, vocabulary, spec, backend=backend, n_threads=n_threads)


@dataclass
class _Source:
    gene_ids: list[str]
    blocks: Iterator[ExpressionMatrix]
    n_samples: int | None  # None: a text file streamed front to back (samples unknown until read)
    # AnnData and h5ad files: their var (obs) columns, read for advice when the names match badly
    gene_columns: Callable[[], pd.DataFrame | None] | None = None
    owner: str = "The AnnData's"  # whose columns, in that advice

    @classmethod
    def of(cls, spec: Any, *, chunk_samples: int | None) -> _Source:
        data, genes, samples, orientation, layer = spec.source, spec.genes, spec.samples, spec.orientation, spec.layer
        if isinstance(data, (str, Path)):
            if samples is not None:
                raise ValueError("samples= names the samples of an in-memory matrix; a file carries its own sample "
                                 "names: leave samples= out")
            # genes= may name an h5ad file's gene-ID column; the reader checks it
            opened = open_expression(data, orientation=orientation, layer=layer, chunk_samples=chunk_samples,
                                     genes=genes)
            columns = None if genes is not None else lambda: read_annotations(data, of="genes", orientation=orientation)
            # a known sample count lets prepare() write the blocks into one output instead of concatenating
            return cls(opened.gene_ids, opened.chunks, opened.n_samples, columns, f"{Path(data).name}'s")
        matrix = as_matrix(data, genes=genes, samples=samples, orientation=orientation, layer=layer)
        columns = None
        if genes is None and is_anndata(data):
            frame = data.obs if orientation == "genes_by_samples" else data.var
            columns = lambda: frame
        return cls(matrix.gene_ids, _blocks(matrix, chunk_samples or _BLOCK_SAMPLES), matrix.values.shape[0],
                   columns)


def _prepare_blocks(source: _Source, vocabulary: Any, spec: Any, *, backend: str, n_threads: int | None,
                    out=None) -> Iterator[PreparedInput]:
    input, orientation, lengths = spec.input, spec.orientation, spec.lengths
    min_matched_fraction = spec.min_matched_fraction
    if input not in INPUT_KINDS:
        raise ValueError(f"input={input!r}: use 'counts', 'tpm' or 'logtpm' (natural log1p TPM)")
    if not 0 <= min_matched_fraction <= 1:
        raise ValueError(f"min_matched_fraction={min_matched_fraction} must be between 0 and 1")
    if lengths is not None and input != "counts":  # was ignored without a word
        raise ValueError(f"lengths= turn counts into TPM, and input={input!r} values are already normalised for "
                         "gene length: leave lengths out, or pass raw counts with input='counts'")
    conventions = conventions_of(vocabulary)
    index = vocabulary_index(resolve_vocabulary(vocabulary))
    gene_ids = source.gene_ids
    sample_lengths, length_series = _split_lengths(lengths, orientation)
    plan = plan_alignment(gene_ids, index, lengths=length_series,
                          release_lengths=getattr(vocabulary, "length_table", None))
    measured = plan.measured
    input_ids = _input_ids(gene_ids, plan.column_index, index.n_genes)
    output = out(index.n_genes) if out is not None else None
    seen: set[str] = set()
    offset = 0
    report = None
    for block in source.blocks:
        if report is None:
            check_not_empty(block.values.shape[0], len(gene_ids))
            report = _report(plan, index, input, min_matched_fraction, block, orientation, source)
            report.conventions = conventions.describe()
            if sample_lengths is not None:
                report.length_sources = {"per_sample": len(gene_ids)}
            report.warnings.extend(plausibility_warnings(block.values, input))
            _warn(report, _collapsed_warnings(input, report) + id_warnings(plan.mapping) + plan.warnings
                  + symbol_names_advice(source, report, index, orientation))
        check_unique_samples(block.sample_ids, seen)
        check_values(block.values, block.sample_ids, gene_ids, input,
                     nan_is_unmeasured=conventions.nan_is_unmeasured)
        block_lengths = plan.lengths_bp
        if sample_lengths is not None:
            block_lengths = check_sample_lengths(_sample_length_block(sample_lengths, block, gene_ids, offset),
                                                 block.values, block.sample_ids, gene_ids)
        n_block = block.values.shape[0]
        target = output[offset:offset + n_block] if output is not None else None
        values = _transform(block.values, plan.column_index, index.n_genes, conventions, report, input=input,
                            lengths_bp=block_lengths, backend=backend, n_threads=n_threads, out=target)
        offset += n_block
        report.n_samples = offset
        yield PreparedInput(values=values, measured=measured, sample_ids=list(block.sample_ids),
                            gene_ids=list(index.ensembl_ids), report=report, mask_prob=report.mask_prob,
                            input_ids=input_ids)
    if report is None:
        check_not_empty(0, len(gene_ids))


def _transform(data: np.ndarray, column_index: np.ndarray, n_vocab: int, conventions: InputConventions,
               report: MappingReport, *, lengths_bp: np.ndarray, **options: Any) -> np.ndarray:
    """``transform_aligned`` under the model's input conventions: with a vocabulary-only
    TPM denominator the unmatched genes are left out first; with NaN meaning "not
    measured", NaN entries count as 0 in the sums and come out as the mask value."""
    if conventions.vocabulary_denominator:
        keep = np.flatnonzero(column_index >= 0)
        data, column_index = data[:, keep], column_index[keep]
        lengths_bp = lengths_bp[..., keep]
    missing = np.isnan(data) if conventions.nan_is_unmeasured and data.dtype.kind == "f" else None
    if missing is not None and missing.any():
        data = np.where(missing, 0, data)
    else:
        missing = None
    values = transform_aligned(data, column_index, n_vocab, lengths_bp=lengths_bp, **options)
    if missing is not None:
        rows, columns = np.nonzero(missing & (column_index >= 0))
        values[rows, column_index[columns]] = MASK_VALUE
        report.n_missing_entries += int(rows.size)
    return values


def _input_ids(gene_ids: Sequence[str], column_index: np.ndarray, n_genes: int) -> list[str | None]:
    """Per vocabulary gene, the input labels that map to it (";"-joined), None for none."""
    found: list[list[str]] = [[] for _ in range(n_genes)]
    for label, position in zip(gene_ids, column_index):
        if position >= 0:
            found[position].append(str(label))
    return [";".join(labels) if labels else None for labels in found]


def _blocks(matrix: ExpressionMatrix, size: int) -> Iterator[ExpressionMatrix]:
    n = matrix.values.shape[0]
    if n == 0:
        return
    for start in range(0, n, size):
        stop = min(start + size, n)
        yield ExpressionMatrix(matrix.values[start:stop] if (start, stop) != (0, n) else matrix.values,
                               matrix.gene_ids, matrix.sample_ids[start:stop])


def _split_lengths(lengths: Any, orientation: str) -> tuple[Any, pd.Series | None]:
    """(per-sample length matrix or None, per-gene Series or None)."""
    if lengths is None:
        return None, None
    if isinstance(lengths, pd.Series) or isinstance(lengths, Mapping):
        return None, lengths
    if isinstance(lengths, pd.DataFrame) or (hasattr(lengths, "ndim") and lengths.ndim == 2):
        if orientation == "genes_by_samples":
            lengths = lengths.T
        return lengths, None
    array = np.asarray(lengths)
    if array.ndim == 1:
        raise ValueError("lengths= as a 1-D array has no gene IDs: pass a pandas Series indexed by gene ID")
    raise ValueError(f"lengths= must be a Series (gene -> bp) or a samples x genes matrix, got shape {array.shape}")


def _sample_length_block(sample_lengths: Any, block: ExpressionMatrix, gene_ids: list[str], offset: int) -> np.ndarray:
    if isinstance(sample_lengths, pd.DataFrame):
        frame = sample_lengths.set_axis(sample_lengths.index.astype(str), axis=0).set_axis(
            sample_lengths.columns.astype(str), axis=1)  # copies labels only; the caller's frame is untouched
        missing_samples = [s for s in block.sample_ids if s not in frame.index]
        missing_genes = [g for g in gene_ids if g not in frame.columns]
        if missing_samples and set(block.sample_ids) <= set(frame.columns):
            raise ValueError("the per-sample lengths are the other way round from the data (its samples are their "
                             "columns): give lengths= in the same orientation as the data, e.g. lengths.T")
        if missing_samples or missing_genes:
            what = (f"samples {missing_samples[:3]}" if missing_samples else f"genes {missing_genes[:3]}")
            raise ValueError(f"the per-sample lengths lack {what} of the data: a DataFrame in lengths= is read as "
                             "per-sample lengths with the same samples and genes as the data (tximport's $length "
                             "next to its $counts); for one length per gene pass a Series (e.g. table['length'])")
        if frame.columns.has_duplicates:
            raise ValueError("the per-sample lengths repeat gene columns; pass a plain matrix in data order instead")
        return frame.loc[block.sample_ids, gene_ids].to_numpy(dtype=np.float64)
    array = np.asarray(sample_lengths, dtype=np.float64)
    n_samples = block.values.shape[0]
    if array.shape[1] != len(gene_ids) or array.shape[0] < offset + n_samples:
        raise ValueError(f"per-sample lengths have shape {array.shape}, expected (samples, genes) matching the data "
                         f"({'?' if offset else n_samples} x {len(gene_ids)}); give them in the data's orientation")
    return array[offset:offset + n_samples]


def _report(plan: AlignmentPlan, index: VocabularyIndex, input: str, min_matched_fraction: float,
            first_block: ExpressionMatrix, orientation: str = "samples_by_genes",
            source: _Source | None = None) -> MappingReport:
    mapping = plan.mapping
    n_measured = int(plan.measured.sum())
    n_vocabulary = index.n_genes
    report = MappingReport(
        n_input_genes=len(plan.column_index), n_matched=mapping.n_matched,
        n_unmatched=len(plan.column_index) - mapping.n_matched, unmatched_examples=list(mapping.unmatched),
        n_collapsed=mapping.n_collapsed, n_vocabulary=n_vocabulary, n_missing=n_vocabulary - n_measured,
        mask_prob=float((n_vocabulary - n_measured) / n_vocabulary) if n_vocabulary else 1.0,
        id_types=dict(mapping.id_types), collapsed_examples=list(mapping.collapsed),
        match_routes=dict(mapping.routes), length_sources=dict(plan.length_sources), input=input,
        n_outside_vocabulary=n_outside_vocabulary(mapping, index),
    )
    if n_vocabulary and (n_measured == 0 or n_measured / n_vocabulary < min_matched_fraction):
        advice = too_few_matched(report, min_matched_fraction, first_block, index, orientation)
        column = None
        if source is not None and source.gene_columns is not None:
            column = better_gene_column(source.gene_columns(), n_measured, index, orientation, source.owner)
        # the fields let each front end say the fix in its own words (R: t(x), gene.column = ...)
        if column is not None:  # a column that holds the IDs: that is the fix
            raise GeneMatchError(f"{advice.problem} {column[0]}", fix=gene_column_fix(column[1]), joiner=": ",
                                 argument=GENE_COLUMN, suggestion={GENE_COLUMN: str(column[1])})
        raise GeneMatchError(advice.problem, fix=advice.fix, joiner=advice.joiner, argument=advice.argument,
                             value=orientation if advice.argument == "orientation" else None)
    return report


def _collapsed_warnings(input: str, report: MappingReport) -> list[str]:
    if not report.n_collapsed:
        return []
    how = "averaged" if input == "logtpm" else "summed"
    return [f"{report.n_collapsed:,} input genes were merged into vocabulary genes that other input genes "
            f"already map to ({how}; e.g. {'; '.join(report.collapsed_examples[:3])})"]


def _warn(report: MappingReport, messages: list[str]) -> None:
    for message in messages:
        report.warnings.append(message)
        warnings.warn(message, UserWarning, stacklevel=4)
