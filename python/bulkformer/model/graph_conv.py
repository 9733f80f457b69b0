"""The gene-gene graph convolution in the published message direction."""
from __future__ import annotations

import torch
from torch_geometric.nn.conv import GCNConv


def check_graph(edge_index: torch.Tensor, edge_weight: torch.Tensor | None, n_genes: int) -> None:
    """Raise a clear error for a graph that does not fit the vocabulary."""
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, n_edges), got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"edge_index must be an integer tensor, got {edge_index.dtype}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n_genes):
        raise ValueError(
            f"edge_index refers to gene {int(edge_index.max())} but the vocabulary has {n_genes} genes; "
            "was the graph built for another vocabulary?"
        )
    if edge_weight is not None and edge_weight.shape != (edge_index.shape[1],):
        raise ValueError(f"edge_weight must have shape ({edge_index.shape[1]},), got {tuple(edge_weight.shape)}")


def gene_graph_conv(dim: int) -> GCNConv:
    """GCNConv(d, d, add_self_loops=False, normalize=True) as published.

    Returned bare (not wrapped) so its keys stay ``g.lin.weight`` / ``g.bias``.
    """
    return GCNConv(dim, dim, cached=False, add_self_loops=False, normalize=True)


def to_source_target(edge_index_receiver_first: torch.Tensor) -> torch.Tensor:
    """Published receiver-first index -> torch-geometric's (source, target) order.

    The released graphs say gene ``E[0, e]`` receives from ``E[1, e]``; getting this
    backwards still runs and silently gives different numbers.
    """
    return edge_index_receiver_first.flip(0).contiguous().long()
