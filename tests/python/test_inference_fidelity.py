"""The reference fixtures run through impute/embed (not just the module) reproduce the
published implementation's outputs; the optimised forward equals the module path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.inference import FastBulkFormer, embed, impute, read_gene_embeddings, run_imputation
from bulkformer.preprocess import MappingReport, PreparedInput
from tests.conftest import load_reference, reference_config

TOLERANCE = 1e-5
def _features_name(name: str) -> str:
    """v2: the gene-level features; v1: the last block's hidden state (the release
    overwrites it with the final layer norm's output), however many blocks the fixture has."""
    config = reference_config(name)
    return "expected_gene_emb" if config["version"] == "v2" else f"expected_hidden_{config['gb_repeat'] - 1}"


def _fixture_input(name: str, bundle) -> PreparedInput:
    """The fixture's aligned input (it also masks a few single entries, as pretraining does)."""
    x = load_reference(name, "input").numpy()
    measured = (x != -10).any(axis=0)
    report = MappingReport(n_input_genes=int(measured.sum()), n_matched=int(measured.sum()), n_unmatched=0,
                           unmatched_examples=[], n_collapsed=0, n_vocabulary=x.shape[1],
                           n_missing=int((~measured).sum()), mask_prob=0.0, id_types={})
    return PreparedInput(values=x, measured=measured, sample_ids=[f"s{i}" for i in range(len(x))],
                         gene_ids=bundle.gene_ids, report=report,
                         mask_prob=reference_config(name).get("mask_prob") or 0.0)


@pytest.mark.parametrize("name", ["v1_tiny", "v2_tiny"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_imputation_reproduces_the_release(reference_bundles, name, batch_size):
    bundle = bulkformer.load(reference_bundles[name])
    prepared = _fixture_input(name, bundle)
    result = run_imputation(prepared, reference_bundles[name], batch_size=batch_size, progress=False)
    expected = load_reference(name, "expected_expr").numpy()
    assert np.abs(result.predicted - expected).max() <= TOLERANCE
    x = prepared.values
    assert np.array_equal(result.imputed[x != -10], x[x != -10])
    assert np.array_equal(result.imputed[x == -10], result.predicted[x == -10])
    assert np.isnan(result.observed[x == -10]).all()
    # two result-sized matrices held, not four (observed and imputed are made on request)
    held = [k for k, v in vars(result).items() if isinstance(v, np.ndarray) and v.shape == x.shape]
    assert sorted(held) == ["predicted", "values"]
    frame = impute(prepared, bundle, which="all", progress=False)
    assert np.abs(frame.to_numpy() - expected).max() <= TOLERANCE
    missing = impute(prepared, bundle, progress=False)
    assert list(missing.columns) == [g for g, m in zip(bundle.gene_ids, prepared.measured) if not m]
    assert missing.shape == (x.shape[0], int((~prepared.measured).sum())) and "mapping_report" in missing.attrs


@pytest.mark.parametrize("name", ["v1_tiny", "v2_tiny"])
def test_embeddings_reproduce_the_release(reference_bundles, name, tmp_path):
    bundle = bulkformer.load(reference_bundles[name])
    prepared = _fixture_input(name, bundle)
    expected = load_reference(name, _features_name(name)).numpy()
    path = embed(prepared, bundle, level="gene", out=tmp_path / "g.zarr", batch_size=3, progress=False)
    stored = read_gene_embeddings(path)
    assert stored.shape == expected.shape
    assert np.abs(stored.values - expected).max() <= TOLERANCE
    subset = bundle.gene_ids[10:60]
    for how, reduce in (("max", lambda a: a.max(1)), ("mean", lambda a: a.mean(1)),
                        ("median", lambda a: np.median(a, 1)),
                        ("all", lambda a: a.max(1) + a.mean(1) + np.median(a, 1))):
        frame = embed(prepared, bundle, aggregate=how, genes=subset, progress=False)
        assert frame.shape == (expected.shape[0], bundle.config.feature_dim)
        assert np.abs(frame.to_numpy() - reduce(expected[:, 10:60])).max() <= 2 * TOLERANCE, how


def test_prepare_path_matches_the_release_v1(reference_bundles):
    """Through prepare() from a log1p TPM table (v1 has no mask_prob feature)."""
    bundle = bulkformer.load(reference_bundles["v1_tiny"])
    x = load_reference("v1_tiny", "input").numpy()
    rows = [0, 2, 3]  # the samples without extra single-entry masks
    measured = (x[rows] != -10).all(axis=0)
    frame = pd.DataFrame(x[np.ix_(rows, measured)], index=["a", "b", "c"],
                         columns=[g for g, m in zip(bundle.gene_ids, measured) if m])
    out = impute(frame, bundle, which="all", input="logtpm", progress=False)
    expected = load_reference("v1_tiny", "expected_expr").numpy()[rows]
    assert np.abs(out.to_numpy() - expected).max() <= TOLERANCE
    assert out.attrs["mapping_report"]["n_missing"] == int((~measured).sum())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_fast_forward_equals_module_path_across_chunks(version):
    bundle = bulkformer.tiny_bundle(n_genes=120, version=version)
    model = bundle.model.eval()
    torch.manual_seed(0)
    x = torch.rand(3, 120) * 6
    x[:, :15] = -10
    with torch.inference_mode():
        reference = model(x, 0.125)
        for chunk, per_sample in ((7, True), (50, False), (1000, True)):
            out = FastBulkFormer(model, gene_chunk=chunk, per_sample=per_sample)(x, 0.125, feature_index=torch.arange(120))
            assert (out.expr - reference.expr).abs().max() <= TOLERANCE
            assert (out.features - reference.features).abs().max() <= TOLERANCE


def test_fast_forward_v1_bins_falls_back_to_the_module():
    from bulkformer.model import BulkFormer, ModelConfig

    torch.manual_seed(0)
    config = ModelConfig(version="v1", n_genes=50, dim=16, gb_repeat=2, p_repeat=1, full_head=2, bin_head=2, bins=3, gene_table_dim=8)
    model = BulkFormer(config, torch.randint(0, 50, (2, 200)), torch.rand(200)).eval()
    x = torch.rand(2, 50) * 4
    with torch.inference_mode():
        expected = model(x).expr
        got = FastBulkFormer(model, gene_chunk=16)(x).expr
    assert (got - expected).abs().max() <= TOLERANCE


@pytest.mark.parametrize("mistake", ["reversed_graph", "redrawn_features"])
def test_negative_controls_are_caught(reference_bundles, mistake):
    """A reversed graph direction, or random features other than the checkpoint's
    projection matrix, change the output beyond the tolerance: the tests above can fail."""
    from bulkformer.inference import fast

    bundle = bulkformer.load(reference_bundles["v2_tiny"])
    x = load_reference("v2_tiny", "input")
    with torch.inference_mode():
        forward = fast.FastBulkFormer(bundle.model, gene_chunk=64)
        if mistake == "reversed_graph":
            graph = forward.adjacency
            forward.adjacency = graph.transposed()
        else:
            generator = torch.Generator().manual_seed(0)
            for layer in forward.blocks[0]:
                layer.projection_t = torch.randn(layer.projection_t.shape, generator=generator) * 0.5
        out = forward(x, reference_config("v2_tiny")["mask_prob"])
    assert (out.expr - load_reference("v2_tiny", "expected_expr")).abs().max() > 10 * TOLERANCE
