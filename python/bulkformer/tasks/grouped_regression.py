"""Cross-validated MLP regression with folds grouped by cell line, scored by Pearson r
within groups (per drug, per cell line): shared by drug response and essentiality."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupKFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .common import check_at_least, check_folds, pearson, summarise_folds, warn_unscored_folds


def make_head(hidden: tuple[int, ...], max_iter: int, seed: int, alpha: float) -> Pipeline:
    return Pipeline([
        ("scale", StandardScaler()),
        ("mlp", MLPRegressor(hidden_layer_sizes=hidden, alpha=alpha, max_iter=max_iter, early_stopping=True,
                             random_state=seed)),
    ])


def check_settings(*, n_splits: int, hidden: Sequence[int], max_iter: int) -> None:
    """The settings alone, before any data is read (the CLI runs this before embedding)."""
    check_at_least(n_splits, 2, "n_splits")
    check_at_least(max_iter, 1, "max_iter")
    if not len(hidden) or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be one or more positive layer sizes, got hidden={tuple(hidden)}")


MIN_GROUP_SIZE = 3


def group_pearsons(part: pd.DataFrame, key: str, min_size: int = MIN_GROUP_SIZE) -> list[float]:
    """Pearson r between value and pred within each group (drug / cell line) of at least
    ``min_size`` rows; groups where r is undefined (a constant side) are left out."""
    values = [pearson(g["value"], g["pred"]) for _, g in part.groupby(key) if len(g) >= min_size]
    return [v for v in values if np.isfinite(v)]


def mean_group_pearson(part: pd.DataFrame, key: str, min_size: int = MIN_GROUP_SIZE) -> float:
    """Mean over groups (drugs / cell lines) of Pearson r between value and pred."""
    values = group_pearsons(part, key, min_size)
    return float(np.mean(values)) if values else float("nan")


def cross_validate(
    table: pd.DataFrame,
    designs: Mapping[str, np.ndarray],
    score_by: str,
    *,
    n_splits: int,
    hidden: tuple[int, ...],
    max_iter: int,
    alpha: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``table``: one row per pair with ``cell_line`` and ``value``; ``designs``: feature
    set name -> matrix with one row per table row. Every set goes through the same
    cell-line-grouped folds and the same head. Returns (per_fold, predictions, metrics)
    with ``mean_pcc`` (Pearson r within ``score_by`` groups, averaged) and ``pooled_pcc``."""
    groups = table["cell_line"].to_numpy()
    check_folds(n_splits, len(set(groups)), "cell lines")
    # shuffled so that the seed decides which cell lines are tested together (unshuffled
    # GroupKFold assigns them by file order)
    folds = list(GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(table)), groups=groups))
    y = table["value"].to_numpy(dtype=float)
    rows, preds = [], []
    unconverged = 0
    for name, X in designs.items():
        for fold, (train, test) in enumerate(folds):
            # one warning for the whole run instead of scikit-learn's one per fit
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                pred = make_head(hidden, max_iter, seed, alpha).fit(X[train], y[train]).predict(X[test])
            unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            for other in (w for w in caught if not issubclass(w.category, ConvergenceWarning)):
                warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
            part = table.iloc[test].assign(pred=pred)
            scored = group_pearsons(part, score_by)
            rows.append({"features": name, "head": "mlp", "fold": fold,
                         "mean_pcc": float(np.mean(scored)) if scored else float("nan"),
                         "pooled_pcc": pearson(part["value"], part["pred"]), f"n_{score_by}s_scored": len(scored)})
            preds.append(part.assign(features=name, head="mlp", fold=fold))
    if unconverged:
        warnings.warn(f"the MLP head stopped at max_iter={max_iter} before converging in {unconverged} of "
                      f"{len(designs) * len(folds)} fits (feature sets x folds): raise max_iter for a closer fit",
                      UserWarning, stacklevel=3)
    per_fold = pd.DataFrame(rows)
    warn_unscored_folds(per_fold, ["mean_pcc"], f"no {score_by} with {MIN_GROUP_SIZE} or more held-out rows and a "
                        f"Pearson r; mean_pcc_overall scores the pooled held-out predictions of all folds", stacklevel=4)
    predictions = pd.concat(preds, ignore_index=True)
    overall = predictions.groupby(["features", "head"], sort=False).apply(
        lambda p: pd.Series({"mean_pcc_overall": mean_group_pearson(p, score_by),
                             "pooled_pcc_overall": pearson(p["value"], p["pred"])}),
        include_groups=False,
    ).reset_index()
    metrics = summarise_folds(per_fold).merge(overall, on=["features", "head"])
    metrics["n_folds_scored"] = metrics["features"].map(per_fold.groupby("features")["mean_pcc"].count())
    metrics["n_pairs"], metrics["n_cell_lines"] = len(table), len(set(groups))
    metrics["n_features"] = metrics["features"].map({name: X.shape[1] for name, X in designs.items()})
    return per_fold, predictions, metrics
