"""How inference runs: device, precision, batching, progress, determinism.

The engine streams an aligned n x G matrix through :class:`FastBulkFormer` batch by
batch and hands each batch's outputs to the caller (who writes them to memory or
disk), so nothing here holds more than one batch of model outputs.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch

from ..arguments import check_at_least
from ..bundle import Bundle, load
from .fast import FastBulkFormer, FastPath

Precision = Literal["fp32", "bf16", "fp16"]
_PRECISION_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "32": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "16": "fp16",
}
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else cuda > mps > cpu."""
    if device is not None:
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError):  # torch's message lists ~20 device types
            raise ValueError(f"device={device!r} is not a device: use 'cuda' (or 'cuda:1'), 'mps' or 'cpu', or leave "
                             "it unset to pick the best available") from None
        if chosen.type not in ("cuda", "mps", "cpu"):
            raise ValueError(f"device={device!r}: bulkformer runs on 'cuda', 'mps' or 'cpu'")
        if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {device!r} was requested but MPS (Apple GPU) is not available; use device='cpu'")
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available; use device='cpu'")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_precision(precision: str | None, device: torch.device) -> Precision:
    """None (or "auto", pretrain's spelling): bf16 on CUDA when supported (else fp16), fp16
    on MPS, fp32 on CPU (bf16 on CPU is opt-in: faster where the CPU has bf16 units, ~1e-2
    less exact)."""
    if precision is None or str(precision).lower() == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16" if device.type == "mps" else "fp32"
    key = str(precision).lower()
    if key not in _PRECISION_ALIASES:
        raise ValueError(f"precision must be one of fp32, bf16, fp16 (or auto / None for the device default), got {precision!r}")
    chosen = _PRECISION_ALIASES[key]
    if chosen == "fp16" and device.type == "cpu":
        raise ValueError("fp16 autocast is not useful on CPU; use precision='bf16' or 'fp32'")
    return chosen  # type: ignore[return-value]


def autocast(device: torch.device, precision: Precision):
    """Autocast context for the dense layers (no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def resolve_bundle(model: Bundle | str | Path, device: torch.device) -> Bundle:
    """A Bundle or a bundle path -> a Bundle on ``device`` in eval mode."""
    if isinstance(model, Bundle):
        bundle = model
    elif isinstance(model, (str, Path)):
        bundle = load(model)
    else:
        raise ValueError(f"model must be a Bundle or the path of a bundle directory, got {type(model).__name__}")
    bundle.model.eval()
    bundle.model.to(device)
    return bundle


def progress_bar(total: int, description: str, enabled: bool):
    """A tqdm bar (stderr) or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="sample", disable=not enabled, leave=False)


@dataclass
class BatchOutput:
    """Outputs for samples ``start:stop`` (numpy, float32, on the host)."""

    start: int
    stop: int
    expr: np.ndarray | None
    features: np.ndarray | None


@dataclass
class Engine:
    """A model ready to run: device, precision and the cached fast forward."""

    bundle: Bundle
    device: torch.device
    precision: Precision
    batch_size: int
    progress: bool
    forward: FastPath

    @classmethod
    def create(
        cls,
        model: Bundle | str | Path,
        *,
        device: str | torch.device | None = None,
        precision: str | None = None,
        batch_size: int = 16,
        progress: bool = True,
        gene_chunk: int | None = None,
    ) -> "Engine":
        batch_size = check_at_least(batch_size, 1, "batch_size")  # 2.5 or "4" are mistakes, not 2 or 4
        chosen = choose_device(device)
        chosen_precision = choose_precision(precision, chosen)
        bundle = resolve_bundle(model, chosen)
        if chosen.type == "cuda":
            torch.backends.cudnn.benchmark = False  # reproducible kernel choice
        with torch.inference_mode(), autocast(chosen, chosen_precision):
            forward = FastBulkFormer(bundle.model, gene_chunk=gene_chunk)
        return cls(bundle, chosen, chosen_precision, batch_size, bool(progress), forward)

    def stream(
        self,
        values: np.ndarray,
        mask_prob: float | None,
        *,
        want_expr: bool = True,
        feature_index: np.ndarray | None = None,
        rows: range | None = None,
        description: str = "bulkformer",
    ) -> Iterator[BatchOutput]:
        """Run ``values[rows]`` (n x G float32) batch by batch; yields host outputs."""
        rows = range(values.shape[0]) if rows is None else rows
        index = None if feature_index is None else torch.as_tensor(np.asarray(feature_index), dtype=torch.long, device=self.device)
        bar = progress_bar(len(rows), description, self.progress)
        try:
            for start in range(rows.start, rows.stop, self.batch_size):
                stop = min(start + self.batch_size, rows.stop)
                x = torch.from_numpy(np.ascontiguousarray(values[start:stop], dtype=np.float32)).to(self.device)
                with torch.inference_mode(), autocast(self.device, self.precision):
                    out = self.forward(x, mask_prob, want_expr=want_expr, feature_index=index)
                yield BatchOutput(
                    start, stop,
                    None if out.expr is None else out.expr.float().cpu().numpy(),
                    None if out.features is None else out.features.float().cpu().numpy(),
                )
                bar.update(stop - start)
        finally:
            bar.close()
