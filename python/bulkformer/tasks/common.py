"""Input checks and the cross-validation loop shared by the tasks."""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import check_at_least
from ..errors import ArgumentError


def as_feature_sets(features: pd.DataFrame | Mapping[str, pd.DataFrame], default_name: str = "features") -> dict[str, pd.DataFrame]:
    """A single matrix or a mapping name -> matrix, checked: numeric, finite, non-empty,
    unique index."""
    if isinstance(features, pd.DataFrame):
        sets = {default_name: features}
    elif isinstance(features, Mapping):
        sets = dict(features)
    else:
        raise ValueError(
            f"features must be a pandas DataFrame (samples x features) or a dict name -> DataFrame, got {type(features).__name__}"
        )
    if not sets:
        raise ValueError("no feature sets given")
    for name, frame in sets.items():
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"feature set {name!r} must be a DataFrame, got {type(frame).__name__}")
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"feature set {name!r} is empty ({frame.shape[0]} rows x {frame.shape[1]} columns)")
        if not frame.index.is_unique:
            raise ValueError(f"feature set {name!r} has duplicated row labels; give each sample one row")
        values = frame.to_numpy()
        if not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"feature set {name!r} has non-numeric columns; pass numbers only")
        if not np.isfinite(values).all():
            bad = frame.columns[~np.isfinite(values).all(axis=0)][:5].tolist()
            raise ValueError(f"feature set {name!r} has NaN/inf values (columns {bad}); impute or drop them first")
    return sets


def shared_samples(sets: Mapping[str, pd.DataFrame]) -> pd.Index:
    """Sample IDs (as text) in every feature set, in the first set's order; samples that
    some set lacks are left out with a warning (every set must see the same folds)."""
    frames = [frame.index.astype(str) for frame in sets.values()]
    index = frames[0]
    for other in frames[1:]:
        index = index[index.isin(other)]
    union = frames[0].append(frames[1:]).unique() if len(frames) > 1 else frames[0]
    if len(index) < len(union):
        warnings.warn(f"{len(union) - len(index)} samples are not in every feature set and are left out "
                      f"(e.g. {list(union[~union.isin(index)][:3])})", stacklevel=3)
    if len(index) == 0:
        raise ValueError("the feature sets have no sample in common; build them from the same data")
    return index


def on_samples(frame: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Rows of ``frame`` for the sample IDs ``index`` (matched as text)."""
    return frame.set_axis(frame.index.astype(str)).loc[index]


def check_pca_head_settings(*, n_splits: int, n_components: int, n_estimators: int, heads: Sequence[str],
                            known: Sequence[str]) -> None:
    """Settings of the PCA -> head tasks (classification, prognosis), before any data is read."""
    check_at_least(n_splits, 2, "n_splits")
    check_at_least(n_components, 1, "n_components")
    check_at_least(n_estimators, 1, "n_estimators")
    for head in heads:
        if head not in known:
            raise ValueError(f"unknown head {head!r}; choose from {tuple(known)}")


def check_folds(n_splits: int, n_available: int, what: str) -> int:
    check_at_least(n_splits, 2, "n_splits")
    if n_available < n_splits:
        raise ValueError(f"{n_splits}-fold CV needs at least {n_splits} {what}, got {n_available}; use fewer folds (n_splits)")
    return n_splits


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson r (scipy); NaN when either side is constant."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(stats.pearsonr(y_true, y_pred)[0])


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(stats.spearmanr(y_true, y_pred)[0])


def warn_unscored_folds(per_fold: pd.DataFrame, metrics: Sequence[str], why: str, *, stacklevel: int = 3) -> None:
    """One warning when a metric is undefined (NaN) in some folds: the fold mean then
    averages the other folds only, which a reader of the summary cannot see."""
    for metric in metrics:
        if metric not in per_fold.columns:
            continue
        missing = per_fold[per_fold[metric].isna()]
        if len(missing):
            where = sorted({(str(r.features), str(r.head)) for r in missing.itertuples()})
            warnings.warn(f"{metric} is undefined in {len(missing)} of {len(per_fold)} fold fits ({why}; e.g. "
                          f"features/head {where[0][0]}/{where[0][1]}, fold {int(missing['fold'].iloc[0]) + 1}): its "
                          f"mean averages the other folds only. Use fewer folds (n_splits) for larger test folds",
                          UserWarning, stacklevel=stacklevel)


def summarise_folds(per_fold: pd.DataFrame, keys: Iterable[str] = ("features", "head")) -> pd.DataFrame:
    """Mean of every numeric per-fold column, per (features, head), with its std as ``<metric>_sd``."""
    keys = list(keys)
    numeric = [c for c in per_fold.columns if c not in keys and c != "fold" and pd.api.types.is_numeric_dtype(per_fold[c])]
    grouped = per_fold.groupby(keys, sort=False)[numeric]
    mean = grouped.mean()
    sd = grouped.std(ddof=1).add_suffix("_sd")
    return pd.concat([mean, sd], axis=1).reset_index()


def run_heads(
    feature_sets: Mapping[str, pd.DataFrame],
    heads: Mapping[str, Callable[[], Any]],
    folds: list[tuple[np.ndarray, np.ndarray]],
    fit_predict: Callable[[Any, np.ndarray, np.ndarray, np.ndarray], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Same splits, same heads, every feature set: the baseline runs through the same code.

    ``fit_predict(model, X, train_idx, test_idx)`` returns per-fold outputs."""
    outputs = []
    for feature_name, frame in feature_sets.items():
        X = frame.to_numpy(dtype=np.float64)
        for head_name, make in heads.items():
            for fold, (train, test) in enumerate(folds):
                out = fit_predict(make(), X, train, test)
                outputs.append({"features": feature_name, "head": head_name, "fold": fold, **out})
    return outputs


def evaluate_settings(evaluate: Callable[..., Any], settings: Mapping[str, Any],
                      exclude: Sequence[str] = ()) -> dict[str, Any]:
    """``settings`` for a task's ``evaluate`` completed with its defaults (for the checks a
    task's ``run`` makes before the embedding pass); a name ``evaluate`` does not take, or
    one of ``exclude`` (taken by ``run`` itself), is an :class:`ArgumentError`."""
    parameters = inspect.signature(evaluate).parameters
    known = {name: p.default for name, p in parameters.items()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
             and name not in exclude}
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ArgumentError(f"unknown argument {unknown[0]!r}", argument=unknown[0], value=settings[unknown[0]],
                            joiner="; ", fix=f"the settings of this task are {', '.join(known)}")
    return {**known, **settings}
