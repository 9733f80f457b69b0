"""Sample classification (disease, tissue, cancer type): the paper's protocol.

PCA of the sample features -> random forest, stratified k-fold CV (10 by default),
weighted F1, accuracy, macro F1 and a confusion matrix; logistic regression as a
second head. PCA and scaling are fitted inside each training fold.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .common import (as_feature_sets, check_folds, check_pca_head_settings, on_samples, run_heads, shared_samples,
                     summarise_folds)
from ..labels import as_label_series, class_labels, match_samples
from .result import TaskResult
from ..dataspec import DataSpec
from ..runtime import Runtime
from .common import evaluate_settings
from .features import FEATURE_SETS, check_include
from .provenance import with_provenance
from .samples import cut_series, feature_sets_for, samples_of

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


def check_settings(*, n_splits: int, n_components: int, n_estimators: int, heads: Sequence[str] = HEADS) -> None:
    """The settings alone, before any data is read (the CLI runs this before embedding)."""
    check_pca_head_settings(n_splits=n_splits, n_components=n_components, n_estimators=n_estimators, heads=heads,
                            known=HEADS)


def check_labels(labels: pd.Series, n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """(label per sample as text, classes) of labels already matched to the samples:
    at least 2 classes, each with a member in every fold."""
    y, _ = class_labels(labels, numeric_hint="; bin it into groups first (e.g. pandas.qcut) to classify it")
    classes, counts = np.unique(y, return_counts=True)
    check_folds(n_splits, int(counts.min()), f"samples in the smallest class ({classes[counts.argmin()]!r})")
    return y, classes


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
    labels: class per sample: a Series indexed by sample ID (matched by ID, never by row
        order), or a sequence in the features' row order. Samples without a label are left
        out with a warning (``bulkformer.labels.match_samples``).
    Classes with fewer members than ``n_splits`` are an error (stratification needs them).
    heads: "random_forest" (``n_estimators`` trees) and/or "logistic_regression", each after
        scaling and PCA to ``n_components`` (capped by the training samples and features).
    n_splits: stratified folds; ``seed`` fixes folds, PCA and forest.
    ``predictions`` has one row per held-out sample and head: ``y_true``, ``y_pred`` and a
    probability column ``p_<class>`` per class.
    """
    check_settings(n_splits=n_splits, n_components=n_components, n_estimators=n_estimators, heads=heads)
    sets = as_feature_sets(features)
    labels = match_samples(as_label_series(labels), shared_samples(sets), what="labels")
    index = labels.index
    y, classes = check_labels(labels, n_splits)
    sets = {name: on_samples(frame, index) for name, frame in sets.items()}

    folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    n_train = min(len(train) for train, _ in folds)

    def fit_predict(model: Pipeline, X: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
        model.fit(X[train], y[train])
        pred = model.predict(X[test])
        # held-out class probabilities, one column per class (classes a fold's training
        # part lacks get 0), so that AUROC and calibration can be computed afterwards
        proba = np.zeros((len(test), len(classes)))
        proba[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(X[test])
        return {
            "test": test,
            "pred": pred,
            "proba": proba,
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

    per_fold = pd.DataFrame([{k: v for k, v in o.items() if k not in ("test", "pred", "proba")} for o in outputs])
    predictions = pd.concat(
        [
            pd.DataFrame({"features": o["features"], "head": o["head"], "fold": o["fold"],
                          "sample": index[o["test"]].astype(str), "y_true": y[o["test"]], "y_pred": o["pred"],
                          **{f"p_{c}": o["proba"][:, i] for i, c in enumerate(classes)}})
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
    metrics["n_features"] = metrics["features"].map({name: frame.shape[1] for name, frame in sets.items()})
    return TaskResult(
        task="classification",
        metrics=metrics,
        per_fold=per_fold,
        predictions=predictions,
        details={"classes": classes.tolist(), "confusion_matrices": confusion},
        params={"n_splits": n_splits, "n_components": n_components, "n_estimators": n_estimators,
                "seed": seed, "heads": list(heads), "feature_sets": list(sets)},
    )


def run(data: Any, model: Any, labels: pd.Series, *, id_length: int | None = None,
        include: Sequence[str] = FEATURE_SETS, aggregate: str | None = None, runtime: Runtime | None = None,
        **settings: Any) -> TaskResult:
    """End to end: ``labels`` (a Series indexed by sample ID) matched to the data's samples
    (raw or a :class:`~bulkformer.dataspec.DataSpec`; on the first ``id_length``
    characters of the IDs when given), the feature sets ``include`` built for the matched
    samples, then :func:`evaluate` with ``settings`` (its keywords), provenance recorded.
    Everything that can fail on the inputs is checked before the embedding pass."""
    spec = DataSpec.of(data)
    options = evaluate_settings(evaluate, settings)
    check_settings(n_splits=options["n_splits"], n_components=options["n_components"],
                   n_estimators=options["n_estimators"], heads=options["heads"])
    include = check_include(include)
    target = cut_series(as_label_series(labels), id_length)
    target = match_samples(target, samples_of(spec, id_length), what="labels")
    check_labels(target, options["n_splits"])
    sets = feature_sets_for(spec, model, target.index, include=include, aggregate=aggregate, runtime=runtime,
                            id_length=id_length)
    return with_provenance(evaluate(sets, target, **options), spec, model)


def figure(result: TaskResult):
    """One confusion matrix per (features, head), with its weighted F1."""
    from ..plotting import finish, grid, plot_confusion_matrix

    matrices = result.details["confusion_matrices"]
    fig, axes = grid(len(matrices), size=4.2)
    for ax, (key, matrix) in zip(axes, matrices.items()):
        feat, head = key.split("/")
        f1 = result.metric("weighted_f1", features=feat, head=head)
        plot_confusion_matrix(ax, matrix, result.details["classes"], f"{key}\nweighted F1 {f1:.3f}")
    return finish(fig, result.task)
