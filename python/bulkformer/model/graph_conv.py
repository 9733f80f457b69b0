"""The gene-gene graph convolution in the published message direction.

The module is torch-geometric's GCNConv (its keys are the checkpoint's). Its message
passing materialises one d-vector per edge and sample (20 edges per gene: 20x the
hidden state, ~8 GB for a batch of 8 at 147M); :func:`sparse_graph_conv` computes the
same output as one CSR matmul with the normalisation precomputed, forward and backward.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch_geometric.nn.conv import GCNConv

from .autocast import no_autocast


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


def supports_sparse_matmul(device: torch.device) -> bool:
    """Sparse CSR x dense matmul (with autograd) exists on CPU and CUDA, not on MPS."""
    return device.type in ("cpu", "cuda")


def normalised_adjacency(
    edge_index: torch.Tensor, edge_weight: torch.Tensor | None, n_genes: int, *, transposed: bool = False
) -> torch.Tensor:
    """G x G CSR matrix A with ``out = A @ h`` equal to GCNConv(normalize=True,
    add_self_loops=False) in the published direction: gene ``E[0, e]`` receives
    from ``E[1, e]`` with weight ``w[e] / sqrt(deg[E[0, e]] * deg[E[1, e]])``, where
    deg is the weighted in-degree (torch-geometric ``gcn_norm``; inf -> 0).
    ``transposed``: A^T instead (the same entries, rows and columns swapped)."""
    receiver, sender = edge_index[0].long(), edge_index[1].long()
    weight = (
        torch.ones(receiver.shape[0], dtype=torch.float32, device=receiver.device)
        if edge_weight is None else edge_weight.float()
    )
    degree = torch.zeros(n_genes, dtype=torch.float32, device=receiver.device).index_add_(0, receiver, weight)
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt.masked_fill_(inv_sqrt == float("inf"), 0.0)
    values = inv_sqrt[receiver] * weight * inv_sqrt[sender]
    rows, columns = (sender, receiver) if transposed else (receiver, sender)
    coo = torch.sparse_coo_tensor(
        torch.stack([rows, columns]), values, (n_genes, n_genes), check_invariants=False
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return coo.coalesce().to_sparse_csr()


@dataclass(frozen=True)
class SparseGraph:
    """The normalised adjacency A (CSR) and its transpose. Training needs A^T in every
    backward pass; torch's CSR matmul derives it anew each time (a sort of all edges,
    as long as the product itself), so it is built once here."""

    matrix: torch.Tensor
    transpose: torch.Tensor

    @classmethod
    def build(cls, edge_index: torch.Tensor, edge_weight: torch.Tensor | None, n_genes: int) -> SparseGraph:
        return cls(normalised_adjacency(edge_index, edge_weight, n_genes),
                   normalised_adjacency(edge_index, edge_weight, n_genes, transposed=True))

    @property
    def device(self) -> torch.device:
        return self.matrix.device


class _Propagate(torch.autograd.Function):
    """``A @ dense`` differentiable in ``dense`` only (the graph is fixed): the backward
    multiplies by the precomputed A^T."""

    @staticmethod
    def forward(ctx, dense: torch.Tensor, graph: SparseGraph) -> torch.Tensor:  # type: ignore[override]
        ctx.graph = graph
        return torch.sparse.mm(graph.matrix, dense)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return torch.sparse.mm(ctx.graph.transpose, grad.contiguous()), None


def sparse_graph_conv(conv: GCNConv, h: torch.Tensor, graph: SparseGraph) -> torch.Tensor:
    """``conv(h)`` for B x G x d ``h`` as ``A @ (h W^T) + b`` over all samples at once
    (differentiable; the matmul runs in fp32 even under autocast)."""
    batch, n_genes, _ = h.shape
    transformed = conv.lin(h)
    width = transformed.shape[-1]
    stacked = transformed.float().transpose(0, 1).reshape(n_genes, batch * width)
    with no_autocast(h.device):
        mixed = _Propagate.apply(stacked, graph)
    mixed = mixed.reshape(n_genes, batch, width).transpose(0, 1)
    if conv.bias is not None:
        mixed = mixed + conv.bias
    return mixed.to(h.dtype)
