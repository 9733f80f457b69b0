"""Downstream tasks of the BulkFormer paper, each reported next to the same head on
plain log1p TPM.

    bulkformer.tasks.imputation.evaluate(observed, model=...)          # vs gene-mean, KNN
    bulkformer.tasks.classification.evaluate({"embedding": E, "raw_logtpm": X}, labels)
    bulkformer.tasks.prognosis.evaluate(feature_sets, survival)        # RF AUROC/AUPRC, Cox C-index
    bulkformer.tasks.prognosis.gene_hazard_ratios(expression, survival)
    bulkformer.tasks.drug_response.evaluate(feature_sets, drugs, responses)
    bulkformer.tasks.essentiality.evaluate(gene_feature_sets, effects)
    bulkformer.tasks.features.feature_sets(data, model)                # builds both sets
    bulkformer.labels.match_samples(labels, sample_ids)          # by sample ID, drops counted

Every ``evaluate`` returns a :class:`TaskResult` (``metrics``, ``per_fold``,
``predictions``; ``to_json``, ``plot``). Each task module also has ``run(data, model,
...)``, the task end to end from a data set (raw or a DataSpec): per-sample tables
matched by sample ID (``id_length``), both feature sets built, provenance recorded; and
``figure(result)``, its plot. ``registry.TASK_MODULES`` names the tasks
(``gene_survival``: :mod:`bulkformer.tasks.gene_survival`).
"""
from __future__ import annotations

import importlib
from typing import Any

from .result import TaskResult

TASKS = ("imputation", "classification", "prognosis", "drug_response", "essentiality")
_SUBMODULES = (*TASKS, "gene_survival", "features", "common", "result", "grouped_regression", "samples",
               "provenance", "registry")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'bulkformer.tasks' has no attribute {name!r}")


__all__ = ["TASKS", "TaskResult", *TASKS, "features"]
