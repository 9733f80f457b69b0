"""One test per bad input: each error must name the problem (and where)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bulkformer.annotation import default_vocabulary
from bulkformer.errors import InputError
from bulkformer.preprocess import prepare

VOCABULARY = default_vocabulary().iloc[:40].reset_index(drop=True)
GENES = list(VOCABULARY["ensembl_id"])


def _counts(n=4, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.integers(1, 500, size=(n, len(GENES))).astype(float),
                        index=[f"sample{i}" for i in range(n)], columns=GENES)


def test_nan_names_sample_and_gene():
    counts = _counts()
    counts.iloc[2, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*sample2/" + GENES[5] + ".*Fill"):
        prepare(counts, VOCABULARY)


def test_inf():
    counts = _counts()
    counts.iloc[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"infinite values.*sample1/" + GENES[0]):
        prepare(counts, VOCABULARY)


def test_negative():
    counts = _counts()
    counts.iloc[3, 7] = -2
    with pytest.raises(ValueError, match=r"negative values.*sample3/" + GENES[7] + ".*input='counts'"):
        prepare(counts, VOCABULARY)
    with pytest.raises(ValueError, match="negative values"):
        prepare(np.log1p(_counts()) - 10, VOCABULARY, input="logtpm")


def test_non_numeric_column_names_it_and_suggests_index():
    counts = _counts().T.reset_index().rename(columns={"index": "gene_id"})
    with pytest.raises(ValueError, match=r"non-numeric columns: 'gene_id'.*set_index\('gene_id'\)"):
        prepare(counts, VOCABULARY, orientation="genes_by_samples")
    with pytest.raises(ValueError, match="non-numeric array"):
        prepare(np.array([["a", "b"]]), VOCABULARY, genes=GENES[:2])


def test_empty():
    with pytest.raises(ValueError, match=r"empty input: 0 samples x 40 genes"):
        prepare(_counts().iloc[:0], VOCABULARY)
    with pytest.raises(ValueError, match=r"empty input: 4 samples x 0 genes"):
        prepare(_counts().iloc[:, :0], VOCABULARY)


def test_duplicated_sample_names():
    counts = _counts().set_axis(["a", "b", "a", "c"], axis=0)
    with pytest.raises(ValueError, match=r"duplicated sample names: 'a'.*unique"):
        prepare(counts, VOCABULARY)


def test_duplicated_sample_names_advice_fits_either_orientation():
    # from R (and with orientation='genes_by_samples') samples are columns: "drop the repeated rows" misled
    counts = _counts().set_axis(["a", "b", "a", "c"], axis=0).T
    with pytest.raises(ValueError, match=r"duplicated sample names: 'a'") as info:
        prepare(counts, VOCABULARY, orientation="genes_by_samples")
    assert "rows" not in str(info.value) and "drop the repeated samples" in str(info.value)


def test_duplicated_sample_names_across_chunks():
    counts = _counts().set_axis(["a", "b", "c", "a"], axis=0)
    with pytest.raises(ValueError, match=r"duplicated sample names: 'a'"):
        prepare(counts, VOCABULARY, chunk_samples=2)


def test_all_zero_samples_are_named():
    counts = _counts()
    counts.iloc[1] = 0
    with pytest.raises(ValueError, match=r"all-zero samples: 'sample1'.*Drop these samples"):
        prepare(counts, VOCABULARY)


def test_too_few_matched_genes_is_configurable():
    counts = _counts().iloc[:, :10]
    with pytest.raises(ValueError, match=r"too few vocabulary genes matched: 10 of 40 \(25.0%; min_matched_fraction=0.5\)"
                                         r"\. All 10 input genes matched, but they are too few"):
        prepare(counts, VOCABULARY)
    assert prepare(counts, VOCABULARY, min_matched_fraction=0.2).report.n_missing == 30


def test_unrecognised_ids_explain_options():
    counts = _counts().set_axis([f"gene{i}" for i in range(40)], axis=1)
    with pytest.raises(ValueError, match=r"too few vocabulary genes matched: 0 of 40.*gene0.*HGNC symbols"):
        prepare(counts, VOCABULARY)
    with pytest.raises(ValueError, match=r"too few vocabulary genes matched: 0 of 40"):
        prepare(counts, VOCABULARY, min_matched_fraction=0)  # nothing matched is never useful


def test_genes_on_the_wrong_axis():
    counts = _counts().T  # genes are rows but orientation says samples are
    with pytest.raises(ValueError, match=r"genes are on the other axis.*orientation='genes_by_samples'"):
        prepare(counts, VOCABULARY)
    with pytest.raises(ValueError, match=r"genes= has 40 IDs but the matrix has 4 genes.*orientation='genes_by_samples'"):
        prepare(_counts().to_numpy().T, VOCABULARY, genes=GENES)


def test_non_human_ids():
    counts = _counts().set_axis([f"ENSMUSG{i:011d}" for i in range(40)], axis=1)
    with pytest.raises(ValueError, match=r"non-human gene IDs.*mouse.*ENSMUSG00000000000.*orthologues"):
        prepare(counts, VOCABULARY)


def test_transcript_ids():
    counts = _counts().set_axis([f"ENST{i:011d}.1" for i in range(40)], axis=1)
    with pytest.raises(ValueError, match=r"transcript IDs.*tximport"):
        prepare(counts, VOCABULARY)


def _warnings_of(counts, **kwargs) -> tuple[list[str], object]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare(counts, VOCABULARY, **kwargs)
    return [str(w.message) for w in caught], prepared


def test_lengths_named_unlike_the_data_are_an_error_and_partial_lengths_warn():
    counts = _counts()
    symbols = list(VOCABULARY["symbol"])
    with pytest.raises(ValueError, match=r"none of the 40 genes in lengths= is a gene of the data.*'TSPAN6'"):
        prepare(counts, VOCABULARY, lengths=pd.Series(500.0, index=symbols))
    messages, prepared = _warnings_of(counts, lengths=pd.Series(500.0, index=GENES[:30]))
    assert prepared.report.length_sources == {"user": 30, "vocabulary": 10}
    assert any("10 of the 40 matched genes have no length in lengths=" in m for m in messages)


def test_per_sample_lengths_are_reported_as_such():
    counts = _counts()
    lengths = pd.DataFrame(700.0, index=counts.index, columns=counts.columns)
    assert prepare(counts, VOCABULARY, lengths=lengths).report.length_sources == {"per_sample": 40}


def test_unnamed_and_spreadsheet_mangled_genes_warn():
    counts = _counts().set_axis(GENES[:37] + ["", "NA", "1-Mar"], axis=1)
    messages, prepared = _warnings_of(counts)
    assert prepared.report.n_unmatched == 3
    assert any(m.startswith("2 input genes have no ID") for m in messages)
    assert any("look like dates a spreadsheet made of gene symbols (e.g. 1-Mar" in m for m in messages)


def test_mouse_style_symbols_warn_but_human_lowercase_does_not():
    symbols = list(VOCABULARY["symbol"])
    mouse, _ = _warnings_of(_counts().set_axis([s[0] + s[1:].lower() for s in symbols], axis=1))
    assert any("written the mouse/rat way (e.g. Tspan6" in m for m in mouse)
    lower, prepared = _warnings_of(_counts().set_axis([s.lower() for s in symbols], axis=1))
    assert prepared.report.n_matched == 40 and not lower


def test_invalid_lengths():
    lengths = pd.Series(1000.0, index=GENES)
    lengths.iloc[3] = 0
    with pytest.raises(ValueError, match=r"invalid gene lengths: 1 genes.*" + GENES[3]):
        prepare(_counts(), VOCABULARY, lengths=lengths)
    per_sample = np.full(_counts().shape, 1500.0)
    per_sample[2, 4] = np.nan
    with pytest.raises(ValueError, match=r"invalid per-sample lengths.*sample2/" + GENES[4]):
        prepare(_counts(), VOCABULARY, lengths=per_sample)
    with pytest.raises(ValueError, match=r"Series indexed by gene ID"):
        prepare(_counts(), VOCABULARY, lengths=np.ones(40))
    # text that is not a number was coerced to NaN and the gene quietly took the vocabulary's
    # length (the command line's lengths reader refused it: the two now agree)
    text = pd.Series(["1000"] * len(GENES), index=GENES, dtype=object)
    text.iloc[2] = "1,234"
    with pytest.raises(ValueError, match=r"lengths=: 1 gene lengths are not numbers \(e.g. \['1,234'\]\)"):
        prepare(_counts(), VOCABULARY, lengths=text)


def test_zero_per_sample_length_where_count_is_zero_is_harmless():
    counts = _counts()
    counts.iloc[0, 0] = 0
    per_sample = np.full(counts.shape, 1500.0)
    per_sample[0, 0] = 0.0  # tximport gives 0 for genes without reads
    prepared = prepare(counts, VOCABULARY, lengths=per_sample)
    assert np.isfinite(prepared.values).all() and prepared.values[0, 0] == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="input='fpkm'"):
        prepare(_counts(), VOCABULARY, input="fpkm")
    with pytest.raises(ValueError, match="orientation='rows'"):
        prepare(_counts(), VOCABULARY, orientation="rows")
    with pytest.raises(ValueError, match="needs an 'ensembl_id' column"):
        prepare(_counts(), pd.DataFrame({"gene": GENES}))
    with pytest.raises(ValueError, match="NumPy matrix carries no gene IDs"):
        prepare(_counts().to_numpy(), VOCABULARY)
    with pytest.raises(FileNotFoundError):
        prepare("/nonexistent/counts.csv", VOCABULARY)
    with pytest.raises(ValueError, match="unsupported file type"):
        prepare("counts.xlsx", VOCABULARY)


def test_logged_values_declared_as_counts_warn():
    logs = np.log1p(_counts())
    with pytest.warns(UserWarning, match="look already log-transformed.*input='logtpm'"):
        prepared = prepare(logs, VOCABULARY, input="counts")
    assert prepared.report.warnings and "log-transformed" in prepared.report.warnings[0]


def test_counts_declared_as_logs_are_refused():
    """Issue 31: log1p TPM cannot exceed log1p(1e6); counts declared as logtpm only warned
    and were still written."""
    with pytest.raises(InputError, match=r"above log1p\(1e6\).*input='logtpm'.*pass input='counts'"):
        prepare(_counts() * 100, VOCABULARY, input="logtpm")


def test_counts_declared_as_tpm_warn():
    with pytest.warns(UserWarning, match="look like raw counts"):
        prepare(_counts() * 10, VOCABULARY, input="tpm")


def test_plausible_inputs_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare(_counts(), VOCABULARY)
        prepare(np.log1p(_counts() * 3.3), VOCABULARY, input="logtpm")


def test_already_prepared_input_is_recognised():
    prepared = prepare(_counts().iloc[:, :30], VOCABULARY, min_matched_fraction=0.5)
    with pytest.raises(ValueError, match=r"exactly -10 \(the mask token.*already prepared"):
        prepare(prepared.to_frame(), VOCABULARY, input="logtpm")
