"""BulkFormer: a foundation model of human bulk RNA-seq.

Public API (imported lazily so ``import bulkformer`` stays quick)::

    bulkformer.DataSpec(source, ...)      how to read a table (input kind, gene IDs, layer, ...)
    bulkformer.Runtime(device=, ...)      run settings (device, precision, batch size, progress)
    bulkformer.load(path)                 -> Bundle
    bulkformer.import_checkpoint(...)     -> Bundle   (official release -> bundle)
    bulkformer.prepare(data, vocabulary)  -> PreparedInput (aligned log1p TPM + mapping report)
    bulkformer.impute(data, model)        -> DataFrame | AnnData
    bulkformer.embed(data, model)         -> DataFrame | AnnData | gene-embedding store path
    bulkformer.build_graph(cohort)        -> GeneGraph
    bulkformer.simulate_cohort(...)       -> SimulatedCohort
    bulkformer.tiny_bundle(...)           -> Bundle   (random weights, for examples)
    bulkformer.pretrain(data, out)        -> PretrainResult
    bulkformer.BulkFormer, ModelConfig, preset, TaskResult

Fine-tuning is in :mod:`bulkformer.training` (``finetune``, ``load_finetuned``), the
downstream tasks in :mod:`bulkformer.tasks`.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.99.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Bundle": "bulkformer.bundle",
    "DataSpec": "bulkformer.dataspec",
    "Runtime": "bulkformer.runtime",
    "load": "bulkformer.bundle",
    "import_checkpoint": "bulkformer.convert",
    "BulkFormer": "bulkformer.model",
    "ModelConfig": "bulkformer.model",
    "preset": "bulkformer.model",
    "prepare": "bulkformer.preprocess",
    "simulate_cohort": "bulkformer.datasets",
    "tiny_bundle": "bulkformer.datasets",
    "pretrain": "bulkformer.training",
    "TaskResult": "bulkformer.tasks",
    "impute": "bulkformer.inference", "embed": "bulkformer.inference", "build_graph": "bulkformer.graph",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    # a subpackage, e.g. bulkformer.preprocess.map_genes right after `import bulkformer`
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'bulkformer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["__version__", *_EXPORTS]
