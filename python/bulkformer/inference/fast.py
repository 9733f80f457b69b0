"""The engine's default forward: each layout's fast inference path (declared by its
module in ``bulkformer.model.layouts``; shared pieces in ``model.fast_performer``)."""
from __future__ import annotations

from ..model import BulkFormer
from ..model.fast_performer import FastOutput, FastPath
from ..model.graph_conv import normalised_adjacency


def FastBulkFormer(model: BulkFormer, *, gene_chunk: int | None = None, per_sample: bool = False) -> FastPath:  # noqa: N802
    """The model's layout's fast path (eval mode, no grad): build once per run, call per
    batch as ``forward(x, mask_prob, want_expr=..., feature_index=...)``."""
    return model.fast_path(gene_chunk=gene_chunk, per_sample=per_sample)


__all__ = ["FastBulkFormer", "FastOutput", "FastPath", "normalised_adjacency"]
