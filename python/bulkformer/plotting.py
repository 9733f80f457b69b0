"""Figures of the downstream tasks: confusion matrix, ROC, Kaplan-Meier, scatter.

Each ``plot_*`` draws on a given matplotlib Axes; :func:`plot_task_result` lays out the
figure of a whole :class:`bulkformer.tasks.TaskResult`. Uses the Agg backend when no
display is configured.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bulkformer.tasks.result import TaskResult


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


def _grid(n: int, size: float = 3.6):
    plt = _pyplot()
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def plot_task_result(result: "TaskResult"):
    """A matplotlib Figure summarising ``result``."""
    task = result.task
    pred = result.predictions
    if task == "classification":
        matrices = result.details["confusion_matrices"]
        fig, axes = _grid(len(matrices), size=4.2)
        for ax, (key, matrix) in zip(axes, matrices.items()):
            feat, head = key.split("/")
            f1 = result.metric("weighted_f1", features=feat, head=head)
            plot_confusion_matrix(ax, matrix, result.details["classes"], f"{key}\nweighted F1 {f1:.3f}")
    elif task == "prognosis":
        cox = pred[pred["head"] == "cox"]
        cox_sets = list(cox.groupby("features", sort=False))
        fig, axes = _grid(1 + len(cox_sets))
        roc = pred[pred["head"] == "random_forest"]
        for feat, rows in roc.groupby("features", sort=False):
            plot_roc(axes[0], rows["event"], rows["score"], str(feat))
        axes[0].set_title("alive/dead random forest (pooled folds)", fontsize=9)
        if roc.empty:
            axes[0].set_visible(False)
        for ax, (feat, rows) in zip(axes[1:], cox_sets):
            # KM of the held-out Cox risk split at its median: does the model separate outcomes?
            group = np.where(rows["score"] > rows["score"].median(), "high risk", "low risk")
            c_index = result.metric("c_index", features=feat, head="cox")
            plot_kaplan_meier(ax, rows["time"], rows["event"], group, f"Cox held-out risk, {feat} (C {c_index:.3f})")
    elif task == "gene_survival":
        genes = result.details["plotted_genes"]
        fig, axes = _grid(len(genes))
        for ax, gene in zip(axes, genes):
            rows = pred[pred["gene"] == gene]
            row = result.metrics.set_index("gene").loc[gene]
            plot_kaplan_meier(ax, rows["time"], rows["event"], rows["group"],
                              f"{gene}: HR {row['hazard_ratio']:.2f}, log-rank p {row['logrank_p']:.2g}")
    elif task == "imputation":
        methods = list(pd.unique(pred["features"]))
        fig, axes = _grid(len(methods) + 1)
        for ax, method in zip(axes, methods):
            rows = pred[pred["features"] == method]
            plot_scatter(ax, rows["true"], rows["pred"], f"{method}: r {result.metric('pearson', features=method):.3f}")
        deciles = result.details["by_decile"]
        ax = axes[len(methods)]
        for method, rows in deciles.groupby("features", sort=False):
            ax.plot(rows["decile"], rows["mae"], marker="o", label=str(method))
        ax.set_xlabel("decile of true expression")
        ax.set_ylabel("MAE")
        ax.legend(fontsize=8)
        ax.set_title("error by expression decile", fontsize=9)
    elif task in ("drug_response", "essentiality"):
        feats = list(pd.unique(pred["features"]))
        fig, axes = _grid(len(feats))
        for ax, feat in zip(axes, feats):
            rows = pred[pred["features"] == feat]
            plot_scatter(ax, rows["value"], rows["pred"], f"{feat}: mean PCC {result.metric('mean_pcc', features=feat):.3f}")
    else:
        raise ValueError(f"no plot for task {task!r}")
    fig.suptitle(task.replace("_", " "), fontsize=11)
    fig.tight_layout()
    return fig
