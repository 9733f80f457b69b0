"""Classification on a simulated cohort: tissue is recoverable, shuffled labels are not."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bulkformer
from bulkformer.tasks import classification


@pytest.fixture(scope="module")
def cohort():
    return bulkformer.simulate_cohort(n_samples=120, n_genes=300, seed=3)


@pytest.fixture(scope="module")
def feature_sets(cohort):
    logtpm = cohort.observed_log_tpm()
    return {"raw_logtpm": logtpm.loc[:, logtpm.notna().all()], "truth": cohort.module_activity}


def chance_weighted_f1(labels: pd.Series) -> float:
    """Weighted F1 of always predicting the majority class (the no-information level)."""
    share = labels.value_counts(normalize=True)
    return float(share.max() * (2 * share.max() / (1 + share.max())))


def test_tissue_recovered_by_both_heads_and_feature_sets(feature_sets, cohort):
    labels = cohort.obs["tissue"]
    result = classification.evaluate(feature_sets, labels, n_splits=3, n_estimators=40, n_components=16)
    chance = max(chance_weighted_f1(labels), labels.value_counts(normalize=True).max())
    assert set(result.metrics["features"]) == {"raw_logtpm", "truth"}
    assert set(result.metrics["head"]) == {"random_forest", "logistic_regression"}
    # how many columns each feature set had (a set cut short by unmeasured genes shows)
    assert result.metrics.set_index("features")["n_features"].to_dict() == {
        name: frame.shape[1] for name, frame in feature_sets.items()}
    # Tissue programs shift module activities by N(0, 1.5) per module: near-perfectly separable.
    for _, row in result.metrics.iterrows():
        assert row["weighted_f1"] > chance + 0.6 * (1 - chance), row.to_dict()
        assert row["accuracy"] > 0.9
    # Per-fold values are consistent with the summary and the pooled confusion matrix.
    fold = result.per_fold.query("features == 'raw_logtpm' and head == 'random_forest'")
    assert len(fold) == 3
    assert result.metric("accuracy", "raw_logtpm", "random_forest") == pytest.approx(fold["accuracy"].mean())
    matrix = np.array(result.details["confusion_matrices"]["raw_logtpm/random_forest"])
    assert matrix.sum() == len(labels)
    pooled = result.predictions.query("features == 'raw_logtpm' and head == 'random_forest'")
    assert np.trace(matrix) == (pooled["y_true"] == pooled["y_pred"]).sum()
    assert sorted(pooled["sample"]) == sorted(labels.index)  # every sample held out exactly once
    # Held-out class probabilities: one column per class, rows sum to 1, and the forest's
    # predicted class is its most probable one.
    classes = result.details["classes"]
    proba = pooled[[f"p_{c}" for c in classes]].to_numpy()
    assert proba.sum(axis=1) == pytest.approx(np.ones(len(pooled)))
    assert (np.array(classes)[proba.argmax(axis=1)] == pooled["y_pred"].to_numpy()).mean() > 0.95


def test_shuffled_labels_stay_at_chance(feature_sets, cohort):
    labels = cohort.obs["tissue"].sample(frac=1.0, random_state=0)
    labels.index = cohort.obs.index
    result = classification.evaluate(feature_sets["truth"], labels, heads=("logistic_regression",), n_splits=3)
    assert result.metric("accuracy") < labels.value_counts(normalize=True).max() + 0.2


def test_default_is_ten_folds_and_errors_are_clear(feature_sets, cohort):
    labels = cohort.obs["tissue"].astype(str)
    labels.iloc[0] = "singleton"
    with pytest.raises(ValueError, match="smallest class"):
        classification.evaluate(feature_sets["truth"], labels)
    with pytest.raises(ValueError, match="no sample"):
        classification.evaluate(feature_sets["truth"], labels.set_axis([f"x{i}" for i in range(len(labels))]))
    with pytest.raises(ValueError, match="unknown head"):
        classification.evaluate(feature_sets["truth"], cohort.obs["tissue"], heads=("svm",), n_splits=3)
    bad = feature_sets["truth"].copy()
    bad.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        classification.evaluate(bad, cohort.obs["tissue"], n_splits=3)


def test_labels_are_matched_by_sample_id(feature_sets, cohort):
    X, labels = feature_sets["truth"], cohort.obs["tissue"]
    # a default RangeIndex would silently pair labels with rows by position: refused
    with pytest.raises(ValueError, match="matched by sample ID, not by row order"):
        classification.evaluate(X, labels.reset_index(drop=True), n_splits=3)
    # repeated IDs: an error naming them (was an IndexError)
    with pytest.raises(ValueError, match=f"several rows for the same sample: '{labels.index[0]}'"):
        classification.evaluate(X, pd.concat([labels, labels.iloc[:2]]), n_splits=3)
    # shuffled Series: matched by ID, the result is the same as in order
    kw = dict(heads=("logistic_regression",), n_splits=3)
    ordered = classification.evaluate(X, labels, **kw)
    shuffled = classification.evaluate(X, labels.sample(frac=1.0, random_state=1), **kw)
    assert ordered.metric("accuracy") == shuffled.metric("accuracy")


def test_unlabelled_samples_are_left_out_with_a_warning(feature_sets, cohort):
    labels = cohort.obs["tissue"].astype(object)
    labels.iloc[:10] = np.nan
    with pytest.warns(UserWarning, match=f"10 of {len(labels)} samples are left out"):
        result = classification.evaluate(feature_sets["truth"], labels.iloc[5:], heads=("logistic_regression",),
                                         n_splits=3)
    assert result.metric("n_samples") == len(labels) - 10


def test_bad_settings_are_errors(feature_sets, cohort):
    with pytest.raises(ValueError, match="n_components=-5: must be a whole number >= 1"):
        classification.evaluate(feature_sets["truth"], cohort.obs["tissue"], n_splits=3, n_components=-5)
    with pytest.raises(ValueError, match="continuous measurement"):
        classification.evaluate(feature_sets["truth"], cohort.obs["risk_score"], n_splits=3)
