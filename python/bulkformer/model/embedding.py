"""Rotary expression embedding (REE): continuous log1p TPM -> sin/cos features."""
from __future__ import annotations

import torch
from torch import nn

MASK_VALUE = -10.0


class ExpressionEmbedding(nn.Module):
    """concat(sin(v * inv_freq), cos(v * inv_freq)); masked (-10) positions give zeros.

    ``inv_freq`` is a frozen ``nn.Parameter`` (not a buffer) because the published
    checkpoints store it under ``expr_emb.inv_freq`` and count it as a parameter.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.inv_freq = nn.Parameter(1.0 / (100 ** (torch.arange(0, dim, 2).float() / dim)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = x.unsqueeze(-1) * self.inv_freq
        emb = torch.cat((angles.sin(), angles.cos()), dim=-1)
        return emb.masked_fill((x == MASK_VALUE).unsqueeze(-1), 0.0)
