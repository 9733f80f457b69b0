"""Drug response: sample features of a cell line + a user-supplied drug descriptor table
-> MLP regressor of IC50/AUC, cross-validated by cell line (a cell line's rows are all
in one test fold), scored by Pearson r per drug averaged over drugs (the paper's
"mean PCC")."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .common import as_feature_sets, pearson, shared_samples
from ..labels import check_unique_ids, numeric_column
from .grouped_regression import check_settings, cross_validate
from .result import TaskResult
from ..dataspec import DataSpec
from ..runtime import Runtime
from .common import evaluate_settings
from .features import FEATURE_SETS, check_include
from .provenance import with_provenance
from .samples import feature_sets_for, samples_of


def check_responses(responses: pd.DataFrame, cell_col: str, drug_col: str, value_col: str) -> pd.DataFrame:
    """The long table as ``cell_line``, ``drug`` (text), ``value`` (float). Values that are
    not numbers are an error; rows with a missing value are left out with a warning."""
    if not isinstance(responses, pd.DataFrame):
        raise ValueError("responses must be a long DataFrame with one row per (cell line, drug)")
    missing = [c for c in (cell_col, drug_col, value_col) if c not in responses.columns]
    if missing:
        raise ValueError(
            f"responses lacks column(s) {missing}; it has {list(responses.columns)}. "
            "Name them with cell_col='...' / drug_col='...' / value_col='...'"
        )
    table = pd.DataFrame({
        "cell_line": responses[cell_col].astype(str).to_numpy(),
        "drug": responses[drug_col].astype(str).to_numpy(),
        "value": numeric_column(responses[value_col], f"response column {value_col!r}").to_numpy(),
    })
    blank = responses[cell_col].isna().to_numpy() | responses[drug_col].isna().to_numpy() | table["value"].isna().to_numpy()
    if blank.any():
        warnings.warn(f"{int(blank.sum())} of {len(table)} response rows have a missing cell line, drug or value "
                      "and are left out", stacklevel=2)
        table = table[~blank].reset_index(drop=True)
    repeated = table[table.duplicated(["cell_line", "drug"], keep=False)]
    if len(repeated):
        pairs = list(dict.fromkeys(zip(repeated["cell_line"], repeated["drug"])))
        raise ValueError(f"responses has several rows for the same (cell line, drug), e.g. {pairs[:3]}; average them first")
    return table


def check_drugs(drugs: pd.DataFrame) -> pd.DataFrame:
    """Drug descriptors: drugs (indexed by ID, unique) x numeric, finite descriptors."""
    if not isinstance(drugs, pd.DataFrame):
        raise ValueError("drugs must be a DataFrame: drug ID (index) x numeric descriptors")
    check_unique_ids(drugs.index, "drug descriptors")
    table = pd.DataFrame({column: numeric_column(drugs[column], f"drug descriptor column {column!r}")
                          for column in drugs.columns}, index=drugs.index.astype(str))
    return as_feature_sets({"drug descriptors": table})["drug descriptors"]


def match_responses(table: pd.DataFrame, cell_lines: Sequence[str], drug_ids: Sequence[str]) -> pd.DataFrame:
    """Rows of a checked response table whose cell line is in the data and whose drug has
    descriptors; the others are left out with a warning (none left: an error)."""
    known_cell = table["cell_line"].isin(set(map(str, cell_lines)))
    known_drug = table["drug"].isin(set(map(str, drug_ids)))
    keep = known_cell & known_drug
    if not keep.any():
        raise ValueError(
            "no response row has both a cell line in the data and a drug in the drug table "
            f"(responses cell lines e.g. {table['cell_line'].unique()[:3].tolist()}, data e.g. {list(cell_lines)[:3]}; "
            f"response drugs e.g. {table['drug'].unique()[:3].tolist()}, drug table e.g. {list(drug_ids)[:3]})"
        )
    if not keep.all():
        reasons = [f"{int((~known_cell).sum())} name a cell line the data lacks "
                   f"(e.g. {table.loc[~known_cell, 'cell_line'].unique()[:3].tolist()})" if (~known_cell).any() else "",
                   f"{int((~known_drug).sum())} a drug without descriptors "
                   f"(e.g. {table.loc[~known_drug, 'drug'].unique()[:3].tolist()})" if (~known_drug).any() else ""]
        warnings.warn(f"{int((~keep).sum())} of {len(table)} response rows are left out: "
                      + "; ".join(r for r in reasons if r), stacklevel=2)
    return table[keep].reset_index(drop=True)


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
    (numeric, indexed by drug ID); responses: long table with the columns ``cell_col``
    (default "cell_line"), ``drug_col`` ("drug") and ``value_col`` ("response"). Each
    (cell line features, drug descriptors) pair goes to an MLP (``hidden`` layer sizes, at
    most ``max_iter`` epochs with early stopping, L2 ``alpha``), cross-validated over
    ``n_splits`` folds grouped by cell line; ``seed`` fixes folds and networks.

    Rows with a missing value, an unknown cell line or a drug without descriptors are left
    out with a warning. Metrics: ``mean_pcc`` (Pearson r per drug over held-out cell lines,
    averaged over drugs with >= 3 cell lines), ``pooled_pcc`` over all held-out pairs, per
    fold and overall (``*_overall`` from pooled held-out predictions)."""
    check_settings(n_splits=n_splits, hidden=hidden, max_iter=max_iter)
    sets = as_feature_sets(features)
    table = check_responses(responses, cell_col, drug_col, value_col)
    drug_table = check_drugs(drugs)
    table = match_responses(table, shared_samples(sets), drug_table.index)
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


def run(data: Any, model: Any, responses: pd.DataFrame, drugs: pd.DataFrame, *, cell_col: str = "cell_line",
        drug_col: str = "drug", value_col: str = "response", include: Sequence[str] = FEATURE_SETS,
        aggregate: str | None = None, runtime: Runtime | None = None, **settings: Any) -> TaskResult:
    """End to end: the long ``responses`` table and the ``drugs`` descriptors checked and
    matched to the data's cell lines (raw or a DataSpec), the feature sets built for them,
    then :func:`evaluate` with ``settings`` (n_splits, hidden, max_iter, alpha, seed),
    provenance recorded. The inputs are checked before the embedding pass."""
    from .common import check_folds

    spec = DataSpec.of(data)
    options = evaluate_settings(evaluate, settings, exclude=("cell_col", "drug_col", "value_col"))
    check_settings(n_splits=options["n_splits"], hidden=options["hidden"], max_iter=options["max_iter"])
    include = check_include(include)
    table = check_responses(responses, cell_col, drug_col, value_col)
    drug_table = check_drugs(drugs)
    table = match_responses(table, samples_of(spec), drug_table.index)
    check_folds(options["n_splits"], table["cell_line"].nunique(), "cell lines with responses")
    sets = feature_sets_for(spec, model, table["cell_line"].unique(), include=include, aggregate=aggregate,
                            runtime=runtime)
    result = evaluate(sets, drug_table, table, cell_col="cell_line", drug_col="drug", value_col="value", **options)
    return with_provenance(result, spec, model)


def figure(result: TaskResult):
    """Predicted vs observed response per feature set."""
    from ..plotting import scatter_by_features

    return scatter_by_features(result, "value", "mean_pcc", "mean PCC")
