"""Fine-tuning heads on the encoder: which parameters move in each mode, that the head
learns a simulated label with known signal, and that the saved model predicts the same."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bulkformer
from bulkformer.training import finetune, load_finetuned


@pytest.fixture(scope="module")
def cohort():
    return bulkformer.simulate_cohort(n_samples=120, n_genes=150, seed=2, missing_fraction=0.0)


@pytest.fixture(scope="module")
def bundle():
    return bulkformer.tiny_bundle(n_genes=150, seed=0)


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("mode", ["frozen", "partial", "full"])
def test_modes_train_the_right_parameters(cohort, bundle, mode):
    fresh = bulkformer.tiny_bundle(n_genes=150, seed=0)
    before = _snapshot(fresh.model)
    result = finetune(cohort.counts, cohort.obs["tissue"], fresh, mode=mode, lengths=cohort.lengths, epochs=2,
                      progress=False)
    after = _snapshot(result.model.encoder)
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    if mode == "frozen":
        assert moved == set()
    elif mode == "partial":
        assert moved and all(name.startswith(("gb_formers.0.f.0.", "layernorm.")) for name in moved)
        assert "gene_emb_onehot_layer.weight" not in moved
    else:
        assert {"gene_emb_onehot_layer.weight", "global_expr_proj.0.weight", "head.1.weight"} - moved == {"head.1.weight"}


def test_classification_learns_tissue_and_round_trips(cohort, bundle, tmp_path):
    result = finetune(cohort.counts, cohort.obs["tissue"], bundle, mode="frozen", lengths=cohort.lengths, epochs=40,
                      head_lr=3e-3, out=tmp_path / "ft", progress=False)
    assert result.metrics["accuracy"] > 0.5  # 4 balanced tissues: chance 0.25
    loaded = load_finetuned(tmp_path / "ft")
    a = result.model.predict(cohort.counts.iloc[:5], lengths=cohort.lengths)
    b = loaded.predict(cohort.counts.iloc[:5], lengths=cohort.lengths)
    assert list(a.columns) == sorted(cohort.obs["tissue"].astype(str).unique())
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-5)


def test_regression_and_label_errors(cohort, bundle):
    result = finetune(cohort.counts, cohort.drug_response["drug_1"], bundle, task="regression", mode="frozen",
                      lengths=cohort.lengths, epochs=3, progress=False)
    assert set(result.metrics) == {"loss", "pearson_r", "mse"}
    assert len(result.history) == 3
    with pytest.raises(ValueError, match="no label"):
        finetune(cohort.counts, cohort.obs["tissue"].iloc[:50], bundle, lengths=cohort.lengths, progress=False)
    with pytest.raises(ValueError, match="mode"):
        finetune(cohort.counts, cohort.obs["tissue"], bundle, mode="half", progress=False)
