"""TaskResult: strict JSON, plots for every task, metric lookup."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bulkformer.tasks import classification, prognosis
from bulkformer.tasks.result import TaskResult


def small_result() -> TaskResult:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 5)), index=[f"s{i}" for i in range(30)])
    y = pd.Series(np.repeat(["a", "b", "c"], 10), index=X.index)
    X.loc[y == "a", 0] += 4
    return classification.evaluate({"x": X, "x_copy": X.copy()}, y, n_splits=3, n_estimators=10, n_components=3)


def test_json_is_strict_and_complete(tmp_path):
    result = small_result()
    result.metrics.loc[0, "accuracy_sd"] = np.nan
    path = result.to_json(tmp_path / "out" / "result.json")
    text = path.read_text()
    assert "NaN" not in text
    payload = json.loads(text)
    assert payload["task"] == "classification"
    assert payload["metrics"][0]["accuracy_sd"] is None
    assert len(payload["predictions"]) == 2 * 2 * 30
    assert payload["params"]["n_splits"] == 3
    assert math.isclose(payload["metrics"][1]["weighted_f1"], result.metrics["weighted_f1"].iloc[1])
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary leftovers


def test_metric_lookup_and_summary_lines():
    result = small_result()
    with pytest.raises(ValueError, match="name both"):
        result.metric("accuracy")
    with pytest.raises(KeyError, match="no metric"):
        result.metric("auroc", "x", "random_forest")
    lines = result.summary_lines(["weighted_f1"])
    assert lines[0].startswith("task=classification features=x head=random_forest weighted_f1=")


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_plots_are_written(tmp_path, suffix):
    result = small_result()
    path = result.plot(tmp_path / f"cm.{suffix}")
    assert path.stat().st_size > 1000
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(40, 4)), index=[f"s{i}" for i in range(40)])
    surv = pd.DataFrame({"OS.time": rng.exponential(100, 40) + 1, "OS": np.tile([0, 1], 20)}, index=X.index)
    prog = prognosis.evaluate(X, surv, n_splits=2, n_estimators=5, n_components=2)
    assert prog.plot(tmp_path / f"prognosis.{suffix}").stat().st_size > 1000


def test_every_listed_task_module_imports():
    """tasks.__all__ listed a 'labels' submodule that had moved to bulkformer.labels:
    `from bulkformer.tasks import *` raised ModuleNotFoundError."""
    import importlib

    tasks = importlib.import_module("bulkformer.tasks")
    for name in tasks.__all__:
        assert getattr(tasks, name) is not None, name
    namespace: dict = {}
    exec("from bulkformer.tasks import *", namespace)
    assert "prognosis" in namespace
