"""DataSpec (how to read one table) and Runtime (run settings), issue 27 item 1."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bulkformer
from bulkformer import DataSpec, Runtime
from bulkformer.errors import ArgumentError


@pytest.fixture(scope="module")
def setup():
    bundle = bulkformer.tiny_bundle(n_genes=60)
    cohort = bulkformer.simulate_cohort(n_samples=6, vocabulary=bundle, n_genes=None, seed=2)
    return bundle, cohort


def test_of_keeps_a_specs_fields_and_lays_given_ones_over_them():
    frame = pd.DataFrame(np.ones((2, 2)), columns=["TP53", "ACTB"])
    spec = DataSpec(frame, input="tpm", layer="counts")
    assert DataSpec.of(spec) is spec
    assert DataSpec.of(spec, input=None).input == "tpm"  # None: left as it is
    changed = DataSpec.of(spec, orientation="genes_by_samples")
    assert (changed.input, changed.layer, changed.orientation) == ("tpm", "counts", "genes_by_samples")
    assert DataSpec.of(frame).input == "counts"
    with pytest.raises(ArgumentError, match="unknown data-description field 'inputs'"):
        DataSpec.of(frame, inputs="tpm")
    with pytest.raises(ArgumentError, match="already a DataSpec"):
        DataSpec(spec)


def test_fingerprint_follows_settings_and_content_not_identity(tmp_path):
    frame = pd.DataFrame(np.arange(6.0).reshape(2, 3), index=["a", "b"], columns=["TP53", "ACTB", "GAPDH"])
    spec = DataSpec(frame, input="tpm")
    assert spec.fingerprint() == DataSpec(frame.copy(), input="tpm").fingerprint()
    assert spec.fingerprint() != DataSpec(frame, input="counts").fingerprint()
    assert spec.fingerprint() != DataSpec(frame + 1, input="tpm").fingerprint()
    lengths = pd.Series({"TP53": 1000, "ACTB": 2000})
    assert (DataSpec(frame, lengths=lengths).fingerprint()
            == DataSpec(frame, lengths=lengths.astype(float)).fingerprint())  # 1000 and 1000.0 are one length
    path = tmp_path / "counts.csv"
    frame.to_csv(path)
    assert DataSpec(path).fingerprint() == DataSpec(str(path)).fingerprint()


def test_prepare_through_a_spec_equals_prepare_with_keywords(setup):
    bundle, cohort = setup
    by_keywords = bulkformer.prepare(cohort.counts, bundle, lengths=cohort.lengths, min_matched_fraction=0)
    spec = DataSpec(cohort.counts, lengths=cohort.lengths, min_matched_fraction=0)
    for prepared in (spec.prepare(bundle), bulkformer.prepare(spec, bundle)):
        np.testing.assert_array_equal(prepared.values, by_keywords.values)


def test_embed_takes_a_spec_and_runtime_and_gene_names_is_deprecated(setup):
    bundle, cohort = setup
    counts = cohort.counts
    renamed = counts.set_axis([f"g{i}" for i in range(counts.shape[1])], axis=1)
    ids = list(counts.columns)
    quiet = Runtime(device="cpu", batch_size=4, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = bulkformer.embed(counts, bundle, runtime=quiet, lengths=cohort.lengths)
        by_spec = bulkformer.embed(DataSpec(renamed, genes=ids, lengths=cohort.lengths), bundle, runtime=quiet)
        with pytest.warns(DeprecationWarning, match=r"gene_names= is deprecated.*DataSpec\(data, genes=...\)"):
            old = bulkformer.embed(renamed, bundle, gene_names=ids, lengths=cohort.lengths, batch_size=4,
                                   device="cpu", progress=False)
    np.testing.assert_array_equal(by_spec.to_numpy(), expected.to_numpy())
    np.testing.assert_array_equal(old.to_numpy(), expected.to_numpy())
    with pytest.raises(ArgumentError, match="unknown argument 'lenghts'; see the function's help page"):
        bulkformer.embed(counts, bundle, lenghts=cohort.lengths)


def test_runtime_is_one_device_policy():
    from bulkformer.inference import choose_device
    from bulkformer.runtime import choose_device as policy

    assert choose_device is policy
    assert Runtime(device="cpu").torch_device().type == "cpu"
    assert Runtime(device="cpu").torch_precision() == "fp32"
    assert Runtime.of(Runtime(batch_size=4), device="cpu", precision=None) == Runtime(device="cpu", batch_size=4)
    with pytest.raises(ArgumentError, match="runtime must be a bulkformer.Runtime"):
        Runtime.of({"device": "cpu"})
