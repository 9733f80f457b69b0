"""Prognosis: the paper's alive/dead random forest, a Cox model on PCA components, and
per-gene hazard ratios from a median split (with Kaplan-Meier curves).

Survival is a table indexed by sample with a time column and an event column (1 =
event, e.g. death; TCGA: ``OS.time``/``OS``). Cox models and concordance come from
lifelines; splits, PCA, forests and AUROC/AUPRC from scikit-learn.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceWarning
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index
from scipy.stats import false_discovery_control
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .common import (as_feature_sets, check_at_least, check_folds, check_pca_head_settings, on_samples, shared_samples,
                     summarise_folds, warn_unscored_folds)
from ..labels import check_unique_ids, match_samples, numeric_column
from .result import TaskResult
from ..dataspec import DataSpec
from ..runtime import Runtime
from .common import evaluate_settings
from .features import FEATURE_SETS, check_include
from .provenance import with_provenance
from .samples import cut_rows, feature_sets_for, samples_of

HEADS = ("random_forest", "cox")
SCORE_MEANING = {
    "random_forest": "probability of an event (forest classifying event vs no event, or event by the horizon vs "
                     "follow-up beyond it when a horizon is given); higher = worse prognosis",
    "cox": "partial hazard of the Cox model on the PCA components; higher = worse prognosis",
}


def check_survival(survival: pd.DataFrame, time_col: str, event_col: str) -> pd.DataFrame:
    """``time`` (float, >= 0) and ``event`` (0/1) per sample, indexed by sample ID (text).

    Missing entries stay NaN (the sample is left out, with a warning, when matched to the
    data by :func:`survival_for`); text that is not a number, infinite or negative times
    and events other than 0/1 are errors naming the column."""
    if not isinstance(survival, pd.DataFrame):
        raise ValueError("survival must be a DataFrame indexed by sample with a time and an event column")
    missing = [c for c in (time_col, event_col) if c not in survival.columns]
    if missing:
        raise ValueError(
            f"survival table lacks column(s) {missing}; it has {list(survival.columns)[:10]}. "
            f"Name the right ones with time_col='...' / event_col='...'"
        )
    check_unique_ids(survival.index, "survival table")
    table = pd.DataFrame({
        "time": numeric_column(survival[time_col], f"survival time column {time_col!r}"),
        "event": numeric_column(survival[event_col], f"event column {event_col!r}"),
    }).set_axis(survival.index.astype(str))
    if (table["time"] < 0).any():
        raise ValueError(f"negative survival times in {time_col!r} (samples {list(table.index[table['time'] < 0][:3])}); "
                         "times must be >= 0")
    events = table["event"].dropna()
    if not events.isin([0, 1]).all():
        bad = sorted(events[~events.isin([0, 1])].unique().tolist())
        coded = " (coded 1 = censored, 2 = event as in R's survival? subtract 1)" if set(events) <= {1, 2} else ""
        raise ValueError(f"event column {event_col!r} must hold 0 (censored) / 1 (event), got {bad[:5]}{coded}")
    return table


def survival_for(survival: pd.DataFrame, sample_ids: Sequence[str], *, time_col: str, event_col: str) -> pd.DataFrame:
    """Checked ``time``/``event`` of the given samples (matched by sample ID); samples
    without a complete row are left out with a warning."""
    table = match_samples(check_survival(survival, time_col, event_col), sample_ids, what="survival table")
    return table.assign(event=table["event"].astype(int))


def check_events(event: np.ndarray, n_splits: int) -> None:
    """Stratified folds need events and non-events in every fold."""
    check_folds(n_splits, int(min(event.sum(), len(event) - event.sum())),
                "events and as many non-events (censored samples)")


def check_settings(*, n_splits: int, n_components: int, n_estimators: int, heads: Sequence[str] = HEADS) -> None:
    """The settings alone, before any data is read (the CLI runs this before embedding)."""
    check_pca_head_settings(n_splits=n_splits, n_components=n_components, n_estimators=n_estimators, heads=heads,
                            known=HEADS)


def status_at(horizon: float, time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(event by ``horizon`` as 0/1, whether that is known): a sample censored before the
    horizon may or may not have had the event by then."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float, np.number)) or not np.isfinite(horizon) or horizon <= 0:
        raise ValueError(f"horizon must be a positive time in the time column's units, got {horizon!r}")
    by_horizon = (event == 1) & (time <= horizon)
    known = by_horizon | (time > horizon)
    if not by_horizon.any() or not (known & ~by_horizon).any():
        raise ValueError(f"with horizon={horizon:g}, {int(by_horizon.sum())} samples have an event by then and "
                         f"{int((known & ~by_horizon).sum())} are followed beyond it; both are needed "
                         f"(follow-up ranges {time.min():g}-{time.max():g})")
    return by_horizon.astype(int), known


def _fit_cox(cox: CoxPHFitter, data: pd.DataFrame) -> bool:
    """Fit; True when lifelines warned that it did not converge. Its other warnings (low
    variance notes and the like) are dropped: the callers report non-convergence once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cox.fit(data, duration_col="time", event_col="event")
    return any(issubclass(w.category, ConvergenceWarning) for w in caught)


def _scaled_pca(n_components: int, n_train: int, n_features: int, seed: int) -> Pipeline:
    k = max(1, min(n_components, n_train - 1, n_features))
    return Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=k, random_state=seed))])


def evaluate(
    features: pd.DataFrame | Mapping[str, pd.DataFrame],
    survival: pd.DataFrame,
    *,
    time_col: str = "OS.time",
    event_col: str = "OS",
    heads: Sequence[str] = HEADS,
    n_splits: int = 10,
    n_components: int = 10,
    n_estimators: int = 500,
    penalizer: float = 0.1,
    horizon: float | None = None,
    seed: int = 0,
) -> TaskResult:
    """Cross-validated prognosis from each feature set (same folds for every set and head).

    random_forest: PCA (``max(n_components, 64)`` capped by samples) -> random forest
        classifying event vs no event (alive/dead, the paper's protocol): AUROC, AUPRC.
        This counts a sample censored after a week as a survivor; with ``horizon`` (in the
        time column's units) it classifies instead an event by ``horizon`` against follow-up
        beyond it, and leaves samples censored before ``horizon`` out of that head's
        training and scoring (``predictions["event_by_horizon"]`` is NaN for them).
    cox: PCA (``n_components``) -> penalised Cox model: concordance index on held-out samples.

    features: samples x features DataFrame, or a dict name -> DataFrame. survival: a
    DataFrame indexed by sample ID with the ``time_col`` (default "OS.time") and
    ``event_col`` (default "OS", 1 = event, 0 = censored) columns; samples without
    either are left out with a warning. ``heads``: "random_forest" (``n_estimators``
    trees) and/or "cox" (``penalizer``); ``n_splits`` folds stratified by event,
    ``seed`` fixes folds, PCA and forest.

    ``predictions``: one row per held-out sample and head; its ``score`` is the forest's
    probability of an event, or the Cox model's partial hazard (both: higher = worse
    prognosis), as ``details["score"]`` records.
    """
    check_settings(n_splits=n_splits, n_components=n_components, n_estimators=n_estimators, heads=heads)
    sets = as_feature_sets(features)
    table = survival_for(survival, shared_samples(sets), time_col=time_col, event_col=event_col)
    index = table.index
    sets = {name: on_samples(frame, index) for name, frame in sets.items()}
    event = table["event"].to_numpy()
    time = table["time"].to_numpy(dtype=float)
    check_events(event, n_splits)
    if horizon is None:
        rf_target, rf_known = event, np.ones(len(event), dtype=bool)
    else:
        rf_target, rf_known = status_at(horizon, time, event)
    folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(event)), event))

    rows, preds = [], []
    unconverged = 0
    for name, frame in sets.items():
        X = frame.to_numpy(dtype=np.float64)
        for head in heads:
            for fold, (train, test) in enumerate(folds):
                if head == "random_forest":
                    fit_on = train[rf_known[train]]
                    if len(set(rf_target[fit_on])) < 2:
                        raise ValueError(f"fold {fold + 1}: the training samples whose status at the horizon is known "
                                         "are all of one class; choose another horizon or fewer folds")
                    model = Pipeline([
                        *_scaled_pca(max(n_components, 64), len(fit_on), X.shape[1], seed).steps,
                        ("clf", RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)),
                    ])
                    model.fit(X[fit_on], rf_target[fit_on])
                    score = model.predict_proba(X[test])[:, 1]
                    known, truth = rf_known[test], rf_target[test][rf_known[test]]
                    metrics = {
                        "auroc": roc_auc_score(truth, score[known]) if len(set(truth)) == 2 else np.nan,
                        "auprc": average_precision_score(truth, score[known]) if truth.any() else np.nan,
                    }
                else:
                    reducer = _scaled_pca(n_components, len(train), X.shape[1], seed)
                    train_pc = reducer.fit_transform(X[train])
                    columns = [f"PC{i + 1}" for i in range(train_pc.shape[1])]
                    frame_train = pd.DataFrame(train_pc, columns=columns)
                    frame_train["time"], frame_train["event"] = time[train], event[train]
                    cox = CoxPHFitter(penalizer=penalizer)
                    unconverged += _fit_cox(cox, frame_train)
                    score = cox.predict_partial_hazard(pd.DataFrame(reducer.transform(X[test]), columns=columns)).to_numpy()
                    # lifelines: higher score = longer survival, so pass minus the hazard.
                    metrics = {"c_index": concordance_index(time[test], -score, event[test]) if event[test].any() else np.nan}
                rows.append({"features": name, "head": head, "fold": fold, **metrics})
                part = pd.DataFrame({
                    "features": name, "head": head, "fold": fold, "sample": index[test].astype(str),
                    "time": time[test], "event": event[test], "score": score,
                })
                if horizon is not None:
                    part["event_by_horizon"] = np.where(rf_known[test], rf_target[test], np.nan)
                preds.append(part)
    per_fold = pd.DataFrame(rows)
    if unconverged:
        warnings.warn(f"the Cox model did not converge cleanly in {unconverged} fold fits (lifelines' convergence "
                      f"warning: e.g. a component that separates events completely); raise penalizer (now {penalizer:g}) "
                      "or use fewer PCA components (n_components)", UserWarning, stacklevel=2)
    warn_unscored_folds(per_fold, ["c_index"], "a test fold without events")
    warn_unscored_folds(per_fold, ["auroc"], "a test fold with one class only" + (" among the samples whose status at "
                                                                                 "the horizon is known" if horizon else ""))
    metrics = summarise_folds(per_fold)
    metrics["n_samples"] = len(index)
    metrics["n_features"] = metrics["features"].map({name: frame.shape[1] for name, frame in sets.items()})
    metrics["n_events"] = int(event.sum())
    return TaskResult(
        task="prognosis",
        metrics=metrics,
        per_fold=per_fold,
        predictions=pd.concat(preds, ignore_index=True),
        details={"score": {head: SCORE_MEANING[head] for head in heads}},
        params={"time_col": time_col, "event_col": event_col, "n_splits": n_splits, "n_components": n_components,
                "n_estimators": n_estimators, "penalizer": penalizer, "horizon": horizon, "seed": seed, "heads": list(heads),
                "feature_sets": list(sets)},
    )


def gene_hazard_ratios(
    expression: pd.DataFrame,
    survival: pd.DataFrame,
    *,
    genes: Sequence[str] | None = None,
    time_col: str = "OS.time",
    event_col: str = "OS",
    features_name: str = "expression",
    n_plot: int = 4,
) -> TaskResult:
    """Per-gene hazard ratio of high (> median) vs low expression, from a univariate Cox
    model on the split (lifelines), with its 95% CI, Wald p and log-rank p, and their
    Benjamini-Hochberg q-values over the genes tested (``q_value``, ``logrank_q``); rows
    sorted by log-rank p.

    expression: samples x genes (e.g. log1p TPM, or imputed values; NaN = not measured:
    each gene is tested on the samples that measure it); ``genes`` restricts it to some
    of its columns (default: all). survival: indexed by sample ID, with ``time_col`` and
    ``event_col`` as in :func:`evaluate`. ``features_name`` labels the result's rows.
    Genes whose values cannot be split (constant, or fewer than 4 samples) are listed in
    ``details["skipped"]``. The result's plot shows Kaplan-Meier curves for the ``n_plot``
    genes with the smallest log-rank p.
    """
    check_at_least(n_plot, 1, "n_plot")
    if not isinstance(expression, pd.DataFrame):
        raise ValueError("expression must be a samples x genes DataFrame")
    if genes is not None:
        absent = [g for g in genes if g not in expression.columns]
        if absent:
            raise ValueError(f"{len(absent)} requested genes are not expression columns, e.g. {absent[:5]}")
        expression = expression[list(genes)]
    check_unique_ids(expression.index, "expression rows")
    expression = expression.set_axis(expression.index.astype(str))
    table = survival_for(survival, expression.index, time_col=time_col, event_col=event_col)
    index = table.index
    if len(index) < 4:
        raise ValueError(f"only {len(index)} samples are in both the expression and the survival table; index both by sample ID")
    expression = expression.loc[index]
    partial = expression.columns[expression.isna().any(axis=0).to_numpy()]
    if len(partial):
        warnings.warn(f"{len(partial)} genes are not measured in every sample (e.g. {list(map(str, partial[:3]))}); each is "
                      "tested on the samples that measure it (n_high + n_low)", stacklevel=2)
    rows, skipped, groups = [], [], {}
    for gene in expression.columns:
        values = expression[gene].to_numpy(dtype=float)
        measured = ~np.isnan(values)
        high = values[measured] > np.median(values[measured]) if measured.any() else np.zeros(0, bool)
        if measured.sum() < 4 or high.all() or not high.any():
            skipped.append(str(gene))
            continue
        data = pd.DataFrame({"high": high.astype(float), "time": table["time"].to_numpy()[measured],
                             "event": table["event"].to_numpy()[measured]})
        cox = CoxPHFitter()
        converged = not _fit_cox(cox, data)
        summary = cox.summary.loc["high"]
        test = logrank_test(data.time[high], data.time[~high], data.event[high], data.event[~high])
        rows.append({
            "features": features_name, "head": "median_split_cox", "gene": str(gene),
            "hazard_ratio": float(summary["exp(coef)"]),
            "ci_low": float(summary["exp(coef) lower 95%"]), "ci_high": float(summary["exp(coef) upper 95%"]),
            "p_value": float(summary["p"]), "logrank_p": float(test.p_value),
            "n_high": int(high.sum()), "n_low": int((~high).sum()), "converged": converged,
        })
        groups[str(gene)] = (measured, high)
    if not rows:
        raise ValueError("no gene could be split at its median (all constant, or measured in fewer than 4 samples)")
    metrics = pd.DataFrame(rows)
    if not metrics["converged"].all():
        bad = metrics.loc[~metrics["converged"], "gene"].tolist()
        warnings.warn(f"the Cox fit did not converge cleanly for {len(bad)} genes (e.g. {bad[:3]}; typically all events "
                      "in one group): their hazard ratio and Wald p are unreliable (column converged = False); the "
                      "log-rank p does not depend on the fit", UserWarning, stacklevel=2)
    # one test per gene: Benjamini-Hochberg q-values over the genes tested
    metrics["q_value"] = false_discovery_control(metrics["p_value"].to_numpy(), method="bh")
    metrics["logrank_q"] = false_discovery_control(metrics["logrank_p"].to_numpy(), method="bh")
    metrics = metrics.sort_values("logrank_p", kind="stable").reset_index(drop=True)
    top = metrics["gene"].head(n_plot).tolist()
    predictions = pd.concat([
        pd.DataFrame({"features": features_name, "head": "median_split_cox", "gene": gene,
                      "sample": index[groups[gene][0]], "group": np.where(groups[gene][1], "high", "low"),
                      "time": table["time"].to_numpy()[groups[gene][0]], "event": table["event"].to_numpy()[groups[gene][0]]})
        for gene in top
    ], ignore_index=True)
    return TaskResult(
        task="gene_survival",
        metrics=metrics,
        per_fold=pd.DataFrame(columns=["features", "head", "fold"]),
        predictions=predictions,
        details={"skipped": skipped, "plotted_genes": top},
        params={"time_col": time_col, "event_col": event_col, "n_samples": len(index)},
    )


def run(data: Any, model: Any, survival: pd.DataFrame, *, time_col: str = "OS.time", event_col: str = "OS",
        id_length: int | None = None, include: Sequence[str] = FEATURE_SETS, aggregate: str | None = None,
        runtime: Runtime | None = None, **settings: Any) -> TaskResult:
    """End to end: the ``survival`` table (indexed by sample ID) matched to the data's
    samples (raw or a DataSpec; on the first ``id_length`` characters when given), the
    feature sets built for them, then :func:`evaluate` with ``settings`` (its keywords:
    n_splits, n_components, n_estimators, horizon, ...), provenance recorded. The inputs
    are checked before the embedding pass."""
    spec = DataSpec.of(data)
    options = evaluate_settings(evaluate, settings, exclude=("time_col", "event_col"))
    check_settings(n_splits=options["n_splits"], n_components=options["n_components"],
                   n_estimators=options["n_estimators"], heads=options["heads"])
    include = check_include(include)
    table = cut_rows(survival, id_length, first=False)
    checked = survival_for(table, samples_of(spec, id_length), time_col=time_col, event_col=event_col)
    check_events(checked["event"].to_numpy(), options["n_splits"])
    if options["horizon"] is not None:
        status_at(options["horizon"], checked["time"].to_numpy(dtype=float), checked["event"].to_numpy())
    sets = feature_sets_for(spec, model, checked.index, include=include, aggregate=aggregate, runtime=runtime,
                            id_length=id_length)
    result = evaluate(sets, table.loc[checked.index], time_col=time_col, event_col=event_col, **options)
    return with_provenance(result, spec, model)


def figure(result: TaskResult):
    """ROC of the alive/dead forest, and Kaplan-Meier curves of the Cox held-out risk split."""
    from ..plotting import finish, grid, plot_kaplan_meier, plot_roc

    pred = result.predictions
    cox = pred[pred["head"] == "cox"]
    cox_sets = list(cox.groupby("features", sort=False))
    fig, axes = grid(1 + len(cox_sets))
    roc = pred[pred["head"] == "random_forest"]
    for feat, rows in roc.groupby("features", sort=False):
        plot_roc(axes[0], rows["event"], rows["score"], str(feat))
    axes[0].set_title("alive/dead random forest (pooled folds)", fontsize=9)
    if roc.empty:
        axes[0].set_visible(False)
    for ax, (feat, rows) in zip(axes[1:], cox_sets):
        # KM of the held-out Cox risk split at its median: does the model separate outcomes?
        group = np.where(rows["score"] > rows["score"].median(), "high risk", "low risk")
        c_index = result.metric("c_index", features=feat, head="cox")
        plot_kaplan_meier(ax, rows["time"], rows["event"], group, f"Cox held-out risk, {feat} (C {c_index:.3f})")
    return finish(fig, result.task)
