"""Commands for the downstream tasks: ``bulkformer evaluate <task>``.

Each command builds the two feature sets (BulkFormer embeddings and plain log1p TPM)
from an expression file and a model bundle, runs the task through the same head for
both, prints the metrics and writes JSON / a figure on request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

evaluate_app = typer.Typer(
    name="evaluate",
    help="Downstream tasks of the paper, each next to the same head on plain log1p TPM.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")


# ---- shared options ---------------------------------------------------------------
DATA = typer.Argument(..., help="Expression file (csv/tsv(.gz)/parquet/h5ad), samples x genes unless --orientation.")
MODEL = typer.Option(..., "--model", "-m", help="Model bundle directory.")
INPUT = typer.Option("counts", "--input", help="counts | tpm | logtpm (natural log1p TPM).")
ORIENTATION = typer.Option("samples_by_genes", "--orientation", help="samples_by_genes | genes_by_samples.")
OUT = typer.Option(None, "--out", "-o", help="Write the full result (metrics, folds, predictions) as JSON.")
PLOT = typer.Option(None, "--plot", help="Write the task's figure (.png/.pdf/.svg).")
FEATURES = typer.Option("embedding,raw_logtpm", "--features", help="Comma-separated feature sets: embedding, raw_logtpm.")
FOLDS = typer.Option(10, "--folds", help="Cross-validation folds.")
SEED = typer.Option(0, "--seed", help="Random seed (splits, models).")
BATCH = typer.Option(16, "--batch-size", help="Samples per forward pass.")
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda when available).")
AGGREGATE = typer.Option("max", "--aggregate", help="Sample embedding pooling over genes: max | mean | median | all.")
HIDDEN = typer.Option("256,64", "--hidden", help="MLP hidden layer sizes, comma-separated.")
MAX_ITER = typer.Option(300, "--max-iter", help="MLP training epochs (early stopping on a 10% split).")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated integers like 256,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--hidden needs at least one positive layer size, got {text!r}")
    return sizes


def read_table(path: Path, what: str):
    """A table indexed by its first column (csv, tsv(.gz), txt(.gz), parquet)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        table = pd.read_parquet(path)
        return table.set_index(table.columns[0]) if isinstance(table.index, pd.RangeIndex) else table
    sep = "," if name.endswith(".csv") else "\t"
    table = pd.read_csv(path, sep=sep, index_col=0)
    table.index = table.index.astype(str)
    return table


def _column(table, column: Optional[str], what: str):
    if column is None:
        if table.shape[1] != 1:
            raise ValueError(f"the {what} table has {table.shape[1]} columns {list(table.columns)[:8]}; pick one with --column")
        return table.iloc[:, 0]
    if column not in table.columns:
        raise ValueError(f"the {what} table has no column {column!r}; it has {list(table.columns)[:10]}")
    return table[column]


def _feature_sets(data: Path, model: Path, features: str, input: str, orientation: str, aggregate: str,
                  batch_size: int, device: Optional[str]):
    from bulkformer.tasks.features import feature_sets

    include = [f.strip() for f in features.split(",") if f.strip()]
    return feature_sets(data, model, include=include, aggregate=aggregate, batch_size=batch_size, device=device,
                        progress=True, input=input, orientation=orientation)


def _report(result, out: Optional[Path], plot: Optional[Path]) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        typer.echo(result.metrics.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if out is not None:
        typer.echo(f"wrote {result.to_json(out)}")
    if plot is not None:
        typer.echo(f"wrote {result.plot(plot)}")


def _match_prefix(index, length: Optional[int]):
    return index if not length else index.astype(str).str[:length]


# ---- commands ---------------------------------------------------------------------
@evaluate_app.command("classification")
def classification(
    data: Path = DATA,
    labels: Path = typer.Option(..., "--labels", help="Table: sample ID (first column) -> label."),
    column: Optional[str] = typer.Option(None, "--column", help="Label column of --labels (if it has several)."),
    model: Path = MODEL, input: str = INPUT, orientation: str = ORIENTATION, features: str = FEATURES,
    aggregate: str = AGGREGATE, folds: int = FOLDS,
    n_components: int = typer.Option(64, "--pca", help="PCA components before the heads."),
    trees: int = typer.Option(500, "--trees", help="Random forest size."),
    seed: int = SEED, batch_size: int = BATCH, device: Optional[str] = DEVICE,
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
) -> None:
    """Classify samples (disease, tissue, cancer type): PCA -> random forest / logistic regression.

    Stratified k-fold; weighted F1, accuracy, macro F1, confusion matrix.

    Examples:
      bulkformer evaluate classification counts.tsv --labels labels.tsv -m models/bulkformer-37M
      bulkformer evaluate classification counts.tsv --labels obs.csv --column tissue -m bundle --folds 5 -o cls.json --plot cls.png
    """
    from bulkformer.tasks import classification as task
    from bulkformer.tasks.common import check_folds

    target = _column(read_table(labels, "labels"), column, "labels")
    # before the embedding pass: the task repeats the check on the samples the data share
    check_folds(folds, int(target.astype(str).value_counts().min()), "labelled samples in the smallest class")
    sets = _feature_sets(data, model, features, input, orientation, aggregate, batch_size, device)
    result = task.evaluate(sets, target, n_splits=folds, n_components=n_components, n_estimators=trees, seed=seed)
    _report(result, out, plot)


@evaluate_app.command("prognosis")
def prognosis(
    data: Path = DATA,
    survival: Path = typer.Option(..., "--survival", help="Table: sample ID (first column), time and event columns."),
    time_column: str = typer.Option("OS.time", "--time-column"),
    event_column: str = typer.Option("OS", "--event-column", help="1 = event, 0 = censored."),
    id_length: Optional[int] = typer.Option(None, "--id-length", help="Match samples on the first N characters (TCGA: 15)."),
    model: Path = MODEL, input: str = INPUT, orientation: str = ORIENTATION, features: str = FEATURES,
    aggregate: str = AGGREGATE, folds: int = FOLDS,
    n_components: int = typer.Option(10, "--pca", help="PCA components of the Cox model."),
    trees: int = typer.Option(500, "--trees", help="Random forest size."),
    seed: int = SEED, batch_size: int = BATCH, device: Optional[str] = DEVICE,
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
) -> None:
    """Prognosis: alive/dead random forest (AUROC, AUPRC) and Cox on PCA components (C-index).

    Examples:
      bulkformer evaluate prognosis counts.tsv --survival survival.tsv -m models/bulkformer-37M
      bulkformer evaluate prognosis tcga.tsv --survival tcga_survival.tsv.gz --id-length 15 -m bundle --plot km.png
    """
    from bulkformer.tasks import prognosis as task

    table = read_table(survival, "survival")
    sets = _feature_sets(data, model, features, input, orientation, aggregate, batch_size, device)
    if id_length:
        table = table[~table.index.duplicated()]
        sets = {k: v.set_axis(_match_prefix(v.index, id_length)) for k, v in sets.items()}
        sets = {k: v[~v.index.duplicated()] for k, v in sets.items()}
    result = task.evaluate(sets, table, time_col=time_column, event_col=event_column, n_splits=folds,
                           n_components=n_components, n_estimators=trees, seed=seed)
    _report(result, out, plot)


@evaluate_app.command("drug-response")
def drug_response(
    data: Path = DATA,
    responses: Path = typer.Option(..., "--responses", help="Long table: cell line, drug, response (IC50/AUC)."),
    drugs: Path = typer.Option(..., "--drugs", help="Drug descriptor table: drug ID (first column) x numeric descriptors."),
    cell_column: str = typer.Option("cell_line", "--cell-column"),
    drug_column: str = typer.Option("drug", "--drug-column"),
    value_column: str = typer.Option("response", "--value-column"),
    model: Path = MODEL, input: str = INPUT, orientation: str = ORIENTATION, features: str = FEATURES,
    aggregate: str = AGGREGATE, folds: int = FOLDS, hidden: str = HIDDEN, max_iter: int = MAX_ITER,
    seed: int = SEED, batch_size: int = BATCH,
    device: Optional[str] = DEVICE, out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
) -> None:
    """Drug response: cell-line features + drug descriptors -> MLP; mean Pearson r per drug.

    Cross-validation grouped by cell line; Pearson r per drug, averaged (mean PCC).

    Examples:
      bulkformer evaluate drug-response ccle_counts.tsv --responses ic50.csv --drugs fingerprints.csv -m models/bulkformer-37M
      bulkformer evaluate drug-response expr.tsv --input logtpm --responses auc.tsv --value-column AUC --drugs desc.tsv -m bundle -o drug.json
    """
    import pandas as pd

    from bulkformer.tasks import drug_response as task

    long = read_table(responses, "responses").reset_index()
    sets = _feature_sets(data, model, features, input, orientation, aggregate, batch_size, device)
    result = task.evaluate(sets, read_table(drugs, "drug descriptors").apply(pd.to_numeric, errors="raise"), long,
                           cell_col=cell_column, drug_col=drug_column, value_col=value_column, n_splits=folds,
                           hidden=_sizes(hidden), max_iter=max_iter, seed=seed)
    _report(result, out, plot)


@evaluate_app.command("essentiality")
def essentiality(
    data: Path = DATA,
    effects: Path = typer.Option(..., "--effects", help="Gene effect table: cell line (first column) x genes (Ensembl IDs)."),
    model: Path = MODEL, input: str = INPUT, orientation: str = ORIENTATION,
    features: str = FEATURES, folds: int = FOLDS, hidden: str = HIDDEN, max_iter: int = MAX_ITER,
    seed: int = SEED, batch_size: int = BATCH,
    device: Optional[str] = DEVICE, out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
) -> None:
    """Gene essentiality: gene-level embeddings per cell line -> MLP of gene effect.

    Cross-validation grouped by cell line; Pearson r per cell line, averaged.

    Examples:
      bulkformer evaluate essentiality ccle_counts.tsv --effects CRISPRGeneEffect.csv -m models/bulkformer-37M
      bulkformer evaluate essentiality expr.tsv --input logtpm --effects effects.tsv -m bundle --features raw_logtpm --folds 5
    """
    from bulkformer.tasks import essentiality as task
    from bulkformer.tasks import features as build

    table = read_table(effects, "gene effects")
    include = [f.strip() for f in features.split(",") if f.strip()]
    logtpm = build.raw_logtpm_features(data, model, input=input, orientation=orientation)
    genes = [g for g in table.columns.astype(str) if g in set(logtpm.columns)]
    if not genes:
        raise ValueError("no gene of the effects table is measured in every sample of the data; use Ensembl IDs as columns")
    sets = {}
    if "embedding" in include:
        sets["embedding"] = build.gene_embedding_features(data, model, genes, batch_size=batch_size, device=device,
                                                          input=input, orientation=orientation)
    if "raw_logtpm" in include:
        sets["raw_logtpm"] = build.gene_logtpm_features(logtpm, genes)
    result = task.evaluate(sets, table[genes], n_splits=folds, hidden=_sizes(hidden), max_iter=max_iter, seed=seed)
    _report(result, out, plot)


@evaluate_app.command("imputation")
def imputation(
    data: Path = DATA, model: Path = MODEL, input: str = INPUT, orientation: str = ORIENTATION,
    mask_fraction: float = typer.Option(0.15, "--mask-fraction", help="Share of each sample's observed genes to hide."),
    baselines: str = typer.Option("gene_mean,knn", "--baselines", help="Comma-separated: gene_mean, knn (empty: none)."),
    repeats: int = typer.Option(1, "--repeats", help="Independent random masks."),
    seed: int = SEED, batch_size: int = BATCH, device: Optional[str] = DEVICE,
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
) -> None:
    """Imputation: hide k% of observed genes per sample; BulkFormer vs gene-mean and KNN.

    Pearson, Spearman, MAE overall and by expression decile.

    Examples:
      bulkformer evaluate imputation counts.tsv -m models/bulkformer-37M
      bulkformer evaluate imputation logtpm.parquet --input logtpm -m bundle --mask-fraction 0.3 --baselines knn -o imp.json --plot imp.png
    """
    from bulkformer.tasks import imputation as task
    from bulkformer.tasks.features import logtpm_matrix

    observed = logtpm_matrix(data, model, input=input, orientation=orientation)
    chosen = [b.strip() for b in baselines.split(",") if b.strip()]
    result = task.evaluate(observed, model=model, baselines=chosen, mask_fraction=mask_fraction, n_repeats=repeats,
                           batch_size=batch_size, device=device, seed=seed)
    _report(result, out, plot)


@evaluate_app.command("gene-survival")
def gene_survival(
    data: Path = DATA,
    survival: Path = typer.Option(..., "--survival", help="Table: sample ID (first column), time and event columns."),
    genes: str = typer.Option(..., "--genes", help="Comma-separated vocabulary gene IDs, or a file with one per line."),
    time_column: str = typer.Option("OS.time", "--time-column"),
    event_column: str = typer.Option("OS", "--event-column", help="1 = event, 0 = censored."),
    id_length: Optional[int] = typer.Option(None, "--id-length", help="Match samples on the first N characters (TCGA: 15)."),
    model: Path = MODEL, input: str = INPUT, orientation: str = ORIENTATION,
    n_plot: int = typer.Option(4, "--n-plot", help="Kaplan-Meier panels (genes with the smallest log-rank p)."),
    out: Optional[Path] = OUT, plot: Optional[Path] = PLOT,
) -> None:
    """Per-gene hazard ratios of high vs low (median split) log1p TPM, with Kaplan-Meier curves.

    Examples:
      bulkformer evaluate gene-survival counts.tsv --survival survival.tsv --genes ENSG00000141510,ENSG00000146648 -m models/bulkformer-37M
      bulkformer evaluate gene-survival tcga.tsv --survival tcga_survival.tsv.gz --id-length 15 --genes genes.txt -m bundle --plot km.png
    """
    from bulkformer.tasks import prognosis as task
    from bulkformer.tasks.features import logtpm_matrix

    gene_list = Path(genes).read_text().split() if Path(genes).is_file() else [g.strip() for g in genes.split(",") if g.strip()]
    expression = logtpm_matrix(data, model, input=input, orientation=orientation)
    absent = [g for g in gene_list if g not in expression.columns]
    if absent:
        raise ValueError(f"{len(absent)} genes are not measured vocabulary genes of the data (e.g. {absent[:5]}); use Ensembl IDs")
    expression = expression[gene_list]
    if id_length:
        expression = expression.set_axis(_match_prefix(expression.index, id_length))
        expression = expression[~expression.index.duplicated()]
    table = read_table(survival, "survival")
    table = table[~table.index.duplicated()]
    result = task.gene_hazard_ratios(expression.dropna(), table, time_col=time_column, event_col=event_column, n_plot=n_plot)
    _report(result, out, plot)
