"""The per-gene half of data preparation: where each input gene goes in the
vocabulary and which length (bp) it is normalised by."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bulkformer.preprocess.ids import GeneMapping, VocabularyIndex, annotation_lengths, classify_many, get_many, map_gene_ids
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
    warnings: list[str] = field(default_factory=list)

    @property
    def measured(self) -> np.ndarray:
        measured = np.zeros(self.n_vocabulary, dtype=bool)
        measured[self.column_index[self.column_index >= 0]] = True
        return measured


def numeric_lengths(values: pd.Series, source: str = "lengths=") -> pd.Series:
    """Gene lengths as floats; an entry that is not a number ("1,234", "n/a") is an error
    naming examples rather than a silent fallback to another length. Blank entries stay
    NaN (that gene has no length here)."""
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() & values.notna()
    if bad.any():
        raise ValueError(f"{source}: {int(bad.sum()):,} gene lengths are not numbers (e.g. {values[bad].tolist()[:3]}); "
                         "give plain numbers of base pairs (no thousands separators or units)")
    return parsed.astype(np.float64)


def _user_length_lookup(lengths: Mapping | pd.Series) -> dict[str, float]:
    series = pd.Series(lengths) if not isinstance(lengths, pd.Series) else lengths
    values = numeric_lengths(series).to_numpy(dtype=np.float64)
    keys = [str(k).strip() for k in series.index]
    lookup = dict(zip(keys, values))
    kinds, stripped = classify_many(keys)
    for kind, key, value in zip(kinds, stripped, values):
        if kind == "ensembl_versioned":  # versioned lengths also serve unversioned IDs
            lookup.setdefault(key, value)
    return lookup


def _repeated_length_warnings(lengths: Mapping | pd.Series) -> list[str]:
    """Genes listed more than once in lengths= with different lengths (annotation tables
    repeat genes of the X/Y pseudo-autosomal regions, for one): the last one is used."""
    if not isinstance(lengths, pd.Series):
        return []  # a mapping cannot repeat a key
    values = pd.to_numeric(lengths, errors="coerce")
    keys = pd.Index([str(k).strip() for k in lengths.index])
    differing = values.groupby(keys).nunique(dropna=False)
    differing = differing[differing > 1]
    if differing.empty:
        return []
    return [f"{len(differing):,} genes have more than one length in lengths= (e.g. {', '.join(differing.index[:3])}); "
            "the last one listed is used: give one length per gene to choose"]


def plan_alignment(gene_ids: Sequence[str], index: VocabularyIndex, *,
                   lengths: Mapping | pd.Series | None = None,
                   release_lengths: pd.Series | None = None) -> AlignmentPlan:
    """Map ``gene_ids`` onto the vocabulary and pick each gene's length:
    user ``lengths`` (by input ID, unversioned ID, or the matched vocabulary ID) >
    the vocabulary's length > the shipped annotation > 1,000 bp (REFERENCE.md).
    With ``release_lengths`` (a release's own table, e.g. the v1/v2 ``gene_length_df.csv``)
    the release's rule instead: user ``lengths`` > that table > 1,000 bp, for every input
    gene, matched or not (all of them are in the TPM denominator)."""
    mapping = map_gene_ids(gene_ids, index)
    found = mapping.lookup
    position = mapping.column_index
    matched = position >= 0
    vocabulary_ids = np.full(position.size, None, dtype=object)
    vocabulary_ids[matched] = np.asarray(index.ensembl_ids, dtype=object)[position[matched]]

    def by(table: dict, keys: np.ndarray) -> np.ndarray:
        return get_many(table, keys)

    candidates: list[tuple[str, np.ndarray]] = []
    plan_warnings: list[str] = []
    if lengths is not None:
        user = _user_length_lookup(lengths)
        plan_warnings.extend(_repeated_length_warnings(lengths))
        own = by(user, np.asarray(mapping.normalized_ids, dtype=object))
        own = np.where(np.isnan(own), by(user, found.keys), own)
        user_lengths = np.where(np.isnan(own), by(user, vocabulary_ids), own)
        candidates.append(("user", user_lengths))
        if position.size and np.isnan(user_lengths).all():
            raise ValueError(f"none of the {len(user):,} genes in lengths= is a gene of the data (lengths= names e.g. "
                             f"{list(user)[:3]}; the data's genes e.g. {list(mapping.normalized_ids[:3])}): name the "
                             "lengths by the data's gene IDs or the vocabulary's Ensembl IDs")
        n_without = int((matched & np.isnan(user_lengths)).sum())
        if n_without:
            plan_warnings.append(f"{n_without:,} of the {int(matched.sum()):,} matched genes have no length in lengths= "
                                 "and use the model vocabulary's length: give lengths for every gene, or none")
    if release_lengths is not None:
        table = _user_length_lookup(release_lengths)
        own = by(table, np.asarray(mapping.normalized_ids, dtype=object))
        candidates.append(("release", np.where(np.isnan(own), by(table, vocabulary_ids), own)))
    else:
        vocabulary_lengths = np.full(position.size, np.nan)
        vocabulary_lengths[matched] = index.lengths_bp[position[matched]]
        candidates.append(("vocabulary", vocabulary_lengths))
        own_annotation = annotation_lengths(found, index)
        candidates.append(("annotation", np.where(np.isnan(own_annotation), by(index.ensembl_length, vocabulary_ids),
                                                  own_annotation)))

    result = np.full(position.size, np.nan)
    sources: Counter = Counter()
    for source, values in candidates:
        take = np.isnan(result) & ~np.isnan(values)
        result[take] = values[take]
        if take.any():
            sources[source] += int(take.sum())
    unknown = np.isnan(result)
    if unknown.any():
        result[unknown] = DEFAULT_LENGTH_BP
        sources["default_1000bp"] += int(unknown.sum())
    if sources.get("user"):
        check_lengths_1d(result, mapping.normalized_ids)
    else:
        bad = ~(np.isfinite(result) & (result > 0))
        result[bad] = DEFAULT_LENGTH_BP  # the shipped tables hold positive lengths only
    return AlignmentPlan(mapping=mapping, column_index=mapping.column_index, lengths_bp=result,
                         length_sources=sources, n_vocabulary=index.n_genes, warnings=plan_warnings)
