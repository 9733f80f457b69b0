"""Imputation evaluation: hide k% (15 by default) of each sample's observed genes,
impute them, and score Pearson r, Spearman r and MAE over the hidden entries, overall
and by expression decile. Gene-mean and KNN imputation (scikit-learn) are the baselines;
BulkFormer imputes with the hidden entries set to the mask token, as in pretraining.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.metrics import mean_absolute_error

from ..dataspec import DataSpec
from ..runtime import Runtime
from ..training.masking import check_mask_rates
from .common import check_at_least, evaluate_settings, pearson, spearman
from .provenance import with_provenance
from .result import TaskResult

Imputer = Callable[[pd.DataFrame], pd.DataFrame]
BASELINES = ("gene_mean", "knn")


def gene_mean_imputer() -> Imputer:
    """Each hidden value -> the gene's mean over the samples where it is visible."""
    def impute(masked: pd.DataFrame) -> pd.DataFrame:
        filled = SimpleImputer(strategy="mean", keep_empty_features=True).fit_transform(masked.to_numpy())
        return pd.DataFrame(filled, index=masked.index, columns=masked.columns)
    return impute


def knn_imputer(n_neighbors: int = 10) -> Imputer:
    """Each hidden value -> mean over the ``n_neighbors`` most similar samples (nan-Euclidean)."""
    def impute(masked: pd.DataFrame) -> pd.DataFrame:
        k = max(1, min(n_neighbors, len(masked) - 1))
        filled = KNNImputer(n_neighbors=k, keep_empty_features=True).fit_transform(masked.to_numpy())
        return pd.DataFrame(filled, index=masked.index, columns=masked.columns)
    return impute


def model_imputer(model: Any, runtime: Runtime | None = None, **run_settings: Any) -> Imputer:
    """BulkFormer as an imputer: NaN entries (hidden or unmeasured) enter the model as the
    mask token (-10) and come back as its mask-corrected predictions (run by the
    inference engine under ``runtime`` / ``run_settings``, as in ``bulkformer.impute``; no
    progress bar unless asked for).

    ``model``: a Bundle or bundle path. The masked matrix's columns must be vocabulary
    gene IDs (log1p TPM values)."""
    from bulkformer.inference.execution import Engine
    from bulkformer.model import MASK_VALUE

    if runtime is None and "progress" not in run_settings:
        run_settings["progress"] = False
    engine = Engine.of(model, Runtime.of(runtime, **run_settings))
    vocabulary = pd.Index(engine.bundle.gene_ids)

    def impute(masked: pd.DataFrame) -> pd.DataFrame:
        position = vocabulary.get_indexer(masked.columns)
        if (position < 0).any():
            bad = masked.columns[position < 0][:5].tolist()
            raise ValueError(
                f"{int((position < 0).sum())} columns are not genes of the model's vocabulary (e.g. {bad}); "
                "prepare the data against the model (bulkformer.tasks.features.logtpm_matrix) first"
            )
        values = np.full((len(masked), len(vocabulary)), MASK_VALUE, dtype=np.float32)
        block = masked.to_numpy(dtype=np.float32)
        values[:, position] = np.where(np.isnan(block), MASK_VALUE, block)
        # Share of vocabulary genes the data set lacks altogether (fed to the v2 head).
        lacking = np.ones(len(vocabulary), dtype=bool)
        lacking[position[~np.isnan(block).all(axis=0)]] = False
        out = np.empty_like(values)
        for batch in engine.stream(values, float(lacking.mean()), want_expr=True, description="imputation"):
            out[batch.start:batch.stop] = batch.expr
        return pd.DataFrame(out[:, position], index=masked.index, columns=masked.columns)

    return impute


def check_settings(*, mask_fraction: float, n_repeats: int, n_deciles: int = 10, knn_neighbors: int = 10,
                   baselines: Sequence[str] = BASELINES) -> None:
    """The settings alone, before any data is read (the CLI runs this before imputing)."""
    check_mask_rates(mask_fraction)
    check_at_least(n_repeats, 1, "n_repeats")
    check_at_least(n_deciles, 1, "n_deciles")
    check_at_least(knn_neighbors, 1, "knn_neighbors")
    unknown = [name for name in baselines if name not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {BASELINES}")


def hide_entries(observed: pd.DataFrame, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the entries to hide: ``fraction`` of each sample's observed genes
    (at least one per sample)."""
    visible = ~np.isnan(observed.to_numpy(dtype=np.float64))
    empty = ~visible.any(axis=1)
    if empty.any():
        raise ValueError(f"{int(empty.sum())} samples have no observed value, so nothing can be hidden and scored "
                         f"(e.g. {observed.index[empty][:3].astype(str).tolist()}); drop them before evaluating")
    hidden = np.zeros_like(visible)
    for row in range(visible.shape[0]):
        candidates = np.flatnonzero(visible[row])
        k = max(1, int(round(fraction * candidates.size)))
        hidden[row, rng.choice(candidates, size=k, replace=False)] = True
    return hidden


def score(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"pearson": pearson(true, pred), "spearman": spearman(true, pred),
            "mae": float(mean_absolute_error(true, pred)), "n_entries": int(true.size)}


def evaluate(
    observed: pd.DataFrame,
    *,
    model: Any = None,
    imputers: Mapping[str, Imputer] | None = None,
    baselines: Sequence[str] = BASELINES,
    mask_fraction: float = 0.15,
    n_repeats: int = 1,
    n_deciles: int = 10,
    knn_neighbors: int = 10,
    max_predictions: int = 50_000,
    seed: int = 0,
    runtime: Runtime | None = None,
    **run_settings: Any,
) -> TaskResult:
    """Score imputers on entries hidden from ``observed``.

    observed: samples x genes natural log1p TPM, NaN where not measured (e.g.
        ``bulkformer.tasks.features.logtpm_matrix(data, model)``).
    model: a Bundle / bundle path, evaluated as ``"bulkformer"``; ``imputers`` adds any
        callables (masked DataFrame with NaN -> filled DataFrame); ``baselines`` picks
        from ``gene_mean`` and ``knn``. Every method sees the same hidden entries.
    ``mask_fraction`` of each sample's observed entries are hidden per mask (drawn from
    ``seed``); ``knn_neighbors`` for the KNN baseline; ``runtime`` (a
    :class:`~bulkformer.runtime.Runtime`) or its settings as keywords (``batch_size``,
    ``device``, ``precision``) for the model's forward passes.
    Metrics per method (means over ``n_repeats`` random masks): pearson, spearman, mae;
    ``details["by_decile"]`` the same per decile (``n_deciles`` quantile bins) of the true
    value of the hidden entries.
    ``predictions`` keeps the same random ``max_predictions`` hidden entries for every method (first mask).
    """
    if not isinstance(observed, pd.DataFrame):
        raise ValueError("observed must be a samples x genes DataFrame of log1p TPM (NaN where not measured)")
    check_settings(mask_fraction=mask_fraction, n_repeats=n_repeats, n_deciles=n_deciles, knn_neighbors=knn_neighbors,
                   baselines=baselines)
    values = observed.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        raise ValueError("observed has infinite values; pass natural log1p TPM")
    if (values[~np.isnan(values)] < 0).any():
        raise ValueError("observed has negative values; pass natural log1p TPM with NaN (not -10) where unmeasured")
    if len(observed) < 2:
        raise ValueError("imputation evaluation needs at least 2 samples")
    methods: dict[str, Imputer] = {}
    if model is not None:
        methods["bulkformer"] = model_imputer(model, runtime, **run_settings)
    methods.update(imputers or {})
    for name in baselines:
        if name == "gene_mean":
            methods["gene_mean"] = gene_mean_imputer()
        elif name == "knn":
            methods["knn"] = knn_imputer(knn_neighbors)
        else:
            raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
    if not methods:
        raise ValueError("nothing to evaluate: give model=, imputers= or baselines=")

    rng = np.random.default_rng(seed)
    rng_keep = np.random.default_rng(seed + 1)
    rows, decile_rows, preds = [], [], []
    for repeat in range(n_repeats):
        hidden = hide_entries(observed, mask_fraction, rng)
        masked = observed.mask(hidden)
        true = values[hidden]
        decile = pd.qcut(true, n_deciles, labels=False, duplicates="drop")
        # one draw for all methods, so that the saved predictions pair up entry by entry
        keep = np.sort(rng_keep.choice(true.size, size=min(true.size, max_predictions), replace=False))
        for name, imputer in methods.items():
            filled = imputer(masked)
            if filled.shape != observed.shape:
                raise ValueError(f"imputer {name!r} returned shape {filled.shape}, expected {observed.shape}")
            pred = filled.to_numpy(dtype=np.float64)[hidden]
            if not np.isfinite(pred).all():
                raise ValueError(f"imputer {name!r} left NaN/inf at hidden entries")
            rows.append({"features": name, "head": "impute", "fold": repeat, **score(true, pred)})
            for d in np.unique(decile):
                sel = decile == d
                decile_rows.append({"features": name, "repeat": repeat, "decile": int(d) + 1,
                                    "true_mean": float(true[sel].mean()), **score(true[sel], pred[sel])})
            if repeat == 0:
                r, c = np.nonzero(hidden)
                r, c = r[keep], c[keep]
                preds.append(pd.DataFrame({"features": name, "head": "impute", "fold": repeat,
                                           "sample": observed.index[r].astype(str), "gene": observed.columns[c].astype(str),
                                           "true": true[keep], "pred": pred[keep]}))
    per_fold = pd.DataFrame(rows)
    metrics = per_fold.groupby(["features", "head"], sort=False)[["pearson", "spearman", "mae"]].mean().reset_index()
    metrics["n_hidden_per_repeat"] = int(per_fold["n_entries"].iloc[0])
    by_decile = (pd.DataFrame(decile_rows).groupby(["features", "decile"], sort=False)
                 [["true_mean", "pearson", "spearman", "mae", "n_entries"]].mean().reset_index())
    return TaskResult(
        task="imputation",
        metrics=metrics,
        per_fold=per_fold,
        predictions=pd.concat(preds, ignore_index=True),
        details={"by_decile": by_decile},
        params={"mask_fraction": mask_fraction, "n_repeats": n_repeats, "n_deciles": n_deciles,
                "knn_neighbors": knn_neighbors, "seed": seed, "methods": list(methods)},
    )


def run(data: Any, model: Any, *, baselines: Sequence[str] = BASELINES, mask_fraction: float = 0.15,
        n_repeats: int = 1, runtime: Runtime | None = None, **settings: Any) -> TaskResult:
    """End to end: the data (raw or a :class:`~bulkformer.dataspec.DataSpec`) prepared against
    ``model`` (NaN where not measured), then :func:`evaluate` with ``settings`` (its other
    keywords), provenance recorded. The settings are checked before the data are read."""
    from .features import logtpm_matrix, model_bundle

    spec = DataSpec.of(data)
    chosen = list(baselines)
    options = evaluate_settings(evaluate, settings, exclude=("model", "imputers", "baselines", "mask_fraction",
                                                             "n_repeats", "runtime"))
    check_settings(mask_fraction=mask_fraction, n_repeats=n_repeats, baselines=chosen,
                   n_deciles=options["n_deciles"], knn_neighbors=options["knn_neighbors"])
    bundle = model_bundle(model)
    observed = logtpm_matrix(spec, bundle)
    result = evaluate(observed, model=bundle, baselines=chosen, mask_fraction=mask_fraction, n_repeats=n_repeats,
                      runtime=runtime, **options)
    return with_provenance(result, spec, bundle)


def figure(result: TaskResult):
    """Predicted vs hidden values per method, and the error by expression decile."""
    from ..plotting import finish, grid, plot_scatter

    pred = result.predictions
    methods = list(pd.unique(pred["features"]))
    fig, axes = grid(len(methods) + 1)
    for ax, method in zip(axes, methods):
        rows = pred[pred["features"] == method]
        plot_scatter(ax, rows["true"], rows["pred"], f"{method}: r {result.metric('pearson', features=method):.3f}")
    ax = axes[len(methods)]
    for method, rows in result.details["by_decile"].groupby("features", sort=False):
        ax.plot(rows["decile"], rows["mae"], marker="o", label=str(method))
    ax.set_xlabel("decile of true expression")
    ax.set_ylabel("MAE")
    ax.legend(fontsize=8)
    ax.set_title("error by expression decile", fontsize=9)
    return finish(fig, result.task)
