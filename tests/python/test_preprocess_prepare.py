"""prepare(): identifiers, normalisation and the mapping report, against hand-computed numbers."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bulkformer
from bulkformer.annotation import default_vocabulary
from bulkformer.preprocess import MASK_VALUE, prepare

VOCABULARY = default_vocabulary()
BY_SYMBOL = VOCABULARY.set_index("symbol")
GENES = ["TP53", "GAPDH", "EGFR", "ACTB", "MYC", "KRAS", "BRCA1", "CD4"]


def _vocabulary_subset(symbols=GENES) -> pd.DataFrame:
    return VOCABULARY[VOCABULARY["symbol"].isin(symbols)].reset_index(drop=True)


def _counts(columns, n=3, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.integers(1, 1000, size=(n, len(columns))), index=[f"s{i}" for i in range(n)],
                        columns=columns)


def _expected_log1p_tpm(counts: np.ndarray, lengths_bp: np.ndarray) -> np.ndarray:
    rates = counts / (lengths_bp / 1000.0)
    return np.log1p(rates / rates.sum(axis=1, keepdims=True) * 1e6)


def test_exported_from_package():
    assert bulkformer.prepare is prepare


def test_subpackages_are_reachable_after_a_bare_import():
    # the README's bulkformer.preprocess.map_genes / bulkformer.datasets.tiny_bundle; a fresh
    # interpreter, since this session has imported the subpackages already
    code = ("import bulkformer\n"
            "assert callable(bulkformer.preprocess.map_genes) and callable(bulkformer.datasets.tiny_bundle)\n"
            "assert not hasattr(bulkformer, 'no_such_module') and not hasattr(bulkformer, '_private')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_counts_by_ensembl_match_reference_formula():
    vocabulary = _vocabulary_subset()
    counts = _counts(list(vocabulary["ensembl_id"]))
    prepared = prepare(counts, vocabulary)
    expected = _expected_log1p_tpm(counts.to_numpy(float), vocabulary["length"].to_numpy(float))
    np.testing.assert_allclose(prepared.values, expected, rtol=1e-6)
    assert prepared.values.dtype == np.float32
    assert prepared.gene_ids == list(vocabulary["ensembl_id"])
    assert prepared.sample_ids == ["s0", "s1", "s2"]
    assert prepared.measured.all() and prepared.mask_prob == 0.0


def test_missing_vocabulary_genes_are_minus_ten_and_counted():
    vocabulary = _vocabulary_subset()
    present = list(vocabulary["ensembl_id"])[:6]
    prepared = prepare(_counts(present), vocabulary, min_matched_fraction=0.5)
    assert (prepared.values[:, 6:] == MASK_VALUE).all()
    assert prepared.measured.tolist() == [True] * 6 + [False] * 2
    assert prepared.mask_prob == pytest.approx(2 / 8)
    assert prepared.report.n_missing == 2 and prepared.report.mask_prob == pytest.approx(0.25)


def test_symbols_versioned_and_symbol_entrez_tables_give_the_same_values_and_reports():
    vocabulary = _vocabulary_subset()
    ensembl = list(vocabulary["ensembl_id"])
    symbols = list(vocabulary["symbol"])
    entrez = {"TP53": "7157", "GAPDH": "2597", "EGFR": "1956", "ACTB": "60", "MYC": "4609", "KRAS": "3845",
              "BRCA1": "672", "CD4": "920"}
    base = _counts(ensembl)
    tables = {
        "symbol": base.set_axis(symbols, axis=1),
        "ensembl_versioned": base.set_axis([f"{e}.{i + 3}" for i, e in enumerate(ensembl)], axis=1),
        "symbol|entrez": base.set_axis([f"{s}|{entrez[s]}" for s in symbols], axis=1),
        "entrez": base.set_axis([entrez[s] for s in symbols], axis=1),
    }
    reference = prepare(base, vocabulary).values
    for kind, table in tables.items():
        # one unknown gene on top: it counts in the TPM denominator but is unmatched
        table = table.assign(**{"NOT_A_GENE_XYZ": 5})
        prepared = prepare(table, vocabulary)
        report = prepared.report
        assert report.n_input_genes == 9 and report.n_matched == 8 and report.n_unmatched == 1, kind
        assert report.unmatched_examples == ["NOT_A_GENE_XYZ"], kind
        assert report.id_types[kind] == (9 if kind == "symbol" else 8) and report.n_missing == 0 and report.n_collapsed == 0, kind
        with_extra = _expected_log1p_tpm(
            table.to_numpy(float), np.r_[vocabulary["length"].to_numpy(float), 1000.0])[:, :8]
        np.testing.assert_allclose(prepared.values, with_extra, rtol=1e-6, err_msg=kind)
        assert not np.allclose(prepared.values, reference)  # the extra gene changed the denominator


def test_aliases_previous_symbols_and_case():
    vocabulary = _vocabulary_subset()
    table = _counts(["P53", "gapdh", "ERBB1", "ACTB", "MYC", "KRAS", "BRCA1", "CD4"])
    report = prepare(table, vocabulary).report
    assert report.n_matched == 8
    assert report.match_routes == {"alias": 2, "symbol_case": 1, "symbol": 5}


def test_collisions_are_summed_for_counts_and_averaged_for_logs_with_a_warning():
    vocabulary = _vocabulary_subset()
    tp53 = BY_SYMBOL.loc["TP53", "ensembl_id"]
    columns = list(vocabulary["ensembl_id"]) + [f"{tp53}.7"]
    counts = _counts(columns)
    with pytest.warns(UserWarning, match="1 input genes were merged.*summed"):
        prepared = prepare(counts, vocabulary)
    assert prepared.report.n_collapsed == 1 and prepared.report.n_matched == 9
    lengths = np.r_[vocabulary["length"].to_numpy(float), BY_SYMBOL.loc["TP53", "length"]]
    rates = counts.to_numpy(float) / (lengths / 1000)
    tpm = rates / rates.sum(axis=1, keepdims=True) * 1e6
    position = columns.index(tp53)
    np.testing.assert_allclose(prepared.values[:, position], np.log1p(tpm[:, position] + tpm[:, -1]), rtol=1e-6)

    logs = pd.DataFrame(np.log1p(counts.to_numpy(float)), index=counts.index, columns=columns)
    with pytest.warns(UserWarning, match="averaged"):
        prepared = prepare(logs, vocabulary, input="logtpm")
    np.testing.assert_allclose(prepared.values[:, position], (logs.iloc[:, position] + logs.iloc[:, -1]) / 2, rtol=1e-6)


def test_tpm_and_logtpm_inputs_are_taken_as_declared():
    vocabulary = _vocabulary_subset()
    tpm = _counts(list(vocabulary["ensembl_id"])).astype(float) * 10.5
    np.testing.assert_allclose(prepare(tpm, vocabulary, input="tpm").values, np.log1p(tpm.to_numpy()), rtol=1e-6)
    logs = np.log1p(tpm)
    np.testing.assert_allclose(prepare(logs, vocabulary, input="logtpm").values, logs.to_numpy(), rtol=1e-6)


def test_user_lengths_override_and_per_sample_lengths():
    vocabulary = _vocabulary_subset()
    ids = list(vocabulary["ensembl_id"])
    counts = _counts(ids)
    user = pd.Series(np.arange(1, 9) * 500.0, index=ids)
    prepared = prepare(counts, vocabulary, lengths=user)
    np.testing.assert_allclose(prepared.values, _expected_log1p_tpm(counts.to_numpy(float), user.to_numpy()), rtol=1e-6)
    assert prepared.report.length_sources == {"user": 8}
    repeated = pd.concat([pd.Series([99.0], index=[ids[0]]), user])  # ids[0] twice: 99 bp, then 500 bp
    with pytest.warns(UserWarning, match=rf"1 genes have more than one length in lengths= \(e\.g\. {ids[0]}\); the last"):
        prepared = prepare(counts, vocabulary, lengths=repeated)
    np.testing.assert_allclose(prepared.values, _expected_log1p_tpm(counts.to_numpy(float), user.to_numpy()), rtol=1e-6)
    for already_normalised in ("tpm", "logtpm"):  # lengths were ignored without a word
        with pytest.raises(ValueError, match=f"lengths= turn counts into TPM, and input='{already_normalised}' values"):
            prepare(counts, vocabulary, input=already_normalised, lengths=user)

    per_sample = np.random.default_rng(1).uniform(300, 5000, size=counts.shape)
    prepared = prepare(counts, vocabulary, lengths=per_sample)
    np.testing.assert_allclose(prepared.values, _expected_log1p_tpm(counts.to_numpy(float), per_sample), rtol=1e-6)
    # genes x samples orientation: data and lengths both transposed
    prepared_t = prepare(counts.T, vocabulary, orientation="genes_by_samples",
                         lengths=pd.DataFrame(per_sample, index=counts.index, columns=ids).T)
    np.testing.assert_allclose(prepared_t.values, prepared.values, rtol=1e-6)
    with pytest.raises(ValueError, match=r"other way round from the data .* e\.g\. lengths\.T"):
        prepare(counts.T, vocabulary, orientation="genes_by_samples",
                lengths=pd.DataFrame(per_sample, index=counts.index, columns=ids))


def test_unknown_length_uses_1000bp():
    vocabulary = _vocabulary_subset().assign(length=pd.array([pd.NA] * 8, dtype="Int64"))
    vocabulary["ensembl_id"] = [f"ENSG9{i:010d}" for i in range(8)]  # not in the annotation either
    counts = _counts(list(vocabulary["ensembl_id"]))
    prepared = prepare(counts, vocabulary)
    np.testing.assert_allclose(prepared.values, _expected_log1p_tpm(counts.to_numpy(float), np.full(8, 1000.0)), rtol=1e-6)
    assert prepared.report.length_sources == {"default_1000bp": 8}


def test_numpy_anndata_and_orientation_inputs_agree():
    anndata = pytest.importorskip("anndata")
    vocabulary = _vocabulary_subset()
    counts = _counts(list(vocabulary["ensembl_id"]))
    reference = prepare(counts, vocabulary).values
    from_numpy = prepare(counts.to_numpy(), vocabulary, genes=counts.columns, samples=counts.index)
    from_t = prepare(counts.to_numpy().T, vocabulary, genes=counts.columns, orientation="genes_by_samples")
    adata = anndata.AnnData(X=np.zeros(counts.shape, dtype=np.float32), obs=pd.DataFrame(index=counts.index),
                            var=pd.DataFrame(index=counts.columns), layers={"counts": counts.to_numpy()})
    from_layer = prepare(adata, vocabulary, layer="counts")
    for prepared in (from_numpy, from_t, from_layer):
        np.testing.assert_allclose(prepared.values, reference, rtol=1e-6)
    assert from_t.sample_ids == ["sample_0", "sample_1", "sample_2"]
    assert from_layer.sample_ids == ["s0", "s1", "s2"]


def test_report_to_dict_is_json_and_summary_is_one_line():
    vocabulary = _vocabulary_subset()
    report = prepare(_counts(list(vocabulary["symbol"]) + ["UNKNOWN1"]), vocabulary).report
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n_matched"] == 8 and data["unmatched_examples"] == ["UNKNOWN1"] and data["mask_prob"] == 0.0
    assert "\n" not in report.summary() and "8 of 9 input genes matched" in report.summary()


def test_bundle_like_vocabulary_and_default():
    class FakeBundle:
        genes = _vocabulary_subset()

    counts = _counts(list(FakeBundle.genes["ensembl_id"]))
    assert prepare(counts, FakeBundle()).values.shape == (3, 8)
    with pytest.raises(ValueError, match="too few vocabulary genes matched"):
        prepare(counts, None)  # 8 of ~19k genes
    assert prepare(counts, None, min_matched_fraction=0).values.shape == (3, len(VOCABULARY))


def test_prepare_chunks_streams_blocks_with_one_report():
    from bulkformer.preprocess import prepare_chunks

    vocabulary = _vocabulary_subset()
    counts = _counts(list(vocabulary["ensembl_id"]), n=7)
    blocks = list(prepare_chunks(counts, vocabulary, chunk_samples=3))
    assert [b.sample_ids for b in blocks] == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]
    np.testing.assert_array_equal(np.concatenate([b.values for b in blocks]), prepare(counts, vocabulary).values)
    assert blocks[-1].report.n_samples == 7 and blocks[0].report is blocks[-1].report


def test_per_gene_lengths_given_as_a_frame_explain_the_series_form():
    vocabulary = _vocabulary_subset()
    ids = list(vocabulary["ensembl_id"])
    with pytest.raises(ValueError, match=r"for one length per gene pass a Series"):
        prepare(_counts(ids), vocabulary, lengths=pd.DataFrame({"length": 1000.0}, index=ids))


def test_map_genes_gives_the_per_gene_detail():
    from bulkformer.preprocess import map_genes

    tp53 = BY_SYMBOL.loc["TP53", "ensembl_id"]
    table = map_genes(["TP53", f"{tp53}.4", "P53", "7157", "NOPE", "ENSG00000002586.18_PAR_Y"], _vocabulary_subset())
    assert table["kind"].tolist() == ["symbol", "ensembl_versioned", "symbol", "entrez", "symbol", "ensembl_par_y"]
    assert table["vocabulary_id"].tolist() == [tp53, tp53, None, tp53, None, None]
    assert table["route"].tolist() == ["symbol", "ensembl", "superseded", "entrez", "unmatched", "unmatched"]
    assert table.loc[0, "length_bp"] == BY_SYMBOL.loc["TP53", "length"] and table.loc[4, "length_bp"] == 1000.0


def test_input_ids_join_the_vocabulary_genes_back_to_the_input_rows():
    """Genes matched through another Ensembl ID, a version or a symbol could not be
    joined back to the input (e.g. to DESeq2 results) by the vocabulary ID."""
    vocabulary = _vocabulary_subset()
    ids = list(vocabulary["ensembl_id"])
    counts = _counts(ids)
    labels = [f"{ids[0]}.5", *ids[1:6], str(vocabulary["symbol"].iloc[6]), ids[1]]  # ids[1] twice: merged
    with pytest.warns(UserWarning, match="merged"):
        prepared = prepare(counts.set_axis(labels, axis=1), vocabulary)
    assert prepared.input_ids == [f"{ids[0]}.5", f"{ids[1]};{ids[1]}", *ids[2:6], str(vocabulary["symbol"].iloc[6]),
                                  None]
    assert list(prepared.measured) == [i is not None for i in prepared.input_ids]
