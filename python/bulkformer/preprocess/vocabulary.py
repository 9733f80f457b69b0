"""Vocabularies as users give them (a Bundle, a gene table, a list of IDs, or the shipped
default) and user gene lists placed in them."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bulkformer.errors import ArgumentError, ArgumentTypeError
from bulkformer.preprocess.align import plan_alignment
from bulkformer.preprocess.ids import lookup_many, vocabulary_index

def resolve_vocabulary(vocabulary: Any) -> pd.DataFrame:
    """A Bundle, a DataFrame with ensembl_id (symbol, length optional), a list of
    Ensembl IDs, or None (the shipped default vocabulary) -> DataFrame."""
    if vocabulary is None:
        from bulkformer.annotation import default_vocabulary
        return default_vocabulary()
    genes = getattr(vocabulary, "genes", None)
    if isinstance(genes, pd.DataFrame):
        vocabulary = genes
    if isinstance(vocabulary, pd.DataFrame):
        if "ensembl_id" not in vocabulary.columns:
            raise ArgumentError("the vocabulary DataFrame needs an 'ensembl_id' column (symbol and length optional); "
                                f"it has {list(vocabulary.columns)}", argument="vocabulary")
        return vocabulary
    if isinstance(vocabulary, (list, tuple, pd.Index, np.ndarray, pd.Series)):
        return pd.DataFrame({"ensembl_id": [str(v) for v in vocabulary]})
    raise ArgumentTypeError(f"vocabulary must be a Bundle, a DataFrame with ensembl_id/symbol/length or a list of "
                            f"Ensembl IDs, not {type(vocabulary).__name__}", argument="vocabulary")


def vocabulary_table(vocabulary: Any, n_genes: int | None = None, *, what: str = "n_genes") -> pd.DataFrame:
    """``vocabulary`` (as :func:`resolve_vocabulary` takes it) as a checked gene table
    (ensembl_id, symbol, length), cut to its first ``n_genes`` rows when given."""
    from bulkformer.bundle import normalise_gene_table

    table = normalise_gene_table(resolve_vocabulary(vocabulary))
    if n_genes is not None:
        if isinstance(n_genes, bool) or not 2 <= n_genes <= len(table):
            raise ArgumentError(f"{what} must be between 2 and the vocabulary size {len(table)}, got {n_genes}",
                                argument=what, value=n_genes)
        table = table.iloc[:n_genes].reset_index(drop=True)
    return table


def vocabulary_positions(genes: Sequence[Any] | str, vocabulary: Any, *, what: str = "genes",
                         where: str = "the model's vocabulary") -> np.ndarray:
    """Positions in ``vocabulary`` of a user's gene list (a subset to embed, read or
    test), named the way expression rows may be: Ensembl IDs with or without version,
    symbols (aliases, any case), Entrez IDs. Errors name the genes that match nothing,
    repeats and an empty list: a gene list is an explicit request, nothing is dropped."""
    if isinstance(genes, str):
        genes = [genes]
    names = [str(g).strip() for g in genes]
    if not names:
        raise ArgumentError(f"{what} is empty", argument=what, value=[],
                            fix="give at least one gene, or leave it out for all of them")
    index = vocabulary_index(resolve_vocabulary(vocabulary))
    positions = lookup_many(names, index).positions
    unknown = [n for n, p in zip(names, positions) if p < 0]
    if unknown:
        raise ArgumentError(f"{len(unknown)} of the {len(names)} {what} are not in {where} ({index.n_genes:,} genes; "
                            f"e.g. {', '.join(map(repr, unknown[:3]))})", argument=what, value=unknown,
                            fix="give Ensembl IDs or symbols of genes it holds", joiner="; ")
    seen: dict[int, str] = {}
    for name, position in zip(names, positions.tolist()):
        if position in seen:
            raise ArgumentError(f"{what} name the same vocabulary gene twice ({seen[position]!r} and {name!r} -> "
                                f"{index.ensembl_ids[position]})", argument=what, value=[seen[position], name])
        seen[position] = name
    return positions.astype(np.int64)


def map_genes(gene_ids: Sequence[Any], vocabulary: Any = None, *,
              lengths: pd.Series | Mapping | None = None) -> pd.DataFrame:
    """Where each input gene goes, without any expression data: one row per input ID
    with its recognised kind, the vocabulary gene it maps to (None if unmatched), the
    route (ensembl, ensembl_par_y, entrez, symbol, symbol_case, alias, ensembl_same_entrez, superseded,
    unmatched) and the length (bp) TPM would use (``lengths``: a Series gene ID -> bp
    overriding the vocabulary's, as in :func:`prepare`). ``vocabulary`` as in
    :func:`prepare` (None: the shipped default). The per-gene detail behind
    :class:`MappingReport`."""
    index = vocabulary_index(resolve_vocabulary(vocabulary))
    plan = plan_alignment([str(g) for g in gene_ids], index, lengths=lengths)
    found = plan.mapping.lookup
    matched = plan.column_index >= 0
    routes = np.where(matched, found.routes, np.where(found.positions >= 0, "superseded", "unmatched"))
    return pd.DataFrame({
        "input_id": plan.mapping.normalized_ids,
        "kind": found.kinds,
        "vocabulary_id": [index.ensembl_ids[p] if p >= 0 else None for p in plan.column_index],
        "route": routes,
        "length_bp": plan.lengths_bp,
    })
