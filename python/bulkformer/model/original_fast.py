"""The fast inference path of the original layouts (v1, v2): see ``fast_performer``."""
from __future__ import annotations

from typing import Any  # an original.OriginalBulkFormer (which imports this module)

import torch

from .fast_performer import FastOutput, FastPath, LayerWeights, chunked_layernorm_, performer_layer_
from .graph_conv import sparse_graph_conv


class FastOriginal(FastPath):
    """Cached gene tokens and graph, chunked FAVOR+ layers, the head chunk by chunk."""

    model: Any

    def __init__(self, model: Any, *, gene_chunk: int | None = None, per_sample: bool = False) -> None:
        super().__init__(model, gene_chunk=gene_chunk, per_sample=per_sample)
        with torch.inference_mode():
            self.gene_tokens = model.gene_tokens().float()
            self.adjacency = model.graph_adjacency()  # None (MPS): the GCNConv module runs
            self.blocks = [LayerWeights.from_performer_stack(block.f) for block in model.gb_formers]

    def _forward(self, x: torch.Tensor, mask_prob, want_expr: bool, feature_index: torch.Tensor | None) -> FastOutput:
        model = self.model
        h = self._embed(x)
        chunks = self.chunks(h.shape[1])
        for block, layers in zip(model.gb_formers, self.blocks):
            if self.adjacency is None:
                h = block.layernorm(h)
                h = h + block.g(h, model.graph_source_target, model.graph_edge_weight)
            else:
                chunked_layernorm_(block.layernorm, h, chunks)
                for i in range(h.shape[0]):  # one sample at a time: G x d temporaries only
                    h[i:i + 1] += sparse_graph_conv(block.g, h[i:i + 1], self.adjacency)
            if block.bins:
                h = block._through_bins(h)  # v1 expression bins: module path
            for layer in layers:
                performer_layer_(h, layer, chunks)
        context = model.head_context(x, mask_prob)
        out = self.outputs(
            x, h, want_expr, feature_index,
            features_of=lambda part: model.head_input(model.layernorm(part), context),
            predict=lambda z: model.head(z).squeeze(-1),
        )
        if want_expr:
            out.expr = model.finish_prediction(out.expr, x)
        return out

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        context = model.sample_context(x).unsqueeze(1)
        out = None
        for part in self.chunks(x.shape[1]):
            piece = model.x_proj(model.expr_emb(x[:, part]) + self.gene_tokens[part] + context)
            if out is None:
                # the residual stream stays fp32 under autocast; only the GEMMs take its precision
                out = torch.empty(x.shape[0], x.shape[1], piece.shape[-1], dtype=torch.float32, device=piece.device)
            out[:, part] = piece
        return out
