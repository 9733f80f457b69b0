"""Gene identifiers -> vocabulary positions.

Recognised kinds: Ensembl gene IDs with or without version (``ENSG00000141510.16``),
GENCODE ``_PAR_Y`` copies (left unmatched: the X copy carries the gene), Entrez IDs,
``SYMBOL|ENTREZ`` (TCGA RSEM tables), HGNC symbols including aliases and previous
symbols. The shipped annotation (:func:`bulkformer.annotation.gene_table`) bridges
kinds the vocabulary does not list itself.

Matching is tiered so that an indirect route never merges a different locus into a
gene that is already measured directly: tier 0 = the vocabulary's own Ensembl ID or
symbol, the gene's Entrez ID or official symbol; tier 1 = another Ensembl ID of the
same Entrez gene, a case-insensitive symbol, an alias or previous symbol. Per
vocabulary gene only the best tier's input genes count; several of them are merged
(collapsed).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from bulkformer.annotation import gene_aliases, gene_table

_ENSEMBL_HUMAN = re.compile(r"^(ENSG\d{11})(?:\.\d+)?(_PAR_Y)?$")
_ENSEMBL_TRANSCRIPT = re.compile(r"^ENST\d{11}(?:\.\d+)?(_PAR_Y)?$")
_ENSEMBL_OTHER = re.compile(r"^ENS([A-Z]{3,6})[GT]\d{11}(?:\.\d+)?$")
_ENTREZ = re.compile(r"^\d+$")
_SYMBOL_ENTREZ = re.compile(r"^([^|]*)\|(\d+)$")
SPECIES_PREFIXES = {"MUS": "mouse", "RNO": "rat", "DAR": "zebrafish", "MMU": "macaque", "SSC": "pig",
                    "BTA": "cow", "GAL": "chicken", "CAF": "dog", "PTR": "chimpanzee", "XET": "frog"}


@dataclass
class VocabularyIndex:
    """Lookup tables from identifiers to positions in one vocabulary."""

    ensembl_ids: list[str]
    symbols: list[str]
    lengths_bp: np.ndarray  # float64, NaN where unknown
    position: dict[str, int]
    symbol_position: dict[str, int]
    entrez_position: dict[str, int]
    official_symbol_position: dict[str, int]
    other_ensembl_position: dict[str, int]
    upper_symbol_position: dict[str, int]
    alias_position: dict[str, int]
    # shipped lengths of genes outside the vocabulary (they count in TPM denominators)
    ensembl_length: dict[str, float]
    entrez_length: dict[str, float]
    symbol_length: dict[str, float]

    @property
    def n_genes(self) -> int:
        return len(self.ensembl_ids)


@dataclass
class GeneMapping:
    """Result of mapping input gene IDs onto a vocabulary."""

    column_index: np.ndarray  # int64 (n_input,), -1 = unmatched
    kinds: list[str]
    routes: Counter
    unmatched: list[str]
    collapsed: list[str]
    id_types: dict[str, int]
    normalized_ids: list[str] = field(default_factory=list)

    @property
    def n_matched(self) -> int:
        return int((self.column_index >= 0).sum())

    @property
    def n_collapsed(self) -> int:
        targets = self.column_index[self.column_index >= 0]
        return int(targets.size - np.unique(targets).size)


def _unique_map(keys: pd.Series, values: pd.Series) -> dict[str, int]:
    """key -> value for keys with exactly one distinct value (ambiguous keys dropped)."""
    frame = pd.DataFrame({"k": keys.to_numpy(), "v": values.to_numpy()}).dropna().drop_duplicates()
    counts = frame["k"].value_counts()
    frame = frame[frame["k"].map(counts) == 1]
    return dict(zip(frame["k"].astype(str), frame["v"].astype(int)))


_INDEX_CACHE: dict[str, VocabularyIndex] = {}


def vocabulary_index(vocabulary: pd.DataFrame) -> VocabularyIndex:
    """Build (once per distinct vocabulary) the lookups used by :func:`map_gene_ids`."""
    ensembl_ids = [str(e) for e in vocabulary["ensembl_id"]]
    symbols = [("" if pd.isna(s) else str(s)) for s in vocabulary.get("symbol", pd.Series([None] * len(ensembl_ids)))]
    raw_lengths = vocabulary["length"] if "length" in vocabulary else pd.Series([np.nan] * len(ensembl_ids))
    lengths = pd.to_numeric(pd.Series(raw_lengths).astype("Float64"), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    key = hashlib.sha1("\t".join(ensembl_ids + symbols + [repr(lengths.tolist())]).encode()).hexdigest()
    if key in _INDEX_CACHE:
        return _INDEX_CACHE[key]
    if len(set(ensembl_ids)) != len(ensembl_ids):
        duplicated = pd.Series(ensembl_ids)[pd.Series(ensembl_ids).duplicated()].tolist()[:5]
        raise ValueError(f"the vocabulary lists some Ensembl IDs twice (e.g. {duplicated}); a vocabulary must be unique")
    position = {e: i for i, e in enumerate(ensembl_ids)}

    table = gene_table()
    table["pos"] = table["ensembl_id"].map(position)
    in_vocab = table[table["pos"].notna() & table["entrez_id"].notna()]
    # an Entrez gene on several vocabulary IDs: keep the default-vocabulary choice
    preferred = in_vocab.sort_values("vocabulary", ascending=False).drop_duplicates(["entrez_id", "pos"])
    flagged = preferred[preferred["vocabulary"]]
    entrez_position = _unique_map(preferred["entrez_id"], preferred["pos"])
    entrez_position.update(_unique_map(flagged["entrez_id"], flagged["pos"]))

    genes = table.dropna(subset=["entrez_id"]).drop_duplicates("entrez_id")[["entrez_id", "symbol"]]
    genes = genes.assign(pos=genes["entrez_id"].map(entrez_position))
    official_symbol_position = _unique_map(genes["symbol"], genes["pos"])
    official_symbols = set(genes["symbol"].dropna())

    others = table[table["pos"].isna() & table["ensembl_id"].notna() & table["entrez_id"].notna()]
    other_ensembl_position = _unique_map(others["ensembl_id"], others["entrez_id"].map(entrez_position))

    symbol_position = _unique_map(pd.Series([s or None for s in symbols], dtype=object), pd.Series(range(len(symbols))))
    upper_pairs = [*symbol_position.items(), *official_symbol_position.items()]
    upper_symbol_position = _unique_map(pd.Series([k.upper() for k, _ in upper_pairs], dtype=object),
                                        pd.Series([v for _, v in upper_pairs], dtype=object))

    aliases = gene_aliases()
    aliases = aliases[~aliases["alias"].isin(official_symbols) & ~aliases["alias"].isin(symbol_position)]
    alias_position = _unique_map(aliases["alias"], aliases["entrez_id"].map(entrez_position))

    with_length = table.dropna(subset=["length"])
    ensembl_length = with_length.drop_duplicates("ensembl_id").set_index("ensembl_id")["length"].astype(float).to_dict()
    entrez_length = (with_length.dropna(subset=["entrez_id"]).groupby("entrez_id")["length"].median().astype(float).to_dict())
    symbol_length = {s: entrez_length[z] for z, s in zip(genes["entrez_id"], genes["symbol"]) if z in entrez_length}

    index = VocabularyIndex(
        ensembl_ids=ensembl_ids, symbols=symbols, lengths_bp=lengths, position=position,
        symbol_position=symbol_position, entrez_position=entrez_position,
        official_symbol_position=official_symbol_position, other_ensembl_position=other_ensembl_position,
        upper_symbol_position=upper_symbol_position, alias_position=alias_position,
        ensembl_length=ensembl_length, entrez_length=entrez_length, symbol_length=symbol_length,
    )
    _INDEX_CACHE[key] = index
    return index


def classify(gene_id: str) -> tuple[str, str]:
    """(kind, key) of one identifier; key is the part used for lookup."""
    match = _ENSEMBL_HUMAN.match(gene_id)
    if match:
        if match.group(2):
            return "ensembl_par_y", match.group(1)
        return ("ensembl_versioned" if "." in gene_id else "ensembl"), match.group(1)
    if _ENSEMBL_TRANSCRIPT.match(gene_id):
        return "ensembl_transcript", gene_id
    match = _ENSEMBL_OTHER.match(gene_id)
    if match:
        return "ensembl_nonhuman", match.group(1)
    if _ENTREZ.match(gene_id):
        return "entrez", gene_id
    match = _SYMBOL_ENTREZ.match(gene_id)
    if match:
        return "symbol|entrez", gene_id
    if not gene_id:
        return "empty", gene_id
    return "symbol", gene_id


def _lookup_symbol(symbol: str, index: VocabularyIndex) -> tuple[int, int, str]:
    if symbol in index.symbol_position:
        return index.symbol_position[symbol], 0, "symbol"
    if symbol in index.official_symbol_position:
        return index.official_symbol_position[symbol], 0, "symbol"
    upper = symbol.upper()
    if upper in index.upper_symbol_position:
        return index.upper_symbol_position[upper], 1, "symbol_case"
    if symbol in index.alias_position:
        return index.alias_position[symbol], 1, "alias"
    return -1, 9, "unmatched"


def lookup(gene_id: str, index: VocabularyIndex) -> tuple[str, int, int, str]:
    """(kind, position or -1, tier, route) of one identifier."""
    kind, key = classify(gene_id)
    if kind in ("ensembl", "ensembl_versioned"):
        if key in index.position:
            return kind, index.position[key], 0, "ensembl"
        if key in index.other_ensembl_position:
            return kind, index.other_ensembl_position[key], 1, "ensembl_same_entrez"
    elif kind == "entrez":
        if key in index.entrez_position:
            return kind, index.entrez_position[key], 0, "entrez"
    elif kind == "symbol|entrez":
        symbol, entrez = key.split("|")
        if entrez in index.entrez_position:
            return kind, index.entrez_position[entrez], 0, "entrez"
        if symbol and symbol != "?":
            return (kind, *_lookup_symbol(symbol, index))
    elif kind == "symbol":
        return (kind, *_lookup_symbol(key, index))
    return kind, -1, 9, "unmatched"


def annotation_length(gene_id: str, index: VocabularyIndex) -> float:
    """Shipped length (bp) of any recognised gene, NaN if unknown."""
    kind, key = classify(gene_id)
    if kind.startswith("ensembl") and kind not in ("ensembl_nonhuman", "ensembl_transcript"):
        return index.ensembl_length.get(key, np.nan)
    if kind == "entrez":
        return index.entrez_length.get(key, np.nan)
    if kind == "symbol|entrez":
        symbol, entrez = key.split("|")
        return index.entrez_length.get(entrez, index.symbol_length.get(symbol, np.nan))
    if kind == "symbol":
        return index.symbol_length.get(key, np.nan)
    return np.nan


def map_gene_ids(gene_ids: Sequence[object], index: VocabularyIndex, *, max_examples: int = 10) -> GeneMapping:
    """Map input gene IDs to vocabulary positions (see the module docstring for the rules).

    Raises ValueError for non-human Ensembl IDs and for transcript IDs, which need a
    different remedy than an unmatched gene.
    """
    ids = [str(g).strip() for g in gene_ids]
    results = [lookup(g, index) for g in ids]
    kinds = [r[0] for r in results]
    kind_counts = Counter(kinds)
    _refuse_foreign_ids(ids, kinds, kind_counts)

    positions = np.fromiter((r[1] for r in results), dtype=np.int64, count=len(results))
    tiers = np.fromiter((r[2] for r in results), dtype=np.int64, count=len(results))
    matched = positions >= 0
    best_tier = np.full(index.n_genes, 99, dtype=np.int64)
    np.minimum.at(best_tier, positions[matched], tiers[matched])
    superseded = matched & (tiers > best_tier[np.where(matched, positions, 0)])
    column_index = np.where(matched & ~superseded, positions, -1)
    routes = Counter(r[3] for r, keep in zip(results, column_index >= 0) if keep)
    if superseded.any():
        routes["superseded"] = int(superseded.sum())

    unmatched = [ids[j] for j in np.flatnonzero(column_index < 0)[:max_examples]]
    targets = column_index[column_index >= 0]
    unique_targets, first, counts = np.unique(targets, return_index=True, return_counts=True)
    collapsed = []
    for target in unique_targets[counts > 1][:max_examples]:
        members = [ids[j] for j in np.flatnonzero(column_index == target)]
        collapsed.append(f"{' + '.join(members[:4])} -> {index.ensembl_ids[target]}")
    return GeneMapping(column_index=column_index, kinds=kinds, routes=routes, unmatched=unmatched,
                       collapsed=collapsed, id_types=dict(kind_counts), normalized_ids=ids)


def _refuse_foreign_ids(ids: list[str], kinds: list[str], counts: Counter) -> None:
    n = max(len(ids), 1)
    nonhuman = counts.get("ensembl_nonhuman", 0)
    human = counts.get("ensembl", 0) + counts.get("ensembl_versioned", 0)
    if nonhuman and nonhuman >= max(human, 1) and nonhuman / n > 0.1:
        examples = [g for g, k in zip(ids, kinds) if k == "ensembl_nonhuman"][:3]
        prefix = _ENSEMBL_OTHER.match(examples[0]).group(1)
        species = SPECIES_PREFIXES.get(prefix, f"species prefix ENS{prefix}")
        raise ValueError(
            f"non-human gene IDs: {nonhuman:,} of {len(ids):,} genes are Ensembl IDs of another species "
            f"({species}; e.g. {', '.join(examples)}). BulkFormer is a model of human genes: map them to "
            "human orthologues (Ensembl ENSG IDs or HGNC symbols) before preparing the data.")
    transcripts = counts.get("ensembl_transcript", 0)
    if transcripts / n > 0.5:
        examples = [g for g, k in zip(ids, kinds) if k == "ensembl_transcript"][:3]
        raise ValueError(
            f"transcript IDs: {transcripts:,} of {len(ids):,} genes are Ensembl transcript IDs (e.g. "
            f"{', '.join(examples)}). Summarise transcripts to genes first (e.g. tximport's summarizeToGene, "
            "passing its avgTxLength matrix as lengths=).")
