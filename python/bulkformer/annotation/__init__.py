"""The shipped human gene annotation (see ``data/SOURCE.md``; regenerate with ``build.py``).

* :func:`default_vocabulary`: human protein-coding genes, one Ensembl ID each, sorted
  by Ensembl ID, with symbol and length (bp, nullable ``Int64``). Used for new models,
  the simulator and tiny bundles.
* :func:`gene_table`: every (Ensembl, Entrez) pair with symbol, NCBI gene type, length
  and a ``vocabulary`` flag; the bridge data preparation uses to map identifiers.
* :func:`gene_aliases`: aliases and previous symbols per Entrez gene.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"
ANNOTATION_VERSION = "1"

__all__ = ["ANNOTATION_VERSION", "DATA_DIR", "default_vocabulary", "gene_aliases", "gene_table"]


@lru_cache(maxsize=1)
def _gene_table() -> pd.DataFrame:
    path = DATA_DIR / "genes.tsv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall bulkformer or run "
                                "python python/bulkformer/annotation/build.py")
    table = pd.read_csv(path, sep="\t", dtype={"ensembl_id": str, "entrez_id": str, "symbol": str,
                                               "gene_type": str, "length": "Int64", "vocabulary": "int8"},
                        keep_default_na=False, na_values={"ensembl_id": [""], "entrez_id": [""],
                                                          "symbol": [""], "gene_type": [""], "length": [""]})
    table["vocabulary"] = table["vocabulary"].astype(bool)
    return table


@lru_cache(maxsize=1)
def _aliases() -> pd.DataFrame:
    return pd.read_csv(DATA_DIR / "aliases.tsv.gz", sep="\t", dtype=str, keep_default_na=False)


def gene_table() -> pd.DataFrame:
    """The full shipped annotation: columns ensembl_id, entrez_id, symbol, gene_type,
    length (bp, Int64, <NA> when unknown), vocabulary (bool). One row per (Ensembl,
    Entrez) pair; Ensembl-only and Entrez-only genes have <NA> in the other column."""
    return _gene_table().copy()


def gene_aliases() -> pd.DataFrame:
    """Aliases and previous symbols (NCBI synonyms): columns entrez_id, alias."""
    return _aliases().copy()


def default_vocabulary() -> pd.DataFrame:
    """Human protein-coding genes: DataFrame[ensembl_id, symbol, length], sorted by
    ensembl_id, RangeIndex. ``length`` is Int64 (bp), <NA> where unknown."""
    table = _gene_table()
    vocabulary = table.loc[table["vocabulary"], ["ensembl_id", "symbol", "length"]]
    return vocabulary.sort_values("ensembl_id").reset_index(drop=True)
