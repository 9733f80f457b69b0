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

This module wires the pieces together: settings (:mod:`.config`), the run directory and
resume checks (:mod:`.run_dir`), the model and its initialisation (:mod:`.model_init`),
data and validation split (:mod:`.rows`, :mod:`.sources`), steps (:mod:`.steps`) and the
loop with its callbacks (:mod:`.loop`, :mod:`.callbacks`).
"""
from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from ..atomic import atomic_file
from ..bundle import Bundle
from ..corpus.sources import ModelTarget, check_distinct_samples
from ..corpus.store import CorpusSettings, PreparedCorpus, is_corpus, lengths_fingerprint, prepare_corpus, \
    vocabulary_record
from ..json_safe import json_safe
from ..model import BulkFormer, layout_of
from ..options import data_spec
from .callbacks import Checkpoints, Interrupted, StopOnSignal, TimeBudget
from .checkpoint import checkpoint_root, resume_point, save_checkpoint
from .compilation import check_compilable, compiled_forward
from .config import PretrainConfig, with_keywords
from .data import build_corpus, is_shard_files, shard_paths
from .distributed import DistContext, agree_max, barrier, init_distributed, shutdown
from .loop import Callback, LoopState, run_loop
from .masking import check_mask_rates
from .model_init import (disable_activation_checkpointing, enable_activation_checkpointing, filled, freeze_unused,
                         init_gene_embedding_pca, init_output_level, mean_level, resolve_model, set_dropout,
                         training_profile)
from .rows import TrainingRows, validation_split
from .run_dir import check_resumed_settings, check_run_dir, checkpoint_bundle, model_source
from .schedule import warmup_cosine
from .steps import Trainee, train_gene_mean_pcc, train_step, validate
from ..corpus.stream import StepLayout

CACHE = "corpus"  # where a run directory keeps its shard files prepared once
_STOP_CODES = {None: 0, "max_time": 1, "SIGINT": 2, "SIGTERM": 3}


@dataclass
class PretrainResult:
    """The trained bundle (eval mode), the per-step history (step, epoch, loss, lr,
    grad_norm, samples) and the per-epoch validation (epoch, step, masked_pcc,
    masked_mse, n_masked, train_gene_mean_pcc); ``out`` is the run directory (final
    bundle in ``out/model``)."""

    bundle: Bundle
    history: pd.DataFrame
    validation: pd.DataFrame
    out: Path | None


def pretrain(data: Any = None, out: str | Path | None = None, config: PretrainConfig | None = None, *,
             callbacks: Sequence[Callback] = (), **options: Any) -> PretrainResult:
    """Pretrain (or continue pretraining) a BulkFormer by masked-expression modelling.

    ``config`` (:class:`PretrainConfig`) holds every setting named below; ``data`` may be a
    :class:`bulkformer.DataSpec` (or take its fields as keywords: ``input``, ``genes``,
    ``layer``, ``orientation``, ``lengths``, ``min_matched_fraction``). Settings given as
    loose keywords (``pretrain(data, out, epochs=2)``) still work, with a DeprecationWarning.
    ``callbacks``: :class:`bulkformer.training.loop.Callback` s run after every step
    (the tests' kill switch is one).

    ``data``: a prepared corpus (:func:`bulkformer.corpus.prepare_corpus`: streamed with
    ``workers`` loader processes, each rank reading only its rows), a shard directory /
    file / list of files (h5ad, parquet, zarr, csv, tsv: prepared once into a corpus,
    ``out/corpus``, reused on resume, then streamed), a DataFrame / AnnData / array (samples x
    genes; ``input`` says counts / tpm / logtpm, "aligned" for arrays already in
    vocabulary order), or a ``SimulatedCohort``. Raw data go through
    ``bulkformer.preprocess.prepare`` (``layer``, ``orientation``, ``lengths`` and
    ``min_matched_fraction`` as there; ``genes``: the ``var`` column
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
    ``device``: default cuda > mps > cpu, as for inference (under torchrun each rank's GPU).
    Progress is printed every ``log_every`` steps unless ``progress=False``; with ``out``
    every step is also logged to ``out/log.jsonl``.

    Stopping: ``max_time`` seconds of wall clock, then a checkpoint, the model and the
    logs are written and the run returns (``metadata["pretraining"]["stopped"]`` says so;
    ``resume=True`` continues). SIGTERM (what cluster schedulers send before they kill a
    job) and SIGINT write a checkpoint after the current step and raise
    :class:`bulkformer.training.callbacks.Interrupted`. ``checkpoint_minutes``: a
    checkpoint at least this often, beside every ``checkpoint_every`` steps.

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
        config = PretrainConfig(vocabulary=vocabulary, dim=32, heads=4, p_repeat=1, epochs=5, batch_size=8, lr=3e-3,
                                observed_weight=0.25)
        result = bulkformer.pretrain(cohort, "runs/sim", config)
        result.validation   # masked_pcc per epoch, beside train_gene_mean_pcc: each gene's mean over the
                            # training samples scored on the same masks
    """
    options = dict(options)
    spec = data_spec(data, options)
    config = with_keywords(config, PretrainConfig, options, "pretrain").check()
    ctx = init_distributed(config.device)
    try:
        return _pretrain(ctx, spec, out, config, list(callbacks))
    finally:
        if ctx.distributed:
            shutdown(ctx)


def _pretrain(ctx: DistContext, spec: Any, out: Any, config: PretrainConfig, callbacks: list[Callback]) -> PretrainResult:
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes {ctx.world_size}")
    run_dir = Path(out) if out is not None else None
    if config.compile:
        check_compilable(ctx.device)
    if config.checkpoint_every and run_dir is None:
        raise ValueError("checkpoint_every needs a run directory (out=...) to write checkpoints to")
    say = _printer(ctx, config.progress)
    check_run_dir(run_dir, config.resume)  # before any data is read
    start_from, state = resume_point(config.resume, run_dir)  # a damaged newest one passed over with a warning
    if config.resume is True and start_from is None:
        say(f"no checkpoint in {checkpoint_root(run_dir)} yet: starting from step 0")
    source_name = model_source(config.model)
    saved_source = ((state or {}).get("settings") or {}).get("model")
    if saved_source is not None and saved_source != source_name:
        # checked before the data are read: a changed model (a bundle left out) would first fail
        # there, on genes, with no word of the model
        raise ValueError(f"the checkpoint {start_from} belongs to a run started from model={saved_source!r} (now "
                         f"{source_name!r}): resume with the same model (--model)")

    torch.manual_seed(config.seed)  # same on every rank: identical initial weights and Performer redraws
    genes, base_bundle, model_config = resolve_model(config.model, config.vocabulary, dim=config.dim,
                                                     p_repeat=config.p_repeat, heads=config.heads, dropout=config.dropout)
    recipe = layout_of(model_config).recipe
    mask_fraction, mask_fraction_max = config.mask_fraction, config.mask_fraction_max
    if mask_fraction is None:
        mask_fraction = recipe.mask_fraction
        mask_fraction_max = recipe.mask_fraction_max if mask_fraction_max is None else mask_fraction_max
    observed_weight = recipe.observed_weight if config.observed_weight is None else config.observed_weight
    gene_init = recipe.gene_init if config.gene_init is None else config.gene_init
    check_mask_rates(mask_fraction, mask_fraction_max)
    if spec.genes is not None and not isinstance(spec.genes, str):  # one name for every shard, kept with the settings
        raise ValueError("genes= names the var column holding the gene IDs (the same in every shard); to "
                         "relabel in-memory data, set its column names")
    target = base_bundle if base_bundle is not None else ModelTarget(genes, layout_of(model_config).conventions)
    with ExitStack() as cleanup:
        rows = _training_rows(spec, target, config, run_dir, ctx, say, cleanup)
        rows, val_values, held_out = _validation(rows, spec, target, config)
        say(f"validation: {held_out}")
        return _train(ctx, config, rows, val_values, base_bundle, model_config, genes, start_from, state, run_dir, say,
                      callbacks, spec=spec, recipe=(mask_fraction, mask_fraction_max, observed_weight, gene_init),
                      source_name=source_name)


def _training_rows(spec: Any, target: Any, config: PretrainConfig, run_dir: Path | None, ctx: DistContext, say,
                   cleanup: ExitStack) -> TrainingRows:
    """A prepared corpus as it is; shard files prepared once into a corpus (``out/corpus``,
    or a temporary one without ``out``); data in memory as they are."""
    source = spec.source
    if is_corpus(source):
        corpus = PreparedCorpus(source)
        corpus.check_target(target)
        say(f"corpus: {corpus.describe()}")
        return TrainingRows.from_prepared(corpus, config.shards_in_memory)
    if not is_shard_files(source):
        corpus_ = build_corpus(source, target, input=spec.input, layer=spec.layer, lengths=spec.lengths,
                               shards_in_memory=config.shards_in_memory, orientation=spec.orientation,
                               min_matched_fraction=spec.min_matched_fraction, gene_names=spec.genes)
        return TrainingRows.from_corpus(corpus_)
    paths = shard_paths(source)
    settings = CorpusSettings(input=spec.input, layer=spec.layer, orientation=spec.orientation, genes=spec.genes,
                              min_matched_fraction=spec.min_matched_fraction)
    if run_dir is not None:
        cache = run_dir / CACHE
    else:
        cache = Path(tempfile.mkdtemp(prefix="bulkformer-corpus-")) / CACHE
        cleanup.callback(shutil.rmtree, cache.parent, True)
    if ctx.is_main:
        if is_corpus(cache):
            held = PreparedCorpus(cache)
            if (held.manifest["preparation"] != settings.preparation(spec.lengths)
                    or held.manifest["vocabulary"] != vocabulary_record(target)):
                shutil.rmtree(cache)  # our own cache, prepared otherwise: prepared again
        say(f"preparing {len(paths)} shard file(s) once into the corpus {cache} (kept for resuming; "
            "bulkformer prepare-corpus makes one to share between runs)")
        prepare_corpus(paths, cache, target, settings=settings, lengths=spec.lengths, progress=False)
    barrier(ctx)
    corpus = PreparedCorpus(cache)
    wanted = [str(p.resolve()) for p in paths]
    held_paths = {s["path"] for s in corpus.shards}
    return TrainingRows.from_prepared(corpus, config.shards_in_memory, [p for p in wanted if p in held_paths])


def _validation(rows: TrainingRows, spec: Any, target: Any, config: PretrainConfig):
    if config.val_data is None:
        return validation_split(rows, config.val_fraction, config.max_val_samples, config.seed)
    held = build_corpus(config.val_data, target, input=spec.input, layer=spec.layer, lengths=spec.lengths,
                        orientation=spec.orientation, min_matched_fraction=spec.min_matched_fraction,
                        gene_names=spec.genes)
    check_distinct_samples(rows.shards(), held.shards)
    values = held.sample(config.max_val_samples, config.seed)
    return rows, values, f"{len(values)} samples of the validation data"


def _train(ctx, config: PretrainConfig, rows: TrainingRows, val_values, base_bundle, model_config, genes, start_from,
           state, run_dir, say, callbacks, *, spec, recipe, source_name) -> PretrainResult:
    mask_fraction, mask_fraction_max, observed_weight, gene_init = recipe
    settings = {  # what a resumed run must repeat to continue the same run
        "seed": config.seed, "epochs": config.epochs, "max_steps": config.max_steps, "batch_size": config.batch_size,
        "grad_accum": config.grad_accum, "lr": config.lr, "weight_decay": config.weight_decay,
        "warmup_fraction": config.warmup_fraction, "mask_fraction": mask_fraction,
        "mask_fraction_max": mask_fraction_max, "observed_weight": observed_weight, "clip_norm": config.clip_norm,
        "dropout": config.dropout, "shards_in_memory": config.shards_in_memory, "input": spec.input,
        "layer": spec.layer, "genes": spec.genes, "orientation": spec.orientation,
        "lengths": lengths_fingerprint(spec.lengths), "min_matched_fraction": spec.min_matched_fraction,
        "val_fraction": config.val_fraction, "max_val_samples": config.max_val_samples,
        "validation_samples": 0 if val_values is None else len(val_values),
        "training_shards": [[name, stop - start] for name, start, stop in rows.parts], "model": source_name,
    }
    step_samples = config.batch_size * config.grad_accum
    profile = None  # up to 2,000 training samples: read for a new model's graph and init, and for the baseline
    if start_from is not None:
        check_resumed_settings(state.get("settings"), settings, start_from)
        if int(state.get("step_samples", step_samples)) != step_samples:
            raise ValueError(f"the checkpoint {start_from} was written with {state['step_samples']} samples per step; "
                             f"resume with the same batch_size x grad_accum (now {step_samples})")
        # the checkpoint's own model: its weights and its gene graph (a new model's graph
        # is not in the weights, and rebuilt from changed data it would differ)
        bundle = checkpoint_bundle(start_from, model_config, genes)
    elif base_bundle is None:
        from ..graph import correlation_edges

        profile = training_profile(rows, config.seed)
        full = filled(profile)
        edge_index, edge_weight = correlation_edges(full, top_k=config.graph_top_k, min_abs_r=config.graph_min_abs_r)
        net = BulkFormer(model_config, edge_index, edge_weight)
        init_output_level(net, mean_level(profile))
        if gene_init == "pca" and net.gene_identity_table() is not None:
            init_gene_embedding_pca(net, full, config.gene_init_scale)
        bundle = Bundle(model=net, genes=genes, metadata={"name": "bulkformer-pretrained", "trained": True})
    else:
        bundle = base_bundle
    if config.dropout is not None and (start_from is not None or base_bundle is not None):
        set_dropout(bundle.model, config.dropout)
    net = bundle.model.to(ctx.device).train()
    freeze_unused(net)
    if config.activation_checkpointing:
        enable_activation_checkpointing(net)
    trainable = [p for p in net.parameters() if p.requires_grad]
    wrapped: torch.nn.Module = net
    if ctx.distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    steps_per_epoch = rows.n_samples // step_samples
    if steps_per_epoch < 1:
        raise ValueError(f"{rows.n_samples} training samples are fewer than one step's {step_samples} "
                         "(batch_size x grad_accum); lower batch_size or add data")
    epochs, max_steps = config.epochs, config.max_steps
    total_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    if max_steps is not None and max_steps > epochs * steps_per_epoch and ctx.is_main:
        warnings.warn(f"max_steps={max_steps} is more than epochs={epochs} x {steps_per_epoch} steps per epoch: the run "
                      f"stops after {total_steps} steps; raise epochs to train for {max_steps}", UserWarning, stacklevel=3)
    # the fused kernel (CPU, CUDA) updates all parameters in one pass: ~1.5% of a small model's step
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay,
                                  fused=ctx.device.type in ("cpu", "cuda") or None)
    scheduler = warmup_cosine(optimizer, total_steps, config.warmup_fraction)
    use_bf16 = config.precision == "bf16" or (
        config.precision == "auto" and ctx.device.type == "cuda" and torch.cuda.is_bf16_supported())

    loop = LoopState(epochs=epochs, total_steps=total_steps)
    if start_from is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        loop.step, loop.epoch, loop.position = int(state["step"]), int(state["epoch"]), int(state["position"])
        differences = [f"{what} {before} (now {now})" for what, before, now in (
            ("processes", state.get("world_size", ctx.world_size), ctx.world_size),
            ("bf16 autocast", state.get("bf16", use_bf16), use_bf16)) if before != now]
        if differences and ctx.is_main:
            warnings.warn(f"the checkpoint was written with {', '.join(differences)}: the run continues its schedule and "
                          "data order, but its numbers will not be bit-identical to an uninterrupted run",
                          UserWarning, stacklevel=3)
        loop.history, loop.validation = list(state["history"]), list(state["validation"])
        say(f"resumed from {start_from} at step {loop.step} (epoch {loop.epoch}, sample {loop.position})")
    if ctx.is_main and run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_log(run_dir, loop.history)
    depth = f"{model_config.n_layers} Performer layer{'s' if model_config.n_layers > 1 else ''}"
    say(f"pretraining {model_config.version} d={model_config.dim} x {depth} over {model_config.n_genes} genes: "
        f"{rows.n_samples} samples, {total_steps} steps of {step_samples}, {ctx.world_size} process(es) on {ctx.device}")

    # what the model's validation r is to be read against: each gene's mean over the training samples
    baseline_pcc = float("nan")
    if val_values is not None and len(val_values):
        training = profile if profile is not None else training_profile(rows, config.seed)
        baseline_pcc = train_gene_mean_pcc(training, val_values, config.seed, mask_fraction)

    def check(epoch: int, step: int) -> dict[str, Any]:
        return validate(net, val_values, epoch, step, config.seed, mask_fraction, ctx, use_bf16, say, baseline_pcc)

    def save(loop_state: LoopState) -> Path | None:
        if run_dir is None:
            return None
        _checkpoint(ctx, run_dir, bundle, optimizer, scheduler, loop_state, step_samples, config.keep_checkpoints,
                    settings, use_bf16)
        return checkpoint_root(run_dir) / f"step-{loop_state.step:08d}"

    layout = StepLayout(config.batch_size, config.grad_accum, ctx.rank, ctx.world_size)
    checkpoints = Checkpoints(save, config.checkpoint_every, config.checkpoint_minutes)
    signals = StopOnSignal()
    with ExitStack() as stack:
        forward = stack.enter_context(compiled_forward(wrapped, net) if config.compile else nullcontext(wrapped))
        stack.enter_context(signals)
        trainee = Trainee(net, wrapped, forward, trainable, optimizer, scheduler)
        run_loop(
            loop,
            lambda epoch, start: rows.steps(layout, epoch, config.seed, start, workers=config.workers,
                                            pin_memory=ctx.device.type == "cuda"),
            lambda batch, s: train_step(trainee, batch, ctx, config, step=s.step, mask_fraction=mask_fraction,
                                        mask_fraction_max=mask_fraction_max, observed_weight=observed_weight,
                                        use_bf16=use_bf16),
            [_StepLog(ctx, run_dir, say, config.log_every), signals, TimeBudget(config.max_time), checkpoints,
             _EpochValidation(check), *callbacks],
            agree=lambda s: _agree(ctx, s))
    if loop.stop_reason in ("SIGTERM", "SIGINT"):
        import signal as signals_

        say(f"stopped by {loop.stop_reason} after step {loop.step}: " + (
            f"checkpoint {checkpoints.last_path}; resume=True continues" if checkpoints.last_path else
            "no run directory, nothing saved"))
        barrier(ctx)
        raise Interrupted(int(getattr(signals_, loop.stop_reason)), checkpoints.last_path)
    step, validation, history = loop.step, loop.validation, loop.history
    if not validation or validation[-1]["step"] != step:
        validation.append(check(loop.epoch, step))

    net.eval()
    disable_activation_checkpointing(net)
    last = validation[-1]
    record = {
        "steps": step, "epochs_completed": step // steps_per_epoch, "samples_per_step": step_samples,
        "seed": config.seed, "mask_fraction": mask_fraction, "mask_fraction_max": mask_fraction_max,
        "observed_weight": observed_weight, "peak_lr": config.lr,
        "final_loss": history[-1]["loss"] if history else None, "val_masked_pcc": last["masked_pcc"],
        "val_train_gene_mean_pcc": baseline_pcc, "model": source_name,
    }
    if loop.stop_reason is not None:
        record["stopped"] = f"{loop.stop_reason} after {loop.elapsed:.0f} s, at step {step} of {total_steps}"
        say(f"stopped at step {step} of {total_steps} (max_time={config.max_time} s): "
            + (f"checkpoint {checkpoints.last_path}; resume=True continues" if checkpoints.last_path else
               "the model so far is returned"))
    earlier = bundle.metadata.get("pretraining")
    if earlier and base_bundle is not None:  # continued pretraining keeps the base run's record
        record["continued_from"] = earlier
    bundle.metadata = {**bundle.metadata, "pretraining": record}
    if ctx.is_main and last["masked_pcc"] < baseline_pcc:
        warnings.warn(f"the model's masked Pearson r on the held-out samples ({last['masked_pcc']:.4f}) is below the "
                      f"gene-mean baseline's ({baseline_pcc:.4f}), each gene's mean over the training samples: it has "
                      "not learned more than each gene's average; train for more epochs (or check the data and "
                      "learning rate) before using it", UserWarning, stacklevel=3)
    history_frame, validation_frame = pd.DataFrame(history), pd.DataFrame(validation)
    if ctx.is_main and run_dir is not None:
        bundle.save(run_dir / "model")
        _atomic_csv(history_frame, run_dir / "history.csv")
        _atomic_csv(validation_frame, run_dir / "validation.csv")
        say(f"model written to {run_dir / 'model'}")
    barrier(ctx)
    return PretrainResult(bundle=bundle, history=history_frame, validation=validation_frame, out=run_dir)


class _StepLog(Callback):
    """The step number, epoch and position on each record; log.jsonl (rank 0) and a line
    every ``every`` steps."""

    def __init__(self, ctx: DistContext, run_dir: Path | None, say, every: int) -> None:
        self.ctx, self.run_dir, self.say, self.every = ctx, run_dir, say, max(1, every)

    def on_step(self, state: LoopState) -> None:
        record = state.history[-1]
        record.update(step=state.step, epoch=state.epoch, samples=state.position)
        if self.ctx.is_main and self.run_dir is not None:
            with open(self.run_dir / "log.jsonl", "a") as handle:
                handle.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
        if state.step % self.every == 0 or state.finished:
            self.say(f"step {state.step}/{state.total_steps} epoch {state.epoch + 1} loss {record['loss']:.4f} "
                     f"lr {record['lr']:.2e} ({state.elapsed:.0f}s)")


class _EpochValidation(Callback):
    def __init__(self, check) -> None:
        self.check = check

    def on_epoch(self, state: LoopState) -> None:
        state.validation.append(self.check(state.epoch, state.step))


def _agree(ctx: DistContext, state: LoopState) -> None:
    """Every rank checkpoints and stops at the same step: rank clocks and signals differ."""
    if not ctx.distributed:
        return
    due, code = agree_max(ctx, [float(state.checkpoint_due), float(_STOP_CODES[state.stop_reason])])
    state.checkpoint_due = bool(due)
    state.stop_reason = next(k for k, v in _STOP_CODES.items() if v == int(code))


def _checkpoint(ctx, run_dir, bundle, optimizer, scheduler, state: LoopState, step_samples, keep, settings,
                use_bf16: bool) -> None:
    if ctx.is_main:
        trainer = {
            "settings": settings,
            "step": state.step, "epoch": state.epoch, "position": state.position, "step_samples": step_samples,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "history": state.history, "validation": state.validation, "world_size": ctx.world_size, "bf16": use_bf16,
        }
        save_checkpoint(run_dir, state.step, bundle, trainer, keep=keep)
    barrier(ctx)


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
