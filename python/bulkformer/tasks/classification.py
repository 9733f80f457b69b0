"""Sample classification (disease, tissue, cancer type): the paper's protocol.

PCA of the sample features -> random forest, stratified k-fold CV (10 by default),
weighted F1, accuracy, macro F1 and a confusion matrix; logistic regression as a
second head. PCA and scaling are fitted inside each training fold.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .common import as_feature_sets, check_folds, run_heads, summarise_folds
from .result import TaskResult

HEADS = ("random_forest", "logistic_regression")


def _pca(n_components: int, n_train: int, n_features: int, seed: int) -> PCA:
    return PCA(n_components=max(1, min(n_components, n_train - 1, n_features)), random_state=seed)


def make_head(name: str, *, n_components: int, n_train: int, n_features: int, n_estimators: int, seed: int) -> Pipeline:
    """scaler -> PCA -> classifier; the same pipeline for every feature set."""
    pca = _pca(n_components, n_train, n_features, seed)
    if name == "random_forest":
        clf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    elif name == "logistic_regression":
        clf = LogisticRegression(max_iter=2000)
    else:
        raise ValueError(f"unknown head {name!r}; choose from {HEADS}")
    return Pipeline([("scale", StandardScaler()), ("pca", pca), ("clf", clf)])


def common_samples(sets: Mapping[str, pd.DataFrame], labels: pd.Series) -> pd.Index:
    """Samples present in every feature set and labelled: the folds are identical across sets."""
    index = labels.dropna().index
    for frame in sets.values():
        index = index.intersection(frame.index, sort=False)
    if len(index) == 0:
        first = next(iter(sets.values()))
        raise ValueError(
            f"no sample is in both the features (e.g. {list(first.index[:3])}) and the labels "
            f"(e.g. {list(labels.index[:3])}); index both by the same sample IDs"
        )
    return index


def evaluate(
    features: pd.DataFrame | Mapping[str, pd.DataFrame],
    labels: pd.Series | Sequence,
    *,
    heads: Sequence[str] = HEADS,
    n_splits: int = 10,
    n_components: int = 64,
    n_estimators: int = 500,
    seed: int = 0,
) -> TaskResult:
    """Cross-validated classification of ``labels`` from each feature set.

    features: samples x features DataFrame, or a dict name -> DataFrame (e.g.
        ``{"embedding": ..., "raw_logtpm": ...}``, see ``bulkformer.tasks.features``).
    labels: class per sample (Series indexed like the features, or a sequence in row order).
    Classes with fewer members than ``n_splits`` are an error (stratification needs them).
    """
    sets = as_feature_sets(features)
    if not isinstance(labels, pd.Series):
        first = next(iter(sets.values()))
        if len(labels) != len(first):
            raise ValueError(f"labels has {len(labels)} entries but the features have {len(first)} rows")
        labels = pd.Series(list(labels), index=first.index)
    index = common_samples(sets, labels)
    y = labels.loc[index].astype(str).to_numpy()
    sets = {name: frame.loc[index] for name, frame in sets.items()}
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"classification needs at least 2 classes, got {list(classes)}")
    check_folds(n_splits, int(counts.min()), f"samples in the smallest class ({classes[counts.argmin()]!r})")
    for head in heads:
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose from {HEADS}")

    folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    n_train = min(len(train) for train, _ in folds)

    def fit_predict(model: Pipeline, X: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
        model.fit(X[train], y[train])
        pred = model.predict(X[test])
        return {
            "test": test,
            "pred": pred,
            "accuracy": accuracy_score(y[test], pred),
            "weighted_f1": f1_score(y[test], pred, average="weighted", labels=classes, zero_division=0),
            "macro_f1": f1_score(y[test], pred, average="macro", labels=classes, zero_division=0),
        }

    outputs = []
    for name, frame in sets.items():
        factories = {
            head: (lambda head=head, n_features=frame.shape[1]: make_head(
                head, n_components=n_components, n_train=n_train, n_features=n_features,
                n_estimators=n_estimators, seed=seed))
            for head in heads
        }
        outputs += run_heads({name: frame}, factories, folds, fit_predict)

    per_fold = pd.DataFrame([{k: v for k, v in o.items() if k not in ("test", "pred")} for o in outputs])
    predictions = pd.concat(
        [
            pd.DataFrame({"features": o["features"], "head": o["head"], "fold": o["fold"],
                          "sample": index[o["test"]].astype(str), "y_true": y[o["test"]], "y_pred": o["pred"]})
            for o in outputs
        ],
        ignore_index=True,
    )
    # Pooled held-out predictions: one confusion matrix per (features, head).
    confusion = {}
    for (feat, head), rows in predictions.groupby(["features", "head"], sort=False):
        confusion[f"{feat}/{head}"] = confusion_matrix(rows["y_true"], rows["y_pred"], labels=classes).tolist()
    metrics = summarise_folds(per_fold)
    metrics["n_samples"] = len(y)
    return TaskResult(
        task="classification",
        metrics=metrics,
        per_fold=per_fold,
        predictions=predictions,
        details={"classes": classes.tolist(), "confusion_matrices": confusion},
        params={"n_splits": n_splits, "n_components": n_components, "n_estimators": n_estimators,
                "seed": seed, "heads": list(heads), "feature_sets": list(sets)},
    )
