"""A model to pretrain: resolved from a preset, config or bundle, and a new model
initialised from the training data (gene graph, output level, PCA gene table); the
training-time switches (frozen tables, dropout, activation checkpointing)."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..bundle import Bundle
from ..model import MASK_VALUE, PRESETS, BulkFormer, LayoutConfig, ModelConfig, layout_of
from .run_dir import is_run_dir


def resolve_model(model, vocabulary, *, dim, p_repeat, heads, dropout) -> tuple[pd.DataFrame, Bundle | None, ModelConfig]:
    from ..bundle import load

    if isinstance(model, Bundle) or (isinstance(model, (str, Path)) and Path(model).is_dir()):
        if not isinstance(model, Bundle) and is_run_dir(model) and (Path(model) / "model").is_dir():
            raise ValueError(f"{model} is a pretraining run directory, not a bundle: continue from its model with "
                             f"model='{Path(model) / 'model'}' (or resume the run itself with out='{model}', resume=True)")
        # a Bundle passed in is copied: the caller's model stays the one they passed
        bundle = copy.deepcopy(model) if isinstance(model, Bundle) else load(model)
        given = {k: v for k, v in (("dim", dim), ("p_repeat", p_repeat), ("heads", heads)) if v is not None}
        if given:
            raise ValueError(f"{', '.join(f'{k}={v}' for k, v in given.items())}: these shape a new model and cannot "
                             f"change an existing bundle (d={bundle.config.dim}, {bundle.config.n_layers} Performer "
                             f"layers, {bundle.config.heads} heads); leave them unset to continue it")
        if vocabulary is not None:
            raise ValueError(f"a vocabulary chooses a new model's genes; the bundle keeps its own {len(bundle.genes)} "
                             "genes: leave vocabulary unset to continue it")
        return bundle.genes, bundle, bundle.config
    if isinstance(model, (str, Path)):
        if str(model) not in PRESETS:
            if isinstance(model, Path) or os.sep in model or "/" in model:  # a path, not a preset name
                raise FileNotFoundError(f"no model bundle at {model}: expected a bundle directory (or a preset: "
                                        f"{', '.join(PRESETS)})")
            raise ValueError(f"model must be a preset ({', '.join(PRESETS)}), a ModelConfig, or a bundle directory; got {model!r}")
        model = str(model)
        config = PRESETS[model]
    elif isinstance(model, LayoutConfig):
        config = model
    else:
        raise ValueError(f"model must be a preset name, a ModelConfig or a Bundle, got {type(model).__name__}")
    from ..preprocess import vocabulary_table

    genes = vocabulary_table(vocabulary)
    resized = layout_of(config).resize(config, n_genes=len(genes), dim=dim, layers=p_repeat, heads=heads,
                                       dropout=dropout)
    return genes, None, resized


def training_profile(corpus, seed: int) -> np.ndarray:
    """Up to 2,000 training samples (float64), unmeasured entries as NaN: the output level
    is computed from it, the gene graph and the PCA gene init from its ``_filled`` copy."""
    values = corpus.sample(2000, seed).astype(np.float64)
    values[values == MASK_VALUE] = np.nan
    return values


def filled(profile: np.ndarray) -> np.ndarray:
    """Unmeasured entries set to their gene's mean: they carry no correlation."""
    means = np.nanmean(np.where(np.isnan(profile).all(axis=0), 0.0, profile), axis=0)
    return np.where(np.isnan(profile), means, profile)


def mean_level(profile: np.ndarray) -> float:
    return float(np.nanmean(profile)) if np.isfinite(profile).any() else 1.0


def init_gene_embedding_pca(net: BulkFormer, filled: np.ndarray, scale: float) -> None:
    """The layout's free gene table (G x d) := the genes' loadings on the top ``dim`` principal
    axes of the centred training profile (``_filled``: no NaN; component scores' spread
    included), rescaled to entry standard deviation ``scale``. Axes beyond the data's
    rank keep their random init."""
    from sklearn.utils.extmath import randomized_svd

    weight = net.gene_identity_table()
    centred = filled - filled.mean(axis=0)
    n_components = min(weight.shape[1], min(centred.shape) - 1)
    if n_components < 1 or not np.any(centred):
        return
    _, singular, axes = randomized_svd(centred, n_components, random_state=0)
    loadings = axes.T * (singular / np.sqrt(len(centred)))  # genes x components
    spread = loadings.std()
    if not np.isfinite(spread) or spread == 0:
        return
    with torch.no_grad():
        weight[:, :n_components] = torch.from_numpy(loadings * (scale / spread)).to(weight)


def init_output_level(net: BulkFormer, level: float) -> None:
    """Start the output head at the corpus' mean expression. The head ends in a ReLU; a
    random init can leave it negative for every gene, where no gradient ever flows."""
    with torch.no_grad():
        net.output_linear().bias.fill_(max(level, 0.1))


def freeze_unused(net: BulkFormer) -> None:
    """Fixed tables and parameters that get no gradient (a v1 bin selector with bins = 0:
    DDP would wait for its gradient) are frozen."""
    for parameter in net.frozen_parameters():
        parameter.requires_grad_(False)


def set_dropout(net: BulkFormer, p: float) -> None:
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p


def enable_activation_checkpointing(net: BulkFormer) -> None:
    """Recompute each Performer layer's activations in the backward pass (memory for
    compute, for the large presets). The layout names the modules to wrap (never a
    whole Performer, so its projection-redraw counter is not advanced twice)."""
    from torch.utils.checkpoint import checkpoint

    for inner in net.checkpoint_units():
        if getattr(inner, "_bulkformer_checkpointed", False):
            continue
        original = inner.forward

        def forward(x, *args, _original=original, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_original, x, *args, use_reentrant=False, **kwargs)
            return _original(x, *args, **kwargs)

        inner.forward = forward
        inner._bulkformer_checkpointed = True


def disable_activation_checkpointing(net: BulkFormer) -> None:
    for inner in net.checkpoint_units():
        if getattr(inner, "_bulkformer_checkpointed", False):
            del inner.forward
            inner._bulkformer_checkpointed = False
