"""Drug response: sample features of a cell line + a user-supplied drug descriptor table
-> MLP regressor of IC50/AUC, cross-validated by cell line (a cell line's rows are all
in one test fold), scored by Pearson r per drug averaged over drugs (the paper's
"mean PCC")."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from .common import as_feature_sets, pearson
from .grouped_regression import cross_validate
from .result import TaskResult


def check_responses(responses: pd.DataFrame, cell_col: str, drug_col: str, value_col: str) -> pd.DataFrame:
    if not isinstance(responses, pd.DataFrame):
        raise ValueError("responses must be a long DataFrame with one row per (cell line, drug)")
    missing = [c for c in (cell_col, drug_col, value_col) if c not in responses.columns]
    if missing:
        raise ValueError(
            f"responses lacks column(s) {missing}; it has {list(responses.columns)}. "
            "Name them with cell_col=/drug_col=/value_col="
        )
    table = responses[[cell_col, drug_col, value_col]].copy()
    table.columns = ["cell_line", "drug", "value"]
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    table = table.dropna()
    table["cell_line"], table["drug"] = table["cell_line"].astype(str), table["drug"].astype(str)
    if table.duplicated(["cell_line", "drug"]).any():
        raise ValueError("responses has several rows for the same (cell line, drug); average them first")
    return table


def evaluate(
    features: pd.DataFrame | Mapping[str, pd.DataFrame],
    drugs: pd.DataFrame,
    responses: pd.DataFrame,
    *,
    cell_col: str = "cell_line",
    drug_col: str = "drug",
    value_col: str = "response",
    n_splits: int = 10,
    hidden: tuple[int, ...] = (256, 64),
    max_iter: int = 300,
    alpha: float = 1e-3,
    seed: int = 0,
) -> TaskResult:
    """features: cell lines x features (one or a dict of sets); drugs: drugs x descriptors
    (numeric, indexed by drug ID); responses: long table cell line, drug, value.

    Metrics: ``mean_pcc`` (Pearson r per drug over held-out cell lines, averaged over drugs
    with >= 3 cell lines), ``pooled_pcc`` over all held-out pairs, per fold and overall
    (``*_overall`` from pooled held-out predictions)."""
    sets = as_feature_sets(features)
    table = check_responses(responses, cell_col, drug_col, value_col)
    drug_table = as_feature_sets({"drug descriptors": drugs})["drug descriptors"]
    drug_table.index = drug_table.index.astype(str)
    cells = None
    for frame in sets.values():
        ids = set(frame.index.astype(str))
        cells = ids if cells is None else cells & ids
    keep = table["cell_line"].isin(cells) & table["drug"].isin(set(drug_table.index))
    if not keep.any():
        raise ValueError(
            "no response row has both a cell line in the features and a drug in the drug table "
            f"(responses cell lines e.g. {table['cell_line'].head(3).tolist()}, drugs e.g. {table['drug'].head(3).tolist()})"
        )
    table = table[keep].reset_index(drop=True)
    drug_block = drug_table.loc[table["drug"]].to_numpy(dtype=np.float64)
    designs = {}
    for name, frame in sets.items():
        frame = frame.set_axis(frame.index.astype(str))
        designs[name] = np.hstack([frame.loc[table["cell_line"]].to_numpy(dtype=np.float64), drug_block])
    per_fold, predictions, metrics = cross_validate(table, designs, "drug", n_splits=n_splits, hidden=hidden,
                                                    max_iter=max_iter, alpha=alpha, seed=seed)
    metrics["n_drugs"] = table["drug"].nunique()
    per_drug = predictions.groupby(["features", "drug"]).apply(lambda p: pearson(p["value"], p["pred"]), include_groups=False)
    return TaskResult(
        task="drug_response",
        metrics=metrics,
        per_fold=per_fold,
        predictions=predictions[["features", "head", "fold", "cell_line", "drug", "value", "pred"]],
        details={"per_drug_pcc": {f: per_drug.loc[f].to_dict() for f in sets}},
        params={"n_splits": n_splits, "hidden": list(hidden), "max_iter": max_iter, "alpha": alpha, "seed": seed,
                "feature_sets": list(sets)},
    )

