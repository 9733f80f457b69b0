"""Fine-tuning: a classification or regression head on the BulkFormer encoder.

The sample representation is the encoder's gene-level features (d+3 for v2) aggregated
over genes (mean or max), standardised with the training samples' mean and SD (of the
encoder before fine-tuning; saved with the head), fed to a small MLP head. Modes:
  frozen   encoder fixed (features computed without gradients), head trained
  partial  the last ``trainable_layers`` Performer layers, the final layer norm and the
           head trained; embeddings, graph convolution and earlier layers fixed
  full     everything trained (encoder at ``lr``, head at ``head_lr``)
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..arguments import check_at_least
from ..atomic import atomic_directory, check_replaceable
from ..bundle import FINETUNED_MARKER, Bundle, is_finetuned, load
from ..json_safe import json_safe
from ..labels import as_label_series, class_labels, match_samples, numeric_column
from ..options import data_spec
from .config import FinetuneConfig, with_keywords
from .data import prepared_with_ids
from .distributed import choose_device
from .loop import Callback, LoopState, run_loop
from .masking import missing_share

Task = Literal["classification", "regression"]
Mode = Literal["frozen", "partial", "full"]


class FeatureScaler(nn.Module):
    """Pooled encoder features put on the training samples' scale. They vary little between
    samples (SD ~0.1 around values ~0.7), and a LayerNorm, which normalises each sample on
    its own, leaves that signal as small as it found it: the head learned little from it."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))

    def fit(self, features: torch.Tensor) -> None:
        std = features.std(dim=0)
        self.mean.copy_(features.mean(dim=0))
        self.scale.copy_(torch.where(std > 0, std, torch.ones_like(std)))  # constant features stay as they are

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.scale


class FinetunedModel(nn.Module):
    """Encoder + aggregation over genes + MLP head (on standardised features)."""

    def __init__(self, bundle: Bundle, task: Task, n_outputs: int, *, aggregate: str = "mean", hidden: int = 64,
                 dropout: float = 0.1, classes: list[str] | None = None, target_mean: float = 0.0,
                 target_scale: float = 1.0, input_kind: str | None = None) -> None:
        super().__init__()
        # what the training data were (counts, tpm, logtpm, aligned): predict's default
        self.input_kind = input_kind
        # regression: the head predicts (y - target_mean) / target_scale, so that targets in
        # any units (days, IC50s) train at the scale of its initial outputs
        self.target_mean, self.target_scale = float(target_mean), float(target_scale)
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
        self.bundle = bundle
        self.encoder = bundle.model
        self.task, self.aggregate, self.classes = task, aggregate, classes
        self.hidden_size, self.dropout_p = hidden, dropout
        width = bundle.config.feature_dim
        self.head = nn.Sequential(FeatureScaler(width), nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_outputs))

    def sample_features(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x, missing_share(x)).features
        return features.mean(dim=1) if self.aggregate == "mean" else features.amax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.sample_features(x))

    @torch.no_grad()
    def predict(self, data: Any, *, input: str | None = None, lengths: Any = None, batch_size: int = 16,
                device: str | None = None, gene_names: Any = None, orientation: str = "samples_by_genes",
                layer: str | None = None) -> pd.DataFrame:
        """Class probabilities (columns = classes) or the regression value (column 'prediction');
        ``data`` and the reading arguments as for :func:`finetune`. ``input`` defaults to the
        kind the model was fine-tuned on (counts for models saved before that was recorded);
        another kind gives a warning, as the head learned features of that preparation."""
        if input is None:
            input = self.input_kind or "counts"
        elif self.input_kind is not None and input != self.input_kind:
            warnings.warn(f"this model was fine-tuned on input={self.input_kind!r} data and is given input={input!r}: "
                          "fine if the values are truly that kind (they are prepared accordingly); otherwise pass "
                          f"input={self.input_kind!r}", UserWarning, stacklevel=2)
        values, sample_ids = _prepare(data, self.bundle, input, lengths, gene_names=gene_names,
                                      orientation=orientation, layer=layer)
        device_ = choose_device(device)
        self.to(device_).eval()
        outputs = []
        for start in range(0, len(values), batch_size):
            outputs.append(self(torch.from_numpy(values[start:start + batch_size]).to(device_)).float().cpu())
        out = torch.cat(outputs)
        if self.task == "classification":
            return pd.DataFrame(out.softmax(dim=1).numpy(), index=sample_ids, columns=self.classes)
        return pd.DataFrame({"prediction": self.in_target_units(out.squeeze(1)).numpy()}, index=sample_ids)

    def in_target_units(self, out: torch.Tensor) -> torch.Tensor:
        """Regression outputs of the head in the units of the training targets."""
        return out * self.target_scale + self.target_mean

    def save(self, path: str | Path, *, report: dict[str, Any] | None = None) -> Path:
        """A directory: ``encoder/`` (a bundle), ``head.safetensors``, ``finetune.json`` and,
        with ``report``, ``metrics.json`` (validation metrics, history, settings); atomic.
        An existing directory is replaced only if it is empty or an earlier fine-tuning output."""
        path = check_output_dir(path)
        with atomic_directory(path, marker=FINETUNED_MARKER, what="a fine-tuning output") as staging:
            self.bundle.save(staging / "encoder")
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(staging / "head.safetensors"))
            meta = {"task": self.task, "aggregate": self.aggregate, "classes": self.classes, "hidden": self.hidden_size,
                    "dropout": self.dropout_p, "n_outputs": int(self.head[-1].out_features),
                    "target_mean": self.target_mean, "target_scale": self.target_scale, "input": self.input_kind}
            (staging / FINETUNED_MARKER).write_text(json.dumps(json_safe(meta), indent=2, allow_nan=False) + "\n")
            if report is not None:
                (staging / "metrics.json").write_text(json.dumps(json_safe(report), indent=2) + "\n")
        return path


def check_output_dir(out: str | Path) -> Path:
    """Saving replaces the whole directory: refuse one that holds anything but an earlier
    fine-tuning output (user data, a base model), before any training is done."""
    return check_replaceable(out, FINETUNED_MARKER, "a fine-tuning output")


def load_finetuned(path: str | Path, device: str = "cpu") -> FinetunedModel:
    """A model written by :func:`finetune` (``out=``) or :meth:`FinetunedModel.save`;
    ``.predict(data)`` gives class probabilities or regression values."""
    path = Path(path)
    if not is_finetuned(path):
        hint = (" (it is a model bundle: load it with bulkformer.load)" if (path / "config.json").is_file() else "")
        raise FileNotFoundError(f"no fine-tuned model at {path}: finetune.json is missing{hint}")
    meta = json.loads((path / FINETUNED_MARKER).read_text())
    model = FinetunedModel(load(path / "encoder"), meta["task"], meta["n_outputs"], aggregate=meta["aggregate"],
                           hidden=meta["hidden"], dropout=meta["dropout"], classes=meta["classes"],
                           target_mean=meta.get("target_mean", 0.0), target_scale=meta.get("target_scale", 1.0),
                           input_kind=meta.get("input"))
    model.head.load_state_dict(load_file(str(path / "head.safetensors")))
    return model.to(device).eval()


@dataclass
class FinetuneResult:
    """The fine-tuned model, per-epoch history (epoch, train_loss and, with a validation
    split, val_loss with val_accuracy, or val_pearson_r and val_mse) and the last epoch's
    validation metrics without the ``val_`` prefix (``loss`` and ``accuracy`` for
    classification; ``loss``, ``pearson_r`` and ``mse`` for regression; empty with
    ``val_fraction=0``). Regression trains on targets standardised over the training
    samples: ``train_loss`` and ``val_loss`` are in those standard units, ``mse`` and
    predictions in the targets' own."""

    model: FinetunedModel
    history: pd.DataFrame
    metrics: dict[str, float]


def finetune(data: Any, labels: Any, model: Bundle | str | Path, out: str | Path | None = None,
             config: FinetuneConfig | None = None, **options: Any) -> FinetuneResult:
    """Train a classification or regression head on a (pre)trained encoder.

    ``config`` (:class:`FinetuneConfig`) holds the settings named below (as loose keywords they
    still work, with a DeprecationWarning); ``data`` may be a :class:`bulkformer.DataSpec` or
    take its fields (``input``, ``lengths``, ``genes``, ``orientation``, ``layer``) as keywords.
    Epochs run through the loop pretraining uses (:mod:`bulkformer.training.loop`).

    ``labels``: a Series indexed by sample ID (matched to the data's samples by ID, never
    by row order) or a list in sample order. Samples without a label (no entry, or NaN)
    are left out with a warning; repeated sample IDs are an error. The held-out
    ``val_fraction`` (random, seeded) gives the reported metrics. A Bundle passed as
    ``model`` is copied, never changed. ``out``: a new (or empty) directory, or an earlier
    fine-tuning output, to save the model and its metrics to (:func:`load_finetuned`
    reads it).

    ``data``: anything ``bulkformer.preprocess.prepare`` reads (samples x genes), with
    ``input`` counts / tpm / logtpm and ``lengths`` as there, or ``input="aligned"`` for an
    array already in the model's vocabulary order. ``genes`` (IDs replacing the data's
    labels, or for AnnData and h5ad files the ``var`` column holding them), ``orientation``
    and ``layer`` are prepare's ``genes``, ``orientation`` and ``layer``. ``task``: "classification" or
    "regression". ``mode``: "frozen" (head only), "partial" (also the last
    ``trainable_layers`` Performer layers and the final layer norm) or "full"; the head
    (``hidden`` units) sees the encoder features pooled over genes by ``aggregate`` ("mean"
    or "max"). AdamW over ``epochs`` epochs of ``batch_size`` samples, encoder at ``lr``,
    head at ``head_lr``, ``weight_decay``; ``seed`` fixes the split, the head's
    initialisation and the batch order; ``device`` defaults to CUDA if available, else CPU;
    ``progress`` prints one line per epoch.

    Example::

        result = bulkformer.training.finetune(cohort.counts, cohort.obs["tissue"], "runs/sim/model",
                                              lengths=cohort.lengths, mode="partial")
        result.metrics["accuracy"]
    """
    options = dict(options)
    spec = data_spec(data, options)
    config = with_keywords(config, FinetuneConfig, options, "finetune")
    task, mode, trainable_layers, aggregate = config.task, config.mode, config.trainable_layers, config.aggregate
    val_fraction, epochs, batch_size, lr = config.val_fraction, config.epochs, config.batch_size, config.lr
    head_lr, weight_decay, hidden, seed = config.head_lr, config.weight_decay, config.hidden, config.seed
    device, progress, input = config.device, config.progress, spec.input
    check_settings(task=task, mode=mode, trainable_layers=trainable_layers, aggregate=aggregate,
                   val_fraction=val_fraction, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, hidden=hidden)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # nothing here is sharded: every rank would train the same model and write the same output
        raise ValueError("finetune runs in one process (a head on a few thousand samples needs no data parallelism); "
                         "run it without torchrun")
    if out is not None:
        out = check_output_dir(out)
    # train a copy: the caller's bundle keeps its weights and requires_grad flags
    bundle = copy.deepcopy(model) if isinstance(model, Bundle) else load(model)
    trainable_layers = 1 if trainable_layers is None else trainable_layers
    if mode == "partial":
        n_layers = len(bundle.model.encoder_layers())
        if trainable_layers > n_layers:
            raise ValueError(f"trainable_layers={trainable_layers} but the model has {n_layers} Performer layer(s); "
                             f"use trainable_layers={n_layers} or mode='full'")
    values, sample_ids = _prepare(spec.source, bundle, input, spec.lengths, gene_names=spec.genes,
                                  orientation=spec.orientation, layer=spec.layer)
    labelled, y, classes = _align_labels(labels, sample_ids, task)
    values = values[labelled]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(values))
    n_val = max(1, int(round(val_fraction * len(values)))) if val_fraction > 0 else 0
    if len(values) - n_val < 2:
        raise ValueError(f"{len(values)} labelled samples are too few to fine-tune; need at least {n_val + 2}")
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    target_mean, target_scale = 0.0, 1.0
    if task == "regression":  # standardised on the training samples; predictions come back in the targets' units
        target_mean = float(np.mean(y[train_idx]))
        target_scale = float(np.std(y[train_idx])) or 1.0

    torch.manual_seed(seed)
    device_ = choose_device(device)
    net = FinetunedModel(bundle, task, len(classes) if classes else 1, aggregate=aggregate, hidden=hidden,
                         classes=classes, target_mean=target_mean, target_scale=target_scale,
                         input_kind=input).to(device_)
    encoder_params = _set_trainable(net, mode, trainable_layers)
    groups = [{"params": list(net.head.parameters()), "lr": head_lr}]
    if encoder_params:
        groups.append({"params": encoder_params, "lr": lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
    target = torch.as_tensor(y, dtype=torch.long if task == "classification" else torch.float32)
    x_all = torch.from_numpy(values)

    # the encoder's features before training: all of them when it stays frozen (computed
    # once), the training samples' otherwise, to set the head's feature scale
    rows_for_scale = np.arange(len(x_all)) if mode == "frozen" else train_idx
    net.eval()
    with torch.no_grad():
        initial = torch.cat([net.sample_features(x_all[rows_for_scale[i:i + batch_size]].to(device_)).cpu()
                             for i in range(0, len(rows_for_scale), batch_size)])
    net.head[0].fit(initial[train_idx].to(device_) if mode == "frozen" else initial.to(device_))
    frozen_features = initial if mode == "frozen" else None

    def outputs(rows: np.ndarray, train: bool) -> torch.Tensor:
        net.train(train)
        if frozen_features is not None:
            net.encoder.eval()
            return net.head(frozen_features[rows].to(device_))
        return net(x_all[rows].to(device_))

    def fit_target(rows: np.ndarray) -> torch.Tensor:
        t = target[rows].to(device_)
        return t if task == "classification" else ((t - target_mean) / target_scale).unsqueeze(1)

    def epoch_batches(epoch: int, start: int):
        perm = train_idx[rng.permutation(len(train_idx))]
        for begin in range(0, len(perm), batch_size):
            yield begin + batch_size, perm[begin:begin + batch_size]

    def step(rows: np.ndarray, state: LoopState) -> dict[str, Any]:
        loss = loss_fn(outputs(rows, True), fit_target(rows))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"epoch": state.epoch, "loss": float(loss.detach()), "n": len(rows)}

    class EpochEnd(Callback):
        """The epoch's training loss (sample-weighted), validation metrics and progress line."""

        def on_epoch(self, state: LoopState) -> None:
            steps = [r for r in state.history if r["epoch"] == state.epoch]
            record = {"epoch": state.epoch, "train_loss": sum(r["loss"] * r["n"] for r in steps) / len(train_idx)}
            if n_val:
                record.update(_evaluate(net, outputs, val_idx, target, task, fit_target, loss_fn))
            state.validation.append(record)
            if progress:
                print(f"[bulkformer finetune] epoch {state.epoch + 1}/{epochs} "
                      + " ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch"), flush=True)

    history = run_loop(LoopState(epochs=epochs), epoch_batches, step, [EpochEnd()]).validation
    net.eval()
    metrics = {k: v for k, v in history[-1].items() if k.startswith("val_")} if n_val else {}
    metrics = {k.removeprefix("val_"): v for k, v in metrics.items()}
    history_frame = pd.DataFrame(history)
    if out is not None:
        net.save(out, report={
            "validation": metrics, "history": history_frame.to_dict(orient="records"),
            "settings": {"task": task, "mode": mode, "trainable_layers": trainable_layers if mode == "partial" else None,
                         "aggregate": aggregate, "epochs": epochs, "batch_size": batch_size, "lr": lr, "head_lr": head_lr,
                         "weight_decay": weight_decay, "hidden": hidden, "val_fraction": val_fraction, "seed": seed,
                         "n_train": int(len(train_idx)), "n_val": int(n_val)},
        })
    return FinetuneResult(model=net, history=history_frame, metrics=metrics)


def check_settings(*, task: str, mode: str, trainable_layers: int | None, aggregate: str, val_fraction: float, epochs: int,
                   batch_size: int, lr: float, head_lr: float, hidden: int) -> None:
    """The settings alone, before the model or the data is read. ``trainable_layers`` given
    where the mode does not use it is an error: it would be silently ignored."""
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got task={task!r}")
    if mode not in ("frozen", "partial", "full"):
        raise ValueError(f"mode must be 'frozen', 'partial' or 'full', got mode={mode!r}")
    if aggregate not in ("mean", "max"):
        raise ValueError(f"aggregate must be 'mean' or 'max', got aggregate={aggregate!r}")
    if trainable_layers is not None and mode != "partial":
        raise ValueError(f"trainable_layers={trainable_layers} applies to mode='partial' (mode={mode!r} trains "
                         f"{'no encoder layer' if mode == 'frozen' else 'every encoder layer'}); use mode='partial' or "
                         "leave trainable_layers out")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden),
                        ("trainable_layers", 1 if trainable_layers is None else trainable_layers)):
        check_at_least(value, 1, name)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: must be in [0, 1) (0: no validation split)")
    for name, value in (("lr", lr), ("head_lr", head_lr)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value}: must be a positive learning rate")


def _evaluate(net, outputs, rows, target, task, fit_target, loss_fn) -> dict[str, float]:
    with torch.no_grad():
        out = outputs(rows, False)
        loss = float(loss_fn(out, fit_target(rows)))
        if task == "classification":
            accuracy = float((out.argmax(dim=1).cpu() == target[rows]).float().mean())
            return {"val_loss": loss, "val_accuracy": accuracy}
        pred = net.in_target_units(out.squeeze(1).cpu()).numpy()
        truth = target[rows].numpy()
        r = float(np.corrcoef(pred, truth)[0, 1]) if len(rows) > 2 and pred.std() > 0 else float("nan")
        return {"val_loss": loss, "val_pearson_r": r, "val_mse": float(((pred - truth) ** 2).mean())}


def _set_trainable(net: FinetunedModel, mode: str, trainable_layers: int) -> list[nn.Parameter]:
    encoder = net.encoder
    for parameter in encoder.parameters():
        parameter.requires_grad_(mode == "full")
    if mode == "partial":
        for layer in encoder.encoder_layers()[-trainable_layers:]:
            for parameter in layer.parameters():
                parameter.requires_grad_(True)
        for parameter in encoder.output_norm_module().parameters():
            parameter.requires_grad_(True)
    for parameter in encoder.frozen_parameters():
        parameter.requires_grad_(False)
    return [p for p in encoder.parameters() if p.requires_grad]


def _prepare(data: Any, bundle: Bundle, input: str, lengths: Any, *, gene_names: Any = None,
             orientation: str = "samples_by_genes", layer: str | None = None) -> tuple[np.ndarray, list[str]]:
    """(values, sample IDs) with pretraining's checks: input='aligned' data must name the
    vocabulary's genes in order and hold no NaN; positions stand in for IDs a plain array lacks."""
    values, sample_ids = prepared_with_ids(data, bundle.genes, input=input, layer=layer, lengths=lengths,
                                           orientation=orientation, min_matched_fraction=0.5, gene_names=gene_names)
    return values, list(sample_ids) if sample_ids is not None else [str(i) for i in range(len(values))]


def _align_labels(labels: Any, sample_ids: list[str], task: str) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(rows of the data with a label, target per row, classes): labels matched by sample
    ID with the rules the tasks use (``bulkformer.labels``)."""
    matched = match_samples(as_label_series(labels), sample_ids, what="labels")
    rows = pd.Index(sample_ids).get_indexer(matched.index)
    if task == "classification":
        text, classes = class_labels(matched, numeric_hint="; to predict a number fine-tune a regression head "
                                                           "with task='regression'")
        return rows, np.searchsorted(classes, text).astype(np.int64), classes
    values = numeric_column(matched, "the labels",
                            hint="; for classes fine-tune a classification head with task='classification'")
    return rows, values.to_numpy(dtype=np.float64), None
