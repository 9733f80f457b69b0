"""v1 (June 2025, the first release, "epoch 29"): an ESM2-initialised per-gene table,
a dense autoencoder context, three blocks with a (bins = 0) bin selector, and a
ReLU head over each gene state (REFERENCE.md, "v1")."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ...preprocess.conventions import ORIGINAL_CONVENTIONS
from ..config import ModelConfig
from ..original import OriginalBulkFormer, infer_original_config, mlp, resize_original
from .base import Layout

RELEASED_N_GENES = 20_010
ESM2_DIM = 1280
TINY_GENE_TABLE_DIM = 8  # the random stand-in for the ESM2 table of demo bundles


@dataclass(frozen=True)
class V1Config(ModelConfig, layout="v1"):
    default_dropouts = (0.2, 0.2)
    summary_width = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.gene_table_dim:
            raise ValueError("a v1 model needs gene_table_dim (the width of its per-gene table, 1280 for ESM2)")


class BulkFormerV1(OriginalBulkFormer, layout="v1"):
    """Keys: ``gene_emb`` (trainable G x table width), ``gene_emb_proj``, ``ae_enc``,
    ``gb_formers.<k>.which_b`` (present even with bins = 0), ``head``."""

    has_bin_selector = True

    def _build_gene_identity(self, config: ModelConfig, gene_table: torch.Tensor | None) -> None:
        table_dim = int(config.gene_table_dim or 0)
        if gene_table is None:
            gene_table = torch.randn(config.n_genes, table_dim) * 0.02
        if tuple(gene_table.shape) != (config.n_genes, table_dim):
            raise ValueError(f"gene_table must be {config.n_genes} x {table_dim}, got {tuple(gene_table.shape)}")
        self.gene_emb = nn.Parameter(gene_table.float().clone())
        self.gene_emb_proj = mlp(table_dim, 4 * config.dim, config.dim)

    def _build_context_and_head(self, config: ModelConfig) -> None:
        d = config.dim
        self.ae_enc = mlp(config.n_genes, 4 * d, d)
        self.head = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, 1), nn.ReLU())

    def gene_tokens(self) -> torch.Tensor:
        return self.gene_emb_proj(self.gene_emb)

    def sample_context(self, x: torch.Tensor) -> torch.Tensor:
        return self.ae_enc(x)

    def frozen_parameters(self) -> list[nn.Parameter]:
        # the bin selector exists even with bins = 0; it then gets no gradient (and would make DDP wait for one)
        unused = [p for block in self.gb_formers if not block.bins for p in block.which_b.parameters()]
        return super().frozen_parameters() + unused


def _recognises(state: Mapping[str, torch.Tensor]) -> bool:
    return "gene_emb" in state and "gene_emb_onehot_layer.weight" not in state


def _infer_config(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    n_genes, table_dim = state["gene_emb"].shape
    return infer_original_config(state, "v1", n_genes, table_dim, 12)


LAYOUT = Layout(
    name="v1",
    description="BulkFormer v1 (June 2025; ~150M, ESM2 gene table)",
    network=BulkFormerV1,
    presets={"v1": V1Config(version="v1", n_genes=RELEASED_N_GENES, dim=640, gb_repeat=3, p_repeat=4, full_head=8,
                            bin_head=12, bins=0, gene_table_dim=ESM2_DIM)},
    parameter_counts={"v1": 148_642_244},  # at G = 20,010 with the 1280-wide table (REFERENCE.md)
    conventions=ORIGINAL_CONVENTIONS,
    sample_pooling="max",
    recognises=_recognises,
    infer_config=_infer_config,
    resize=resize_original,
    tiny=lambda n_genes: V1Config(version="v1", n_genes=n_genes, dim=16, gb_repeat=1, p_repeat=1, full_head=2,
                                  bin_head=2, bins=0, gene_table_dim=TINY_GENE_TABLE_DIM),
)
