"""The native kernel: built, equal to the NumPy path, and replaced by it when absent."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from bulkformer.annotation import default_vocabulary
from bulkformer.preprocess import native_available, prepare
from bulkformer.preprocess import normalize
from bulkformer.preprocess.normalize import transform_aligned


def _inputs(n=64, m=3000, g=900, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(3, 0.05, size=(n, m)).astype(np.int32)
    counts[:, 0] += 1
    index = rng.integers(-1, g, size=m)
    lengths = rng.uniform(200, 9000, size=m)
    return counts, index, lengths, g


def test_native_extension_is_built():
    # CI builds it through scripts/bootstrap.sh (pip install -e .); a silent fallback would hide a broken build
    assert native_available(), "bulkformer.preprocess._native is not importable: rebuild with pip install -e ."


@pytest.mark.skipif(not native_available(), reason="native kernel not built")
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.float32, np.float64])
def test_native_equals_numpy_relative_1e6(dtype):
    counts, index, lengths, g = _inputs()
    data = counts.astype(dtype)
    native = transform_aligned(data, index, g, lengths_bp=lengths, backend="native", n_threads=2)
    reference = transform_aligned(data, index, g, lengths_bp=lengths, backend="numpy")
    relative = np.abs(native - reference) / np.maximum(np.abs(reference), 1e-30)
    assert relative.max() <= 1e-6
    assert (native == -10).sum() == (reference == -10).sum() > 0


@pytest.mark.skipif(not native_available(), reason="native kernel not built")
def test_native_handles_strided_views_and_threads_concurrently():
    counts, index, lengths, g = _inputs()
    reference = transform_aligned(counts, index, g, lengths_bp=lengths, backend="numpy")
    view = np.asfortranarray(counts)[::1]
    np.testing.assert_allclose(transform_aligned(view, index, g, lengths_bp=lengths, backend="native"), reference, rtol=1e-6)
    genes_by_samples = np.ascontiguousarray(counts[:37].T).T  # samples adjacent: the blocked path, 37 = 2 x 16 + 5
    np.testing.assert_allclose(transform_aligned(genes_by_samples, index, g, lengths_bp=lengths, backend="native"),
                               reference[:37], rtol=1e-6)
    every_other = np.repeat(counts, 2, axis=0)[::2]  # row stride of two rows
    np.testing.assert_allclose(transform_aligned(every_other, index, g, lengths_bp=lengths, backend="native"), reference, rtol=1e-6)
    # the GIL is released: several calls from Python threads run side by side and stay correct
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: transform_aligned(counts, index, g, lengths_bp=lengths, backend="native",
                                                            n_threads=1), range(4)))
    for result in results:
        np.testing.assert_allclose(result, reference, rtol=1e-6)


@pytest.mark.skipif(not native_available(), reason="native kernel not built")
def test_native_log1p_is_accurate_over_the_whole_range():
    values = np.r_[0.0, np.geomspace(1e-12, 1e6, 20000)]
    data = values[None, :]
    out = transform_aligned(data, np.arange(values.size), values.size, input="tpm", backend="native")
    np.testing.assert_allclose(out[0], np.log1p(values).astype(np.float32), rtol=1e-6, atol=0)


def test_numpy_fallback_when_extension_is_missing(monkeypatch):
    vocabulary = default_vocabulary().iloc[:50]
    rng = np.random.default_rng(3)
    counts = pd.DataFrame(rng.integers(1, 100, size=(3, 50)), columns=vocabulary["ensembl_id"])
    expected = prepare(counts, vocabulary).values
    monkeypatch.setattr(normalize, "native_module", lambda: None)
    np.testing.assert_allclose(prepare(counts, vocabulary).values, expected, rtol=1e-6)
    with pytest.raises(RuntimeError, match="native kernel is not built"):
        prepare(counts, vocabulary, backend="native")


def test_native_rejects_a_zero_sample():
    if not native_available():
        pytest.skip("native kernel not built")
    counts, index, lengths, g = _inputs(n=3)
    counts[1] = 0
    with pytest.raises(ValueError, match="row 1 has no positive expression"):
        transform_aligned(counts, index, g, lengths_bp=lengths, backend="native")
    with pytest.raises(ValueError, match="row 1 has no positive expression"):
        transform_aligned(np.asfortranarray(counts), index, g, lengths_bp=lengths, backend="native")


@pytest.mark.skipif(not native_available(), reason="native kernel not built")
def test_threads_split_rows_without_changing_results():
    counts, index, lengths, g = _inputs(n=200, m=20_000, g=5_000, seed=5)  # large enough for two threads
    assert normalize._threads_for(counts.shape, 2) == 2
    one = transform_aligned(counts, index, g, lengths_bp=lengths, backend="native", n_threads=1)
    two = transform_aligned(counts, index, g, lengths_bp=lengths, backend="native", n_threads=2)
    np.testing.assert_array_equal(one, two)
    two_blocked = transform_aligned(np.asfortranarray(counts), index, g, lengths_bp=lengths, backend="native", n_threads=2)
    np.testing.assert_array_equal(one, two_blocked)
