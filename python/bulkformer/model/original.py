"""The network body the original layouts (v1 and v2) share: expression embedding plus
gene tokens plus a whole-profile context, blocks of graph convolution and Performer
layers, a final layer norm and a head. ``layouts/v1.py`` and ``layouts/v2.py`` supply
the gene identity, the context, the head and what the head sees.

Pure torch: no file I/O. State-dict keys equal the published ones, so an official
checkpoint loads with ``load_state_dict(strict=True)`` once ``module.`` is stripped.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .blocks import BulkFormerBlock
from .config import ModelConfig
from .embedding import ExpressionEmbedding
from .network import BulkFormer, ModelOutput


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class OriginalBulkFormer(BulkFormer):
    """``h = x_proj(REE(x) + gene tokens + context)``, then the blocks, then
    ``head(layout features(layernorm(h)))``. Modules are created in the published order,
    so a seed gives the same weights as the release's constructor."""

    config: ModelConfig

    def __init__(
        self,
        config: ModelConfig,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
        gene_table: torch.Tensor | None = None,
    ) -> None:
        """``edge_index`` is the released receiver-first (2 x n_edges) index;
        ``gene_table`` initialises the v1 per-gene table (ESM2), random if omitted."""
        super().__init__()
        self.config = config
        d = config.dim
        attn_dropout, ff_dropout = config.dropouts
        self._build_gene_identity(config, gene_table)
        self.expr_emb = ExpressionEmbedding(d)
        self.x_proj = mlp(d, 4 * d, d)
        self.gb_formers = nn.ModuleList(
            BulkFormerBlock(
                d, config.full_head, config.p_repeat, bins=config.bins, bin_head=config.bin_head,
                with_bin_selector=self.has_bin_selector, attn_dropout=attn_dropout, ff_dropout=ff_dropout,
            )
            for _ in range(config.gb_repeat)
        )
        self.layernorm = nn.LayerNorm(d)
        self._build_context_and_head(config)
        self.set_graph(edge_index, edge_weight)

    # ------------------------------------------------------- layout's hooks
    has_bin_selector = False

    def _build_gene_identity(self, config: ModelConfig, gene_table: torch.Tensor | None) -> None:
        raise NotImplementedError

    def _build_context_and_head(self, config: ModelConfig) -> None:
        raise NotImplementedError

    def sample_context(self, x: torch.Tensor) -> torch.Tensor:
        """B x d whole-profile context (raw x, -10 entries included, as published)."""
        raise NotImplementedError

    def head_context(self, x: torch.Tensor, mask_prob: Any) -> torch.Tensor | None:
        """Per-sample values the head sees beside each gene state (None: nothing)."""
        return None

    def head_input(self, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The gene-level embedding: ``z`` (B x G x d) with the head context appended."""
        return z

    def finish_prediction(self, pred: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The released imputation from the head's raw prediction."""
        return pred

    # -------------------------------------------------------------- forward
    def encode(
        self, x: torch.Tensor, gene_tokens: torch.Tensor | None = None, return_hidden: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """B x G x d contextual gene states after the final layer norm, plus hidden states."""
        self._check_input(x)
        tokens = self.gene_tokens() if gene_tokens is None else gene_tokens
        h = self.x_proj(self.expr_emb(x) + tokens + self.sample_context(x).unsqueeze(1))
        hidden: list[torch.Tensor] = []
        adjacency = self.graph_adjacency() if self.sparse_graph else None
        for block in self.gb_formers:
            h = block(h, self.graph_source_target, self.graph_edge_weight, adjacency)
            if return_hidden:
                hidden.append(h)
        return self.layernorm(h), hidden

    def forward(
        self,
        x: torch.Tensor,
        mask_prob: float | torch.Tensor | None = None,
        *,
        gene_tokens: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> ModelOutput:
        z, hidden = self.encode(x, gene_tokens=gene_tokens, return_hidden=return_hidden)
        features = self.head_input(z, self.head_context(x, mask_prob))
        pred = self.head(features).squeeze(-1)
        return ModelOutput(expr=self.finish_prediction(pred, x), features=features, hidden=hidden, raw=pred)

    def fast_path(self, *, gene_chunk: int | None = None, per_sample: bool = False) -> Any:
        from .original_fast import FastOriginal  # the fast path reads this module's weights

        return FastOriginal(self, gene_chunk=gene_chunk, per_sample=per_sample)

    # ------------------------------------------------------------- training
    def encoder_layers(self) -> list[nn.Module]:
        return [layer for block in self.gb_formers for layer in block.f]

    def output_norm_module(self) -> nn.Module:
        return self.layernorm

    def checkpoint_units(self) -> list[nn.Module]:
        # the layer's ``net``, not the Performer: the projection-redraw counter must not advance twice
        return [layer.net for layer in self.encoder_layers()]

    def frozen_parameters(self) -> list[nn.Parameter]:
        return [self.expr_emb.inv_freq]  # a fixed table the release counts as a parameter

    def output_linear(self) -> nn.Linear:
        return [m for m in self.head if isinstance(m, nn.Linear)][-1]


def infer_original_config(state: Mapping[str, torch.Tensor], version: str, n_genes: int,
                          gene_table_dim: int | None, default_bin_head: int) -> ModelConfig:
    """An original-layout config read off a state dict's keys and shapes (the layout
    module says which layout and gives the vocabulary size it read)."""
    if "x_proj.2.weight" not in state:
        raise ValueError("this state dict lacks 'x_proj.2.weight', so its hidden size cannot be read")
    dim = state["x_proj.2.weight"].shape[0]

    def indices(pattern: str) -> set[int]:
        return {int(m.group(1)) for key in state if (m := re.match(pattern, key))}

    gb_repeat = len(indices(r"gb_formers\.(\d+)\."))
    p_repeat = len(indices(r"gb_formers\.0\.f\.(\d+)\."))
    bins = len(indices(r"gb_formers\.0\.b\.(\d+)\."))
    if not gb_repeat or not p_repeat:
        raise ValueError("no encoder blocks found (keys 'gb_formers.<k>.f.<j>....'); is this a BulkFormer checkpoint?")

    def heads(prefix: str) -> int:
        dim_head = state[f"{prefix}.net.layers.0.0.fn.fast_attention.projection_matrix"].shape[1]
        return dim // dim_head

    full_head = heads("gb_formers.0.f.0")
    bin_head = heads("gb_formers.0.b.0") if bins else default_bin_head
    return ModelConfig(
        version=version, n_genes=int(n_genes), dim=int(dim), gb_repeat=gb_repeat, p_repeat=p_repeat,
        full_head=full_head, bin_head=bin_head, bins=bins,
        gene_table_dim=int(gene_table_dim) if gene_table_dim is not None else None,
    )


def resize_original(config: ModelConfig, *, n_genes: int | None = None, dim: int | None = None,
                    layers: int | None = None, heads: int | None = None, dropout: float | None = None) -> ModelConfig:
    """The config for another vocabulary size or a smaller model (``layers``: Performer
    layers per block)."""
    changes: dict[str, Any] = {}
    for key, value in (("n_genes", n_genes), ("dim", dim), ("p_repeat", layers), ("full_head", heads)):
        if value is not None:
            changes[key] = value
    if dropout is not None:
        changes["attn_dropout"] = changes["ff_dropout"] = dropout
    return replace(config, **changes)
