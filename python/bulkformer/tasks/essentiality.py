"""Gene essentiality: gene-level features of each (cell line, gene) -> MLP regressor of
the gene effect score (e.g. DepMap CRISPR), cross-validated by cell line, scored by
Pearson r across genes per held-out cell line, averaged over cell lines."""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .common import as_feature_sets
from .grouped_regression import check_settings, cross_validate
from ..labels import check_unique_ids, numeric_column
from .result import TaskResult
from ..dataspec import DataSpec
from ..runtime import Runtime
from .common import evaluate_settings
from .features import FEATURE_SETS, check_include
from .provenance import with_provenance
from .samples import samples_of


# DepMap names gene columns "SYMBOL (ENTREZ)", e.g. "A1BG (1)"
_DEPMAP_COLUMN = re.compile(r"^\s*(\S+)\s+\((\d+)\)\s*$")


def effects_by_vocabulary(effects: pd.DataFrame, vocabulary: Any) -> pd.DataFrame:
    """A cell lines x genes effect table with its gene columns renamed to the vocabulary's
    Ensembl IDs. Columns may be Ensembl IDs (versioned or not), symbols, Entrez IDs or
    DepMap's ``SYMBOL (ENTREZ)``. Columns that match no vocabulary gene are left out with
    a warning (a DepMap table holds genes outside any model's vocabulary; a strict list
    goes through ``bulkformer.preprocess.vocabulary_positions``), as are columns naming a
    gene another column already gives. ``vocabulary``: a Bundle, a gene table or a
    list of Ensembl IDs."""
    from bulkformer.preprocess import map_genes

    if not isinstance(effects, pd.DataFrame):
        raise ValueError("effects must be a cell lines x genes DataFrame")
    names = [str(c) for c in effects.columns]
    # "A1BG (1)" -> "A1BG|1": the SYMBOL|ENTREZ form the gene mapper resolves
    queries = [f"{m.group(1)}|{m.group(2)}" if (m := _DEPMAP_COLUMN.match(n)) else n for n in names]
    mapping = map_genes(queries, vocabulary)
    targets, routes = mapping["vocabulary_id"].tolist(), mapping["route"].tolist()
    first: dict[str, int] = {}
    for i, target in enumerate(targets):
        if target is not None:
            first.setdefault(target, i)
    keep = sorted(first.values())
    if not keep:
        raise ValueError(f"no gene column of the effects table is a gene of the model's vocabulary (columns e.g. "
                         f"{names[:3]}); name genes by Ensembl ID, symbol, Entrez ID or DepMap's 'SYMBOL (ENTREZ)'")
    unmatched = [n for n, r in zip(names, routes) if r == "unmatched"]
    kept = set(keep)
    repeated = [n for i, (n, r) in enumerate(zip(names, routes)) if r != "unmatched" and i not in kept]
    if unmatched or repeated:
        notes = [f"{len(unmatched)} match no vocabulary gene (e.g. {unmatched[:3]})" if unmatched else "",
                 f"{len(repeated)} name a gene another column gives (e.g. {repeated[:3]})" if repeated else ""]
        warnings.warn(f"{len(unmatched) + len(repeated)} of {len(names)} effect columns are left out: "
                      + "; ".join(n for n in notes if n), stacklevel=2)
    table = effects.iloc[:, keep]
    return table.set_axis([targets[i] for i in keep], axis=1)


def long_effects(effects: pd.DataFrame | pd.Series) -> pd.Series:
    """Gene effects as a Series indexed by (cell_line, gene): from a cell lines x genes
    DataFrame (DepMap layout) or an already (cell_line, gene)-indexed Series. Values that
    are not numbers are an error; missing ones are left out with a warning."""
    if isinstance(effects, pd.DataFrame):
        check_unique_ids(effects.index, "gene effects")
        series = effects.stack(future_stack=True)
    elif isinstance(effects, pd.Series) and effects.index.nlevels == 2:
        series = effects
    else:
        raise ValueError("effects must be a cell lines x genes DataFrame or a Series indexed by (cell_line, gene)")
    series = numeric_column(series, "the gene effects")
    missing = series.isna()
    if missing.any():
        warnings.warn(f"{int(missing.sum())} of {len(series)} (cell line, gene) effects are missing and left out",
                      stacklevel=2)
        series = series[~missing]
    series.index = pd.MultiIndex.from_arrays(
        [series.index.get_level_values(0).astype(str), series.index.get_level_values(1).astype(str)], names=["cell_line", "gene"]
    )
    if series.index.duplicated().any():
        raise ValueError(f"the gene effects repeat (cell line, gene) pairs, e.g. {list(series.index[series.index.duplicated()][:3])}; "
                         "keep one value per pair")
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
    dict of such; effects: cell lines x genes or a (cell_line, gene) Series. An MLP
    (``hidden`` layer sizes, at most ``max_iter`` epochs with early stopping, L2 ``alpha``)
    is cross-validated over ``n_splits`` folds grouped by cell line; ``seed`` fixes folds
    and networks.

    Metrics: ``mean_pcc`` (Pearson r across genes per held-out cell line, averaged),
    ``pooled_pcc``; ``*_overall`` from the pooled held-out predictions. Pairs in the effects
    but not in every feature set are left out with a warning."""
    check_settings(n_splits=n_splits, hidden=hidden, max_iter=max_iter)
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
    if len(index) < len(target):
        warnings.warn(f"{len(target) - len(index)} of {len(target)} (cell line, gene) effects have no features and are "
                      f"left out (e.g. {list(target.index[~target.index.isin(index)][:2])})", stacklevel=2)
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


def run(data: Any, model: Any, effects: pd.DataFrame, *, include: Sequence[str] = FEATURE_SETS,
        runtime: Runtime | None = None, **settings: Any) -> TaskResult:
    """End to end: the gene effect table (cell lines x genes by any ID) matched to the
    data's cell lines (raw or a DataSpec) and to the model's vocabulary, restricted to the
    genes every sample measures (the others are left out with a warning), both gene-level
    feature sets built, then :func:`evaluate` with ``settings`` (n_splits, hidden,
    max_iter, alpha, seed), provenance recorded."""
    from ..labels import match_samples
    from .common import check_folds
    from .features import gene_embedding_features, gene_logtpm_features, model_bundle, raw_logtpm_features

    spec = DataSpec.of(data)
    options = evaluate_settings(evaluate, settings)
    check_settings(n_splits=options["n_splits"], hidden=options["hidden"], max_iter=options["max_iter"])
    include = check_include(include)
    bundle = model_bundle(model)
    table = effects_by_vocabulary(effects, bundle)
    table = match_samples(table, samples_of(spec), what="gene effects", complete=False, id_length_option=False)
    effect = long_effects(table)  # values checked before the embedding pass
    logtpm = raw_logtpm_features(spec, bundle)
    genes = measured_genes(table, logtpm)
    effect = effect[effect.index.get_level_values("gene").isin(genes)]
    check_folds(options["n_splits"], effect.index.get_level_values("cell_line").nunique(), "cell lines with effects")
    sets = {}
    if "embedding" in include:
        sets["embedding"] = gene_embedding_features(spec, bundle, genes, runtime=runtime)
    if "raw_logtpm" in include:
        sets["raw_logtpm"] = gene_logtpm_features(logtpm, genes)
    return with_provenance(evaluate(sets, effect, **options), spec, bundle)


def measured_genes(effects: pd.DataFrame, logtpm: pd.DataFrame) -> list[str]:
    """The effect genes that every sample of the data measures (the columns of the complete
    log1p TPM baseline); the others are left out with a warning, none is an error."""
    measured = set(logtpm.columns)
    genes = [g for g in effects.columns if g in measured]
    if not genes:
        raise ValueError("no gene of the effects table is measured in every sample of the data")
    if len(genes) < effects.shape[1]:
        warnings.warn(f"{effects.shape[1] - len(genes)} of {effects.shape[1]} effect genes are not measured in every "
                      f"sample of the data and are left out (e.g. {[g for g in effects.columns if g not in measured][:3]})",
                      stacklevel=3)
    return genes


def figure(result: TaskResult):
    """Predicted vs observed gene effect per feature set."""
    from ..plotting import scatter_by_features

    return scatter_by_features(result, "value", "mean_pcc", "mean PCC")
