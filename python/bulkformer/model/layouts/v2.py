"""v2 (December 2025 release, 37M-147M presets): a learned gene table, a dense
whole-profile context, one block, and a head over each gene state plus three
per-sample statistics, with the released mask correction (REFERENCE.md, "v2")."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ...preprocess.conventions import ORIGINAL_CONVENTIONS
from ..config import ModelConfig
from ..embedding import MASK_VALUE
from ..original import OriginalBulkFormer, infer_original_config, mlp, resize_original
from .base import Layout

RELEASED_N_GENES = 20_010
# Denominator guard of the published mean computations; kept for bit-compatibility.
_EPS = 1e-8


@dataclass(frozen=True)
class V2Config(ModelConfig, layout="v2"):
    default_dropouts = (0.05, 0.1)
    summary_width = 3  # mask_prob, observed mean, nonzero fraction

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gene_table_dim is not None:
            raise ValueError("gene_table_dim applies to v1 models only")


class BulkFormerV2(OriginalBulkFormer, layout="v2"):
    """Keys: ``gene_emb_onehot_layer``, ``gene_emb_proj``, ``global_expr_proj``, ``head``."""

    def _build_gene_identity(self, config: ModelConfig, gene_table: torch.Tensor | None) -> None:
        if gene_table is not None:
            raise ValueError("a v2 model learns its gene table; gene_table= initialises v1 models only")
        self.gene_emb_onehot_layer = nn.Embedding(config.n_genes, config.dim)
        nn.init.xavier_uniform_(self.gene_emb_onehot_layer.weight)
        self.gene_emb_proj = mlp(config.dim, 4 * config.dim, config.dim)

    def _build_context_and_head(self, config: ModelConfig) -> None:
        d = config.dim
        self.global_expr_proj = mlp(config.n_genes, 4 * d, d)
        self.head = nn.Sequential(nn.LayerNorm(d + 3), nn.Linear(d + 3, d), nn.ReLU(), nn.Linear(d, 1), nn.ReLU())

    def gene_tokens(self) -> torch.Tensor:
        return self.gene_emb_proj(self.gene_emb_onehot_layer.weight)

    def sample_context(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_expr_proj(x)

    def head_context(self, x: torch.Tensor, mask_prob) -> torch.Tensor:
        """B x 3 per-sample statistics appended to each gene state: mask_prob, mean of x
        over non-masked entries, fraction of entries != 0 (-10 counts)."""
        batch, n_genes = x.shape
        valid = (x != MASK_VALUE).to(x.dtype)
        expr_mean = (x * valid).sum(dim=1) / (valid.sum(dim=1) + _EPS)
        nonzero_ratio = (x != 0).to(x.dtype).sum(dim=1) / n_genes
        if mask_prob is None:
            mask_prob = 0.0
        prob = torch.as_tensor(mask_prob, dtype=x.dtype, device=x.device).expand(batch)
        return torch.stack([prob, expr_mean, nonzero_ratio], dim=1)

    def head_input(self, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([z, context.to(z.dtype).unsqueeze(1).expand(-1, z.shape[1], -1)], dim=-1)

    def finish_prediction(self, pred: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.mask_corrected(pred, x)

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

    def gene_identity_table(self) -> nn.Parameter:
        return self.gene_emb_onehot_layer.weight


def _recognises(state: Mapping[str, torch.Tensor]) -> bool:
    return "gene_emb_onehot_layer.weight" in state


def _infer_config(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    return infer_original_config(state, "v2", state["gene_emb_onehot_layer.weight"].shape[0], None, 12)


# d / Performer layers per block; one block, 8 heads, no bins.
_SIZES = {"37M": (128, 1), "50M": (256, 2), "93M": (512, 6), "127M": (640, 8), "147M": (640, 12)}

LAYOUT = Layout(
    name="v2",
    description="BulkFormer v2 (December 2025; 37M-147M)",
    network=BulkFormerV2,
    presets={name: V2Config(version="v2", n_genes=RELEASED_N_GENES, dim=dim, gb_repeat=1, p_repeat=p, full_head=8,
                            bin_head=12, bins=0) for name, (dim, p) in _SIZES.items()},
    # exact sums over model.parameters() at G = 20,010 (REFERENCE.md)
    parameter_counts={"37M": 13_368_647, "50M": 28_641_159, "93M": 75_921_159, "127M": 112_448_967,
                      "147M": 132_143_047},
    conventions=ORIGINAL_CONVENTIONS,
    sample_pooling="max",
    recognises=_recognises,
    infer_config=_infer_config,
    resize=resize_original,
    tiny=lambda n_genes: V2Config(version="v2", n_genes=n_genes, dim=16, gb_repeat=1, p_repeat=1, full_head=2,
                                  bin_head=2, bins=0),
)
