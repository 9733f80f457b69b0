"""How inference runs: device, precision, batching, progress, determinism.

The engine streams an aligned n x G matrix through :class:`FastBulkFormer` batch by
batch and hands each batch's outputs to the caller (who writes them to memory or
disk), so nothing here holds more than one batch of model outputs.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..arguments import check_at_least
from ..bundle import Bundle, load
from ..runtime import Precision, Runtime, choose_device, choose_precision
from .fast import FastBulkFormer, FastPath

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
        """The engine for ``model`` under these run settings (see :meth:`of` for a Runtime)."""
        batch_size = check_at_least(batch_size, 1, "batch_size")  # 2.5 or "4" are mistakes, not 2 or 4
        chosen = choose_device(device)
        chosen_precision = choose_precision(precision, chosen)
        bundle = resolve_bundle(model, chosen)
        if chosen.type == "cuda":
            torch.backends.cudnn.benchmark = False  # reproducible kernel choice
        with torch.inference_mode(), autocast(chosen, chosen_precision):
            forward = FastBulkFormer(bundle.model, gene_chunk=gene_chunk)
        return cls(bundle, chosen, chosen_precision, batch_size, bool(progress), forward)

    @classmethod
    def of(cls, model: Bundle | str | Path, runtime: Runtime, *, device: str | torch.device | None = None,
           gene_chunk: int | None = None) -> "Engine":
        """:meth:`create` from a :class:`~bulkformer.runtime.Runtime` (``device`` overrides its
        device, e.g. a torchrun rank's own GPU)."""
        return cls.create(model, device=runtime.device if device is None else device, precision=runtime.precision,
                          batch_size=runtime.batch_size, progress=runtime.progress, gene_chunk=gene_chunk)

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
