"""Commands for the downstream tasks: ``bulkformer evaluate <task>``.

Each command declares its options, reads its tables, and calls its task's ``run``
(:mod:`bulkformer.tasks`, which builds both feature sets, matches samples and records
provenance); it prints the metrics and writes JSON / a figure on request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .data_options import BATCH, GENE_COLUMN, INPUT, LAYER, LENGTHS, ORIENTATION, data_spec, runtime
from .inputs import check_model_dir, column, gene_list, load_model, output_path, read_table

evaluate_app = typer.Typer(
    name="evaluate",
    help="Downstream tasks of the paper, each next to the same head on plain log1p TPM.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")


# ---- shared options ---------------------------------------------------------------
DATA = typer.Argument(..., metavar="DATA", help="Expression file (csv/tsv(.gz)/parquet/h5ad), samples x genes unless --orientation.")
MODEL = typer.Option(..., "--model", "-m", help="Model bundle directory (for a fine-tuned model: its encoder/ subdirectory).")
OUT = typer.Option(None, "--out", "-o", help="Write the full result (metrics, folds, predictions) as JSON.", callback=output_path)
PLOT = typer.Option(None, "--plot", help="Write the task's figure (.png/.pdf/.svg).", callback=output_path)
FEATURES = typer.Option("embedding,raw_logtpm", "--features", help="Comma-separated feature sets: embedding, raw_logtpm.")
FOLDS = typer.Option(10, "--folds", help="Cross-validation folds.")
SEED = typer.Option(0, "--seed", help="Random seed (splits, models).")
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda when available).")
AGGREGATE = typer.Option(None, "--aggregate", help="Sample embedding pooling over genes: max | mean | median | all | observed_mean (default: the model's; max for v1/v2, observed_mean for bulkformer-latest).")
HIDDEN = typer.Option("256,64", "--hidden", help="MLP hidden layer sizes, comma-separated.")
MAX_ITER = typer.Option(300, "--max-iter", help="MLP training epochs (early stopping on a 10% split).")
# every evaluate subcommand takes it (scripts pass it uniformly); the embedding pass's bar is the one shown
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Progress bar of the embedding pass (--no-progress: none, for logs).")
ID_LENGTH = typer.Option(None, "--id-length", help="Match samples on the first N characters of their IDs (TCGA: 15).")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated integers like 256,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--hidden needs at least one positive layer size, got {text!r}")
    return sizes


def _include(features: str) -> list[str]:
    from bulkformer.tasks.features import check_include

    return check_include([f.strip() for f in features.split(",") if f.strip()])


def _prepare(data: Path, plot: Optional[Path], input: str, orientation: str, lengths: Optional[Path],
             layer: Optional[str], gene_column: Optional[str]):
    """The checks every task command makes first (the figure's format), then its DataSpec."""
    from bulkformer.tasks.result import check_plot_path

    if plot is not None:
        check_plot_path(plot)
    return data_spec(data, input=input, orientation=orientation, layer=layer, gene_column=gene_column,
                     lengths=lengths)


def _report(result, out: Optional[Path], plot: Optional[Path]) -> None:
    import sys

    import pandas as pd

    # the library records the data, model and version; the command line adds itself
    result.params["provenance"] = {"command": " ".join(["bulkformer", *sys.argv[1:]]),
                                   **result.params.get("provenance", {})}
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        typer.echo(result.metrics.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if out is not None:
        typer.echo(f"wrote {result.to_json(out)}")
    if plot is not None:
        typer.echo(f"wrote {result.plot(plot)}")


# ---- commands ---------------------------------------------------------------------
@evaluate_app.command("classification")
def classification(
    data: Path = DATA,
    labels: Path = typer.Option(..., "--labels", help="Table: sample ID (first column) -> label; or an h5ad file (its obs)."),
    column_name: Optional[str] = typer.Option(None, "--column", help="Label column of --labels (if it has several)."),
    id_length: Optional[int] = ID_LENGTH,
    model: Path = MODEL, input: str = INPUT, lengths: Optional[Path] = LENGTHS, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN, features: str = FEATURES,
    aggregate: Optional[str] = AGGREGATE, folds: int = FOLDS,
    n_components: int = typer.Option(64, "--pca", help="PCA components before the heads."),
    trees: int = typer.Option(500, "--trees", help="Random forest size."),
    seed: int = SEED, batch_size: int = BATCH, device: Optional[str] = DEVICE,
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT, progress: bool = PROGRESS,
) -> None:
    """Classify samples (disease, tissue, cancer type): PCA -> random forest / logistic regression.

    Stratified k-fold; weighted F1, accuracy, macro F1, confusion matrix.

    Examples:
      bulkformer evaluate classification counts.tsv --labels labels.tsv -m models/bulkformer-37M
      bulkformer evaluate classification counts.tsv --labels obs.csv --column tissue -m bundle --folds 5 -o cls.json --plot cls.png
    """
    from bulkformer.tasks import classification as task

    # everything that can fail on the inputs is checked before the embedding pass
    spec = _prepare(data, plot, input, orientation, lengths, layer, gene_column)
    task.check_settings(n_splits=folds, n_components=n_components, n_estimators=trees)
    include = _include(features)
    check_model_dir(model)
    target = column(read_table(labels, "labels"), column_name, "labels")
    result = task.run(spec, model, target, id_length=id_length, include=include, aggregate=aggregate,
                      runtime=runtime(batch_size=batch_size, device=device, progress=progress),
                      n_splits=folds, n_components=n_components, n_estimators=trees, seed=seed)
    _report(result, out, plot)

@evaluate_app.command("prognosis")
def prognosis(
    data: Path = DATA,
    survival: Path = typer.Option(..., "--survival", help="Table: sample ID (first column), time and event columns; or an h5ad file (its obs)."),
    time_column: str = typer.Option("OS.time", "--time-column"),
    event_column: str = typer.Option("OS", "--event-column", help="1 = event, 0 = censored."),
    id_length: Optional[int] = ID_LENGTH,
    model: Path = MODEL, input: str = INPUT, lengths: Optional[Path] = LENGTHS, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN, features: str = FEATURES,
    aggregate: Optional[str] = AGGREGATE, folds: int = FOLDS,
    n_components: int = typer.Option(10, "--pca", help="PCA components of the Cox model."),
    trees: int = typer.Option(500, "--trees", help="Random forest size."),
    horizon: Optional[float] = typer.Option(None, "--horizon", help="Forest head: event by this time (time column's units) "
                                            "vs followed beyond it; samples censored earlier are left out of that head. "
                                            "Default: event vs no event, as the paper."),
    seed: int = SEED, batch_size: int = BATCH, device: Optional[str] = DEVICE,
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT, progress: bool = PROGRESS,
) -> None:
    """Prognosis: alive/dead random forest (AUROC, AUPRC) and Cox on PCA components (C-index).

    Folds stratified by event; samples without a time or event are left out with a warning.

    Examples:
      bulkformer evaluate prognosis counts.tsv --survival survival.tsv -m models/bulkformer-37M
      bulkformer evaluate prognosis tcga.tsv --survival tcga_survival.tsv.gz --id-length 15 -m bundle --plot km.png
    """
    from bulkformer.tasks import prognosis as task

    spec = _prepare(data, plot, input, orientation, lengths, layer, gene_column)
    task.check_settings(n_splits=folds, n_components=n_components, n_estimators=trees)
    include = _include(features)
    check_model_dir(model)
    result = task.run(spec, model, read_table(survival, "survival"), time_col=time_column, event_col=event_column,
                      id_length=id_length, include=include, aggregate=aggregate,
                      runtime=runtime(batch_size=batch_size, device=device, progress=progress),
                      n_splits=folds, n_components=n_components, n_estimators=trees, horizon=horizon, seed=seed)
    _report(result, out, plot)

@evaluate_app.command("drug-response")
def drug_response(
    data: Path = DATA,
    responses: Path = typer.Option(..., "--responses", help="Long table: cell line, drug, response (IC50/AUC)."),
    drugs: Path = typer.Option(..., "--drugs", help="Drug descriptor table: drug ID (first column) x numeric descriptors."),
    cell_column: str = typer.Option("cell_line", "--cell-column"),
    drug_column: str = typer.Option("drug", "--drug-column"),
    value_column: str = typer.Option("response", "--value-column"),
    model: Path = MODEL, input: str = INPUT, lengths: Optional[Path] = LENGTHS, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN, features: str = FEATURES,
    aggregate: Optional[str] = AGGREGATE, folds: int = FOLDS, hidden: str = HIDDEN, max_iter: int = MAX_ITER,
    seed: int = SEED, batch_size: int = BATCH,
    device: Optional[str] = DEVICE, out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
    progress: bool = PROGRESS,
) -> None:
    """Drug response: cell-line features + drug descriptors -> MLP; mean Pearson r per drug.

    Cross-validation grouped by cell line; Pearson r per drug, averaged (mean PCC).

    Examples:
      bulkformer evaluate drug-response ccle_counts.tsv --responses ic50.csv --drugs fingerprints.csv -m models/bulkformer-37M
      bulkformer evaluate drug-response expr.tsv --input logtpm --responses auc.tsv --value-column AUC --drugs desc.tsv -m bundle -o drug.json
    """
    from bulkformer.tasks import drug_response as task

    spec = _prepare(data, plot, input, orientation, lengths, layer, gene_column)
    sizes = _sizes(hidden)
    task.check_settings(n_splits=folds, hidden=sizes, max_iter=max_iter)
    include = _include(features)
    check_model_dir(model)
    result = task.run(spec, model, read_table(responses, "responses").reset_index(),
                      read_table(drugs, "drug descriptors"), cell_col=cell_column, drug_col=drug_column,
                      value_col=value_column, include=include, aggregate=aggregate,
                      runtime=runtime(batch_size=batch_size, device=device, progress=progress),
                      n_splits=folds, hidden=sizes, max_iter=max_iter, seed=seed)
    _report(result, out, plot)

@evaluate_app.command("essentiality")
def essentiality(
    data: Path = DATA,
    effects: Path = typer.Option(..., "--effects", help="Gene effect table: cell line (first column) x genes (Ensembl IDs, symbols or DepMap's 'SYMBOL (ENTREZ)')."),
    model: Path = MODEL, input: str = INPUT, lengths: Optional[Path] = LENGTHS, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN,
    features: str = FEATURES, folds: int = FOLDS, hidden: str = HIDDEN, max_iter: int = MAX_ITER,
    seed: int = SEED, batch_size: int = BATCH,
    device: Optional[str] = DEVICE, out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
    progress: bool = PROGRESS,
) -> None:
    """Gene essentiality: gene-level embeddings per cell line -> MLP of gene effect.

    Cross-validation grouped by cell line; Pearson r per cell line, averaged.

    Examples:
      bulkformer evaluate essentiality ccle_counts.tsv --effects CRISPRGeneEffect.csv -m models/bulkformer-37M
      bulkformer evaluate essentiality expr.tsv --input logtpm --effects effects.tsv -m bundle --features raw_logtpm --folds 5
    """
    from bulkformer.tasks import essentiality as task

    spec = _prepare(data, plot, input, orientation, lengths, layer, gene_column)
    sizes = _sizes(hidden)
    task.check_settings(n_splits=folds, hidden=sizes, max_iter=max_iter)
    include = _include(features)
    bundle = load_model(model)
    result = task.run(spec, bundle, read_table(effects, "gene effects"), include=include,
                      runtime=runtime(batch_size=batch_size, device=device, progress=False),
                      n_splits=folds, hidden=sizes, max_iter=max_iter, seed=seed)
    _report(result, out, plot)

@evaluate_app.command("imputation")
def imputation(
    data: Path = DATA, model: Path = MODEL, input: str = INPUT, lengths: Optional[Path] = LENGTHS, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN,
    mask_fraction: float = typer.Option(0.15, "--mask-fraction", help="Share of each sample's observed genes to hide."),
    baselines: str = typer.Option("gene_mean,knn", "--baselines", help="Comma-separated: gene_mean, knn (empty: none)."),
    repeats: int = typer.Option(1, "--repeats", help="Independent random masks."),
    seed: int = SEED, batch_size: int = BATCH, device: Optional[str] = DEVICE,
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT, progress: bool = PROGRESS,
) -> None:
    """Imputation: hide k% of observed genes per sample; BulkFormer vs gene-mean and KNN.

    Pearson, Spearman, MAE overall and by expression decile.

    Examples:
      bulkformer evaluate imputation counts.tsv -m models/bulkformer-37M
      bulkformer evaluate imputation logtpm.parquet --input logtpm -m bundle --mask-fraction 0.3 --baselines knn -o imp.json --plot imp.png
    """
    from bulkformer.tasks import imputation as task

    spec = _prepare(data, plot, input, orientation, lengths, layer, gene_column)
    chosen = [b.strip() for b in baselines.split(",") if b.strip()]
    task.check_settings(mask_fraction=mask_fraction, n_repeats=repeats, baselines=chosen)
    bundle = load_model(model)
    result = task.run(spec, bundle, baselines=chosen, mask_fraction=mask_fraction, n_repeats=repeats,
                      runtime=runtime(batch_size=batch_size, device=device, progress=False), seed=seed)
    _report(result, out, plot)

@evaluate_app.command("gene-survival")
def gene_survival(
    data: Path = DATA,
    survival: Path = typer.Option(..., "--survival", help="Table: sample ID (first column), time and event columns; or an h5ad file (its obs)."),
    genes: str = typer.Option(..., "--genes", help="Comma-separated genes (Ensembl IDs, symbols, Entrez IDs), or a file with one per line (path or @path)."),
    time_column: str = typer.Option("OS.time", "--time-column"),
    event_column: str = typer.Option("OS", "--event-column", help="1 = event, 0 = censored."),
    id_length: Optional[int] = ID_LENGTH,
    model: Path = MODEL, input: str = INPUT, lengths: Optional[Path] = LENGTHS, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN,
    n_plot: int = typer.Option(4, "--n-plot", help="Kaplan-Meier panels (genes with the smallest log-rank p)."),
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT, progress: bool = PROGRESS,
) -> None:
    """Per-gene hazard ratios of high vs low (median split) log1p TPM, with Kaplan-Meier curves.

    Genes by Ensembl ID, symbol or Entrez ID; each is tested on the samples that measure it.

    Examples:
      bulkformer evaluate gene-survival counts.tsv --survival survival.tsv --genes TP53,EGFR -m models/bulkformer-37M
      bulkformer evaluate gene-survival tcga.tsv --survival tcga_survival.tsv.gz --id-length 15 --genes genes.txt -m bundle --plot km.png
    """
    from bulkformer.tasks import gene_survival as task
    from bulkformer.arguments import check_at_least

    spec = _prepare(data, plot, input, orientation, lengths, layer, gene_column)
    check_at_least(n_plot, 1, "n_plot")
    bundle = load_model(model)
    result = task.run(spec, bundle, read_table(survival, "survival"), gene_list(genes), time_col=time_column,
                      event_col=event_column, id_length=id_length, n_plot=n_plot)
    _report(result, out, plot)