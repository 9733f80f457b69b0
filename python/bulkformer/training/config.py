"""Training settings as configuration: :class:`PretrainConfig` and :class:`FinetuneConfig`
are the single argument lists of ``pretrain`` / ``finetune``, the source of the command
line's options (one option per field) and the record a run saves.

How the data are read (input kind, gene-ID column, layer, orientation, lengths, matching
threshold) is the data's :class:`bulkformer.DataSpec`, not part of these.

Deprecation shim: ``pretrain(data, out, epochs=2, lr=1e-3)`` (the settings as loose
keywords, the spelling before these classes) still works and warns (DeprecationWarning);
write ``pretrain(data, out, PretrainConfig(epochs=2, lr=1e-3))``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ArgumentError


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of a pretraining run; see :func:`bulkformer.pretrain` for each one's meaning.

    New here: ``max_time`` (seconds of wall clock after which the run writes a checkpoint
    and stops; None: no limit), ``checkpoint_minutes`` (a checkpoint at least this often,
    beside ``checkpoint_every`` steps), ``workers`` (data-loading worker processes for a
    prepared corpus)."""

    model: Any = "37M"
    vocabulary: Any = None
    val_data: Any = None
    val_fraction: float = 0.1
    max_val_samples: int = 512
    epochs: int = 1
    max_steps: int | None = None
    max_time: float | None = None
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    mask_fraction: float | None = None
    mask_fraction_max: float | None = None
    observed_weight: float | None = None
    clip_norm: float | None = 1.0
    precision: str = "auto"
    activation_checkpointing: bool = False
    compile: bool = False
    checkpoint_every: int | None = None
    checkpoint_minutes: float | None = None
    keep_checkpoints: int = 2
    resume: Any = False
    seed: int = 0
    device: str | None = None
    shards_in_memory: int = 2
    workers: int = 2
    dim: int | None = None
    p_repeat: int | None = None
    heads: int | None = None
    dropout: float | None = None
    graph_top_k: int = 20
    graph_min_abs_r: float = 0.4
    gene_init: str | None = None
    gene_init_scale: float = 1.6
    log_every: int = 10
    progress: bool = True

    def check(self) -> "PretrainConfig":
        """The settings alone, before any model or data is read."""
        from .masking import check_mask_rates

        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (or None: all epochs), got {self.max_steps}")
        if self.max_time is not None and not self.max_time > 0:
            raise ArgumentError(f"max_time must be > 0 seconds, got {self.max_time}", argument="max_time",
                                value=self.max_time, fix="give the wall-clock budget in seconds, or None")
        if self.checkpoint_every is not None and self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 1 (or 0 / None: no checkpoints), got {self.checkpoint_every}")
        if self.checkpoint_minutes is not None and not self.checkpoint_minutes > 0:
            raise ArgumentError(f"checkpoint_minutes must be > 0, got {self.checkpoint_minutes}",
                                argument="checkpoint_minutes", value=self.checkpoint_minutes,
                                fix="give minutes between checkpoints, or None")
        if self.keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints must be >= 1 (or 0: keep all), got {self.keep_checkpoints}")
        if self.clip_norm is not None and self.clip_norm < 0:
            # a negative norm makes torch's clip coefficient negative: every step would climb the loss
            raise ValueError(f"clip_norm must be > 0 (or 0 / None: no clipping), got {self.clip_norm}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError(f"batch_size and grad_accum must be >= 1, got {self.batch_size} and {self.grad_accum}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.mask_fraction is not None:  # None: the layout's recipe, checked once the model is known
            check_mask_rates(self.mask_fraction, self.mask_fraction_max)
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.observed_weight is not None and self.observed_weight < 0:
            raise ValueError(f"observed_weight must be >= 0, got {self.observed_weight}")
        if self.gene_init is not None and self.gene_init not in ("pca", "random"):
            raise ValueError(f"gene_init must be 'pca' or 'random', got {self.gene_init!r}")
        if self.gene_init_scale <= 0:
            raise ValueError(f"gene_init_scale must be > 0, got {self.gene_init_scale}")
        if self.workers < 0:
            raise ArgumentError(f"workers must be >= 0, got {self.workers}", argument="workers", value=self.workers,
                                fix="0 reads in the training process")
        return self


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of a fine-tuning run; see :func:`bulkformer.training.finetune`."""

    task: str = "classification"
    mode: str = "frozen"
    trainable_layers: int | None = None
    aggregate: str = "mean"
    val_fraction: float = 0.2
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    hidden: int = 64
    seed: int = 0
    device: str | None = None
    progress: bool = True


Config = TypeVar("Config", PretrainConfig, FinetuneConfig)


def with_keywords(config: Config | None, cls: type[Config], keywords: dict[str, Any], function: str) -> Config:
    """``config`` (or the defaults) with settings given as loose keywords laid over it: the
    deprecated spelling, which warns. An unknown keyword is an error naming the fields."""
    if config is not None and not isinstance(config, cls):
        raise ArgumentError(f"config must be a {cls.__name__}, got {type(config).__name__}", argument="config",
                            value=config, fix=f"e.g. {cls.__name__}(epochs=2)")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise ArgumentError(f"unknown argument {unknown[0]!r} of {function}()", argument=unknown[0], joiner="; ",
                            fix=f"settings are the fields of {cls.__name__} ({', '.join(sorted(names))}); how "
                                "the data are read goes on a DataSpec")
    if keywords:
        warnings.warn(f"{function}(..., {', '.join(f'{k}=' for k in keywords)}) is deprecated: pass the settings as "
                      f"{function}(data, ..., config={cls.__name__}({', '.join(f'{k}=...' for k in keywords)}))",
                      DeprecationWarning, stacklevel=3)
    return replace(config or cls(), **keywords)


def describe_value(value: Any) -> Any:
    """A config value as a plain record (paths as text, tables and bundles by kind)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [describe_value(v) for v in value]
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}{'' if shape is None else ' ' + ' x '.join(map(str, shape))}"


def config_record(config: PretrainConfig | FinetuneConfig) -> dict[str, Any]:
    return {f.name: describe_value(getattr(config, f.name)) for f in fields(config)}
