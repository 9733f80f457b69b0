"""Masked-entry evaluation shared by validation, the demo and the benchmark: hide a
fraction of measured entries, predict them, compare with Pearson r on those entries
only; plus the gene-mean and KNN baselines on the very same entries."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from ..model import MASK_VALUE, BulkFormer
from .masking import mask_measured, missing_share


def evaluation_mask(values: np.ndarray, fraction: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(masked values, mask) with ``fraction`` of the measured entries hidden, seeded."""
    generator = torch.Generator().manual_seed(int(seed))
    masked, mask = mask_measured(torch.from_numpy(np.asarray(values, dtype=np.float32)), fraction, generator)
    return masked.numpy(), mask.numpy()


@torch.no_grad()
def model_predictions(model: BulkFormer, values: np.ndarray, *, batch_size: int = 32, device: str | torch.device = "cpu",
                      bf16: bool = False) -> np.ndarray:
    """Model output (mask-corrected for v2) for aligned log1p TPM rows with -10 entries.
    The v2 ``mask_prob`` feature is each row's share of -10 entries."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    tokens = model.gene_tokens()
    outputs = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    for start in range(0, len(values), batch_size):
        x = torch.from_numpy(np.asarray(values[start:start + batch_size], dtype=np.float32)).to(device)
        with autocast:
            out = model(x, missing_share(x), gene_tokens=tokens)
        outputs.append(out.expr.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outputs, axis=0) if outputs else np.zeros((0, model.config.n_genes), np.float32)


def masked_pearson(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Pearson r over the masked entries pooled across samples."""
    a = np.asarray(prediction, dtype=np.float64)[mask]
    b = np.asarray(truth, dtype=np.float64)[mask]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def gene_mean_baseline(train_values: np.ndarray, masked_values: np.ndarray) -> np.ndarray:
    """Each gene's mean over the training samples that measured it (0 if none)."""
    train = np.where(train_values == MASK_VALUE, np.nan, train_values).astype(np.float64)
    counts = np.isfinite(train).sum(axis=0)
    means = np.where(counts > 0, np.nansum(train, axis=0) / np.maximum(counts, 1), 0.0)
    return np.broadcast_to(means, masked_values.shape).astype(np.float32)


def knn_baseline(train_values: np.ndarray, masked_values: np.ndarray, n_neighbors: int = 10) -> np.ndarray:
    """scikit-learn KNNImputer fitted on the training samples, filling the -10 entries."""
    from sklearn.impute import KNNImputer

    train = np.where(train_values == MASK_VALUE, np.nan, train_values)
    query = np.where(masked_values == MASK_VALUE, np.nan, masked_values)
    keep = ~np.isnan(train).all(axis=0)  # KNNImputer drops all-NaN columns
    imputer = KNNImputer(n_neighbors=n_neighbors)
    imputer.fit(train[:, keep])
    filled = np.array(masked_values, dtype=np.float32, copy=True)
    filled[:, keep] = imputer.transform(query[:, keep])
    filled[:, ~keep] = 0.0
    return filled
