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

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

import torch

from ..corpus.sources import ModelTarget, check_distinct_samples
from ..corpus.store import CorpusSettings, PreparedCorpus, is_corpus, prepare_corpus, vocabulary_record
from ..model import layout_of
from ..options import data_spec
from .checkpoint import checkpoint_root, resume_point
from .compilation import check_compilable
from .config import PretrainConfig, with_keywords
from .data import build_corpus, is_shard_files, shard_paths
from .distributed import DistContext, barrier, init_distributed, shutdown
from .loop import Callback
from .masking import check_mask_rates
from .model_init import resolve_model
from .rows import TrainingRows, validation_split
from .run import Plan, PretrainResult, train
from .run_dir import check_run_dir, model_source

__all__ = ["PretrainConfig", "PretrainResult", "pretrain"]

CACHE = "corpus"  # where a run directory keeps its shard files prepared once


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
        plan = Plan(config, rows, val_values, base_bundle, model_config, genes, start_from, state, run_dir, spec,
                    (mask_fraction, mask_fraction_max, observed_weight, gene_init), source_name)
        return train(ctx, plan, say, callbacks)


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


def _printer(ctx: DistContext, progress: bool):
    def say(message: str) -> None:
        if progress and ctx.is_main:
            print(f"[bulkformer pretrain] {message}", flush=True)
    return say
