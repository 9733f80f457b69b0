"""The per-gene half of data preparation: where each input gene goes in the
vocabulary and which length (bp) it is normalised by."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bulkformer.preprocess.ids import GeneMapping, VocabularyIndex, annotation_length, classify, map_gene_ids
from bulkformer.preprocess.normalize import DEFAULT_LENGTH_BP
from bulkformer.preprocess.validate import check_lengths_1d


@dataclass
class AlignmentPlan:
    """Input gene j goes to vocabulary position ``column_index[j]`` (-1: not in the
    vocabulary, still part of the TPM denominator) and is divided by ``lengths_bp[j]``."""

    mapping: GeneMapping
    column_index: np.ndarray
    lengths_bp: np.ndarray
    length_sources: Counter
    n_vocabulary: int

    @property
    def measured(self) -> np.ndarray:
        measured = np.zeros(self.n_vocabulary, dtype=bool)
        measured[self.column_index[self.column_index >= 0]] = True
        return measured


def _user_length_lookup(lengths: Mapping | pd.Series) -> dict[str, float]:
    series = pd.Series(lengths) if not isinstance(lengths, pd.Series) else lengths
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    lookup: dict[str, float] = {}
    for key, value in zip(series.index, values):
        key = str(key).strip()
        lookup[key] = value
        kind, stripped = classify(key)
        if kind == "ensembl_versioned":  # versioned lengths also serve unversioned IDs
            lookup.setdefault(stripped, value)
    return lookup


def plan_alignment(gene_ids: Sequence[str], index: VocabularyIndex, *,
                   lengths: Mapping | pd.Series | None = None) -> AlignmentPlan:
    """Map ``gene_ids`` onto the vocabulary and pick each gene's length:
    user ``lengths`` (by input ID, unversioned ID, or the matched vocabulary ID) >
    the vocabulary's length > the shipped annotation > 1,000 bp (REFERENCE.md)."""
    mapping = map_gene_ids(gene_ids, index)
    user = _user_length_lookup(lengths) if lengths is not None else {}
    result = np.full(len(gene_ids), np.nan)
    sources: Counter = Counter()
    for j, gene_id in enumerate(mapping.normalized_ids):
        position = int(mapping.column_index[j])
        vocabulary_id = index.ensembl_ids[position] if position >= 0 else None
        candidates = (
            ("user", user.get(gene_id, user.get(classify(gene_id)[1], user.get(vocabulary_id, np.nan))) if user else np.nan),
            ("vocabulary", index.lengths_bp[position] if position >= 0 else np.nan),
            ("annotation", annotation_length(gene_id, index)),
            ("annotation", index.ensembl_length.get(vocabulary_id, np.nan) if vocabulary_id else np.nan),
        )
        for source, value in candidates:
            if value == value:  # not NaN
                result[j] = value
                sources[source] += 1
                break
        else:
            result[j] = DEFAULT_LENGTH_BP
            sources["default_1000bp"] += 1
    if sources.get("user"):
        check_lengths_1d(result, mapping.normalized_ids)
    else:
        bad = ~(np.isfinite(result) & (result > 0))
        result[bad] = DEFAULT_LENGTH_BP  # the shipped tables hold positive lengths only
    return AlignmentPlan(mapping=mapping, column_index=mapping.column_index, lengths_bp=result,
                         length_sources=sources, n_vocabulary=index.n_genes)
