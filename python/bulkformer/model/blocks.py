"""One BulkFormer encoder block: layer norm, graph convolution, optional expression
bins, then a stack of Performer layers."""
from __future__ import annotations

import torch
from performer_pytorch import Performer
from torch import nn

from .graph_conv import SparseGraph, gene_graph_conv, sparse_graph_conv


def performer_layer(dim: int, heads: int, attn_dropout: float, ff_dropout: float) -> Performer:
    """A one-layer performer-pytorch stack, exactly as the release builds it."""
    return Performer(dim=dim, heads=heads, depth=1, dim_head=dim // heads, attn_dropout=attn_dropout, ff_dropout=ff_dropout)


class BulkFormerBlock(nn.Module):
    """``h = LN(h); h = h + GCN(h); [bins]; h = Performer stack(h)``.

    Attribute names are the checkpoint's: ``layernorm``, ``g``, ``which_b`` (v1 only,
    present even with bins = 0), ``b`` (one Performer per bin), ``f``.
    """

    def __init__(
        self,
        dim: int,
        full_head: int,
        p_repeat: int,
        bins: int = 0,
        bin_head: int = 12,
        with_bin_selector: bool = False,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if bins and not with_bin_selector:
            raise ValueError("expression bins need the bin selector (which_b)")
        self.bins = bins
        self.g = gene_graph_conv(dim)
        if with_bin_selector:
            self.which_b = nn.Sequential(nn.Linear(dim, 1))
        if bins:
            self.b = nn.ModuleList(performer_layer(dim, bin_head, attn_dropout, ff_dropout) for _ in range(bins))
        self.f = nn.Sequential(*(performer_layer(dim, full_head, attn_dropout, ff_dropout) for _ in range(p_repeat)))
        self.layernorm = nn.LayerNorm(dim)

    def forward(
        self,
        h: torch.Tensor,
        source_target: torch.Tensor,
        edge_weight: torch.Tensor | None,
        adjacency: SparseGraph | None = None,
    ) -> torch.Tensor:
        """``adjacency``: the normalised CSR graph; given, the GCN runs as one sparse
        matmul, otherwise as torch-geometric message passing over ``source_target``."""
        h = self.layernorm(h)
        if adjacency is None:
            h = h + self.g(h, source_target, edge_weight)
        else:
            h = h + sparse_graph_conv(self.g, h, adjacency)
        if self.bins:
            h = self._through_bins(h)
        return self.f(h)

    def _through_bins(self, h: torch.Tensor) -> torch.Tensor:
        """Sort genes by a learned score, attend within equal-size chunks, unsort."""
        n_genes, width = h.shape[1], h.shape[2]
        order = torch.sort(self.which_b(h).squeeze(-1), dim=1, descending=True)[1]
        order = order.unsqueeze(-1).expand(-1, -1, width)
        chunk = (n_genes - 1) // self.bins + 1
        chunks = torch.split(h.gather(1, order), chunk, dim=1)
        sorted_out = torch.cat([layer(part) for part, layer in zip(chunks, self.b)], dim=1)
        return torch.empty_like(sorted_out).scatter_(1, order, sorted_out)
