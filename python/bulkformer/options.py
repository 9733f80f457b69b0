"""A public function's loose keywords -> its :class:`DataSpec` and :class:`Runtime`.

Public functions take ``data`` (raw or a DataSpec), ``runtime=`` and their own
arguments. For convenience, and for the spellings of earlier releases, they also take the
DataSpec's fields and the Runtime's settings as keywords (``embed(path, model,
input="tpm", batch_size=8)``); this module sorts them out in one place.
``gene_names=`` (the gene-ID column where ``genes=`` is a gene subset) is the one
deprecated spelling: it still works, with a DeprecationWarning naming ``DataSpec(genes=...)``.
"""
from __future__ import annotations

import warnings
from typing import Any

from .dataspec import DATA_FIELDS, DataSpec
from .errors import ArgumentError
from .runtime import RUNTIME_FIELDS, Runtime

DEPRECATED_GENE_COLUMN = "gene_names"


def data_spec(data: Any, options: dict[str, Any], *, genes_is_subset: bool = False,
              stacklevel: int = 3) -> DataSpec:
    """``data`` with the data fields of ``options`` (removed from it) laid over it. Where the
    function's own ``genes=`` is a gene subset, ``genes`` is not a data field there and the
    gene IDs come as ``gene_names=`` (deprecated) or on the DataSpec."""
    given: dict[str, Any] = {}
    for name in DATA_FIELDS:
        if name == "genes" and genes_is_subset:
            continue
        if name in options:
            given[name] = options.pop(name)
    if DEPRECATED_GENE_COLUMN in options:
        value = options.pop(DEPRECATED_GENE_COLUMN)
        if value is not None:
            warnings.warn("gene_names= is deprecated: describe the gene IDs on the data, "
                          "DataSpec(data, genes=...)" + ("" if genes_is_subset else ", or pass genes=..."),
                          DeprecationWarning, stacklevel=stacklevel)
            given["genes"] = value
    return DataSpec.of(data, **given)


def runtime_of(runtime: Runtime | None, options: dict[str, Any]) -> Runtime:
    """``runtime`` with the run settings of ``options`` (removed from it) laid over it."""
    loose = {name: options.pop(name) for name in RUNTIME_FIELDS if name in options}
    return Runtime.of(runtime, **loose)


def check_no_options(options: dict[str, Any], function: str) -> None:
    """Whatever is left in ``options`` is an argument ``function`` does not take: the same
    :class:`ArgumentError` as :func:`bulkformer.errors.call` raises for a function without
    ``**options`` (front ends word it from its fields)."""
    if options:
        name = sorted(options)[0]
        raise ArgumentError(f"unknown argument {name!r}", argument=name, value=options[name], joiner="; ",
                            fix="see the function's help page for its arguments")


def split(data: Any, runtime: Runtime | None, options: dict[str, Any], function: str, *,
          genes_is_subset: bool = False) -> tuple[DataSpec, Runtime]:
    """The DataSpec and Runtime of one call; unknown keywords are an :class:`ArgumentError`."""
    options = dict(options)
    spec = data_spec(data, options, genes_is_subset=genes_is_subset, stacklevel=4)
    run = runtime_of(runtime, options)
    check_no_options(options, function)
    return spec, run
