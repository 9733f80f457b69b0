"""Masked-expression pretraining objective: hide ~15% of the measured genes with -10."""
from __future__ import annotations

import torch

from ..model import MASK_VALUE


def step_generator(seed: int, step: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The mask RNG for one optimizer step: a pure function of (seed, step), so masks are
    identical across ranks, world sizes and resumes without saving generator state."""
    generator = torch.Generator(device=device)
    generator.manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63 - 1))
    return generator


def check_mask_rates(fraction: float, fraction_max: float | None = None) -> None:
    """The masking rate must be in (0, 1); a rate range [fraction, fraction_max] must
    stay below 1."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"mask_fraction must be in (0, 1), got {fraction}")
    if fraction_max is not None and not fraction <= fraction_max < 1.0:
        raise ValueError(f"mask_fraction_max must be in [mask_fraction, 1) = [{fraction}, 1), got {fraction_max}")


def mask_measured(x: torch.Tensor, fraction: float, generator: torch.Generator,
                  fraction_max: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each measured entry (!= -10) independently with probability ``fraction``, or,
    with ``fraction_max``, with a per-sample probability drawn uniformly from
    [fraction, fraction_max] (so the model meets many missing shares, not only one).

    Returns ``(x_masked, mask)`` where ``mask`` marks the entries that were hidden, the
    positions the loss is computed on. Already-unmeasured entries are never in ``mask``.
    """
    return mask_rows(x, None, x.shape[0], fraction, generator, fraction_max)


def mask_rows(x: torch.Tensor, rows: torch.Tensor | None, n_rows: int, fraction: float, generator: torch.Generator,
              fraction_max: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mask_measured` of rows ``rows`` (None: all) of an ``n_rows``-row batch of which
    ``x`` holds only those rows: the draws are made for the whole batch, so each rank of a
    global batch masks its rows exactly as one process masking the whole batch would."""
    check_mask_rates(fraction, fraction_max)
    rate: float | torch.Tensor = fraction
    if fraction_max is not None:
        spread = torch.rand((n_rows, 1), generator=generator, device=generator.device)
        rate = (fraction + (fraction_max - fraction) * (spread if rows is None else spread[rows])).to(x.device)
    draws = torch.rand((n_rows, x.shape[1]), generator=generator, device=generator.device)
    draws = (draws if rows is None else draws[rows]).to(x.device)
    mask = (draws < rate) & (x != MASK_VALUE)
    return x.masked_fill(mask, MASK_VALUE), mask


def missing_share(x: torch.Tensor) -> torch.Tensor:
    """Per-sample share of -10 entries (the v2 ``mask_prob`` feature). Computed on what the
    model sees, masks included: at inference every -10 is a gene the data lacks, and
    ``prepare`` reports that same share as ``mask_prob``."""
    return (x == MASK_VALUE).float().mean(dim=1)


def masked_sse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over masked positions (float32); divide by the number of
    masked entries of the whole global batch for the MSE of the paper."""
    diff = (pred.float() - target.float()) * mask
    return (diff * diff).sum()
