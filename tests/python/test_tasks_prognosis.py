"""Prognosis on a simulated cohort with proportional-hazards ground truth."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

import bulkformer
from bulkformer.tasks import prognosis


@pytest.fixture(scope="module")
def cohort():
    return bulkformer.simulate_cohort(n_samples=200, n_genes=300, seed=1, censoring_fraction=0.4)


@pytest.fixture(scope="module")
def feature_sets(cohort):
    logtpm = cohort.observed_log_tpm()
    return {"raw_logtpm": logtpm.loc[:, logtpm.notna().all()], "truth": cohort.module_activity}


@pytest.fixture(scope="module")
def result(feature_sets, cohort):
    return prognosis.evaluate(feature_sets, cohort.obs, time_col="survival_time", event_col="event",
                              n_splits=4, n_estimators=60, n_components=10)


def test_cox_and_forest_recover_the_true_risk(result, cohort):
    obs = cohort.obs
    # Ceiling: the concordance of the simulator's own linear predictor.
    oracle = concordance_index(obs["survival_time"], -obs["risk_score"], obs["event"])
    assert oracle > 0.7
    for features in ("raw_logtpm", "truth"):
        c_index = result.metric("c_index", features, "cox")
        assert c_index > 0.5 + 0.5 * (oracle - 0.5), (features, c_index, oracle)
        assert result.metric("auroc", features, "random_forest") > 0.6
    assert result.metrics["n_events"].iloc[0] == obs["event"].sum()
    assert len(result.per_fold) == 2 * 2 * 4
    # the score column means a different thing per head; the result says which, and both
    # rise with risk (a higher score goes with the true risk)
    assert set(result.details["score"]) == {"random_forest", "cox"}
    for head in ("random_forest", "cox"):
        part = result.predictions.query("features == 'truth' and head == @head").set_index("sample")
        assert part["score"].corr(obs["risk_score"].set_axis(obs.index.astype(str)).loc[part.index], method="spearman") > 0.3


def test_shuffled_outcome_gives_chance(feature_sets, cohort):
    shuffled = cohort.obs[["survival_time", "event"]].sample(frac=1.0, random_state=1).set_axis(cohort.obs.index)
    result = prognosis.evaluate(feature_sets["truth"], shuffled, time_col="survival_time", event_col="event",
                                heads=("cox",), n_splits=4)
    assert abs(result.metric("c_index") - 0.5) < 0.1


def test_gene_hazard_ratios_find_survival_module_genes(cohort, tmp_path):
    info = cohort.gene_info
    beta = cohort.survival_coefficients
    effect = info["loading"] * info["module"].map(lambda m: beta.iloc[m] if m >= 0 else 0.0)
    strongest = effect.abs().idxmax()
    neutral = info.index[info["module"] < 0][:3].tolist()
    result = prognosis.gene_hazard_ratios(cohort.log_tpm, cohort.obs, genes=[strongest, *neutral],
                                          time_col="survival_time", event_col="event", n_plot=2)
    row = result.metrics.set_index("gene").loc[strongest]
    assert row["logrank_p"] < 1e-3
    assert np.sign(np.log(row["hazard_ratio"])) == np.sign(effect[strongest])
    assert row["ci_low"] < row["hazard_ratio"] < row["ci_high"]
    assert result.metrics["gene"].iloc[0] == strongest
    assert result.plot(tmp_path / "km.png").stat().st_size > 1000
    # Benjamini-Hochberg over the 4 genes tested: q = min over ranks >= k of p_(j) * m / j
    p = result.metrics["logrank_p"].to_numpy()  # sorted ascending
    expected = np.minimum.accumulate((p * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1].clip(max=1)
    np.testing.assert_allclose(result.metrics["logrank_q"], expected, rtol=1e-12)
    assert (result.metrics["q_value"] >= result.metrics["p_value"]).all()


def test_bad_survival_input(feature_sets, cohort):
    with pytest.raises(ValueError, match="lacks column"):
        prognosis.evaluate(feature_sets["truth"], cohort.obs)
    bad = cohort.obs.assign(event=2)
    with pytest.raises(ValueError, match="0 \\(censored\\)"):
        prognosis.evaluate(feature_sets["truth"], bad, time_col="survival_time", event_col="event")


def test_survival_values_are_checked_not_coerced(feature_sets, cohort):
    kw = dict(time_col="survival_time", event_col="event", n_splits=3, n_estimators=10, heads=("cox",))
    obs = cohort.obs
    # text where numbers belong: an error naming the column and the values (was: rows silently dropped)
    some_bad = obs.assign(survival_time=obs["survival_time"].astype(object).where(obs.index != obs.index[0], ">10"))
    with pytest.raises(ValueError, match=r"survival time column 'survival_time': 1 values are not numbers \(e.g. '>10'\)"):
        prognosis.evaluate(feature_sets["truth"], some_bad, **kw)
    with pytest.raises(ValueError, match=r"event column 'event': \d+ values are not numbers \(e.g. '(dead|alive)'"):
        prognosis.evaluate(feature_sets["truth"], obs.assign(event=obs["event"].map({1: "dead", 0: "alive"})), **kw)
    infinite = obs.assign(survival_time=obs["survival_time"].where(obs.index != obs.index[0], np.inf))
    with pytest.raises(ValueError, match="infinite"):
        prognosis.evaluate(feature_sets["truth"], infinite, **kw)
    with pytest.raises(ValueError, match="several rows for the same sample"):
        prognosis.evaluate(feature_sets["truth"], pd.concat([obs, obs.iloc[:1]]), **kw)
    # blank entries leave the sample out, visibly
    blank = obs.assign(survival_time=obs["survival_time"].where(np.arange(len(obs)) >= 7))
    with pytest.warns(UserWarning, match=f"7 of {len(obs)} samples are left out: 7 have a blank or NaN entry"):
        result = prognosis.evaluate(feature_sets["truth"], blank, **kw)
    assert result.metric("n_samples") == len(obs) - 7


def test_horizon_classifies_status_at_a_time_and_leaves_out_the_unknown(feature_sets, cohort):
    """The paper's forest counts a sample censored early as a survivor; with a horizon it
    classifies an event by then, and samples censored before it are neither trained on
    nor scored."""
    from sklearn.metrics import roc_auc_score

    obs = cohort.obs
    horizon = float(obs["survival_time"].median())
    result = prognosis.evaluate(feature_sets["truth"], obs, time_col="survival_time", event_col="event",
                                heads=("random_forest",), n_splits=4, n_estimators=60, horizon=horizon)
    pred = result.predictions.set_index("sample")
    early_censored = (obs["event"] == 0) & (obs["survival_time"] <= horizon)
    early_censored.index = early_censored.index.astype(str)
    assert pred["event_by_horizon"].isna().equals(early_censored.loc[pred.index])
    by_then = ((obs["event"] == 1) & (obs["survival_time"] <= horizon)).set_axis(obs.index.astype(str))
    known = pred.dropna(subset=["event_by_horizon"])
    assert (known["event_by_horizon"] == by_then.loc[known.index].astype(float)).all()
    for fold, part in known.groupby("fold"):
        expected = roc_auc_score(part["event_by_horizon"], part["score"])
        assert result.per_fold.loc[result.per_fold["fold"] == fold, "auroc"].item() == pytest.approx(expected)
    assert result.params["horizon"] == horizon
    assert result.metric("auroc") > 0.6
    with pytest.raises(ValueError, match="horizon must be a positive time"):
        prognosis.evaluate(feature_sets["truth"], obs, time_col="survival_time", event_col="event", horizon=-1)
    with pytest.raises(ValueError, match="0 samples have an event by then"):
        prognosis.evaluate(feature_sets["truth"], obs, time_col="survival_time", event_col="event",
                           horizon=float(obs["survival_time"].min()) / 2)


def test_a_gene_that_separates_events_is_flagged_not_hidden():
    """All events in the high group: lifelines warns that the fit did not converge and the
    hazard ratio runs off to ~1e8 with p ~1; that warning was silenced."""
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(30)]
    expression = pd.DataFrame({"SEP": np.r_[rng.uniform(5, 6, 15), rng.uniform(1, 2, 15)], "RND": rng.normal(size=30)},
                              index=ids)
    survival = pd.DataFrame({"OS.time": rng.uniform(100, 1000, 30), "OS": np.r_[np.ones(15), np.zeros(15)].astype(int)},
                            index=ids)
    with pytest.warns(UserWarning, match=r"did not converge cleanly for 1 genes \(e.g. \['SEP'\]"):
        result = prognosis.gene_hazard_ratios(expression, survival)
    converged = result.metrics.set_index("gene")["converged"]
    assert converged.to_dict() == {"SEP": False, "RND": True}
