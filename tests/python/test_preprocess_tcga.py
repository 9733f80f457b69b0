"""Real TCGA counts (../shared/data/tcga; skipped when absent): coverage, TPM, and the
mapping report on the same table keyed by symbols, versioned IDs and SYMBOL|ENTREZ."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require_shared

from bulkformer.annotation import default_vocabulary
from bulkformer.preprocess import prepare

N_SAMPLES = 6  # a few columns keep the tests quick; the genes are all there


@pytest.fixture(scope="module")
def tcga_counts() -> pd.DataFrame:
    """genes x samples counts of TCGA ACC (first N_SAMPLES samples)."""
    path = require_shared("data", "tcga", "TCGA_ACC_Counts.exp.gz")
    return pd.read_csv(path, sep="\t", index_col=0, usecols=range(N_SAMPLES + 1))


@pytest.fixture(scope="module")
def tcga_annotation() -> pd.DataFrame:
    path = require_shared("data", "annotation", "gene_annotation_grch38.tsv.gz")
    return pd.read_csv(path, sep="\t", usecols=["id", "entrez", "symbol"], dtype=str).drop_duplicates("id").set_index("id")


@pytest.fixture(scope="module")
def prepared_default(tcga_counts):
    return prepare(tcga_counts, default_vocabulary(), orientation="genes_by_samples")


def test_tcga_counts_cover_the_vocabulary(prepared_default, tcga_counts):
    report = prepared_default.report
    assert report.n_input_genes == 56_537
    assert report.n_vocabulary - report.n_missing >= 19_000
    assert report.n_matched >= 19_000 and report.id_types == {"ensembl": 56_537}
    assert prepared_default.mask_prob == pytest.approx(report.n_missing / report.n_vocabulary)
    assert prepared_default.mask_prob < 0.03
    assert prepared_default.sample_ids == list(tcga_counts.columns)
    measured = prepared_default.values[:, prepared_default.measured]
    assert (measured >= 0).all() and (prepared_default.values[:, ~prepared_default.measured] == -10).all()


def test_tcga_tpm_sums_to_a_million(tcga_counts):
    """With every input gene in the vocabulary, expm1 of the output is the full TPM vector."""
    everything = pd.DataFrame({"ensembl_id": tcga_counts.index})
    prepared = prepare(tcga_counts, everything, orientation="genes_by_samples")
    assert prepared.measured.all()
    tpm = np.expm1(prepared.values.astype(np.float64))
    np.testing.assert_allclose(tpm.sum(axis=1), 1e6, rtol=1e-5)


def test_tcga_matches_the_reference_formula_with_user_lengths(tcga_counts):
    lengths_path = require_shared("data", "annotation", "gene_length_gencode_v22.tsv.gz")
    lengths = pd.read_csv(lengths_path, sep="\t", index_col="id")["eff_length"]
    vocabulary = default_vocabulary()
    prepared = prepare(tcga_counts, vocabulary, orientation="genes_by_samples", lengths=lengths)
    counts = tcga_counts.to_numpy(np.float64).T
    gene_lengths = lengths.reindex(tcga_counts.index).fillna(1000.0).to_numpy()
    rates = counts / (gene_lengths / 1000)
    tpm = pd.DataFrame(rates / rates.sum(axis=1, keepdims=True) * 1e6, columns=tcga_counts.index)
    common = [g for g in vocabulary["ensembl_id"] if g in tpm.columns]
    positions = pd.Index(prepared.gene_ids).get_indexer(common)
    np.testing.assert_allclose(prepared.values[:, positions], np.log1p(tpm[common].to_numpy()), rtol=1e-5, atol=1e-6)
    assert prepared.report.length_sources["user"] >= 56_000


def test_tcga_versioned_ids_report(tcga_counts, prepared_default):
    versioned = tcga_counts.set_axis([f"{g}.{i % 9 + 1}" for i, g in enumerate(tcga_counts.index)], axis=0)
    prepared = prepare(versioned, default_vocabulary(), orientation="genes_by_samples")
    report, reference = prepared.report, prepared_default.report
    assert report.id_types == {"ensembl_versioned": 56_537}
    assert (report.n_matched, report.n_missing, report.n_collapsed) == (reference.n_matched, reference.n_missing, 0)
    np.testing.assert_array_equal(prepared.values, prepared_default.values)


def test_tcga_symbol_table_report(tcga_counts, tcga_annotation, prepared_default):
    symbols = tcga_annotation["symbol"].reindex(tcga_counts.index)
    table = tcga_counts[symbols.notna().to_numpy()].set_axis(symbols.dropna().to_numpy(), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few symbols repeat: merged with a warning
        prepared = prepare(table, default_vocabulary(), orientation="genes_by_samples")
    report = prepared.report
    assert report.n_input_genes == len(table)
    assert report.id_types.get("symbol", 0) + report.id_types.get("entrez", 0) >= len(table) - 50
    assert report.n_vocabulary - report.n_missing >= 18_500
    assert report.n_matched + report.n_unmatched == len(table)
    repeated = int(table.index.duplicated(keep=False).sum() - table.index[table.index.duplicated()].nunique())
    assert report.n_collapsed >= 1 and report.n_collapsed <= repeated + 200
    # genes that map one-to-one agree with the Ensembl-keyed result up to the TPM denominator
    position = prepared.gene_ids.index("ENSG00000141510")  # TP53
    ratio = np.expm1(prepared.values[:, position]) / np.expm1(prepared_default.values[:, position])
    assert np.all(np.abs(ratio - 1) < 0.1)


def test_tcga_symbol_entrez_table_report(tcga_counts, tcga_annotation, prepared_default):
    annotation = tcga_annotation.reindex(tcga_counts.index)
    keep = annotation["entrez"].notna().to_numpy()
    labels = [f"{s if isinstance(s, str) else '?'}|{int(float(z))}" for s, z in
              zip(annotation["symbol"][keep], annotation["entrez"][keep])]
    table = tcga_counts[keep].set_axis(labels, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare(table, default_vocabulary(), orientation="genes_by_samples")
    report = prepared.report
    assert report.id_types == {"symbol|entrez": len(table)}
    assert report.n_vocabulary - report.n_missing >= 18_500
    assert report.match_routes.get("entrez", 0) >= 18_000
    assert report.n_matched + report.n_unmatched == len(table)


def test_tcga_file_path_chunked_equals_in_memory(tmp_path, tcga_counts, prepared_default):
    path = tmp_path / "acc.tsv.gz"
    tcga_counts.to_csv(path, sep="\t")
    prepared = prepare(path, default_vocabulary(), orientation="genes_by_samples", chunk_samples=4)
    assert prepared.sample_ids == prepared_default.sample_ids
    np.testing.assert_array_equal(prepared.values, prepared_default.values)


def test_tcga_wrong_orientation_is_named(tcga_counts):
    with pytest.raises(ValueError, match=r"genes are on the other axis.*orientation='genes_by_samples'"):
        prepare(tcga_counts, default_vocabulary())  # genes x samples, declared samples x genes
