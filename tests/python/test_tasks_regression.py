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


def test_drug_response_mean_pcc_near_the_ceiling(cohort, complete_logtpm):
    truth = cohort.module_activity @ cohort.drug_weights.T
    # Ceiling: per-drug r between the noiseless response and the observed one.
    ceiling = np.mean([pearson(truth[d], cohort.drug_response[d]) for d in cohort.drug_response])
    result = drug_response.evaluate({"raw_logtpm": complete_logtpm, "truth": cohort.module_activity},
                                    cohort.drug_weights, cohort.drug_response_long(), **FAST)
    assert result.metric("mean_pcc", "truth") > 0.85 * ceiling
    # an MLP on 300 noisy genes of ~100 training lines: 0.51-0.73 of the ceiling over fold seeds 0-3
    assert result.metric("mean_pcc", "raw_logtpm") > 0.45 * ceiling
    # Cell lines never straddle folds.
    pred = result.predictions
    assert (pred.groupby(["features", "cell_line"])["fold"].nunique() == 1).all()
    assert set(result.details["per_drug_pcc"]["truth"]) == set(cohort.drug_response.columns)


def test_seed_changes_the_cell_line_folds(cohort):
    """Folds are drawn by the seed, not by the order of the cell lines in the file."""
    def fold_of(seed):
        result = drug_response.evaluate(cohort.module_activity, cohort.drug_weights, cohort.drug_response_long(),
                                        **{**FAST, "max_iter": 20}, seed=seed)
        return result.predictions.groupby("cell_line")["fold"].first()

    first, again, other = fold_of(0), fold_of(0), fold_of(1)
    assert first.equals(again)
    assert not first.equals(other)
    # not simply assigned in file order
    order = cohort.drug_response_long()["cell_line"].drop_duplicates()
    assert not (first.loc[order].diff().fillna(0) <= 0).all()


def test_folds_without_a_scorable_drug_are_reported(cohort):
    """With 2 held-out cell lines per fold no drug has the 3 needed for a Pearson r: the fold
    mean would silently average nothing; a warning says so and metrics count the folds."""
    long = cohort.drug_response_long()
    few = long[long["cell_line"].isin(long["cell_line"].unique()[:8])]
    with pytest.warns(UserWarning, match=r"mean_pcc is undefined in 4 of 4 fold fits \(no drug with 3 or more"):
        result = drug_response.evaluate(cohort.module_activity, cohort.drug_weights, few,
                                        **{**FAST, "n_splits": 4, "max_iter": 20})
    assert result.metric("n_folds_scored") == 0
    assert np.isfinite(result.metric("mean_pcc_overall"))
    enough = drug_response.evaluate(cohort.module_activity, cohort.drug_weights, long, **{**FAST, "max_iter": 20})
    assert enough.metric("n_folds_scored") == 3
    assert enough.per_fold["n_drugs_scored"].tolist() == [cohort.drug_response.shape[1]] * 3


def test_drug_response_shuffled_is_chance(cohort):
    long = cohort.drug_response_long()
    long["response"] = long.groupby("drug")["response"].transform(lambda v: v.sample(frac=1.0, random_state=0).to_numpy())
    result = drug_response.evaluate(cohort.module_activity, cohort.drug_weights, long, **FAST)
    assert abs(result.metric("mean_pcc")) < 0.2


def test_drug_response_input_errors(cohort):
    long = cohort.drug_response_long()
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


def test_drug_response_values_are_checked_and_drops_counted(cohort):
    long = cohort.drug_response_long()
    text = long.astype({"response": object})
    text.loc[0, "response"] = ">10"
    with pytest.raises(ValueError, match=r"response column 'response': 1 values are not numbers \(e.g. '>10'\)"):
        drug_response.evaluate(cohort.module_activity, cohort.drug_weights, text, **FAST)
    with pytest.raises(ValueError, match=r"several rows for the same \(cell line, drug\), e.g. \[\('SIM00001', 'drug_1'\)"):
        drug_response.evaluate(cohort.module_activity, cohort.drug_weights, pd.concat([long, long.iloc[:1]]), **FAST)
    descriptors = cohort.drug_weights.astype(object)
    descriptors.iloc[0, 0] = "n/a"
    with pytest.raises(ValueError, match="drug descriptor column .* not numbers"):
        drug_response.evaluate(cohort.module_activity, descriptors, long, **FAST)
    partial = long.copy()
    partial.loc[:4, "response"] = np.nan
    partial.loc[5:7, "cell_line"] = "UNKNOWN"
    with pytest.warns(UserWarning) as record:
        drug_response.evaluate(cohort.module_activity, cohort.drug_weights, partial, n_splits=3, hidden=(8,), max_iter=20)
    messages = " | ".join(str(w.message) for w in record)
    assert f"5 of {len(long)} response rows have a missing cell line, drug or value" in messages
    assert "3 of" in messages and "name a cell line the data lacks (e.g. ['UNKNOWN'])" in messages
    with pytest.raises(ValueError, match="max_iter=0: must be a whole number >= 1"):
        drug_response.evaluate(cohort.module_activity, cohort.drug_weights, long, n_splits=3, max_iter=0)


def test_effect_columns_resolve_symbols_and_depmap_names():
    bundle = bulkformer.tiny_bundle(n_genes=80, seed=0)
    genes = bundle.genes
    # DepMap's CRISPRGeneEffect.csv: "SYMBOL (ENTREZ)"; symbols and versioned Ensembl IDs work too
    columns = ["TSPAN6 (7105)", genes["symbol"].iloc[1], genes["ensembl_id"].iloc[2] + ".7", "NOTAGENE (999999)",
               genes["ensembl_id"].iloc[0]]
    effects = pd.DataFrame(np.arange(10.0).reshape(2, 5), index=["c1", "c2"], columns=columns)
    with pytest.warns(UserWarning, match=r"2 of 5 effect columns are left out: 1 match no vocabulary gene "
                                         r"\(e.g. \['NOTAGENE \(999999\)'\]\); 1 name a gene another column gives"):
        renamed = essentiality.effects_by_vocabulary(effects, bundle)
    assert list(renamed.columns) == genes["ensembl_id"].iloc[:3].tolist()
    assert renamed.iloc[0].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="no gene column of the effects table"):
        essentiality.effects_by_vocabulary(effects[["NOTAGENE (999999)"]], bundle)


def test_effect_values_are_checked(cohort, complete_logtpm):
    targets = [g for g in cohort.essentiality.columns if g in complete_logtpm.columns][:5]
    gene_features = features.gene_logtpm_features(complete_logtpm, targets, n_components=4)
    effects = cohort.essentiality[targets].astype(object)
    effects.iloc[0, 0] = "high"
    with pytest.raises(ValueError, match=r"the gene effects: 1 values are not numbers \(e.g. 'high'\)"):
        essentiality.evaluate({"raw_logtpm": gene_features}, effects, **FAST)
    effects.iloc[0, 0] = np.nan
    with pytest.warns(UserWarning, match=f"1 of {effects.size} \\(cell line, gene\\) effects are missing"):
        essentiality.evaluate({"raw_logtpm": gene_features}, effects, n_splits=3, hidden=(8,), max_iter=20)


def test_feature_set_names_are_checked():
    assert features.check_include(["embedding"]) == ["embedding"]
    with pytest.raises(ValueError, match=r"unknown feature set\(s\) \['foo'\]"):
        features.check_include(["embedding", "foo"])
    with pytest.raises(ValueError, match="no feature set chosen"):
        features.check_include([])


def test_unconverged_heads_are_one_warning_for_the_run(cohort):
    """scikit-learn warned once per fold (and per feature set); now one warning says
    in how many fits the head stopped at max_iter."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drug_response.evaluate({"a": cohort.module_activity, "b": cohort.module_activity * 2}, cohort.drug_weights,
                               cohort.drug_response_long(), **{**FAST, "max_iter": 2})
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    ours = [str(w.message) for w in caught if "max_iter=2 before converging" in str(w.message)]
    assert ours == ["the MLP head stopped at max_iter=2 before converging in 6 of 6 fits (feature sets x folds): raise "
                    "max_iter for a closer fit"]
