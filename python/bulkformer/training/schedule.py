"""Learning-rate schedule of the paper: linear warmup over the first 5% of steps, then
cosine decay to zero."""
from __future__ import annotations

import math

import torch


def warmup_cosine_factor(step: int, total_steps: int, warmup_fraction: float = 0.05) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    warmup = max(1, int(math.ceil(warmup_fraction * total_steps))) if warmup_fraction > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_fraction))
