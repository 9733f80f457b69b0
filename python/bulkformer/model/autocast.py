"""Precision guard shared by the model and the inference engine."""
from __future__ import annotations

import contextlib

import torch


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast for numerically sensitive steps (FAVOR+ feature maps, the sparse
    graph matmul): ``exp`` of a half-precision projection loses several digits, and CSR
    matmuls have no half-precision kernels on every device."""
    if device.type in ("cuda", "cpu", "mps"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()
