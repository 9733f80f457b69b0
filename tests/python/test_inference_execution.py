"""Execution: device/precision choice, determinism across batch sizes, bf16 opt-in on CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bulkformer
from bulkformer.inference import choose_device, choose_precision, run_imputation


@pytest.fixture(scope="module")
def setup():
    bundle = bulkformer.tiny_bundle(n_genes=64)
    sim = bulkformer.simulate_cohort(n_samples=6, vocabulary=bundle.genes, n_genes=None, seed=4, missing_fraction=0.0)
    return bundle, sim.counts.iloc[:, 6:]


def test_device_and_precision_defaults():
    assert choose_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert choose_device(None).type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            choose_device("cuda")
    with pytest.raises(ValueError, match="'gpu' is not a device: use 'cuda'"):
        choose_device("gpu")  # torch's own message lists ~20 device types
    assert choose_precision(None, torch.device("cpu")) == "fp32"
    assert choose_precision("bfloat16", torch.device("cpu")) == "bf16"
    assert choose_precision("auto", torch.device("cpu")) == "fp32"  # pretrain's spelling of the default
    with pytest.raises(ValueError, match="precision must be"):
        choose_precision("fp8", torch.device("cpu"))


def test_runs_are_deterministic_and_batch_size_only_rounds(setup, tmp_path):
    from bulkformer.inference import embed, read_gene_embeddings

    bundle, counts = setup
    runs = [read_gene_embeddings(embed(counts, bundle, level="gene", out=tmp_path / f"{i}.zarr", batch_size=b,
                                       progress=False)).values for i, b in enumerate((4, 4, 1))]
    assert np.array_equal(runs[0], runs[1])  # same batches: bit-identical
    assert np.abs(runs[0] - runs[2]).max() <= 1e-5


def test_bf16_on_cpu_is_opt_in_and_close(setup):
    bundle, counts = setup
    exact = run_imputation(counts, bundle, progress=False).predicted
    low = run_imputation(counts, bundle, precision="bf16", progress=False).predicted
    assert low.dtype == np.float32 and np.isfinite(low).all()
    assert 0 < np.abs(low - exact).max() < 0.25


def test_bad_arguments(setup):
    bundle, counts = setup
    with pytest.raises(ValueError, match="batch_size"):
        run_imputation(counts, bundle, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="Bundle or the path"):
        run_imputation(counts, 42, progress=False)


def test_batch_size_must_be_a_whole_number(setup):
    bundle, counts = setup
    for bad in (2.5, "4", True):  # were run as batches of 2, 4 and 1
        with pytest.raises(ValueError, match="batch_size=.*whole number >= 1"):
            run_imputation(counts, bundle, batch_size=bad, progress=False)
    with pytest.raises(ValueError, match=r"batch_size='4': must be"):  # shown as batch_size=4, which looked fine
        run_imputation(counts, bundle, batch_size="4", progress=False)
