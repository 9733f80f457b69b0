"""From the user's data to the aligned matrix the model reads (via ``prepare``)."""
from __future__ import annotations

from typing import Any

from ..bundle import Bundle


def is_prepared(data: Any) -> bool:
    """An already aligned ``PreparedInput`` (or an object with the same fields)."""
    return all(hasattr(data, name) for name in ("values", "measured", "sample_ids", "gene_ids", "mask_prob", "report"))


def prepare_for(
    data: Any,
    bundle: Bundle,
    *,
    input: str = "counts",
    gene_names=None,
    samples=None,
    orientation: str = "samples_by_genes",
    lengths=None,
    layer: str | None = None,
    min_matched_fraction: float = 0.5,
):
    """``bulkformer.preprocess.prepare`` against the bundle's vocabulary; the
    aligned input passes through unchanged when ``data`` is already prepared."""
    if is_prepared(data):
        if list(data.gene_ids) != bundle.gene_ids:
            raise ValueError("the prepared input was aligned to another vocabulary than this model's; "
                             "prepare it again with prepare(data, bundle)")
        return data
    from ..preprocess import prepare

    return prepare(data, bundle, input=input, genes=gene_names, samples=samples,
                   orientation=orientation, lengths=lengths, layer=layer, min_matched_fraction=min_matched_fraction)


