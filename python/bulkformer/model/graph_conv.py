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
    if edge_index.numel() and int(edge_index.min()) < 0:
        raise ValueError(f"edge_index holds a negative gene index ({int(edge_index.min())}); graph indices are "
                         f"positions 0..{n_genes - 1} in the vocabulary: the graph file is damaged")
    if edge_index.numel() and int(edge_index.max()) >= n_genes:
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


def to_source_target(edge_index: torch.Tensor, receiver_row: int = 0) -> torch.Tensor:
    """A stored edge index -> torch-geometric's (source, target) order.

    The v1/v2 graphs are receiver-first (gene ``E[0, e]`` receives from ``E[1, e]``,
    ``receiver_row=0``); bulkformer-latest stores (source, target) already
    (``receiver_row=1``). Getting this backwards still runs and silently gives
    different numbers.
    """
    ordered = edge_index.flip(0) if receiver_row == 0 else edge_index
    return ordered.contiguous().long()


def supports_sparse_matmul(device: torch.device) -> bool:
    """Sparse CSR x dense matmul (with autograd) exists on CPU and CUDA, not on MPS."""
    return device.type in ("cpu", "cuda")


def normalised_adjacency(
    edge_index: torch.Tensor, edge_weight: torch.Tensor | None, n_genes: int, *, transposed: bool = False,
    receiver_row: int = 0,
) -> torch.Tensor:
    """G x G CSR matrix A with ``out = A @ h`` equal to GCNConv(normalize=True,
    add_self_loops=False) in the published direction: gene ``E[0, e]`` receives
    from ``E[1, e]`` with weight ``w[e] / sqrt(deg[E[0, e]] * deg[E[1, e]])``, where
    deg is the weighted in-degree (torch-geometric ``gcn_norm``; inf -> 0).
    ``transposed``: A^T instead (the same entries, rows and columns swapped).
    ``receiver_row``: which row of ``edge_index`` holds the receiving gene (see
    :func:`to_source_target`)."""
    receiver, sender = edge_index[receiver_row].long(), edge_index[1 - receiver_row].long()
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


CsrParts = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # row pointers, column indices, values


def _csr_parts(matrix: torch.Tensor) -> CsrParts:
    # copies, not views: a view keeps the sparse tensor as its base, which compile cannot take either
    return matrix.crow_indices().clone(), matrix.col_indices().clone(), matrix.values().clone()


def _csr(parts: CsrParts) -> torch.Tensor:
    rows, columns, values = parts
    n_genes = rows.shape[0] - 1
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(rows, columns, values, (n_genes, n_genes), check_invariants=False)


@dataclass(frozen=True)
class SparseGraph:
    """The normalised adjacency A and its transpose as CSR parts. Training needs A^T in
    every backward pass; torch's CSR matmul derives it anew each time (a sort of all
    edges, as long as the product itself), so it is built once here. Kept as plain
    tensors, not sparse ones, so that ``torch.compile`` can trace the model: it cannot
    take sparse tensors as graph inputs."""

    parts: CsrParts
    transpose_parts: CsrParts

    @classmethod
    def build(cls, edge_index: torch.Tensor, edge_weight: torch.Tensor | None, n_genes: int,
              receiver_row: int = 0) -> SparseGraph:
        return cls(_csr_parts(normalised_adjacency(edge_index, edge_weight, n_genes, receiver_row=receiver_row)),
                   _csr_parts(normalised_adjacency(edge_index, edge_weight, n_genes, transposed=True,
                                                   receiver_row=receiver_row)))

    def transposed(self) -> SparseGraph:
        """The graph with every edge reversed (A^T as the forward matrix)."""
        return SparseGraph(self.transpose_parts, self.parts)

    @property
    def device(self) -> torch.device:
        return self.parts[2].device


@torch.library.custom_op("bulkformer::propagate", mutates_args=())
def propagate(dense: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, values: torch.Tensor,
              t_rows: torch.Tensor, t_columns: torch.Tensor, t_values: torch.Tensor) -> torch.Tensor:
    """``A @ dense`` in fp32, A given by its CSR parts (``t_*``: those of A^T, which the
    backward multiplies by). A registered op rather than an autograd.Function so that
    ``torch.compile`` treats it as one opaque node instead of breaking the graph."""
    with no_autocast(dense.device):
        return torch.sparse.mm(_csr((rows, columns, values)), dense.float().contiguous())


@propagate.register_fake
def _propagate_shape(dense, rows, columns, values, t_rows, t_columns, t_values):  # noqa: ANN001
    return dense.new_empty((rows.shape[0] - 1, dense.shape[1]), dtype=torch.float32)


def _propagate_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    ctx.save_for_backward(*inputs[1:])


def _propagate_backward(ctx, grad: torch.Tensor):  # noqa: ANN001
    rows, columns, values, t_rows, t_columns, t_values = ctx.saved_tensors
    # differentiable in ``dense`` only (the graph is fixed): A^T @ grad
    return (propagate(grad, t_rows, t_columns, t_values, rows, columns, values),) + (None,) * 6


propagate.register_autograd(_propagate_backward, setup_context=_propagate_setup)


def propagate_batch(transformed: torch.Tensor, graph: SparseGraph) -> torch.Tensor:
    """``A @ t`` for every sample of a B x G x w tensor in one CSR matmul (fp32 result)."""
    batch, n_genes, width = transformed.shape
    stacked = transformed.float().transpose(0, 1).reshape(n_genes, batch * width)
    mixed = propagate(stacked, *graph.parts, *graph.transpose_parts)
    return mixed.reshape(n_genes, batch, width).transpose(0, 1)


def sparse_graph_conv(conv: GCNConv, h: torch.Tensor, graph: SparseGraph) -> torch.Tensor:
    """``conv(h)`` for B x G x d ``h`` as ``A @ (h W^T) + b`` over all samples at once
    (differentiable; the matmul runs in fp32 even under autocast)."""
    mixed = propagate_batch(conv.lin(h), graph)
    if conv.bias is not None:
        mixed = mixed + conv.bias
    return mixed.to(h.dtype)
