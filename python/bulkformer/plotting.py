"""Figures of the downstream tasks: confusion matrix, ROC, Kaplan-Meier, scatter.

Each ``plot_*`` draws on a given matplotlib Axes; :func:`grid` and :func:`finish` frame a
figure. Each task module lays out its own figure (``figure(result)``, found through
:mod:`bulkformer.tasks.registry`). Uses the Agg backend when no display is configured.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo") and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def plot_confusion_matrix(ax, matrix: Any, labels: list[str], title: str = "") -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=labels).plot(ax=ax, colorbar=False, xticks_rotation=45)
    ax.set_title(title, fontsize=9)


def plot_roc(ax, y_true: Any, score: Any, label: str) -> None:
    from sklearn.metrics import RocCurveDisplay

    RocCurveDisplay.from_predictions(y_true, score, name=label, ax=ax)


def plot_kaplan_meier(ax, time: Any, event: Any, groups: Any, title: str = "") -> None:
    """One Kaplan-Meier curve per group (lifelines), with the group sizes in the legend."""
    from lifelines import KaplanMeierFitter

    time, event, groups = np.asarray(time, float), np.asarray(event, int), np.asarray(groups)
    for group in sorted(pd.unique(groups), key=str):  # fixed order: same colour per group across panels
        sel = groups == group
        KaplanMeierFitter(label=f"{group} (n={int(sel.sum())})").fit(time[sel], event[sel]).plot_survival_function(ax=ax)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")


def plot_scatter(ax, y_true: Any, y_pred: Any, title: str = "", max_points: int = 5000) -> None:
    """Predicted vs observed with the identity line (a random subset beyond ``max_points``)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if y_true.size > max_points:
        keep = np.random.default_rng(0).choice(y_true.size, size=max_points, replace=False)
        y_true, y_pred = y_true[keep], y_pred[keep]
    ax.scatter(y_true, y_pred, s=4, alpha=0.4)
    if y_true.size:
        lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("observed")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=9)


def grid(n: int, size: float = 3.6):
    """A figure with ``n`` panels, three to a row (the unused ones hidden): (figure, axes)."""
    plt = _pyplot()
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def finish(fig, task: str):
    """The task's title over the panels, laid out: the figure, ready to save."""
    fig.suptitle(task.replace("_", " "), fontsize=11)
    fig.tight_layout()
    return fig


def scatter_by_features(result: Any, true_col: str, metric: str, label: str):
    """One predicted-vs-observed panel per feature set (drug response, essentiality)."""
    pred = result.predictions
    feats = list(pd.unique(pred["features"]))
    fig, axes = grid(len(feats))
    for ax, feat in zip(axes, feats):
        rows = pred[pred["features"] == feat]
        plot_scatter(ax, rows[true_col], rows["pred"], f"{feat}: {label} {result.metric(metric, features=feat):.3f}")
    return finish(fig, result.task)
