"""The BulkFormer network in both published layouts (v1 and v2).

Pure torch: no file I/O. State-dict keys equal the published ones, so an official
checkpoint loads with ``load_state_dict(strict=True)`` once ``module.`` is stripped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .blocks import BulkFormerBlock
from .config import ModelConfig
from .embedding import MASK_VALUE, ExpressionEmbedding
from .graph_conv import SparseGraph, check_graph, supports_sparse_matmul, to_source_target

# Denominator guard of the published mean computations; kept for bit-compatibility.
_EPS = 1e-8


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


@dataclass
class ModelOutput:
    """expr: B x G predictions (v2: mask-corrected imputation); features: the
    gene-level embedding (v2: B x G x (d+3); v1: B x G x d, after the final layer
    norm); hidden: per-block outputs before the final layer norm, when requested;
    raw: the head's predictions before the v2 mask correction (v1: ``expr``)."""

    expr: torch.Tensor
    features: torch.Tensor
    hidden: list[torch.Tensor] = field(default_factory=list)
    raw: torch.Tensor | None = None


class BulkFormer(nn.Module):
    """The network. ``sparse_graph`` (default True) runs the graph convolution as one
    CSR matmul where the device has one (CPU, CUDA): same numbers as torch-geometric's
    message passing (~1e-7), ~10x faster and without its per-edge activations; set it
    False for the published message passing."""

    sparse_graph: bool = True

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
        d, n_genes = config.dim, config.n_genes
        attn_dropout, ff_dropout = config.dropouts

        if config.version == "v2":
            self.gene_emb_onehot_layer = nn.Embedding(n_genes, d)
            nn.init.xavier_uniform_(self.gene_emb_onehot_layer.weight)
            self.gene_emb_proj = _mlp(d, 4 * d, d)
        else:
            table_dim = int(config.gene_table_dim or 0)
            if gene_table is None:
                gene_table = torch.randn(n_genes, table_dim) * 0.02
            if tuple(gene_table.shape) != (n_genes, table_dim):
                raise ValueError(f"gene_table must be {n_genes} x {table_dim}, got {tuple(gene_table.shape)}")
            self.gene_emb = nn.Parameter(gene_table.float().clone())
            self.gene_emb_proj = _mlp(table_dim, 4 * d, d)

        self.expr_emb = ExpressionEmbedding(d)
        self.x_proj = _mlp(d, 4 * d, d)
        self.gb_formers = nn.ModuleList(
            BulkFormerBlock(
                d, config.full_head, config.p_repeat, bins=config.bins, bin_head=config.bin_head,
                with_bin_selector=config.version == "v1", attn_dropout=attn_dropout, ff_dropout=ff_dropout,
            )
            for _ in range(config.gb_repeat)
        )
        self.layernorm = nn.LayerNorm(d)

        if config.version == "v2":
            self.global_expr_proj = _mlp(n_genes, 4 * d, d)
            self.head = nn.Sequential(
                nn.LayerNorm(d + 3), nn.Linear(d + 3, d), nn.ReLU(), nn.Linear(d, 1), nn.ReLU()
            )
        else:
            self.ae_enc = _mlp(n_genes, 4 * d, d)
            self.head = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, 1), nn.ReLU())

        self.set_graph(edge_index, edge_weight)

    # ------------------------------------------------------------------ graph
    def set_graph(self, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> None:
        """Attach the gene graph (not part of the state dict, as in the release)."""
        check_graph(edge_index, edge_weight, self.config.n_genes)
        device = self.expr_emb.inv_freq.device
        self.register_buffer("graph_edge_index", edge_index.long().to(device), persistent=False)
        self.register_buffer("graph_source_target", to_source_target(edge_index).to(device), persistent=False)
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
                self._adjacency = SparseGraph.build(self.graph_edge_index, self.graph_edge_weight, self.config.n_genes)
        return self._adjacency

    def __getstate__(self) -> dict:
        # the cached adjacency is derived (and sparse CSR tensors cannot be deep-copied)
        return {**self.__dict__, "_adjacency": None}

    # ---------------------------------------------------------------- pieces
    def gene_tokens(self) -> torch.Tensor:
        """G x d gene identity embedding; independent of the batch, so callers may cache it."""
        table = self.gene_emb_onehot_layer.weight if self.config.version == "v2" else self.gene_emb
        return self.gene_emb_proj(table)

    def sample_context(self, x: torch.Tensor) -> torch.Tensor:
        """B x d whole-profile context (raw x, -10 entries included, as published)."""
        return self.global_expr_proj(x) if self.config.version == "v2" else self.ae_enc(x)

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

    def summary_features(self, x: torch.Tensor, mask_prob: float | torch.Tensor | None) -> torch.Tensor:
        """B x 3 per-sample statistics appended to each gene state by v2: mask_prob,
        mean of x over non-masked entries, fraction of entries != 0 (-10 counts)."""
        batch, n_genes = x.shape
        valid = (x != MASK_VALUE).to(x.dtype)
        expr_mean = (x * valid).sum(dim=1) / (valid.sum(dim=1) + _EPS)
        nonzero_ratio = (x != 0).to(x.dtype).sum(dim=1) / n_genes
        if mask_prob is None:
            mask_prob = 0.0
        prob = torch.as_tensor(mask_prob, dtype=x.dtype, device=x.device).expand(batch)
        return torch.stack([prob, expr_mean, nonzero_ratio], dim=1)

    # --------------------------------------------------------------- forward
    def forward(
        self,
        x: torch.Tensor,
        mask_prob: float | torch.Tensor | None = None,
        *,
        gene_tokens: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> ModelOutput:
        """``x``: B x G log1p TPM in vocabulary order, -10 where unmeasured or masked.
        ``mask_prob`` (v2): share of vocabulary genes the data set lacks; a float or
        a length-B tensor."""
        z, hidden = self.encode(x, gene_tokens=gene_tokens, return_hidden=return_hidden)
        if self.config.version == "v1":
            pred = self.head(z).squeeze(-1)
            return ModelOutput(expr=pred, features=z, hidden=hidden, raw=pred)

        stats = self.summary_features(x, mask_prob)
        features = torch.cat([z, stats.unsqueeze(1).expand(-1, z.shape[1], -1)], dim=-1)
        pred = self.head(features).squeeze(-1)
        return ModelOutput(expr=self.mask_corrected(pred, x), features=features, hidden=hidden, raw=pred)

    @staticmethod
    def mask_corrected(pred: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """At -10 positions only, shift predictions so that the mean prediction over
        observed genes equals the observed mean (v2 release, step 8)."""
        masked = (x == MASK_VALUE).to(pred.dtype)
        valid = 1 - masked
        n_valid = valid.sum(dim=1, keepdim=True) + _EPS
        pred_mean = (pred * valid).sum(dim=1, keepdim=True) / n_valid
        observed_mean = (x * valid).sum(dim=1, keepdim=True) / n_valid
        return pred - masked * (pred_mean - observed_mean)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.config.n_genes:
            raise ValueError(
                f"expected a samples x {self.config.n_genes} matrix in vocabulary order, got shape {tuple(x.shape)}; "
                "align your data with bulkformer.preprocess first"
            )

    def count_parameters(self) -> int:
        """Sum over parameters, shared tensors once, buffers excluded (REFERENCE.md)."""
        return sum(p.numel() for p in self.parameters())
