"""Masked-expression pretraining as in the paper, on one device or many (torchrun DDP).

Per sample ~15% of the measured genes are set to -10 and the model is trained on MSE at
those positions only; AdamW, peak lr 1e-4, linear warmup over the first 5% of steps
then cosine decay; gradient accumulation and clipping; bf16 autocast on GPU; optional
activation checkpointing (per Performer layer). Validation at the end of every epoch:
masked-entry Pearson r on held-out samples.

Determinism: the model is initialised from ``seed`` on every rank; the masks of optimizer
step ``t`` are drawn for the whole global batch from a generator seeded by (seed, t); the
data order is a function of (seed, epoch). Hence 2 ranks x B/2 reproduce 1 rank x B, and a
resumed run reproduces the uninterrupted one.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import signal
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_file
from ..bundle import Bundle
from ..model import MASK_VALUE, PRESETS, BulkFormer, LayoutConfig, ModelConfig, layout_of
from . import checkpoint as ckpt
from .compilation import check_compilable, compiled_forward
from .data import Corpus, build_corpus, check_distinct_samples, in_memory_corpus
from .distributed import DistContext, all_reduce_sum, barrier, init_distributed, shutdown
from .evaluation import evaluation_mask, gene_mean_baseline, masked_pearson, model_predictions
from .masking import check_mask_rates, mask_measured, masked_sse, missing_share, step_generator
from .schedule import warmup_cosine
from ..json_safe import json_safe

# Fault injection for the kill-and-resume test: SIGKILL this process after that step.
KILL_AFTER_STEP_ENV = "BULKFORMER_KILL_AFTER_STEP"


@dataclass
class PretrainResult:
    """The trained bundle (eval mode), the per-step history (step, epoch, loss, lr,
    grad_norm, samples) and the per-epoch validation (epoch, step, masked_pcc,
    masked_mse, n_masked); ``out`` is the run directory (final bundle in ``out/model``)."""

    bundle: Bundle
    history: pd.DataFrame
    validation: pd.DataFrame
    out: Path | None


def pretrain(
    data: Any,
    out: str | Path | None = None,
    *,
    model: str | ModelConfig | Bundle | Path = "37M",
    vocabulary: Any = None,
    input: str = "counts",
    layer: str | None = None,
    orientation: str = "samples_by_genes",
    lengths: Any = None,
    min_matched_fraction: float = 0.5,
    gene_names: str | None = None,
    val_data: Any = None,
    val_fraction: float = 0.1,
    max_val_samples: int = 512,
    epochs: int = 1,
    max_steps: int | None = None,
    batch_size: int = 16,
    grad_accum: int = 1,
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.05,
    mask_fraction: float | None = None,
    mask_fraction_max: float | None = None,
    observed_weight: float | None = None,
    clip_norm: float | None = 1.0,
    precision: str = "auto",
    activation_checkpointing: bool = False,
    compile: bool = False,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    resume: bool | str | Path = False,
    seed: int = 0,
    device: str | None = None,
    shards_in_memory: int = 2,
    dim: int | None = None,
    p_repeat: int | None = None,
    heads: int | None = None,
    dropout: float | None = None,
    graph_top_k: int = 20,
    graph_min_abs_r: float = 0.4,
    gene_init: str | None = None,
    gene_init_scale: float = 1.6,
    log_every: int = 10,
    progress: bool = True,
) -> PretrainResult:
    """Pretrain (or continue pretraining) a BulkFormer by masked-expression modelling.

    ``data``: a shard directory / file / list of files (h5ad, parquet, zarr, csv, tsv;
    streamed, ``shards_in_memory`` at a time), a DataFrame / AnnData / array (samples x
    genes; ``input`` says counts / tpm / logtpm, "aligned" for arrays already in
    vocabulary order), or a ``SimulatedCohort``. Raw data go through
    ``bulkformer.preprocess.prepare`` (``layer``, ``orientation``, ``lengths`` and
    ``min_matched_fraction`` as there; ``gene_names`` as its ``genes``: the ``var`` column
    of AnnData, h5ad and zarr data holding the gene IDs), each shard on its own, so shards
    may hold different genes and ID kinds. Shard files without samples are skipped with a warning; a sample
    in two shard files, or in both the training and the validation data, is an error.

    ``model``: a preset name ("37M", ...) or ModelConfig for a new model over
    ``vocabulary`` (default: the shipped vocabulary), sized down with ``dim`` /
    ``p_repeat`` / ``heads``; its gene graph is built from the data (top ``graph_top_k``
    partners by |Pearson r| >= ``graph_min_abs_r``). Or a Bundle (copied, never changed) /
    bundle path to continue pretraining it.

    Defaults of None take the model layout's own recipe (``Layout.recipe``): v1/v2 mask
    15% of the measured genes, with the PCA gene start; bulkformer-latest, as its
    authors trained it, masks 5-15% per sample (``mask_fraction=0.05``,
    ``mask_fraction_max=0.15``) with its random gene-table start. Giving
    ``mask_fraction`` alone asks for that single rate.

    ``gene_init`` (new models with a free gene table): "pca" starts each gene's identity embedding at its
    loadings on the top ``dim`` principal axes of the training data (entries rescaled to
    standard deviation ``gene_init_scale``), so the first step already knows which genes
    move together; "random" is the published Xavier init. On 291 TCGA samples the PCA
    start lifts held-out masked Pearson r from 0.891 to ~0.90 (benchmarks/bench_pretrain_tcga.py).

    ``mask_fraction_max``: each sample of each step is masked at a rate drawn uniformly
    from [``mask_fraction``, ``mask_fraction_max``] instead of always ``mask_fraction``.
    A model trained at a single rate learns to rely on that share of -10 entries: on the
    TCGA benchmark a 15%-trained model falls from masked Pearson r 0.899 to 0.82 when 30%
    are missing, one trained on 5-30% keeps 0.898 and 0.893. Use it when the cohorts the
    model will meet lack varying shares of the vocabulary. Validation masks
    ``mask_fraction``.

    ``observed_weight`` > 0 adds that weight times the MSE at the measured, unmasked
    positions (a denoising term; 0 = the paper's masked-only loss). It makes the
    predictions at observed genes meaningful, which the v2 mask correction relies on.

    Validation: ``val_data``, else ``val_fraction`` of the samples held out (rows of
    in-memory data or of a single file; whole shards, the last ones, of several files,
    so that none is read twice), at most ``max_val_samples`` of them; the log says what
    was held out.

    Optimisation: ``epochs`` passes (or ``max_steps`` optimizer steps, if fewer), AdamW at
    peak ``lr`` with ``weight_decay``, linear warmup over ``warmup_fraction`` of the steps
    then cosine decay, gradients clipped to norm ``clip_norm`` (None or 0: no clipping);
    ``dropout`` overrides the model's attention and feed-forward dropout. ``precision``
    "auto" (bf16 autocast on a CUDA GPU that supports it, else fp32), "fp32" or "bf16";
    ``activation_checkpointing`` recomputes each Performer layer in the backward pass
    (memory for compute). ``compile=True`` runs the training forward through
    ``torch.compile`` (a C++ compiler on CPU; the first steps pay for compilation, the
    numbers match the eager run's to float rounding): on one CPU core it and bf16 (on a
    CPU with AVX512-BF16) take a step of the TCGA benchmark's model from 64-75 ms to ~37.
    ``seed`` fixes initial weights, data order and masks;
    ``device``: default CUDA if available (under torchrun each rank's GPU), else CPU.
    Progress is printed every ``log_every`` steps unless ``progress=False``; with ``out``
    every step is also logged to ``out/log.jsonl``.

    ``batch_size`` is the global micro-batch (split over torchrun ranks); one optimizer
    step sees ``batch_size * grad_accum`` samples. ``checkpoint_every`` steps a
    checkpoint goes to ``out/checkpoints`` (the newest ``keep_checkpoints`` are kept; 0:
    all); ``resume=True`` continues from the latest (or starts, if there is none yet),
    with the settings the run was started with: a changed setting is an error, not a
    silently different run.

    ``out`` must be new, empty or a run directory of this function (checkpoints/,
    model/, logs): anything else in it is refused, not mixed with the run. Without
    ``resume``, one that holds checkpoints is refused too (resume it, or delete them).

    Example::

        vocabulary = bulkformer.annotation.default_vocabulary().iloc[:1000]   # a small model: 1,000 genes
        cohort = bulkformer.simulate_cohort(n_samples=400, vocabulary=vocabulary, n_genes=None)
        # a small model learns faster than the 147M preset's lr 1e-4 allows: ~20 s on one core,
        # masked r ~0.89 against the gene mean's ~0.76
        result = bulkformer.pretrain(cohort, "runs/sim", vocabulary=vocabulary, dim=32, heads=4, p_repeat=1, epochs=5,
                                     batch_size=8, lr=3e-3, observed_weight=0.25)
        result.validation   # masked_pcc (and the gene-mean baseline's gene_mean_pcc) per epoch
    """
    arguments = dict(locals())
    _check_arguments(epochs, batch_size, grad_accum, lr, mask_fraction, mask_fraction_max, observed_weight, val_fraction,
                     precision, gene_init, gene_init_scale, max_steps=max_steps, checkpoint_every=checkpoint_every,
                     keep_checkpoints=keep_checkpoints, clip_norm=clip_norm)
    ctx = init_distributed(device)
    owns_group = ctx.distributed
    try:
        return _pretrain(ctx, **arguments)
    finally:
        if owns_group:
            shutdown(ctx)


def _pretrain(ctx: DistContext, *, data, out, model, vocabulary, input, layer, orientation, lengths, min_matched_fraction,
              gene_names, val_data, val_fraction,
              max_val_samples, epochs, max_steps, batch_size, grad_accum, lr, weight_decay, warmup_fraction,
              mask_fraction, mask_fraction_max, observed_weight, clip_norm, precision, activation_checkpointing, compile,
              checkpoint_every, keep_checkpoints,
              resume, seed, device, shards_in_memory, dim, p_repeat, heads, dropout, graph_top_k, graph_min_abs_r,
              gene_init, gene_init_scale, log_every, progress) -> PretrainResult:
    if batch_size % ctx.world_size:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {ctx.world_size}")
    run_dir = Path(out) if out is not None else None
    if compile:
        check_compilable(ctx.device)
    if checkpoint_every and run_dir is None:
        raise ValueError("checkpoint_every needs a run directory (out=...) to write checkpoints to")
    say = _printer(ctx, progress)
    check_run_dir(run_dir, resume)  # before any data is read
    start_from, state = ckpt.resume_point(resume, run_dir)  # a damaged newest one passed over with a warning
    if resume is True and start_from is None:
        say(f"no checkpoint in {ckpt.checkpoint_root(run_dir)} yet: starting from step 0")
    model_source = _model_source(model)
    saved_source = ((state or {}).get("settings") or {}).get("model")
    if saved_source is not None and saved_source != model_source:
        # checked before the data are read: a changed model (a bundle left out) would first fail
        # there, on genes, with no word of the model
        raise ValueError(f"the checkpoint {start_from} belongs to a run started from model={saved_source!r} (now "
                         f"{model_source!r}): resume with the same model (--model)")

    torch.manual_seed(seed)  # same on every rank: identical initial weights and Performer redraws
    genes, base_bundle, config = _resolve_model(model, vocabulary, dim=dim, p_repeat=p_repeat, heads=heads, dropout=dropout)
    recipe = layout_of(config).recipe
    if mask_fraction is None:
        mask_fraction, mask_fraction_max = recipe.mask_fraction, (
            recipe.mask_fraction_max if mask_fraction_max is None else mask_fraction_max)
    observed_weight = recipe.observed_weight if observed_weight is None else observed_weight
    gene_init = recipe.gene_init if gene_init is None else gene_init
    check_mask_rates(mask_fraction, mask_fraction_max)
    if gene_names is not None and not isinstance(gene_names, str):  # one name for every shard, kept with the settings
        raise ValueError("gene_names= names the var column holding the gene IDs (the same in every shard); to "
                         "relabel in-memory data, set its column names")
    corpus = build_corpus(data, genes, input=input, layer=layer, lengths=lengths, shards_in_memory=shards_in_memory,
                          orientation=orientation, min_matched_fraction=min_matched_fraction, gene_names=gene_names)
    corpus, val_values, held_out = _validation_split(corpus, val_data, val_fraction, max_val_samples, genes, input, layer,
                                                     lengths, seed, orientation=orientation,
                                                     min_matched_fraction=min_matched_fraction, gene_names=gene_names)
    say(f"validation: {held_out}")
    settings = {  # what a resumed run must repeat to continue the same run
        "seed": seed, "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "grad_accum": grad_accum,
        "lr": lr, "weight_decay": weight_decay, "warmup_fraction": warmup_fraction, "mask_fraction": mask_fraction,
        "mask_fraction_max": mask_fraction_max, "observed_weight": observed_weight, "clip_norm": clip_norm,
        "dropout": dropout, "shards_in_memory": shards_in_memory, "input": input, "layer": layer,
        "gene_names": gene_names,
        "orientation": orientation, "lengths": _lengths_fingerprint(lengths),
        "min_matched_fraction": min_matched_fraction, "val_fraction": val_fraction,
        "max_val_samples": max_val_samples, "validation_samples": 0 if val_values is None else len(val_values),
        "training_shards": [[s.name, s.n_samples] for s in corpus.shards], "model": model_source,
    }
    step_samples = batch_size * grad_accum
    profile = None  # up to 2,000 training samples: read for a new model's graph and init, and for the baseline
    if start_from is not None:
        _check_resumed_settings(state.get("settings"), settings, start_from)
        if int(state["step_samples"]) != step_samples:
            raise ValueError(f"the checkpoint was trained with {state['step_samples']} samples per step; "
                             f"resume with the same batch_size x grad_accum (now {step_samples})")
        # the checkpoint's own model: its weights and its gene graph (a new model's graph
        # is not in the weights, and rebuilt from changed data it would differ)
        bundle = _checkpoint_bundle(start_from, config, genes)
        if dropout is not None:
            _set_dropout(bundle.model, dropout)
    elif base_bundle is None:
        from ..graph import correlation_edges

        profile = _training_profile(corpus, seed)
        filled = _filled(profile)
        edge_index, edge_weight = correlation_edges(filled, top_k=graph_top_k, min_abs_r=graph_min_abs_r)
        net = BulkFormer(config, edge_index, edge_weight)
        _init_output_level(net, _mean_level(profile))
        if gene_init == "pca" and net.gene_identity_table() is not None:
            _init_gene_embedding_pca(net, filled, gene_init_scale)
        bundle = Bundle(model=net, genes=genes, metadata={"name": "bulkformer-pretrained", "trained": True})
    else:
        bundle = base_bundle
        if dropout is not None:
            _set_dropout(bundle.model, dropout)
    net = bundle.model.to(ctx.device).train()
    _freeze_unused(net)
    if activation_checkpointing:
        enable_activation_checkpointing(net)
    trainable = [p for p in net.parameters() if p.requires_grad]
    wrapped: torch.nn.Module = net
    if ctx.distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    steps_per_epoch = corpus.n_samples // step_samples
    if steps_per_epoch < 1:
        raise ValueError(f"{corpus.n_samples} training samples are fewer than one step's {step_samples} "
                         "(batch_size x grad_accum); lower batch_size or add data")
    total_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    if max_steps is not None and max_steps > epochs * steps_per_epoch and ctx.is_main:
        warnings.warn(f"max_steps={max_steps} is more than epochs={epochs} x {steps_per_epoch} steps per epoch: the run "
                      f"stops after {total_steps} steps; raise epochs to train for {max_steps}", UserWarning, stacklevel=2)
    # the fused kernel (CPU, CUDA) updates all parameters in one pass: ~1.5% of a small model's step
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay,
                                  fused=ctx.device.type in ("cpu", "cuda") or None)
    scheduler = warmup_cosine(optimizer, total_steps, warmup_fraction)
    use_bf16 = _use_bf16(precision, ctx.device)

    step, epoch, position = 0, 0, 0
    history: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    if start_from is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, epoch, position = int(state["step"]), int(state["epoch"]), int(state["position"])
        differences = [f"{what} {before} (now {now})" for what, before, now in (
            ("processes", state.get("world_size", ctx.world_size), ctx.world_size),
            ("bf16 autocast", state.get("bf16", use_bf16), use_bf16)) if before != now]
        if differences and ctx.is_main:
            warnings.warn(f"the checkpoint was written with {', '.join(differences)}: the run continues its schedule and "
                          "data order, but its numbers will not be bit-identical to an uninterrupted run",
                          UserWarning, stacklevel=2)
        history, validation = list(state["history"]), list(state["validation"])
        say(f"resumed from {start_from} at step {step} (epoch {epoch}, sample {position})")
    if ctx.is_main and run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_log(run_dir, history)
    depth = f"{config.n_layers} Performer layer{'s' if config.n_layers > 1 else ''}"
    say(f"pretraining {config.version} d={config.dim} x {depth} over {config.n_genes} genes: "
        f"{corpus.n_samples} samples, {total_steps} steps of {step_samples}, {ctx.world_size} process(es) on {ctx.device}")

    # what the model's validation r is to be read against: each gene's training mean
    baseline_pcc = float("nan")
    if val_values is not None and len(val_values):
        training = profile if profile is not None else _training_profile(corpus, seed)
        baseline_pcc = _gene_mean_baseline_pcc(training, val_values, seed, mask_fraction)
    kill_after = int(os.environ.get(KILL_AFTER_STEP_ENV, "0") or 0)
    started = time.time()
    with (compiled_forward(wrapped, net) if compile else nullcontext(wrapped)) as forward:
        while step < total_steps:
            for position, batch in corpus.batches(step_samples, epoch, seed, start=position):
                record = _train_step(wrapped, forward, net, optimizer, scheduler, batch, ctx, step=step, seed=seed,
                                     batch_size=batch_size, grad_accum=grad_accum, mask_fraction=mask_fraction,
                                     mask_fraction_max=mask_fraction_max,
                                     observed_weight=observed_weight, clip_norm=clip_norm, use_bf16=use_bf16, trainable=trainable)
                step += 1
                record.update(step=step, epoch=epoch, samples=position)
                history.append(record)
                if ctx.is_main and run_dir is not None:
                    with open(run_dir / "log.jsonl", "a") as handle:
                        handle.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
                if step % max(1, log_every) == 0 or step == total_steps:
                    say(f"step {step}/{total_steps} epoch {epoch + 1} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                        f"({time.time() - started:.0f}s)")
                if checkpoint_every and step % checkpoint_every == 0 and step < total_steps:
                    _checkpoint(ctx, run_dir, bundle, optimizer, scheduler, step, epoch, position, history, validation,
                                step_samples, keep_checkpoints, settings, use_bf16)
                if kill_after and step == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                if step >= total_steps:
                    break
            else:  # the epoch's data ran out
                validation.append(_validate(net, val_values, epoch, step, seed, mask_fraction, ctx, use_bf16, say, baseline_pcc))
                epoch, position = epoch + 1, 0
    if not validation or validation[-1]["step"] != step:
        validation.append(_validate(net, val_values, epoch, step, seed, mask_fraction, ctx, use_bf16, say, baseline_pcc))

    net.eval()
    disable_activation_checkpointing(net)
    last = validation[-1]
    record = {
        "steps": step, "epochs_completed": step // steps_per_epoch, "samples_per_step": step_samples, "seed": seed,
        "mask_fraction": mask_fraction, "mask_fraction_max": mask_fraction_max, "observed_weight": observed_weight,
        "peak_lr": lr, "final_loss": history[-1]["loss"] if history else None,
        "val_masked_pcc": last["masked_pcc"], "val_gene_mean_pcc": baseline_pcc, "model": model_source,
    }
    earlier = bundle.metadata.get("pretraining")
    if earlier and base_bundle is not None:  # continued pretraining keeps the base run's record
        record["continued_from"] = earlier
    bundle.metadata = {**bundle.metadata, "pretraining": record}
    if ctx.is_main and last["masked_pcc"] < baseline_pcc:
        warnings.warn(f"the model's masked Pearson r on the held-out samples ({last['masked_pcc']:.4f}) is below the "
                      f"gene-mean baseline's ({baseline_pcc:.4f}): it has not learned more than each gene's average; "
                      "train for more epochs (or check the data and learning rate) before using it", UserWarning,
                      stacklevel=2)
    history_frame, validation_frame = pd.DataFrame(history), pd.DataFrame(validation)
    if ctx.is_main and run_dir is not None:
        bundle.save(run_dir / "model")
        _atomic_csv(history_frame, run_dir / "history.csv")
        _atomic_csv(validation_frame, run_dir / "validation.csv")
        say(f"model written to {run_dir / 'model'}")
    barrier(ctx)
    return PretrainResult(bundle=bundle, history=history_frame, validation=validation_frame, out=run_dir)


# ---------------------------------------------------------------------------- steps
def _train_step(wrapped, forward, net, optimizer, scheduler, batch: np.ndarray, ctx: DistContext, *, step: int, seed: int,
                batch_size: int, grad_accum: int, mask_fraction: float, mask_fraction_max: float | None,
                observed_weight: float,
                clip_norm: float | None, use_bf16: bool, trainable) -> dict[str, Any]:
    """One optimizer step over a global batch of ``batch_size * grad_accum`` rows.

    Masks are drawn for the whole global batch (identical on every rank); each rank
    takes its rows of each micro-batch. The loss is the sum of squared errors over the
    masked entries divided by their global count, scaled by world size because DDP
    averages gradients: without dropout the gradient equals the single-process one (with
    dropout each rank draws its own masks, see _own_dropout_stream). ``forward`` calls
    ``wrapped`` (the model or its DDP wrapper), compiled or not."""
    x_all = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    masked_all, mask_all = mask_measured(x_all, mask_fraction, step_generator(seed, step), mask_fraction_max)
    n_masked = int(mask_all.sum())
    if n_masked == 0:
        raise ValueError("a training batch has no measured genes to mask; check the data alignment (all -10?)")
    n_observed = int(((x_all != MASK_VALUE) & ~mask_all).sum())
    observed_scale = observed_weight * n_masked / max(n_observed, 1)  # per-entry weight relative to masked
    local = batch_size // ctx.world_size
    sse_total = torch.zeros((), dtype=torch.float64, device=ctx.device)
    autocast = torch.autocast(ctx.device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
    for micro in range(grad_accum):
        rows = slice(micro * batch_size + ctx.rank * local, micro * batch_size + (ctx.rank + 1) * local)
        x, x_in, mask = (t[rows].to(ctx.device) for t in (x_all, masked_all, mask_all))
        sync = wrapped.no_sync() if ctx.distributed and micro < grad_accum - 1 else nullcontext()
        with sync, _own_dropout_stream(net, ctx, seed, step, micro):
            with autocast:
                # mask_prob = share of -10 entries in what the model sees, as at inference
                output = forward(x_in, missing_share(x_in))
            sse = objective(output, x, mask, observed_scale)
            (sse / n_masked * ctx.world_size).backward()
        sse_total += sse.detach().double()
    all_reduce_sum(sse_total, ctx)
    grad_norm = float("nan")
    if clip_norm:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, clip_norm))
    lr_now = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": float(sse_total) / n_masked, "lr": lr_now, "grad_norm": grad_norm, "n_masked": n_masked}


def _validation_mask(val_values: np.ndarray, seed: int, mask_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    return evaluation_mask(val_values, mask_fraction, seed=seed + 7919)  # the same masks every epoch


def _gene_mean_baseline_pcc(training: np.ndarray, val_values: np.ndarray, seed: int, mask_fraction: float) -> float:
    """Masked Pearson r of each gene's mean over the ``training`` samples (NaN or -10 where
    unmeasured), on the validation masks: the floor a model must clear to have learned anything."""
    masked, mask = _validation_mask(val_values, seed, mask_fraction)
    return masked_pearson(gene_mean_baseline(training, masked), val_values, mask)


def _validate(net: BulkFormer, val_values: np.ndarray | None, epoch: int, step: int, seed: int, mask_fraction: float,
              ctx: DistContext, use_bf16: bool, say, baseline_pcc: float) -> dict[str, Any]:
    """Masked-entry Pearson r on the held-out samples, beside the gene-mean baseline's."""
    if val_values is None or not len(val_values):
        return {"epoch": epoch, "step": step, "masked_pcc": float("nan"), "masked_mse": float("nan"), "n_masked": 0,
                "gene_mean_pcc": baseline_pcc}
    masked, mask = _validation_mask(val_values, seed, mask_fraction)
    pred = model_predictions(net, masked, device=ctx.device, bf16=use_bf16)
    pcc = masked_pearson(pred, val_values, mask)
    mse = float(((pred - val_values)[mask] ** 2).mean()) if mask.any() else float("nan")
    say(f"validation in epoch {epoch + 1} (step {step}): masked Pearson r {pcc:.4f} (gene-mean baseline "
        f"{baseline_pcc:.4f}), MSE {mse:.4f} over {int(mask.sum())} masked entries of {len(val_values)} held-out samples")
    return {"epoch": epoch, "step": step, "masked_pcc": pcc, "masked_mse": mse, "n_masked": int(mask.sum()),
            "gene_mean_pcc": baseline_pcc}


@contextmanager
def _own_dropout_stream(net: BulkFormer, ctx: DistContext, seed: int, step: int, micro: int) -> Iterator[None]:
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


def _checkpoint(ctx, run_dir, bundle, optimizer, scheduler, step, epoch, position, history, validation, step_samples, keep,
                settings, use_bf16: bool):
    if ctx.is_main:
        state = {
            "settings": settings,
            "step": step, "epoch": epoch, "position": position, "step_samples": step_samples,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "history": history, "validation": validation, "world_size": ctx.world_size, "bf16": use_bf16,
        }
        ckpt.save_checkpoint(run_dir, step, bundle, state, keep=keep)
    barrier(ctx)


# ---------------------------------------------------------------------------- setup
# What pretraining writes into its run directory, and nothing else.
RUN_ENTRIES = ("checkpoints", "log.jsonl", "model", "history.csv", "validation.csv")


def is_run_dir(path: str | Path) -> bool:
    """A directory that holds only what pretraining writes (at least one of it)."""
    path = Path(path)
    names = {p.name for p in path.iterdir() if not p.name.startswith(".")} if path.is_dir() else set()
    return bool(names) and names <= set(RUN_ENTRIES)


def check_run_dir(run_dir: Path | None, resume: bool | str | Path) -> None:
    """Refuse, before any data is read, an ``out`` the run would mix with or silently
    replace: a file; a directory holding anything but an earlier run's files (user data;
    a shard folder would even read history.csv as a shard next time); an earlier run's
    checkpoints without ``resume`` (the old ones would outlive the new ones when pruning,
    and a later resume would continue the old run); with ``resume=True``, a finished run
    without checkpoints (nothing to resume: it would start over and replace the model)."""
    if run_dir is None:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"out={str(run_dir)!r} is a file; a run is written as a directory: give a new directory path")
    if not run_dir.is_dir():
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".") and p.name not in RUN_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(f"{run_dir} already holds files of its own ({shown}): a run writes "
                         f"{', '.join(RUN_ENTRIES)} into out and would mix them with these. Give a new or empty "
                         f"directory, e.g. out='{run_dir.with_name(run_dir.name + '-pretrain')}'")
    latest = ckpt.latest_checkpoint(run_dir)
    if not resume and latest is not None:
        raise ValueError(f"{run_dir} holds checkpoints of an earlier run (latest: {latest.name}): continue it with "
                         f"resume=True, or delete {ckpt.checkpoint_root(run_dir)} (or give a new directory) to start over")
    if resume is True and latest is None and (run_dir / "model").is_dir():
        raise ValueError(f"{run_dir} holds a finished run (model/) and no checkpoint: there is nothing to resume. To "
                         f"train its model further, give model='{run_dir / 'model'}' and a new out directory")


def _checkpoint_bundle(checkpoint: Path, config: ModelConfig, genes: pd.DataFrame) -> Bundle:
    """The checkpoint's bundle, refused if it is not the model these settings describe
    (a size mismatch would otherwise surface as a state-dict traceback)."""
    from ..bundle import load

    bundle = load(checkpoint / "bundle")
    saved, now = bundle.config.to_dict(), config.to_dict()
    changed = [f"{key}={saved.get(key)} (now {value})" for key, value in now.items() if saved.get(key) != value]
    if not changed and bundle.genes["ensembl_id"].astype(str).tolist() != genes["ensembl_id"].astype(str).tolist():
        changed = [f"its {len(bundle.genes)} vocabulary genes (now other genes)"]
    if changed:
        raise ValueError(f"the checkpoint {checkpoint} holds another model than these settings describe: "
                         f"{', '.join(changed)}. Resume with the run's model settings, or start a new run directory")
    return bundle


def _check_resumed_settings(saved: dict[str, Any] | None, now: dict[str, Any], checkpoint: Path) -> None:
    """A resumed run continues one schedule and one data order; a changed setting would
    make it another run without saying so (a new lr is even overwritten by the
    optimizer's saved state). Checkpoints written before settings were saved: unchecked."""
    if saved is None:
        return
    changed = []
    for key, value in now.items():
        if key not in saved:  # a setting checkpoints of older versions did not record
            continue
        before = saved[key]
        if key == "training_shards":
            if [list(s) for s in before or []] != [list(s) for s in value]:
                changed.append(f"the training data ({_shard_summary(before or [])}; now {_shard_summary(value)})")
        elif before != value:
            changed.append(f"{key}={before!r} (now {value!r})")
    if changed:
        raise ValueError(
            f"the checkpoint {checkpoint} was written with other settings: {', '.join(changed)}. A resumed run repeats "
            "the settings it was started with (same learning-rate schedule and data order): restore them, or start a "
            f"new run directory (to train the checkpoint's model on with new settings: model='{checkpoint / 'bundle'}')")


def _model_source(model: Any) -> str:
    """Where a run's starting model came from, as a resumed run must repeat it: a preset
    name, a bundle directory, or a description of an in-memory model."""
    if isinstance(model, (str, Path)):
        return str(Path(model).resolve()) if Path(model).is_dir() else str(model)
    if isinstance(model, Bundle):
        return f"an in-memory bundle ({model.config.version}, d={model.config.dim}, {model.config.n_genes} genes)"
    return f"a model config ({getattr(model, 'version', '?')}, d={getattr(model, 'dim', '?')})"


def _lengths_fingerprint(lengths: Any) -> str | None:
    """A short, comparable description of user gene lengths (they change every TPM value
    of a counts corpus): None for the shipped lengths."""
    if lengths is None:
        return None
    if isinstance(lengths, (pd.Series, Mapping)):
        series = pd.Series(lengths) if not isinstance(lengths, pd.Series) else lengths
        # as float64: the same lengths read as integers (pandas) or floats (the CLI) are the same lengths
        table = pd.DataFrame({"gene": series.index.astype(str),
                              "bp": pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)})
        table = table.sort_values("gene", kind="stable")
        what = f"{len(table)} gene lengths"
    else:  # a samples x genes matrix of effective lengths
        table = pd.DataFrame(np.asarray(lengths, dtype=np.float64))
        what = f"{table.shape[0]} x {table.shape[1]} length matrix"
    digest = hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()).hexdigest()[:12]
    return f"{what} (sha256 {digest})"


def _shard_summary(shards: list) -> str:
    shown = ", ".join(f"{name} ({n})" for name, n in shards[:3])
    return f"{len(shards)} shards, {sum(n for _, n in shards)} samples: {shown}{' ...' if len(shards) > 3 else ''}"


def _resolve_model(model, vocabulary, *, dim, p_repeat, heads, dropout) -> tuple[pd.DataFrame, Bundle | None, ModelConfig]:
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


def _validation_split(corpus: Corpus, val_data, val_fraction: float, max_val_samples: int, genes, input, layer,
                      lengths, seed: int, *, orientation: str = "samples_by_genes",
                      min_matched_fraction: float = 0.5, gene_names: str | None = None
                      ) -> tuple[Corpus, np.ndarray | None, str]:
    """(training corpus, validation rows or None, what was held out, for the log).
    Data in memory and a single file are split by rows; several shard files by whole
    shards (the last ``ceil(val_fraction * n)``), so that no file is read twice."""
    if val_data is not None:
        held = build_corpus(val_data, genes, input=input, layer=layer, lengths=lengths, orientation=orientation,
                            min_matched_fraction=min_matched_fraction, gene_names=gene_names)
        check_distinct_samples(corpus.shards, held.shards)
        values = held.sample(max_val_samples, seed)
        return corpus, values, f"{len(values)} samples of the validation data"
    if val_fraction <= 0:
        return corpus, None, "none (val_fraction=0)"
    if len(corpus.shards) == 1 or all(s.name.startswith("rows ") for s in corpus.shards):
        # one file is read whole for training anyway: splitting its rows costs no extra pass
        values = np.concatenate([s.read() for s in corpus.shards], axis=0)
        order = np.random.default_rng([seed, 99]).permutation(len(values))
        n_val = min(max_val_samples, max(1, int(round(val_fraction * len(values)))))
        if len(values) - n_val < 1:
            raise ValueError(f"too few samples ({len(values)}) to hold out {n_val} for validation; set val_fraction=0")
        train = values[np.sort(order[n_val:])]
        return (in_memory_corpus(train, shards_in_memory=corpus.shards_in_memory), values[np.sort(order[:n_val])],
                f"{n_val} of {len(values)} samples")
    n_val_shards = max(1, int(math.ceil(val_fraction * len(corpus.shards))))
    held = corpus.shards[-n_val_shards:]
    values = np.concatenate([s.read() for s in held], axis=0)
    keep = np.sort(np.random.default_rng(seed).permutation(len(values))[:max_val_samples])
    n_leaving = sum(s.n_samples for s in held)
    share = n_leaving / max(corpus.n_samples, 1)
    note = (f"{len(keep)} samples from the last {n_val_shards} of {len(corpus.shards)} shard files "
            f"({', '.join(s.name for s in held)}); whole shards, so {n_leaving} samples ({share:.0%} of "
            f"{corpus.n_samples}) leave training")
    if share > 2 * val_fraction:
        warnings.warn(f"validation takes {share:.0%} of the samples (val_fraction={val_fraction}) because whole shard "
                      f"files are held out ({n_val_shards} of {len(corpus.shards)}): give the validation samples with "
                      "val_data=, or split the data into more, smaller shards", UserWarning, stacklevel=3)
    return Corpus(corpus.shards[:-n_val_shards], corpus.shards_in_memory), values[keep], note


def _training_profile(corpus: Corpus, seed: int) -> np.ndarray:
    """Up to 2,000 training samples (float64), unmeasured entries as NaN: the output level
    is computed from it, the gene graph and the PCA gene init from its ``_filled`` copy."""
    values = corpus.sample(2000, seed).astype(np.float64)
    values[values == MASK_VALUE] = np.nan
    return values


def _filled(profile: np.ndarray) -> np.ndarray:
    """Unmeasured entries set to their gene's mean: they carry no correlation."""
    means = np.nanmean(np.where(np.isnan(profile).all(axis=0), 0.0, profile), axis=0)
    return np.where(np.isnan(profile), means, profile)


def _mean_level(profile: np.ndarray) -> float:
    return float(np.nanmean(profile)) if np.isfinite(profile).any() else 1.0


def _init_gene_embedding_pca(net: BulkFormer, filled: np.ndarray, scale: float) -> None:
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


def _init_output_level(net: BulkFormer, level: float) -> None:
    """Start the output head at the corpus' mean expression. The head ends in a ReLU; a
    random init can leave it negative for every gene, where no gradient ever flows."""
    with torch.no_grad():
        net.output_linear().bias.fill_(max(level, 0.1))


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


def _freeze_unused(net: BulkFormer) -> None:
    """Fixed tables and parameters that get no gradient (a v1 bin selector with bins = 0:
    DDP would wait for its gradient) are frozen."""
    for parameter in net.frozen_parameters():
        parameter.requires_grad_(False)


def _set_dropout(net: BulkFormer, p: float) -> None:
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


def _use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def _check_arguments(epochs, batch_size, grad_accum, lr, mask_fraction, mask_fraction_max, observed_weight, val_fraction,
                     precision, gene_init, gene_init_scale, *, max_steps=None, checkpoint_every=None, keep_checkpoints=2,
                     clip_norm=None) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 (or None: all epochs), got {max_steps}")
    if checkpoint_every is not None and checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 1 (or 0 / None: no checkpoints), got {checkpoint_every}")
    if keep_checkpoints < 0:
        raise ValueError(f"keep_checkpoints must be >= 1 (or 0: keep all), got {keep_checkpoints}")
    if clip_norm is not None and clip_norm < 0:
        # a negative norm makes torch's clip coefficient negative: every step would climb the loss
        raise ValueError(f"clip_norm must be > 0 (or 0 / None: no clipping), got {clip_norm}")
    if batch_size < 1 or grad_accum < 1:
        raise ValueError(f"batch_size and grad_accum must be >= 1, got {batch_size} and {grad_accum}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if mask_fraction is not None:  # None: the layout's recipe, checked once the model is known
        check_mask_rates(mask_fraction, mask_fraction_max)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if observed_weight is not None and observed_weight < 0:
        raise ValueError(f"observed_weight must be >= 0, got {observed_weight}")
    if gene_init is not None and gene_init not in ("pca", "random"):
        raise ValueError(f"gene_init must be 'pca' or 'random', got {gene_init!r}")
    if gene_init_scale <= 0:
        raise ValueError(f"gene_init_scale must be > 0, got {gene_init_scale}")


def _printer(ctx: DistContext, progress: bool):
    def say(message: str) -> None:
        if progress and ctx.is_main:
            print(f"[bulkformer pretrain] {message}", flush=True)
    return say


def _write_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """(Re)write log.jsonl from the history: after a resume it drops the steps the
    interrupted run logged past its last checkpoint."""
    with atomic_file(run_dir / "log.jsonl") as staging:
        staging.write_text("".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in history))


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as staging:
        frame.to_csv(staging, index=False)
