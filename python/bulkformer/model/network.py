"""What every layout's network offers the rest of the package.

``BulkFormer(config, edge_index, edge_weight)`` builds the network of the config's
layout (``config.version``: "v1", "v2", "latest"); each layout module subclasses
:class:`BulkFormer` with ``layout=<name>``. Engine, training and bundles use only the
methods below, so they never ask which layout they hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .graph_conv import SparseGraph, check_graph, supports_sparse_matmul, to_source_target


@dataclass
class ModelOutput:
    """expr: B x G predictions (v2: mask-corrected imputation); features: the
    gene-level embedding (v2: B x G x (d+3); v1 and latest: B x G x d, after the final
    layer norm); hidden: per-block outputs before the final layer norm, when requested;
    raw: the head's predictions before any correction (what training fits)."""

    expr: torch.Tensor
    features: torch.Tensor
    hidden: list[torch.Tensor] = field(default_factory=list)
    raw: torch.Tensor | None = None


class BulkFormer(nn.Module):
    """The network of one published layout. ``sparse_graph`` (default True) runs the
    graph convolution as one CSR matmul where the device has one (CPU, CUDA): the same
    numbers as torch-geometric's message passing (~1e-7), ~10x faster and without its
    per-edge activations; set it False for the published message passing."""

    sparse_graph: bool = True
    # the layout record (bulkformer.model.layouts.base.Layout), attached by each layout module;
    # not imported here: the layouts import this module
    layout: ClassVar[Any]
    # which row of the stored edge index holds the receiving gene (v1/v2: 0; latest: 1)
    receiver_row: ClassVar[int] = 0
    _networks: ClassVar[dict[str, type[BulkFormer]]] = {}

    def __init_subclass__(cls, layout: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if layout is not None:
            BulkFormer._networks[layout] = cls

    def __new__(cls, config: Any = None, *args: Any, **kwargs: Any) -> BulkFormer:
        if cls is BulkFormer:
            name = getattr(config, "version", None)
            if name not in BulkFormer._networks:
                raise ValueError(f"no network for layout {name!r}; known layouts: {', '.join(BulkFormer._networks)}")
            cls = BulkFormer._networks[name]
        return super().__new__(cls)

    # ------------------------------------------------------------------ graph
    def set_graph(self, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> None:
        """Attach the gene graph as stored in the release (not part of the state dict)."""
        check_graph(edge_index, edge_weight, self.config.n_genes)
        device = next(self.parameters()).device
        self.register_buffer("graph_edge_index", edge_index.long().to(device), persistent=False)
        self.register_buffer("graph_source_target", to_source_target(edge_index, self.receiver_row).to(device),
                             persistent=False)
        weight = None if edge_weight is None else edge_weight.float().to(device)
        self.register_buffer("graph_edge_weight", weight, persistent=False)
        self._adjacency: SparseGraph | None = None

    def graph_adjacency(self) -> SparseGraph | None:
        """The normalised G x G CSR adjacency and its transpose on the model's device
        (built once, rebuilt after a device move); None where sparse matmuls are unavailable."""
        device = self.graph_edge_index.device
        if not supports_sparse_matmul(device):
            return None
        if self._adjacency is None or self._adjacency.device != device:
            # built outside inference mode so that training can differentiate through it
            with torch.inference_mode(False), torch.no_grad():
                self._adjacency = SparseGraph.build(self.graph_edge_index, self.graph_edge_weight,
                                                    self.config.n_genes, self.receiver_row)
        return self._adjacency

    def __getstate__(self) -> dict:
        # the cached adjacency is derived (and sparse CSR tensors cannot be deep-copied)
        return {**self.__dict__, "_adjacency": None}

    # ------------------------------------------------------ the layout's part
    def gene_tokens(self) -> torch.Tensor:
        """G x d gene identity tokens; independent of the batch, so callers may cache them."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask_prob: float | torch.Tensor | None = None, *,
                gene_tokens: torch.Tensor | None = None, return_hidden: bool = False) -> ModelOutput:
        """``x``: B x G natural log1p TPM in vocabulary order, -10 where unmeasured or
        masked; ``mask_prob``: the share of vocabulary genes the data lacks (a feature
        of v2; other layouts ignore it)."""
        raise NotImplementedError

    def fast_path(self, *, gene_chunk: int | None = None, per_sample: bool = False) -> Any:
        """The layout's inference-only forward (same numbers, less time and memory)."""
        raise NotImplementedError

    def encoder_layers(self) -> list[nn.Module]:
        """The Performer layers in order (what partial fine-tuning unfreezes from the top)."""
        raise NotImplementedError

    def output_norm_module(self) -> nn.Module:
        """The final layer norm that makes the gene-level embedding."""
        raise NotImplementedError

    def checkpoint_units(self) -> list[nn.Module]:
        """Modules whose activations training may recompute in the backward pass."""
        raise NotImplementedError

    def output_linear(self) -> nn.Linear:
        """The head's last linear map (training starts its bias at the corpus level)."""
        raise NotImplementedError

    def gene_identity_table(self) -> nn.Parameter | None:
        """The learned per-gene table a data-driven (PCA) start may fill; None if the
        layout's gene identity is not a free table of width d."""
        return None

    def frozen_parameters(self) -> list[nn.Parameter]:
        """Parameters training never updates: fixed tables the release stores as
        parameters, and those that get no gradient in this configuration."""
        return []

    # ----------------------------------------------------------------- shared
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.config.n_genes:
            raise ValueError(
                f"expected a samples x {self.config.n_genes} matrix in vocabulary order, got shape {tuple(x.shape)}; "
                "align your data with bulkformer.preprocess first"
            )

    def count_parameters(self) -> int:
        """Sum over parameters, shared tensors once, buffers excluded (REFERENCE.md)."""
        return sum(p.numel() for p in self.parameters())
