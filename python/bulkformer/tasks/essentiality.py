"""Gene essentiality: gene-level features of each (cell line, gene) -> MLP regressor of
the gene effect score (e.g. DepMap CRISPR), cross-validated by cell line, scored by
Pearson r across genes per held-out cell line, averaged over cell lines."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from .common import as_feature_sets
from .grouped_regression import cross_validate
from .result import TaskResult


def long_effects(effects: pd.DataFrame | pd.Series) -> pd.Series:
    """Gene effects as a Series indexed by (cell_line, gene): from a cell lines x genes
    DataFrame (DepMap layout) or an already (cell_line, gene)-indexed Series."""
    if isinstance(effects, pd.DataFrame):
        series = effects.stack(future_stack=True)
    elif isinstance(effects, pd.Series) and effects.index.nlevels == 2:
        series = effects
    else:
        raise ValueError("effects must be a cell lines x genes DataFrame or a Series indexed by (cell_line, gene)")
    series = pd.to_numeric(series, errors="coerce").dropna()
    series.index = pd.MultiIndex.from_arrays(
        [series.index.get_level_values(0).astype(str), series.index.get_level_values(1).astype(str)], names=["cell_line", "gene"]
    )
    return series


def evaluate(
    features: pd.DataFrame | Mapping[str, pd.DataFrame],
    effects: pd.DataFrame | pd.Series,
    *,
    n_splits: int = 10,
    hidden: tuple[int, ...] = (256, 64),
    max_iter: int = 300,
    alpha: float = 1e-3,
    seed: int = 0,
) -> TaskResult:
    """features: DataFrame indexed by (cell_line, gene) with one column per feature (see
    ``bulkformer.tasks.features.gene_embedding_features`` / ``gene_logtpm_features``), or a
    dict of such; effects: cell lines x genes or a (cell_line, gene) Series.

    Metrics: ``mean_pcc`` (Pearson r across genes per held-out cell line, averaged),
    ``pooled_pcc``; ``*_overall`` from the pooled held-out predictions."""
    sets = as_feature_sets(features)
    for name, frame in sets.items():
        if frame.index.nlevels != 2:
            raise ValueError(f"feature set {name!r} must be indexed by (cell_line, gene), got {frame.index.nlevels} index level(s)")
        sets[name] = frame.set_axis(pd.MultiIndex.from_arrays(
            [frame.index.get_level_values(0).astype(str), frame.index.get_level_values(1).astype(str)], names=["cell_line", "gene"]
        ))
    target = long_effects(effects)
    index = target.index
    for frame in sets.values():
        index = index.intersection(frame.index, sort=False)
    if len(index) == 0:
        raise ValueError(
            f"no (cell_line, gene) pair is in both the features (e.g. {list(next(iter(sets.values())).index[:2])}) "
            f"and the effects (e.g. {list(target.index[:2])})"
        )
    table = index.to_frame(index=False)
    table["value"] = target.loc[index].to_numpy(dtype=float)
    designs = {name: frame.loc[index].to_numpy(dtype=np.float64) for name, frame in sets.items()}
    per_fold, predictions, metrics = cross_validate(table, designs, "cell_line", n_splits=n_splits, hidden=hidden,
                                                    max_iter=max_iter, alpha=alpha, seed=seed)
    metrics["n_genes"] = table["gene"].nunique()
    return TaskResult(
        task="essentiality",
        metrics=metrics,
        per_fold=per_fold,
        predictions=predictions[["features", "head", "fold", "cell_line", "gene", "value", "pred"]],
        params={"n_splits": n_splits, "hidden": list(hidden), "max_iter": max_iter, "alpha": alpha, "seed": seed,
                "feature_sets": list(sets)},
    )
