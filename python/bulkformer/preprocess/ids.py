"""Gene identifiers -> vocabulary positions.

Recognised kinds: Ensembl gene IDs with or without version (``ENSG00000141510.16``),
GENCODE ``_PAR_Y`` copies and their older ``ENSGR`` spelling (merged into the X copy's
gene: Salmon and RSEM split a pseudoautosomal gene's reads between the two rows), Entrez IDs,
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
from functools import lru_cache
from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bulkformer.annotation import gene_aliases, gene_table
from bulkformer.errors import ArgumentError, InputError

_ENSEMBL_OTHER = re.compile(r"^ENS([A-Z]{3,6})[GT]\d{11}(?:\.\d+)?$")
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
    lookup: Lookup | None = None

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


@dataclass(frozen=True)
class _AnnotationLookups:
    """The vocabulary-independent part of the lookups (built once per process)."""

    pairs: pd.DataFrame  # ensembl_id, entrez_id, vocabulary (rows with both IDs)
    genes: pd.DataFrame  # entrez_id, symbol (one row per Entrez gene)
    aliases: pd.DataFrame  # alias, entrez_id: aliases naming exactly one gene and no official symbol
    ensembl_length: dict[str, float]
    entrez_length: dict[str, float]
    symbol_length: dict[str, float]


@lru_cache(maxsize=1)
def _annotation_lookups() -> _AnnotationLookups:
    table = gene_table()
    pairs = table.dropna(subset=["ensembl_id", "entrez_id"])[["ensembl_id", "entrez_id", "vocabulary"]]
    genes = table.dropna(subset=["entrez_id"]).drop_duplicates("entrez_id")[["entrez_id", "symbol"]]
    aliases = gene_aliases()
    # an alias naming several genes, or another gene's official symbol, is ambiguous: not used
    n_genes = aliases.groupby("alias")["entrez_id"].transform("nunique")
    aliases = aliases[(n_genes == 1) & ~aliases["alias"].isin(set(genes["symbol"].dropna()))]
    with_length = table.dropna(subset=["length"])
    ensembl_length = with_length.drop_duplicates("ensembl_id").set_index("ensembl_id")["length"].astype(float).to_dict()
    entrez_length = with_length.dropna(subset=["entrez_id"]).groupby("entrez_id")["length"].median().astype(float).to_dict()
    symbol_length = {s: entrez_length[z] for z, s in zip(genes["entrez_id"], genes["symbol"]) if z in entrez_length}
    return _AnnotationLookups(pairs=pairs.reset_index(drop=True), genes=genes.reset_index(drop=True),
                              aliases=aliases.reset_index(drop=True), ensembl_length=ensembl_length,
                              entrez_length=entrez_length, symbol_length=symbol_length)


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
        raise ArgumentError(f"the vocabulary lists some Ensembl IDs twice (e.g. {duplicated})", argument="vocabulary",
                            fix="a vocabulary must be unique", joiner="; ")
    position = {e: i for i, e in enumerate(ensembl_ids)}

    shared = _annotation_lookups()
    table = shared.pairs.assign(pos=shared.pairs["ensembl_id"].map(position))
    in_vocab = table[table["pos"].notna()]
    # an Entrez gene on several vocabulary IDs: keep the default-vocabulary choice
    preferred = in_vocab.sort_values("vocabulary", ascending=False).drop_duplicates(["entrez_id", "pos"])
    flagged = preferred[preferred["vocabulary"]]
    entrez_position = _unique_map(preferred["entrez_id"], preferred["pos"])
    entrez_position.update(_unique_map(flagged["entrez_id"], flagged["pos"]))

    genes = shared.genes
    official_symbol_position = _unique_map(genes["symbol"], genes["entrez_id"].map(entrez_position))
    others = table[table["pos"].isna()]
    other_ensembl_position = _unique_map(others["ensembl_id"], others["entrez_id"].map(entrez_position))

    symbol_position = _unique_map(pd.Series([s or None for s in symbols], dtype=object), pd.Series(range(len(symbols))))
    upper_pairs = [*symbol_position.items(), *official_symbol_position.items()]
    upper_symbol_position = _unique_map(pd.Series([k.upper() for k, _ in upper_pairs], dtype=object),
                                        pd.Series([v for _, v in upper_pairs], dtype=object))

    aliases = shared.aliases[~shared.aliases["alias"].isin(symbol_position)]
    alias_position = _unique_map(aliases["alias"], aliases["entrez_id"].map(entrez_position))
    ensembl_length, entrez_length, symbol_length = shared.ensembl_length, shared.entrez_length, shared.symbol_length

    index = VocabularyIndex(
        ensembl_ids=ensembl_ids, symbols=symbols, lengths_bp=lengths, position=position,
        symbol_position=symbol_position, entrez_position=entrez_position,
        official_symbol_position=official_symbol_position, other_ensembl_position=other_ensembl_position,
        upper_symbol_position=upper_symbol_position, alias_position=alias_position,
        ensembl_length=ensembl_length, entrez_length=entrez_length, symbol_length=symbol_length,
    )
    _INDEX_CACHE[key] = index
    return index


_ANY_KIND = re.compile(
    r"^(?:(?P<ensembl>ENSG\d{11})(?P<version>\.\d+)?(?P<par_y>_PAR_Y)?"
    # GENCODE <= v24 named the Y copies ENSGR + the X copy's digits after its first 0
    r"|ENSGR(?P<old_par_y>\d{10})(?:\.\d+)?(?:_PAR_Y)?"
    r"|(?P<transcript>ENST\d{11}(?:\.\d+)?(?:_PAR_Y)?)"
    r"|ENS(?P<species>[A-Z]{3,6})[GT]\d{11}(?:\.\d+)?"
    r"|(?P<entrez>\d+)"
    r"|(?P<pair>[^|]*\|\d+))$")


def classify_many(gene_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(kinds, keys) of many identifiers: one combined regular expression per ID."""
    kinds = np.empty(len(gene_ids), dtype=object)
    keys = np.empty(len(gene_ids), dtype=object)
    match = _ANY_KIND.match
    for j, gene_id in enumerate(gene_ids):
        found = match(gene_id)
        if found is None:
            kinds[j], keys[j] = ("symbol" if gene_id else "empty"), gene_id
        elif found.group("ensembl"):
            keys[j] = found.group("ensembl")
            kinds[j] = ("ensembl_par_y" if found.group("par_y") else
                        "ensembl_versioned" if found.group("version") else "ensembl")
        elif found.group("old_par_y"):
            kinds[j], keys[j] = "ensembl_par_y", "ENSG0" + found.group("old_par_y")
        elif found.group("transcript"):
            kinds[j], keys[j] = "ensembl_transcript", gene_id
        elif found.group("species"):
            kinds[j], keys[j] = "ensembl_nonhuman", found.group("species")
        elif found.group("entrez"):
            kinds[j], keys[j] = "entrez", gene_id
        else:
            kinds[j], keys[j] = "symbol|entrez", gene_id
    return kinds, keys


def get_many(table: dict, keys) -> np.ndarray:
    """``table[k]`` for each key as float64, NaN where absent (plain dict lookups: pandas'
    Series.map would first turn the whole table into a Series)."""
    nan = np.nan
    return np.fromiter((table.get(k, nan) if k is not None else nan for k in keys), dtype=np.float64)


@dataclass
class Lookup:
    """Per input identifier: kind, lookup key, vocabulary position (-1), tier, route."""

    kinds: np.ndarray
    keys: np.ndarray
    positions: np.ndarray
    tiers: np.ndarray
    routes: np.ndarray


def _split_symbol_entrez(keys: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    symbols = np.full(keys.size, None, dtype=object)
    entrez = np.full(keys.size, None, dtype=object)
    if mask.any():
        parts = pd.Series(keys[mask], dtype=object).str.split("|", n=1, expand=True)
        symbols[mask] = parts[0].to_numpy(dtype=object)
        entrez[mask] = parts[1].to_numpy(dtype=object)
    return symbols, entrez


def lookup_many(gene_ids: Sequence[str], index: VocabularyIndex) -> Lookup:
    """Vocabulary positions of many identifiers (rules in the module docstring)."""
    kinds, keys = classify_many(gene_ids)
    n = len(kinds)
    positions = np.full(n, -1, dtype=np.int64)
    tiers = np.full(n, 9, dtype=np.int64)
    routes = np.full(n, "unmatched", dtype=object)

    def resolve(mask: np.ndarray, candidates: np.ndarray, table: dict, tier: int, route: str, transform=None) -> None:
        open_rows = np.flatnonzero(mask & (positions < 0))
        if open_rows.size == 0 or not table:
            return
        lookup_keys = candidates[open_rows]
        if transform is not None:
            lookup_keys = [transform(k) if k is not None else None for k in lookup_keys]
        found = get_many(table, lookup_keys)
        hit = ~np.isnan(found)
        rows = open_rows[hit]
        positions[rows] = found[hit].astype(np.int64)
        tiers[rows] = tier
        routes[rows] = route

    ensembl = (kinds == "ensembl") | (kinds == "ensembl_versioned")
    resolve(ensembl, keys, index.position, 0, "ensembl")
    resolve(ensembl, keys, index.other_ensembl_position, 1, "ensembl_same_entrez")
    # a _PAR_Y row holds the rest of its X copy's reads: tier 0, so the two are merged (summed)
    par_y = kinds == "ensembl_par_y"
    resolve(par_y, keys, index.position, 0, "ensembl_par_y")
    resolve(par_y, keys, index.other_ensembl_position, 1, "ensembl_same_entrez")
    resolve(kinds == "entrez", keys, index.entrez_position, 0, "entrez")
    paired = kinds == "symbol|entrez"
    paired_symbols, paired_entrez = _split_symbol_entrez(keys, paired)
    resolve(paired, paired_entrez, index.entrez_position, 0, "entrez")
    symbols = np.where(paired, paired_symbols, np.where(kinds == "symbol", keys, None))
    has_symbol = (kinds == "symbol") | (paired & ~pd.Series(paired_symbols, dtype=object).isin(["", "?", None]).to_numpy())
    resolve(has_symbol, symbols, index.symbol_position, 0, "symbol")
    resolve(has_symbol, symbols, index.official_symbol_position, 0, "symbol")
    resolve(has_symbol, symbols, index.upper_symbol_position, 1, "symbol_case", transform=str.upper)
    resolve(has_symbol, symbols, index.alias_position, 1, "alias")
    return Lookup(kinds=kinds, keys=keys, positions=positions, tiers=tiers, routes=routes)


def annotation_lengths(found: Lookup, index: VocabularyIndex) -> np.ndarray:
    """Shipped length (bp) of each recognised input gene, NaN if unknown."""
    kinds, keys = found.kinds, found.keys
    result = np.full(kinds.size, np.nan)

    def fill(mask: np.ndarray, candidates: np.ndarray, table: dict) -> None:
        rows = np.flatnonzero(mask & np.isnan(result))
        if rows.size:
            result[rows] = get_many(table, candidates[rows])

    fill(np.isin(kinds, ["ensembl", "ensembl_versioned", "ensembl_par_y"]), keys, index.ensembl_length)
    fill(kinds == "entrez", keys, index.entrez_length)
    paired = kinds == "symbol|entrez"
    paired_symbols, paired_entrez = _split_symbol_entrez(keys, paired)
    fill(paired, paired_entrez, index.entrez_length)
    fill(paired, paired_symbols, index.symbol_length)
    fill(kinds == "symbol", keys, index.symbol_length)
    return result


def n_outside_vocabulary(mapping: GeneMapping, index: VocabularyIndex) -> int:
    """Unmatched input genes that are real genes the vocabulary lacks (GENCODE's lncRNAs
    and pseudogenes, say): human Ensembl gene IDs, or IDs the shipped annotation knows.
    Superseded IDs (whose gene another input measures) and unknown names are not counted."""
    found = mapping.lookup
    if found is None:
        return 0
    outside = (mapping.column_index < 0) & (found.positions < 0)
    if not outside.any():
        return 0
    ensembl = np.isin(found.kinds, ["ensembl", "ensembl_versioned", "ensembl_par_y"])
    known = ensembl | ~np.isnan(annotation_lengths(found, index))
    return int((outside & known).sum())


def map_gene_ids(gene_ids: Sequence[object], index: VocabularyIndex, *, max_examples: int = 10) -> GeneMapping:
    """Map input gene IDs to vocabulary positions (see the module docstring for the rules).

    Raises ValueError for non-human Ensembl IDs and for transcript IDs, which need a
    different remedy than an unmatched gene.
    """
    ids = [str(g).strip() for g in gene_ids]
    found = lookup_many(ids, index)
    kinds = found.kinds.tolist()
    kind_counts = Counter(kinds)
    _refuse_foreign_ids(ids, kinds, kind_counts)

    positions, tiers = found.positions, found.tiers
    matched = positions >= 0
    best_tier = np.full(index.n_genes, 99, dtype=np.int64)
    np.minimum.at(best_tier, positions[matched], tiers[matched])
    superseded = matched & (tiers > best_tier[np.where(matched, positions, 0)])
    column_index = np.where(matched & ~superseded, positions, -1)
    # routes of matched genes only, so that they add up to n_matched; superseded IDs
    # reach no vocabulary gene of their own and count as unmatched (map_genes names them)
    routes = Counter(found.routes[column_index >= 0].tolist())

    unmatched = [ids[j] for j in np.flatnonzero(column_index < 0)[:max_examples]]
    targets = column_index[column_index >= 0]
    unique_targets, counts = np.unique(targets, return_counts=True)
    collapsed = []
    for target in unique_targets[counts > 1][:max_examples]:
        members = [ids[j] for j in np.flatnonzero(column_index == target)]
        collapsed.append(f"{' + '.join(members[:4])} -> {index.ensembl_ids[target]}")
    return GeneMapping(column_index=column_index, kinds=kinds, routes=routes, unmatched=unmatched,
                       collapsed=collapsed, id_types=dict(kind_counts), normalized_ids=ids, lookup=found)


def _refuse_foreign_ids(ids: list[str], kinds: list[str], counts: Counter) -> None:
    n = max(len(ids), 1)
    nonhuman = counts.get("ensembl_nonhuman", 0)
    human = counts.get("ensembl", 0) + counts.get("ensembl_versioned", 0)
    if nonhuman and nonhuman >= max(human, 1) and nonhuman / n > 0.1:
        examples = [g for g, k in zip(ids, kinds) if k == "ensembl_nonhuman"][:3]
        prefix = _ENSEMBL_OTHER.match(examples[0]).group(1)
        species = SPECIES_PREFIXES.get(prefix, f"species prefix ENS{prefix}")
        raise InputError(
            f"non-human gene IDs: {nonhuman:,} of {len(ids):,} genes are Ensembl IDs of another species "
            f"({species}; e.g. {', '.join(examples)})", joiner=". ",
            fix="BulkFormer is a model of human genes: map them to human orthologues (Ensembl ENSG IDs or HGNC "
                "symbols) before preparing the data.")
    transcripts = counts.get("ensembl_transcript", 0)
    if transcripts / n > 0.5:
        examples = [g for g, k in zip(ids, kinds) if k == "ensembl_transcript"][:3]
        raise InputError(
            f"transcript IDs: {transcripts:,} of {len(ids):,} genes are Ensembl transcript IDs (e.g. "
            f"{', '.join(examples)})", joiner=". ",
            fix="Summarise transcripts to genes first (e.g. tximport's summarizeToGene, passing its avgTxLength "
                "matrix as lengths=).")
