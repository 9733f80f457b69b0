"""Advice when few genes match: genes on the other axis, a better gene-ID column, symbols
that would match as Ensembl IDs."""
from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from bulkformer.io import ExpressionMatrix, gene_column_argument
from bulkformer.preprocess.ids import VocabularyIndex, lookup_many
from bulkformer.preprocess.report import MappingReport


class AnnotatedSource(Protocol):
    """What the advice reads of a source: its gene annotation columns and whose they are."""

    gene_columns: Callable[[], pd.DataFrame | None] | None
    owner: str


class MatchAdvice(NamedTuple):
    """Why too few genes matched (``problem``), what to do (``fix``, after ``joiner``) and
    the argument that would do it (None: the data themselves)."""

    problem: str
    fix: str
    argument: str | None
    joiner: str = " "


def genes_on_other_axis(sample_ids: Sequence[Any], gene_match_rate: float, index: VocabularyIndex,
                        orientation: str) -> str | None:
    """Advice when the sample names match the vocabulary clearly better than the genes do
    (``gene_match_rate``: share of the gene labels matched), i.e. the table is the other
    way round; None otherwise. A share, not a count: most genes of a full table are not in
    the vocabulary."""
    parts = _other_axis(sample_ids, gene_match_rate, index, orientation)
    return None if parts is None else " ".join(parts)


def _other_axis(sample_ids: Sequence[Any], gene_match_rate: float, index: VocabularyIndex,
                orientation: str) -> tuple[str, str] | None:
    """(what is wrong, what to do) of :func:`genes_on_other_axis`."""
    labels = [str(s) for s in sample_ids[:2000]]
    found = lookup_many(labels, index)
    hits = [s for s, p in zip(labels, found.positions) if p >= 0]
    if len(hits) < 3 or len(hits) / max(len(labels), 1) <= max(2 * gene_match_rate, 0.05):
        return None
    return (
        f"The sample names look like gene IDs ({len(hits):,} of {len(labels):,} match, e.g. {', '.join(hits[:3])}): "
        "genes are on the other axis.",
        # advice that repeated the orientation given would send the user round in circles
        "Rows are samples: leave out orientation='genes_by_samples' (the default is 'samples_by_genes')."
        if orientation == "genes_by_samples" else
        "Pass orientation='genes_by_samples' if rows are genes (or 'samples_by_genes' if rows are samples).")


def too_few_matched(report: MappingReport, min_fraction: float, block: ExpressionMatrix,
                    index: VocabularyIndex, orientation: str = "samples_by_genes") -> MatchAdvice:
    measured = report.n_vocabulary - report.n_missing
    message = (f"too few vocabulary genes matched: {measured:,} of {report.n_vocabulary:,} "
               f"({measured / max(report.n_vocabulary, 1):.1%}; min_matched_fraction={min_fraction}).")
    other_axis = _other_axis(block.sample_ids, report.n_matched / max(report.n_input_genes, 1), index, orientation)
    if other_axis:
        return MatchAdvice(f"{message} {other_axis[0]}", other_axis[1], "orientation")
    if not report.n_unmatched:
        return MatchAdvice(message, f"All {report.n_input_genes:,} input genes matched, but they are too few: for a "
                           "targeted panel, lower min_matched_fraction (the model sees the other genes as unmeasured).",
                           "min_matched_fraction")
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in report.id_types.items())
    return MatchAdvice(
        f"{message} Unmatched input genes include {', '.join(report.unmatched_examples[:5])} (ID kinds: {kinds}).",
        "Use human Ensembl gene IDs, HGNC symbols or Entrez IDs; check that gene IDs are the row/column labels "
        "(orientation=); or lower min_matched_fraction for a targeted panel.", None)


def better_gene_column(columns: pd.DataFrame | None, n_measured: int, index: VocabularyIndex,
                       orientation: str, owner: str) -> tuple[str, Any] | None:
    """(what it matches, the column): the annotation column (of an AnnData or an h5ad
    file, ``owner``) whose values match clearly more vocabulary genes than its var (obs)
    names do; None when there is none."""
    if columns is None:
        return None
    where = "obs" if orientation == "genes_by_samples" else "var"
    hits = _column_hits(columns, index)
    best = max(hits, key=hits.get, default=None)
    if best is None or hits[best] <= 2 * n_measured:
        return None
    return f"{owner} {where} column {str(best)!r} matches {hits[best]:,} vocabulary genes", best


def gene_column_fix(column: Any) -> str:
    return f"pass {gene_column_argument(column)} to read the gene IDs from it."


def _column_hits(columns: pd.DataFrame, index: VocabularyIndex, ensembl_only: bool = False) -> dict[Any, int]:
    """Vocabulary genes each annotation column's values match (with ``ensembl_only``:
    as Ensembl IDs). Float columns are skipped: lengths, means, dispersions are not IDs
    (integer columns may be Entrez IDs)."""
    hits = {}
    for name in columns.columns:
        column = columns[name]
        if pd.api.types.is_numeric_dtype(column) and (ensembl_only or not pd.api.types.is_integer_dtype(column)):
            continue
        found = lookup_many([str(v) for v in column.tolist()], index)
        matched = found.positions >= 0
        if ensembl_only:
            matched &= np.isin(found.routes, ("ensembl", "ensembl_same_entrez"))
        hits[name] = int(np.unique(found.positions[matched]).size)
    return hits


_SYMBOL_ROUTES = ("symbol", "symbol_case", "alias")


def symbol_names_advice(source: AnnotatedSource, report: MappingReport, index: VocabularyIndex,
                         orientation: str) -> list[str]:
    """A warning when the gene names of an AnnData (or h5ad file) matched mostly as symbols
    while one of its annotation columns holds Ensembl IDs that match at least as many
    vocabulary genes: symbols are the weaker key (aliases, one symbol for several genes,
    symbols renamed between releases), and the better one was there to be used."""
    if source.gene_columns is None:
        return []
    by_symbol = sum(report.match_routes.get(route, 0) for route in _SYMBOL_ROUTES)
    if by_symbol <= report.n_matched / 2:
        return []
    columns = source.gene_columns()
    if columns is None or not len(columns.columns):
        return []
    hits = _column_hits(columns, index, ensembl_only=True)
    best = max(hits, key=hits.get, default=None)
    n_measured = report.n_vocabulary - report.n_missing
    if best is None or hits[best] < n_measured:
        return []
    where = "obs" if orientation == "genes_by_samples" else "var"
    return [f"{source.owner} {where} names are gene symbols ({by_symbol:,} matched as symbols or aliases), but its "
            f"{where} column {str(best)!r} holds Ensembl IDs that match {hits[best]:,} vocabulary genes: pass "
            f"{gene_column_argument(best)} to read the gene IDs from it (symbols are the weaker key: aliases, one "
            "symbol for several genes)"]
