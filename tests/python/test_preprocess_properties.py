"""Invariants of prepare() / transform_aligned, checked by hypothesis on random inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bulkformer.preprocess import prepare
from bulkformer.preprocess.normalize import MASK_VALUE, transform_aligned

N_VOCAB = 12
VOCABULARY = pd.DataFrame({"ensembl_id": [f"ENSG9{i:010d}" for i in range(N_VOCAB)],
                           "symbol": [f"SYNTH{i}" for i in range(N_VOCAB)],
                           "length": pd.array([500 + 250 * i for i in range(N_VOCAB)], dtype="Int64")})
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def count_tables(draw, min_genes=6):
    n_samples = draw(st.integers(1, 5))
    n_genes = draw(st.integers(min_genes, N_VOCAB))
    genes = draw(st.permutations(list(VOCABULARY["ensembl_id"])))[:n_genes]
    values = draw(arrays(np.int64, (n_samples, n_genes), elements=st.integers(0, 10**6)))
    values[:, 0] += 1  # no all-zero sample (that is an error, tested elsewhere)
    return pd.DataFrame(values, index=[f"s{i}" for i in range(n_samples)], columns=genes)


def _prepare(table, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plausibility heuristics on random numbers
        return prepare(table, VOCABULARY, min_matched_fraction=0, **kwargs)


@SETTINGS
@given(count_tables())
def test_output_domain_and_mask(table):
    prepared = _prepare(table)
    values = prepared.values
    assert values.dtype == np.float32 and values.shape == (len(table), N_VOCAB)
    assert np.isfinite(values).all()
    assert (values[:, prepared.measured] >= 0).all()
    assert (values[:, prepared.measured] <= np.log1p(1e6) + 1e-4).all()
    assert (values[:, ~prepared.measured] == MASK_VALUE).all()
    assert prepared.measured.sum() == table.shape[1]
    assert prepared.mask_prob == (N_VOCAB - table.shape[1]) / N_VOCAB == prepared.report.mask_prob


@SETTINGS
@given(count_tables(min_genes=N_VOCAB))
def test_full_vocabulary_tpm_sums_to_a_million(table):
    tpm = np.expm1(_prepare(table).values.astype(np.float64))
    np.testing.assert_allclose(tpm.sum(axis=1), 1e6, rtol=1e-5)


@SETTINGS
@given(count_tables(), st.randoms(use_true_random=False))
def test_gene_order_does_not_matter(table, random):
    columns = list(table.columns)
    random.shuffle(columns)
    np.testing.assert_array_equal(_prepare(table[columns]).values, _prepare(table).values)


@SETTINGS
@given(count_tables(), st.integers(2, 1000))
def test_library_size_does_not_matter(table, factor):
    np.testing.assert_allclose(_prepare(table * factor).values, _prepare(table).values, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(count_tables(), st.data())
def test_splitting_a_gene_into_duplicates_sums_back(table, data):
    """A gene's counts split over two columns with the same ID give the same result."""
    column = data.draw(st.sampled_from(list(table.columns)))
    share = data.draw(st.integers(0, 10))
    first = table[column] * share // 10
    split = table.drop(columns=column).assign(**{column: first})
    split = pd.concat([split, (table[column] - first).rename(column)], axis=1)
    prepared = _prepare(split)
    assert prepared.report.n_collapsed == 1
    np.testing.assert_allclose(prepared.values, _prepare(table).values, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(count_tables())
def test_logtpm_round_trip(table):
    prepared = _prepare(table)
    measured = [g for g, m in zip(prepared.gene_ids, prepared.measured) if m]
    logs = prepared.to_frame()[measured]
    again = _prepare(logs, input="logtpm")
    np.testing.assert_array_equal(again.values, prepared.values)
    tpm = np.expm1(logs.astype(np.float64))
    np.testing.assert_allclose(_prepare(tpm, input="tpm").values, prepared.values, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 30), st.integers(1, 10), st.sampled_from(["counts", "tpm", "logtpm"]),
       st.sampled_from([np.int32, np.int64, np.float32, np.float64]), st.booleans(), st.booleans(), st.integers(0, 2**31))
def test_native_and_numpy_agree(n_samples, n_genes, n_vocab, input, dtype, transposed, per_sample, seed):
    from bulkformer.preprocess import native_available

    if not native_available():
        return
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 5000, size=(n_samples, n_genes)).astype(dtype)
    data[:, 0] += 1
    if input == "logtpm":
        data = np.log1p(data).astype(dtype) if dtype in (np.float32, np.float64) else data
    if transposed:
        data = np.asfortranarray(data)
    index = rng.integers(-1, n_vocab, size=n_genes)
    lengths = rng.uniform(100, 10000, size=(n_samples, n_genes) if per_sample else n_genes)
    native = transform_aligned(data, index, n_vocab, input=input, lengths_bp=lengths, backend="native", n_threads=2)
    reference = transform_aligned(data, index, n_vocab, input=input, lengths_bp=lengths, backend="numpy")
    np.testing.assert_allclose(native, reference, rtol=1e-6, atol=0)
