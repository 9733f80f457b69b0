"""Imputation evaluation: masking protocol, metrics against known answers, baselines, model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bulkformer
from bulkformer.tasks import imputation


@pytest.fixture(scope="module")
def cohort():
    return bulkformer.simulate_cohort(n_samples=80, n_genes=200, seed=2)


def test_hides_fifteen_percent_of_observed_genes_per_sample(cohort):
    observed = cohort.observed_log_tpm()
    hidden = imputation.hide_entries(observed, 0.15, np.random.default_rng(0))
    visible = observed.notna().to_numpy()
    assert not (hidden & ~visible).any()
    np.testing.assert_array_equal(hidden.sum(axis=1), np.round(0.15 * visible.sum(axis=1)).astype(int))


def test_metrics_against_known_answers(cohort):
    observed = cohort.observed_log_tpm()

    def oracle(masked: pd.DataFrame) -> pd.DataFrame:
        return observed.where(masked.isna(), masked).fillna(0.0)

    def shifted(masked: pd.DataFrame) -> pd.DataFrame:
        return oracle(masked) + 0.5

    result = imputation.evaluate(observed, imputers={"oracle": oracle, "shifted": shifted}, baselines=("gene_mean",))
    assert result.metric("pearson", "oracle") == pytest.approx(1.0)
    assert result.metric("mae", "oracle") == pytest.approx(0.0, abs=1e-12)
    assert result.metric("mae", "shifted") == pytest.approx(0.5)
    assert result.metric("spearman", "shifted") == pytest.approx(1.0)
    # gene_mean: each hidden entry is the mean of the gene's visible values (independent check).
    pred = result.predictions.query("features == 'gene_mean'")
    rng = np.random.default_rng(0)
    hidden = imputation.hide_entries(observed, 0.15, rng)
    visible_mean = observed.mask(hidden).mean(axis=0)
    np.testing.assert_allclose(pred["pred"].to_numpy(), visible_mean.loc[pred["gene"]].to_numpy(), rtol=1e-10)
    true, est = pred["true"].to_numpy(), pred["pred"].to_numpy()
    assert result.metric("pearson", "gene_mean") == pytest.approx(stats.pearsonr(true, est)[0])
    deciles = result.details["by_decile"]
    assert sorted(deciles["decile"].unique()) == list(range(1, 11))
    assert (deciles.groupby("features")["n_entries"].sum() == result.metrics["n_hidden_per_repeat"].iloc[0]).all()


def test_knn_beats_gene_mean_on_co_expressed_data(cohort):
    """Module structure makes neighbours informative: KNN must beat the gene mean."""
    result = imputation.evaluate(cohort.observed_log_tpm(), knn_neighbors=5, n_repeats=2)
    assert result.metric("pearson", "knn") > result.metric("pearson", "gene_mean") + 0.05
    assert result.metric("mae", "knn") < result.metric("mae", "gene_mean")
    assert len(result.per_fold) == 4


def test_model_imputer_runs_through_the_same_protocol(tmp_path):
    bundle = bulkformer.tiny_bundle(n_genes=60, seed=0)
    cohort = bulkformer.simulate_cohort(n_samples=12, vocabulary=bundle, n_genes=60, seed=0)
    observed = cohort.observed_log_tpm()
    result = imputation.evaluate(observed, model=bundle, baselines=("gene_mean",), batch_size=5)
    assert list(result.metrics["features"]) == ["bulkformer", "gene_mean"]
    assert np.isfinite(result.metrics[["pearson", "spearman", "mae"]].to_numpy()).all()
    # The imputer's output equals a direct forward pass with hidden entries at -10.
    import torch

    masked = observed.iloc[:3].copy()
    masked.iloc[0, :5] = np.nan
    out = imputation.model_imputer(bundle)(masked)
    x = torch.tensor(masked.fillna(-10.0).to_numpy(np.float32))
    lacking = float(np.mean(masked.isna().all(axis=0)))
    with torch.no_grad():
        expected = bundle.model(x, mask_prob=lacking).expr.numpy()
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-5, atol=1e-5)
    result.plot(tmp_path / "imputation.png")


def test_saved_predictions_pair_up_across_methods(cohort):
    """A subsample of the hidden entries is saved: the same entries for every method, so a
    per-entry comparison (paired test, scatter of method against method) is possible."""
    result = imputation.evaluate(cohort.observed_log_tpm(), max_predictions=200)
    pred = result.predictions
    entries = {name: list(zip(part["sample"], part["gene"])) for name, part in pred.groupby("features")}
    assert len(entries["knn"]) == 200
    assert entries["knn"] == entries["gene_mean"]
    assert (pred.query("features == 'knn'")["true"].to_numpy() == pred.query("features == 'gene_mean'")["true"].to_numpy()).all()


def test_bad_input(cohort):
    observed = cohort.observed_log_tpm()
    empty = observed.copy()
    empty.iloc[3] = np.nan
    with pytest.raises(ValueError, match=rf"1 samples have no observed value.*{empty.index[3]}.*drop them"):
        imputation.evaluate(empty)
    with pytest.raises(ValueError, match="negative"):
        imputation.evaluate(observed.fillna(-10.0))
    with pytest.raises(ValueError, match="mask_fraction"):
        imputation.evaluate(observed, mask_fraction=1.5)
    with pytest.raises(ValueError, match="unknown baseline"):
        imputation.evaluate(observed, baselines=("median",))


def test_bad_settings_fail_before_any_imputation(cohort):
    observed = cohort.observed_log_tpm()
    with pytest.raises(ValueError, match="n_repeats=0: must be a whole number >= 1"):
        imputation.evaluate(observed, n_repeats=0)
    with pytest.raises(ValueError, match="n_deciles=0"):
        imputation.evaluate(observed, n_deciles=0)
