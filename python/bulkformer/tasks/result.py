"""TaskResult: what every downstream task returns (metrics, per-fold values, predictions)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_file
from ..json_safe import json_safe


def check_plot_path(path: str | os.PathLike) -> str:
    """The figure format named by the path's suffix (.png, .pdf, .svg, ...; none: png);
    an unknown one is an error, raised before any work is done."""
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise ValueError(f"cannot tell the figure format of {path}: end the name in one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return suffix


@dataclass
class TaskResult:
    """Outcome of one downstream task, for every feature set and head.

    metrics: one row per (features, head) with the task's summary metrics (means over
        folds unless the column says otherwise), plus ``n_samples``.
    per_fold: one row per (features, head, fold) with the same metrics per fold.
    predictions: held-out predictions, one row per (features, head, sample[, item]).
    details: task-specific extras (confusion matrices, deciles, hazard ratios, ...).
    params: the settings that produced the result (folds, seed, heads, ...).
    """

    task: str
    metrics: pd.DataFrame
    per_fold: pd.DataFrame
    predictions: pd.DataFrame
    details: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str, features: str | None = None, head: str | None = None) -> float:
        """One summary metric; ``features``/``head`` may be omitted when unambiguous."""
        rows = self.metrics
        if features is not None:
            rows = rows[rows["features"] == features]
        if head is not None:
            rows = rows[rows["head"] == head]
        if name not in rows.columns:
            raise KeyError(f"no metric {name!r}; available: {[c for c in rows.columns if c not in ('features', 'head')]}")
        if len(rows) != 1:
            raise ValueError(
                f"{len(rows)} rows match features={features!r}, head={head!r}; name both to pick one "
                f"(features: {sorted(self.metrics['features'].unique())}, heads: {sorted(self.metrics['head'].unique())})"
            )
        return float(rows[name].iloc[0])

    def summary_lines(self, metrics: list[str] | None = None) -> list[str]:
        """``task=<t> features=<f> head=<h> key=value ...`` per metrics row (benchmark style)."""
        lines = []
        for _, row in self.metrics.iterrows():
            keys = metrics or [c for c in self.metrics.columns if c not in ("features", "head")]
            values = " ".join(f"{k}={row[k]:.4f}" if isinstance(row[k], (float, np.floating)) else f"{k}={row[k]}" for k in keys if k in row)
            lines.append(f"task={self.task} features={row['features']} head={row['head']} {values}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "task": self.task,
            "params": self.params,
            "metrics": self.metrics,
            "per_fold": self.per_fold,
            "predictions": self.predictions,
            "details": self.details,
        })

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the whole result as JSON (atomically)."""
        payload = json.dumps(self.to_dict(), indent=1)
        with atomic_file(path) as staging:
            staging.write_text(payload)
        return Path(path)

    def plot(self, path: str | os.PathLike) -> Path:
        """Write the task's figure (confusion matrices, ROC + Kaplan-Meier, scatter, ...)
        to ``path`` (format from the suffix: .png, .pdf, .svg)."""
        from .registry import figure

        fmt = check_plot_path(path)
        fig = figure(self)
        try:
            with atomic_file(path) as staging:
                fig.savefig(staging, dpi=110, bbox_inches="tight", format=fmt)
            return Path(path)
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)

    def __repr__(self) -> str:
        return f"TaskResult(task={self.task!r})\n{self.metrics.to_string(index=False)}"
