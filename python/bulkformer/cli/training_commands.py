"""Commands about training and the built-in data: pretrain, finetune, simulate, demo."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .inputs import GENE_COLUMN_HELP, LAYER_HELP, ORIENTATION_HELP, output_path, read_lengths


# how finetune and predict read the expression file (the same way)
_INPUT = typer.Option("counts", "--input", help="counts, tpm or logtpm (natural log1p TPM).")
_LENGTHS = typer.Option(None, "--lengths", help="TSV gene ID -> length in bp (default: the shipped annotation).")
_ORIENTATION = typer.Option("samples_by_genes", "--orientation", help=ORIENTATION_HELP)
_LAYER = typer.Option(None, "--layer", help=LAYER_HELP)
_GENE_COLUMN = typer.Option(None, "--gene-column", help=GENE_COLUMN_HELP)


def register(app: typer.Typer) -> None:
    app.command("prepare-corpus")(prepare_corpus)
    app.command("pretrain")(pretrain)
    app.command("finetune")(finetune)
    app.command("predict")(predict)
    app.command("simulate")(simulate)
    app.command("demo")(demo)


def _vocabulary(vocabulary: Optional[Path], n_genes: Optional[int]):
    import pandas as pd

    from bulkformer.preprocess import vocabulary_table

    table = None if vocabulary is None else pd.read_csv(vocabulary, sep=None, engine="python", dtype={"ensembl_id": str})
    return vocabulary_table(table, n_genes, what="--n-genes")


def pretrain(
    data: List[Path] = typer.Argument(..., help="Shard files or a directory of shards (h5ad, parquet, zarr, csv, tsv)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory: checkpoints/, log.jsonl, model/.", callback=output_path),
    model: str = typer.Option("37M", "--model", help="Preset for a new model (37M, 50M, 93M, 127M, 147M, v1) or a bundle directory to continue."),
    input: str = typer.Option("counts", "--input", help="counts, tpm, logtpm (natural log1p TPM), or aligned (log1p TPM already in the vocabulary's gene order, -10 = unmeasured)."),
    layer: Optional[str] = typer.Option(None, "--layer", help="h5ad layer holding the values (default X), e.g. counts."),
    gene_column: Optional[str] = typer.Option(None, "--gene-column", help=GENE_COLUMN_HELP + " Also for zarr shards."),
    orientation: str = typer.Option("samples_by_genes", "--orientation", help="samples_by_genes (rows are samples) or genes_by_samples (as in R), for every shard."),
    lengths: Optional[Path] = typer.Option(None, "--lengths", help="TSV gene ID -> length in bp (default: the shipped annotation)."),
    min_matched_fraction: float = typer.Option(0.5, "--min-matched-fraction", help="Refuse a shard that measures fewer than this share of the vocabulary."),
    vocabulary: Optional[Path] = typer.Option(None, "--vocabulary", help="Gene table (ensembl_id, symbol, length) for a new model; default: shipped."),
    n_genes: Optional[int] = typer.Option(None, "--n-genes", help="New models: use only the first N vocabulary genes (small models)."),
    dim: Optional[int] = typer.Option(None, "--dim", help="Hidden size for a new model (overrides the preset)."),
    p_repeat: Optional[int] = typer.Option(None, "--layers", help="Performer layers for a new model."),
    heads: Optional[int] = typer.Option(None, "--heads", help="Attention heads for a new model."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Attention and feed-forward dropout."),
    gene_init: Optional[str] = typer.Option(None, "--gene-init", help="New models: gene embeddings from the data's principal axes (pca; v1/v2 default) or random (the published init; latest default)."),
    val_data: Optional[List[Path]] = typer.Option(None, "--val-data", help="Held-out shards for validation (no sample may also be in the training data)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share held out for validation when --val-data is not given: rows of one file, whole files (the last ones, rounded up) of a shard folder."),
    epochs: int = typer.Option(1, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(16, "--batch-size", help="Global micro-batch (split over processes)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per optimizer step."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (warmup 5%, cosine decay)."),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    warmup_fraction: float = typer.Option(0.05, "--warmup-fraction"),
    mask_fraction: Optional[float] = typer.Option(None, "--mask-fraction", help="Share of each sample's measured genes hidden per step (default: the layout's recipe; v1/v2 0.15, latest 0.05-0.15)."),
    mask_fraction_max: Optional[float] = typer.Option(
        None, "--mask-fraction-max",
        help="Draw each sample's masking rate from [--mask-fraction, this]: the model then copes with cohorts lacking more genes."),
    observed_weight: Optional[float] = typer.Option(None, "--observed-weight", help="Weight of a denoising MSE at unmasked genes (default 0 = paper)."),
    clip_norm: float = typer.Option(1.0, "--clip-norm", help="Gradient clipping: max gradient norm (0 = off)."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on GPU), fp32 or bf16."),
    activation_checkpointing: bool = typer.Option(False, "--activation-checkpointing", help="Recompute activations (large presets)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the training forward (needs a C++ compiler on CPU; first steps compile)."),
    max_time: Optional[str] = typer.Option(None, "--max-time", help="Wall-clock budget (3600, 90m, 11.5h): then a checkpoint, the model so far, and exit 0; --resume continues."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Write a checkpoint every N steps (0 = none)."),
    checkpoint_minutes: Optional[float] = typer.Option(None, "--checkpoint-minutes", help="Write a checkpoint at least every M minutes (SIGTERM / Ctrl-C also write one before exiting)."),
    keep_checkpoints: int = typer.Option(2, "--keep-checkpoints", help="Newest checkpoints kept (0 = all)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's latest checkpoint (or start, if it has none yet), with the settings the run was started with."),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda (default: cuda when available)."),
    shards_in_memory: int = typer.Option(2, "--shards-in-memory", help="Shards (blocks of at most 4,096 samples) pooled and shuffled together."),
    workers: int = typer.Option(2, "--workers", help="Data-loading worker processes per rank reading the prepared corpus (0: in the training process)."),
    progress: bool = typer.Option(True, help="Progress bar and log lines (--no-progress: none)."),
    quiet: bool = typer.Option(False, "--quiet", hidden=True, help="The same as --no-progress."),
) -> None:
    """Pretrain a BulkFormer by masked-expression modelling (one process, or many under torchrun).

    The run directory (new, empty, or an earlier run's) gets checkpoints/, log.jsonl and the trained bundle in model/.

    Examples:
      bulkformer simulate -o sim --n-samples 2000 --n-genes 2000 --shards 8
      bulkformer pretrain sim/shards -o runs/sim --n-genes 2000 --dim 64 --heads 4 --layers 1 --epochs 5 --lr 1e-3 \\
          --checkpoint-every 100
      bulkformer pretrain sim/shards -o runs/sim --n-genes 2000 --dim 64 --heads 4 --layers 1 --epochs 5 --lr 1e-3 \\
          --checkpoint-every 100 --resume      # after an interruption: the same options, plus --resume
      bulkformer pretrain cohort.h5ad -o runs/cohort --model runs/sim/model --layer counts   # continue a model
      torchrun --nproc-per-node 4 $(which bulkformer) pretrain shards/ -o runs/big --model 147M \\
          --batch-size 64 --grad-accum 4 --activation-checkpointing --checkpoint-every 1000
    """
    from bulkformer import DataSpec
    from bulkformer.training import PretrainConfig
    from bulkformer.training import pretrain as run
    from bulkformer.training.callbacks import Interrupted

    source = [str(p) for p in data]
    model_arg = model if not Path(model).is_dir() else Path(model)
    if isinstance(model_arg, Path) and (vocabulary is not None or n_genes is not None):
        raise ValueError(f"--vocabulary and --n-genes choose a new model's genes; the bundle {model} keeps its own")
    spec = DataSpec(source if len(source) > 1 else source[0], input=input, layer=layer, genes=gene_column,
                    orientation=orientation, min_matched_fraction=min_matched_fraction, lengths=read_lengths(lengths))
    config = PretrainConfig(
        model=model_arg, vocabulary=None if vocabulary is None and n_genes is None else _vocabulary(vocabulary, n_genes),
        val_data=[str(p) for p in val_data] if val_data else None, val_fraction=val_fraction, epochs=epochs,
        max_steps=max_steps, max_time=parse_duration(max_time), batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        weight_decay=weight_decay, warmup_fraction=warmup_fraction, mask_fraction=mask_fraction,
        mask_fraction_max=mask_fraction_max, observed_weight=observed_weight, clip_norm=clip_norm or None,
        precision=precision, activation_checkpointing=activation_checkpointing, compile=compile,
        checkpoint_every=checkpoint_every, checkpoint_minutes=checkpoint_minutes, keep_checkpoints=keep_checkpoints,
        resume=resume, seed=seed, device=device, shards_in_memory=shards_in_memory, workers=workers, dim=dim,
        p_repeat=p_repeat, heads=heads, dropout=dropout, gene_init=gene_init, progress=progress and not quiet)
    try:
        run(spec, out, config=config)
    except KeyboardInterrupt as stop:
        # the run directory keeps its complete checkpoints: say how to go on from them
        from bulkformer.training.checkpoint import latest_checkpoint

        last = latest_checkpoint(out) if out.is_dir() else None
        typer.echo("interrupted: " + (f"`bulkformer pretrain ... -o {out} --resume` (same settings) continues from "
                                      f"{last.name}" if last is not None else
                                      "no checkpoint was written yet (--checkpoint-every N writes one every N steps)"),
                   err=True)
        if isinstance(stop, Interrupted):  # SIGTERM / SIGINT, checkpoint written: the shell's exit status
            raise typer.Exit(128 + stop.signum) from None
        raise


def parse_duration(text: Optional[str]) -> Optional[float]:
    """--max-time: seconds, or a number with s, m or h."""
    if text is None:
        return None
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value = text.strip().lower()
    scale = units.get(value[-1:], None)
    try:
        seconds = float(value[:-1] if scale else value) * (scale or 1.0)
    except ValueError:
        raise ValueError(f"--max-time {text!r} is not a duration: give seconds (3600) or 90m, 11.5h") from None
    if not seconds > 0:
        raise ValueError(f"--max-time {text!r} must be positive")
    return seconds


def prepare_corpus(
    shards: List[Path] = typer.Argument(..., help="Shard files or directories of shards (h5ad, parquet, zarr, csv, tsv, gzipped text)."),
    out: Path = typer.Option(..., "--out", "-o", help="Corpus directory: new, empty, or an existing corpus to append the shards it lacks to.", callback=output_path),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A bundle directory or preset (37M, ..., latest) whose vocabulary and input conventions the values are prepared for (default: the shipped vocabulary)."),
    vocabulary: Optional[Path] = typer.Option(None, "--vocabulary", help="Gene table (ensembl_id, symbol, length) instead of a model's."),
    n_genes: Optional[int] = typer.Option(None, "--n-genes", help="Only the first N vocabulary genes (small models)."),
    input: str = typer.Option("counts", "--input", help="counts, tpm, logtpm (natural log1p TPM), or aligned."),
    layer: Optional[str] = _LAYER, gene_column: Optional[str] = _GENE_COLUMN, orientation: str = _ORIENTATION,
    lengths: Optional[Path] = _LENGTHS,
    min_matched_fraction: float = typer.Option(0.5, "--min-matched-fraction", help="Refuse a shard that measures fewer than this share of the vocabulary."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 (exact) or float16 (half the size, ~3 significant digits)."),
    chunk_rows: int = typer.Option(256, "--chunk-rows", help="Samples per stored chunk."),
    progress: bool = typer.Option(True, help="One line per shard (--no-progress: none)."),
) -> None:
    """Read shard files once into a prepared corpus that pretrain streams (-o DIR; again to append new shards).

    The values are prepared as pretrain (and inference) prepare them for the model: log1p TPM over its
    vocabulary, -10 where a gene was not measured. A corpus refuses a model of another vocabulary.

    Examples:
      bulkformer prepare-corpus shards/ -o corpus/ --model 37M --n-genes 2000
      bulkformer prepare-corpus new_shards/*.tsv.gz -o corpus/ --model 37M --n-genes 2000   # appends
      bulkformer pretrain corpus/ -o runs/big --model 37M --n-genes 2000 --max-time 11.5h --checkpoint-minutes 30
    """
    from bulkformer.corpus import CorpusSettings
    from bulkformer.corpus import prepare_corpus as run
    from bulkformer.corpus.store import model_target

    if model is not None and (vocabulary is not None or n_genes is not None) and Path(model).is_dir():
        raise ValueError(f"--vocabulary and --n-genes choose genes; the bundle {model} has its own")
    target = model_target(model)
    if vocabulary is not None or n_genes is not None:
        target = type(target)(_vocabulary(vocabulary, n_genes), target.input_conventions)
    settings = CorpusSettings(input=input, layer=layer, orientation=orientation, genes=gene_column,
                              min_matched_fraction=min_matched_fraction, dtype=dtype, chunk_rows=chunk_rows)
    corpus = run([str(p) for p in shards], out, target, settings=settings, lengths=read_lengths(lengths),
                 progress=progress)
    typer.echo(f"corpus {out}: {corpus.describe()}")


def finetune(
    data: Path = typer.Argument(..., help="Expression file (csv/tsv/parquet/h5ad), samples x genes unless --orientation."),
    labels: Path = typer.Option(..., "--labels", help="Table of labels, sample ID in the first column."),
    column_name: str = typer.Option(..., "--column", help="The label column."),
    model: Path = typer.Option(..., "--model", "-m", help="A (pre)trained bundle directory."),
    out: Path = typer.Option(..., "--out", "-o", help="New directory for the fine-tuned model (or an earlier fine-tuning output to replace).", callback=output_path),
    task: str = typer.Option("classification", "--task", help="classification or regression."),
    mode: str = typer.Option("frozen", "--mode", help="frozen, partial or full."),
    trainable_layers: Optional[int] = typer.Option(None, "--trainable-layers", help="Performer layers trained in partial mode (default 1)."),
    input: str = _INPUT, lengths: Optional[Path] = _LENGTHS, orientation: str = _ORIENTATION,
    layer: Optional[str] = _LAYER, gene_column: Optional[str] = _GENE_COLUMN,
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of labelled samples held out for the reported metrics (0: none)."),
    epochs: int = typer.Option(20, "--epochs"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr", help="Encoder learning rate (partial/full; default 1e-4)."),
    head_lr: float = typer.Option(1e-3, "--head-lr"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda (default: cuda when available)."),
    id_length: Optional[int] = typer.Option(None, "--id-length", help="Match samples to labels on the first N characters (TCGA: 15)."),
    progress: bool = typer.Option(True, help="One line per epoch (--no-progress: none)."),
) -> None:
    """Fine-tune a classification or regression head on a BulkFormer encoder.

    Labels are matched to samples by ID; samples without one are left out with a warning.

    -o gets the model, finetune.json and metrics.json (validation metrics, history, settings).

    Predict with it: bulkformer predict DATA -m DIR -o predictions.csv (in Python, load_finetuned(DIR).predict(data)).
    It is not a bundle: where a command wants one (-m), give DIR/encoder.

    Examples:
      bulkformer finetune sim/counts.parquet --labels sim/obs.tsv --column tissue -m runs/sim/model -o runs/tissue
      bulkformer finetune sim/counts.parquet --labels sim/obs.tsv --column risk_score --task regression \\
          --mode partial -m runs/sim/model -o runs/risk --lengths sim/lengths.tsv
    """
    import json

    from bulkformer.json_safe import json_safe
    from bulkformer.training.finetune import check_output_dir, check_settings
    from bulkformer.training.finetune import finetune as run

    from .inputs import check_expression_file, check_model_dir, column, read_table

    # flags, output and model first: nothing is read or trained before they are right
    if lr is not None and mode == "frozen":
        raise ValueError("--lr is the encoder's learning rate, and --mode frozen trains only the head: use --head-lr, "
                         "or --mode partial / full to train the encoder")
    lr = 1e-4 if lr is None else lr
    check_settings(task=task, mode=mode, trainable_layers=trainable_layers, aggregate="mean", val_fraction=val_fraction,
                   epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, hidden=64)
    check_output_dir(out)
    check_expression_file(data, layer, gene_column)
    check_model_dir(model)
    target = column(read_table(labels, "labels"), column_name, "labels")
    from bulkformer.tasks.samples import labels_by_data_ids
    from bulkformer.training import FinetuneConfig

    from .data_options import data_spec

    spec = data_spec(data, input=input, orientation=orientation, layer=layer, gene_column=gene_column, lengths=lengths)
    if id_length is not None:
        target = labels_by_data_ids(target, spec, id_length)
    config = FinetuneConfig(task=task, mode=mode, trainable_layers=trainable_layers, val_fraction=val_fraction,
                            epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, seed=seed, device=device,
                            progress=progress)
    result = run(spec, target, model, out, config)
    typer.echo(json.dumps({"out": str(out), "validation": json_safe(result.metrics)}, indent=2))


def predict(
    data: Path = typer.Argument(..., help="Expression file (csv/tsv/parquet/h5ad), samples x genes unless --orientation."),
    model: Path = typer.Option(..., "--model", "-m", help="A fine-tuning output directory (bulkformer finetune -o)."),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions table: .csv or .tsv (optionally .gz), .parquet or .h5ad.", callback=output_path),
    input: Optional[str] = typer.Option(None, "--input", help="counts, tpm or logtpm (default: what the model was fine-tuned on)."),
    lengths: Optional[Path] = _LENGTHS, orientation: str = _ORIENTATION,
    layer: Optional[str] = _LAYER, gene_column: Optional[str] = _GENE_COLUMN,
    batch_size: int = typer.Option(16, "--batch-size", help="Samples per batch."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda (default: cuda when available)."),
) -> None:
    """Apply a fine-tuned model to samples: one column per class (probabilities) or the regression value.

    The data are read as by finetune; rows of the output are the samples, in the data's order.

    Examples:
      bulkformer predict new_counts.csv -m runs/tissue -o tissue_probabilities.csv
      bulkformer predict cohort.h5ad --layer counts --gene-column gene_ids -m runs/risk -o risk.parquet
    """
    from bulkformer.arguments import check_at_least
    from bulkformer.training.finetune import load_finetuned

    from .inputs import check_expression_file
    from .outputs import TABLE_SUFFIXES, output_format, write_table

    check_at_least(batch_size, 1, "batch_size")
    output_format(out, TABLE_SUFFIXES)
    check_expression_file(data, layer, gene_column)
    from bulkformer.atomic import check_not_input

    check_not_input(out, {"DATA": data, "--lengths": lengths, "--model": model})
    finetuned = load_finetuned(model, device=device or "cpu")
    frame = finetuned.predict(str(data), input=input, lengths=read_lengths(lengths), batch_size=batch_size, device=device,
                              gene_names=gene_column, orientation=orientation, layer=layer)
    write_table(frame, out, data, orientation)
    typer.echo(f"wrote {out}: {frame.shape[0]} samples x {frame.shape[1]} "
               f"{'classes' if finetuned.task == 'classification' else 'column'} ({finetuned.task})")


def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the cohort to.", callback=output_path),
    n_samples: int = typer.Option(300, "--n-samples"),
    n_genes: int = typer.Option(2000, "--n-genes", help="First N genes of the shipped vocabulary."),
    shards: int = typer.Option(1, "--shards", help="Also write about N parquet shards under shards/ (for pretrain): each from one batch, holding the genes that batch measured."),
    seed: int = typer.Option(0, "--seed"),
    missing_fraction: float = typer.Option(0.1, "--missing-fraction", help="Share of genes each batch lacks (absent from its shards; counts.parquet keeps every gene, measured.parquet marks them)."),
) -> None:
    """Simulate a bulk RNA-seq cohort with known ground truth (labels, survival, drug response, essentiality).

    Writes counts, labels (obs.tsv), task inputs (drug_responses_long.tsv, drug_descriptors.tsv,
    essentiality.tsv) and the truth tables the downstream tasks are scored against.

    Examples:
      bulkformer simulate -o sim --n-samples 500 --n-genes 1000
      bulkformer simulate -o sim --n-samples 5000 --n-genes 2000 --shards 10 --seed 3
      bulkformer evaluate drug-response sim/counts.parquet --lengths sim/lengths.tsv -m MODEL \\
          --responses sim/drug_responses_long.tsv --drugs sim/drug_descriptors.tsv
    """
    from bulkformer.datasets import simulate_cohort

    cohort = simulate_cohort(n_samples=n_samples, n_genes=n_genes, seed=seed, missing_fraction=missing_fraction)
    cohort.save(out, shards=shards)
    what = str(out / "counts.parquet") + (f" (and {shards} shards in {out / 'shards'})" if shards > 1 else "")
    typer.echo(f"wrote {n_samples} samples x {n_genes} genes to {out} (counts: {what}; labels: obs.tsv; truth tables beside)")


def demo(
    out: Path = typer.Option(Path("bulkformer-demo"), "--out", "-o", help="Report directory.", callback=output_path),
    fast: bool = typer.Option(False, "--fast", help="Seconds instead of minutes (smoke test; numbers mean little)."),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)."),
) -> None:
    """The built-in demo: simulate a cohort, pretrain a small model, impute, embed, compare with baselines.

    Offline, CPU only, a few minutes on 2 cores. Writes report.html, figures/, metrics.json and the model.

    Examples:
      bulkformer demo
      bulkformer demo -o /tmp/demo --fast
    """
    import torch

    from bulkformer.demo import DemoSettings, run_demo

    if threads:
        torch.set_num_threads(threads)
    settings = DemoSettings.fast(seed) if fast else DemoSettings(seed=seed)
    result = run_demo(out, settings)
    typer.echo(f"open {result.report}")
