"""The downstream tasks by name: a new task is one module (``run``, ``evaluate``, ``figure``)
plus its entry here.

Modules are named, not imported, so that :class:`~bulkformer.tasks.result.TaskResult`
can find a result's figure without importing every task (the task modules import it).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ArgumentError

# task name (TaskResult.task) -> its module
TASK_MODULES: dict[str, str] = {
    "imputation": "bulkformer.tasks.imputation",
    "classification": "bulkformer.tasks.classification",
    "prognosis": "bulkformer.tasks.prognosis",
    "gene_survival": "bulkformer.tasks.gene_survival",
    "drug_response": "bulkformer.tasks.drug_response",
    "essentiality": "bulkformer.tasks.essentiality",
}


def task_module(name: str) -> ModuleType:
    """The module of task ``name``."""
    if name not in TASK_MODULES:
        raise ArgumentError(f"no task {name!r}", argument="task", value=name,
                            fix=f"the tasks are {', '.join(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name])


def figure(result) -> "object":
    """The matplotlib Figure of ``result`` (a TaskResult), drawn by its task's module."""
    module = task_module(result.task)
    if not hasattr(module, "figure"):
        raise ValueError(f"no plot for task {result.task!r}")
    return module.figure(result)
