"""Drug response and gene essentiality on a simulated cohort with known linear truth."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bulkformer
from bulkformer.tasks import drug_response, essentiality, features
from bulkformer.tasks.common import pearson

FAST = dict(n_splits=3, hidden=(64,), alpha=1e-2, max_iter=500)


@pytest.fixture(scope="module")
def cohort():
    return bulkformer.simulate_cohort(n_samples=150, n_genes=300, seed=1)


@pytest.fixture(scope="module")
def complete_logtpm(cohort):
    logtpm = cohort.observed_log_tpm()
    return logtpm.loc[:, logtpm.notna().all()]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", category=ConvergenceWarning)
        yield


def responses_long(cohort) -> pd.DataFrame:
    return (cohort.drug_response.stack().rename("response").reset_index()
            .rename(columns={"sample_id": "cell_line"}))


def test_drug_response_mean_pcc_near_the_ceiling(cohort, complete_logtpm):
    truth = cohort.module_activity @ cohort.drug_weights.T
    # Ceiling: per-drug r between the noiseless response and the observed one.
    ceiling = np.mean([pearson(truth[d], cohort.drug_response[d]) for d in cohort.drug_response])
    result = drug_response.evaluate({"raw_logtpm": complete_logtpm, "truth": cohort.module_activity},
                                    cohort.drug_weights, responses_long(cohort), **FAST)
    assert result.metric("mean_pcc", "truth") > 0.85 * ceiling
    assert result.metric("mean_pcc", "raw_logtpm") > 0.6 * ceiling
    # Cell lines never straddle folds.
    pred = result.predictions
    assert (pred.groupby(["features", "cell_line"])["fold"].nunique() == 1).all()
    assert set(result.details["per_drug_pcc"]["truth"]) == set(cohort.drug_response.columns)


def test_drug_response_shuffled_is_chance(cohort):
    long = responses_long(cohort)
    long["response"] = long.groupby("drug")["response"].transform(lambda v: v.sample(frac=1.0, random_state=0).to_numpy())
    result = drug_response.evaluate(cohort.module_activity, cohort.drug_weights, long, **FAST)
    assert abs(result.metric("mean_pcc")) < 0.2


def test_drug_response_input_errors(cohort):
    long = responses_long(cohort)
    with pytest.raises(ValueError, match="lacks column"):
        drug_response.evaluate(cohort.module_activity, cohort.drug_weights, long.rename(columns={"drug": "compound"}))
    with pytest.raises(ValueError, match="no response row"):
        drug_response.evaluate(cohort.module_activity, cohort.drug_weights.set_axis(["a", "b", "c", "d", "e"]), long)
    with pytest.raises(ValueError, match="cell lines"):
        drug_response.evaluate(cohort.module_activity.iloc[:4], cohort.drug_weights, long, n_splits=10)


def test_essentiality_mean_pcc_near_the_ceiling(cohort, complete_logtpm):
    targets = [g for g in cohort.essentiality.columns if g in complete_logtpm.columns]
    truth = cohort.essentiality_truth.loc[targets]
    activity = cohort.module_activity.to_numpy()[:, truth["module"].clip(lower=0)] * (truth["module"].to_numpy() >= 0)
    expected = truth["base_effect"].to_numpy() + truth["slope"].to_numpy() * activity
    observed = cohort.essentiality[targets].to_numpy()
    ceiling = np.mean([pearson(expected[i], observed[i]) for i in range(len(observed))])
    gene_features = features.gene_logtpm_features(complete_logtpm, targets, n_components=8)
    assert gene_features.index.names == ["cell_line", "gene"]
    assert gene_features.loc[(cohort.sample_ids[0], targets[0]), "expression"] == pytest.approx(
        complete_logtpm.iloc[0][targets[0]])
    result = essentiality.evaluate({"raw_logtpm": gene_features}, cohort.essentiality[targets], **FAST)
    assert result.metric("mean_pcc") > 0.85 * ceiling
    pred = result.predictions
    assert (pred.groupby("cell_line")["fold"].nunique() == 1).all()
    # Shuffling genes within each cell line destroys the signal (same code path).
    rng = np.random.default_rng(0)
    block = cohort.essentiality[targets]
    shuffled = pd.DataFrame([rng.permutation(row) for row in block.to_numpy()], index=block.index, columns=block.columns)
    control = essentiality.evaluate({"raw_logtpm": gene_features}, shuffled, **FAST)
    assert abs(control.metric("mean_pcc")) < 0.2


def test_essentiality_needs_gene_level_index(cohort, complete_logtpm):
    with pytest.raises(ValueError, match="cell_line, gene"):
        essentiality.evaluate(complete_logtpm, cohort.essentiality, n_splits=3)
