"""One pretraining run once its data and model are known: the model built or resumed,
optimizer and schedule, the loop with its callbacks (step log, signals, time budget,
checkpoints, per-epoch validation), and what a finished run writes."""
from __future__ import annotations

import json
import signal
import warnings
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..bundle import Bundle
from ..corpus.stream import StepLayout
from ..json_safe import json_safe
from ..model import BulkFormer
from .callbacks import Checkpoints, Interrupted, StopOnSignal, TimeBudget
from .checkpoint import checkpoint_root, save_checkpoint
from .compilation import compiled_forward
from .config import PretrainConfig
from .distributed import DistContext, agree_max, barrier
from .logs import atomic_csv, write_log
from .loop import Callback, LoopState, run_loop
from .model_init import (disable_activation_checkpointing, enable_activation_checkpointing, filled, freeze_unused,
                         init_gene_embedding_pca, init_output_level, mean_level, set_dropout, training_profile)
from .rows import TrainingRows
from .run_dir import check_resumed_settings, checkpoint_bundle
from .schedule import warmup_cosine
from .steps import Trainee, train_gene_mean_pcc, train_step, validate

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


@dataclass
class Plan:
    """What a run starts from: its settings, data and validation rows, the model (a base
    bundle to continue, or a config and genes for a new one), the checkpoint to resume
    (and its trainer state), the run directory, the data description, the layout recipe's
    (mask_fraction, mask_fraction_max, observed_weight, gene_init) and the model's source."""

    config: PretrainConfig
    rows: TrainingRows
    val_values: Any
    base_bundle: Bundle | None
    model_config: Any
    genes: pd.DataFrame
    start_from: Path | None
    state: dict[str, Any] | None
    run_dir: Path | None
    spec: Any
    recipe: tuple
    source_name: str


def train(ctx: DistContext, plan: Plan, say, callbacks: list[Callback]) -> PretrainResult:
    """Build or resume the model, then run the loop; a finished run writes its model and logs."""
    config, rows, val_values, base_bundle = plan.config, plan.rows, plan.val_values, plan.base_bundle
    model_config, genes, start_from, state = plan.model_config, plan.genes, plan.start_from, plan.state
    run_dir, spec, recipe, source_name = plan.run_dir, plan.spec, plan.recipe, plan.source_name
    mask_fraction, mask_fraction_max, observed_weight, gene_init = recipe
    settings = {  # what a resumed run must repeat to continue the same run
        "seed": config.seed, "epochs": config.epochs, "max_steps": config.max_steps, "batch_size": config.batch_size,
        "grad_accum": config.grad_accum, "lr": config.lr, "weight_decay": config.weight_decay,
        "warmup_fraction": config.warmup_fraction, "mask_fraction": mask_fraction,
        "mask_fraction_max": mask_fraction_max, "observed_weight": observed_weight, "clip_norm": config.clip_norm,
        "dropout": config.dropout, "shards_in_memory": config.shards_in_memory,
        **spec.settings_identity(),  # how the data are read, as the DataSpec identifies it
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
        write_log(run_dir, loop.history)
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
        say(f"stopped by {loop.stop_reason} after step {loop.step}: " + (
            f"checkpoint {checkpoints.last_path}; resume=True continues" if checkpoints.last_path else
            "no run directory, nothing saved"))
        barrier(ctx)
        raise Interrupted(int(getattr(signal, loop.stop_reason)), checkpoints.last_path)
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
        atomic_csv(history_frame, run_dir / "history.csv")
        atomic_csv(validation_frame, run_dir / "validation.csv")
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
