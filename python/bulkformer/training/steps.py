"""One pretraining step and one validation pass.

A step sees this rank's rows of the global batch (``batch_size * grad_accum`` samples):
masks are drawn for the whole global batch from a generator seeded by (seed, step) and
each rank keeps its rows' (:func:`.masking.mask_rows`); the masked-entry counts are summed
over ranks. So N ranks train exactly what one process would (up to the all-reduce's float
summation order), and a resumed run repeats the uninterrupted one.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..corpus.order import rank_rows
from ..model import MASK_VALUE, BulkFormer
from .distributed import DistContext, all_reduce_sum
from .evaluation import evaluation_mask, gene_mean_baseline, masked_pearson, model_predictions
from .masking import mask_rows, masked_sse, missing_share, step_generator


@dataclass
class Trainee:
    """What a step updates: the model, its DDP wrapper (or itself), the forward to call
    (compiled or not), the trainable parameters, optimizer and schedule."""

    net: BulkFormer
    wrapped: torch.nn.Module
    forward: Callable[..., Any]
    trainable: list
    optimizer: torch.optim.Optimizer
    scheduler: Any


def train_step(trainee: Trainee, x_local: torch.Tensor, ctx: DistContext, config: Any, *, step: int,
               mask_fraction: float, mask_fraction_max: float | None, observed_weight: float,
               use_bf16: bool) -> dict[str, Any]:
    """One optimizer step; ``x_local``: this rank's rows of the global batch, micro-batch
    by micro-batch. The loss is the sum of squared errors over the masked entries divided
    by their global count, scaled by world size because DDP averages gradients (with
    dropout each rank draws its own masks, see own_dropout_stream)."""
    batch_size, grad_accum = config.batch_size, config.grad_accum
    n_global = batch_size * grad_accum
    positions = torch.from_numpy(rank_rows(np.arange(n_global), batch_size, grad_accum, ctx.rank, ctx.world_size))
    x_local = x_local.to(torch.float32)
    masked_all, mask_all = mask_rows(x_local, positions, n_global, mask_fraction, step_generator(config.seed, step),
                                     mask_fraction_max)
    counts = torch.tensor([float(mask_all.sum()), float(((x_local != MASK_VALUE) & ~mask_all).sum())],
                          dtype=torch.float64, device=ctx.device)
    all_reduce_sum(counts, ctx)
    n_masked, n_observed = int(counts[0]), int(counts[1])
    if n_masked == 0:
        raise ValueError("a training batch has no measured genes to mask; check the data alignment (all -10?)")
    observed_scale = observed_weight * n_masked / max(n_observed, 1)  # per-entry weight relative to masked
    local = batch_size // ctx.world_size
    sse_total = torch.zeros((), dtype=torch.float64, device=ctx.device)
    autocast = torch.autocast(ctx.device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
    for micro in range(grad_accum):
        rows = slice(micro * local, (micro + 1) * local)
        x, x_in, mask = (t[rows].to(ctx.device, non_blocking=True) for t in (x_local, masked_all, mask_all))
        sync = trainee.wrapped.no_sync() if ctx.distributed and micro < grad_accum - 1 else nullcontext()
        with sync, own_dropout_stream(trainee.net, ctx, config.seed, step, micro):
            with autocast:
                # mask_prob = share of -10 entries in what the model sees, as at inference
                output = trainee.forward(x_in, missing_share(x_in))
            sse = objective(output, x, mask, observed_scale)
            (sse / n_masked * ctx.world_size).backward()
        sse_total += sse.detach().double()
    all_reduce_sum(sse_total, ctx)
    grad_norm = float("nan")
    if config.clip_norm:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainee.trainable, config.clip_norm))
    lr_now = trainee.optimizer.param_groups[0]["lr"]
    trainee.optimizer.step()
    trainee.scheduler.step()
    trainee.optimizer.zero_grad(set_to_none=True)
    return {"loss": float(sse_total) / n_masked, "lr": lr_now, "grad_norm": grad_norm, "n_masked": n_masked}


def objective(output, x: torch.Tensor, mask: torch.Tensor, observed_scale: float = 0.0) -> torch.Tensor:
    """Sum of squared errors at the masked positions (the caller divides by their global
    count), plus ``observed_scale`` times that at the measured, unmasked positions.

    Taken on the head's prediction before the v2 mask correction (``output.raw``): the
    correction shifts all masked predictions so their level matches the observed mean,
    which leaves the head's absolute level unanchored (and free to drift below the final
    ReLU) if trained through it."""
    prediction = output.raw
    sse = masked_sse(prediction, x, mask)
    if observed_scale:
        sse = sse + observed_scale * masked_sse(prediction, x, (x != MASK_VALUE) & ~mask)
    return sse


def validation_mask(val_values: np.ndarray, seed: int, mask_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    return evaluation_mask(val_values, mask_fraction, seed=seed + 7919)  # the same masks every epoch


def train_gene_mean_pcc(training: np.ndarray, val_values: np.ndarray, seed: int, mask_fraction: float) -> float:
    """Masked Pearson r of each gene's mean over the ``training`` samples (NaN or -10 where
    unmeasured), on the validation masks: the floor a model must clear to have learned anything."""
    masked, mask = validation_mask(val_values, seed, mask_fraction)
    return masked_pearson(gene_mean_baseline(training, masked), val_values, mask)


def validate(net: BulkFormer, val_values: np.ndarray | None, epoch: int, step: int, seed: int, mask_fraction: float,
              ctx: DistContext, use_bf16: bool, say, baseline_pcc: float) -> dict[str, Any]:
    """Masked-entry Pearson r on the held-out samples, beside ``train_gene_mean_pcc``: that
    of each gene's mean over the *training* samples (not the held-out samples' own means,
    which ``bulkformer evaluate imputation``'s gene_mean baseline uses)."""
    if val_values is None or not len(val_values):
        return {"epoch": epoch, "step": step, "masked_pcc": float("nan"), "masked_mse": float("nan"), "n_masked": 0,
                "train_gene_mean_pcc": baseline_pcc}
    masked, mask = validation_mask(val_values, seed, mask_fraction)
    pred = model_predictions(net, masked, device=ctx.device, bf16=use_bf16)
    pcc = masked_pearson(pred, val_values, mask)
    mse = float(((pred - val_values)[mask] ** 2).mean()) if mask.any() else float("nan")
    say(f"validation in epoch {epoch + 1} (step {step}): masked Pearson r {pcc:.4f} (training samples' gene means "
        f"{baseline_pcc:.4f}), MSE {mse:.4f} over {int(mask.sum())} masked entries of {len(val_values)} held-out samples")
    return {"epoch": epoch, "step": step, "masked_pcc": pcc, "masked_mse": mse, "n_masked": int(mask.sum()),
            "train_gene_mean_pcc": baseline_pcc}


@contextmanager
def own_dropout_stream(net: BulkFormer, ctx: DistContext, seed: int, step: int, micro: int) -> Iterator[None]:
    """Under torchrun with dropout, each rank draws its dropout masks from its own stream:
    every rank starts from the same seed (identical initial weights), so rank r's rows got
    exactly rank 0's masks. Seeded by (seed, step, micro-batch, rank), so resuming stays
    exact. Without dropout, or in one process, nothing changes."""
    if not ctx.distributed or not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in net.modules()):
        yield
        return
    with torch.random.fork_rng(devices=[ctx.device.index or 0] if ctx.device.type == "cuda" else []):
        torch.manual_seed(int(np.random.SeedSequence([seed, step, micro, ctx.rank]).generate_state(1)[0]))
        yield
