"""From the user's data to the aligned matrix the model reads (via the DataSpec)."""
from __future__ import annotations

from typing import Any

from ..bundle import Bundle
from ..dataspec import DataSpec


def is_prepared(data: Any) -> bool:
    """An already aligned ``PreparedInput`` (or an object with the same fields)."""
    return all(hasattr(data, name) for name in ("values", "measured", "sample_ids", "gene_ids", "mask_prob", "report"))


def prepare_for(data: Any, bundle: Bundle, **fields: Any):
    """``data`` (raw, or a :class:`DataSpec`; ``fields`` override its settings) prepared
    against the bundle's vocabulary; an aligned input (a ``PreparedInput``, bare or as a
    DataSpec's source) passes through unchanged."""
    spec = DataSpec.of(data, **fields)
    if is_prepared(spec.source):
        if list(spec.source.gene_ids) != bundle.gene_ids:
            raise ValueError("the prepared input was aligned to another vocabulary than this model's; "
                             "prepare it again with prepare(data, bundle)")
        return spec.source
    return spec.prepare(bundle)
