"""The shipped annotation: shape, order, known genes, and that the generator reproduces it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bulkformer.annotation import DATA_DIR, default_vocabulary, gene_aliases, gene_table


def test_default_vocabulary_is_protein_coding_sorted_and_unique():
    vocabulary = default_vocabulary()
    assert list(vocabulary.columns) == ["ensembl_id", "symbol", "length"]
    assert 19_000 <= len(vocabulary) <= 20_500
    assert vocabulary["ensembl_id"].is_unique and vocabulary["ensembl_id"].is_monotonic_increasing
    assert vocabulary["ensembl_id"].str.fullmatch(r"ENSG\d{11}").all()
    assert str(vocabulary["length"].dtype) == "Int64"
    assert vocabulary["length"].notna().mean() > 0.9
    assert (vocabulary["length"].dropna() > 0).all()
    assert isinstance(vocabulary.index, pd.RangeIndex)
    by_symbol = vocabulary.set_index("symbol")["ensembl_id"]
    assert by_symbol["TP53"] == "ENSG00000141510"
    assert by_symbol["GAPDH"] == "ENSG00000111640"
    assert by_symbol["EGFR"] == "ENSG00000146648"


def test_default_vocabulary_returns_independent_copies():
    first = default_vocabulary()
    first.loc[0, "symbol"] = "CHANGED"
    assert default_vocabulary().loc[0, "symbol"] != "CHANGED"


def test_gene_table_bridges_ids():
    table = gene_table()
    assert {"ensembl_id", "entrez_id", "symbol", "gene_type", "length", "vocabulary"} <= set(table.columns)
    assert table["vocabulary"].sum() == len(default_vocabulary())
    tp53 = table[table["entrez_id"] == "7157"]
    assert tp53["symbol"].iloc[0] == "TP53" and "ENSG00000141510" in set(tp53["ensembl_id"])
    # non-coding genes are present (their lengths matter for TPM denominators)
    assert (table["gene_type"] == "ncRNA").sum() > 1000
    aliases = gene_aliases()
    assert "P53" in set(aliases.loc[aliases["entrez_id"] == "7157", "alias"])


def test_source_documents_packages_and_lengths():
    source = (DATA_DIR / "SOURCE.md").read_text()
    assert "org.Hs.eg.db" in source and "geneLenDataBase" in source and "median" in source


@pytest.mark.skipif(not Path("/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite").exists()
                    or not Path("/usr/lib/R/site-library/geneLenDataBase").exists()
                    or shutil.which("Rscript") is None, reason="annotation sources not installed")
def test_generator_reproduces_shipped_files():
    from bulkformer.annotation import build

    source = (DATA_DIR / "SOURCE.md").read_text()
    installed = [build._description_version(build.ORG_DB_DIR), build._description_version(build.GENELEN_DIR)]
    if not all(f" {version} " in source for version in installed):
        pytest.skip(f"installed source packages {installed} differ from those the shipped table was built from")
    script = Path(__file__).resolve().parents[2] / "python" / "bulkformer" / "annotation" / "build.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
