"""Commands for the downstream tasks: ``bulkformer evaluate <task>``.

Each command builds the two feature sets (BulkFormer embeddings and plain log1p TPM)
from an expression file and a model bundle, runs the task through the same head for
both, prints the metrics and writes JSON / a figure on request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .inputs import (GENE_COLUMN_HELP, LAYER_HELP, ORIENTATION_HELP, check_model_dir, column, gene_list, load_model,
                     output_path, read_lengths, read_table)

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
INPUT = typer.Option("counts", "--input", help="counts | tpm | logtpm (natural log1p TPM).")
LENGTHS = typer.Option(None, "--lengths", help="Gene lengths (bp) for counts: CSV/TSV with gene ID and length columns "
                       "(default: the shipped lengths).")
ORIENTATION = typer.Option("samples_by_genes", "--orientation", help=ORIENTATION_HELP)
LAYER = typer.Option(None, "--layer", help=LAYER_HELP)
GENE_COLUMN = typer.Option(None, "--gene-column", help=GENE_COLUMN_HELP)
OUT = typer.Option(None, "--out", "-o", help="Write the full result (metrics, folds, predictions) as JSON.", callback=output_path)
PLOT = typer.Option(None, "--plot", help="Write the task's figure (.png/.pdf/.svg).", callback=output_path)
FEATURES = typer.Option("embedding,raw_logtpm", "--features", help="Comma-separated feature sets: embedding, raw_logtpm.")
FOLDS = typer.Option(10, "--folds", help="Cross-validation folds.")
SEED = typer.Option(0, "--seed", help="Random seed (splits, models).")
BATCH = typer.Option(16, "--batch-size", help="Samples per forward pass.")
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


def _check_outputs(plot: Optional[Path]) -> None:
    from bulkformer.tasks.result import check_plot_path

    if plot is not None:
        check_plot_path(plot)


def _samples(data: Path, data_args: dict, id_length: Optional[int] = None):
    """The data's sample IDs (read without the values, checking --layer and --gene-column),
    cut to ``id_length`` characters; samples whose cut ID repeats an earlier one are left
    out with a warning."""
    ids = _data_sample_ids(data, data_args)
    if not _checked_id_length(id_length):
        return ids
    cut, first = _first_of_each_cut(ids, id_length)
    return cut[first]


def _data_sample_ids(data: Path, data_args: dict):
    import pandas as pd

    from bulkformer.tasks.features import sample_ids

    return pd.Index(sample_ids(data, orientation=data_args["orientation"], layer=data_args["layer"],
                               gene_names=data_args["gene_names"]))


def _checked_id_length(id_length: Optional[int]) -> Optional[int]:
    if id_length is not None and id_length < 1:
        raise ValueError(f"--id-length must be at least 1 (the characters of a sample ID to match on), got {id_length}")
    return id_length


def _first_of_each_cut(ids, id_length: int):
    """(IDs cut to ``id_length``, mask of the first sample of each cut ID); the others are
    named in a warning as left out."""
    import warnings

    cut = _match_prefix(ids, id_length)
    repeated = cut.duplicated()
    if repeated.any():
        warnings.warn(f"{int(repeated.sum())} samples share their first {id_length} characters with an earlier "
                      f"sample and are left out (e.g. {list(ids[repeated][:2])})", stacklevel=3)
    return cut, ~repeated


def _cut_ids(frame, id_length: Optional[int], *, first: bool = True):
    """Rows renamed to their first ``id_length`` characters; ``first``: keep the first row
    of each cut ID, as _samples does for the data (a survival table keeps them all, so
    that a repeated ID is an error, not a silent choice)."""
    if not id_length:
        return frame
    frame = frame.set_axis(_match_prefix(frame.index, id_length))
    return frame[~frame.index.duplicated()] if first else frame


def _data_args(input: str, orientation: str, lengths: Optional[Path], layer: Optional[str] = None,
               gene_column: Optional[str] = None) -> dict:
    """How to read the expression file, as the feature builders of bulkformer.tasks take it."""
    return {"input": input, "orientation": orientation, "lengths": read_lengths(lengths), "layer": layer,
            "gene_names": gene_column}


def _feature_sets(data: Path, model, include: list[str], data_args: dict, aggregate: str,
                  batch_size: int, device: Optional[str], samples=None, id_length: Optional[int] = None,
                  progress: bool = True):
    """Both feature sets, rows cut to ``id_length`` and restricted to ``samples`` (the
    samples the checked labels kept, so that the task warns about nothing twice)."""
    from bulkformer.tasks.common import on_samples
    from bulkformer.tasks.features import feature_sets

    sets = feature_sets(data, model, include=include, aggregate=aggregate, batch_size=batch_size, device=device,
                        progress=progress, **data_args)
    sets = {name: _cut_ids(frame, id_length) for name, frame in sets.items()}
    return sets if samples is None else {name: on_samples(frame, samples) for name, frame in sets.items()}


def _report(result, out: Optional[Path], plot: Optional[Path]) -> None:
    import sys

    import pandas as pd

    import bulkformer

    # what produced the file: a result JSON read months later must say which data and model
    result.params = {**result.params, "provenance": {
        "command": " ".join(["bulkformer", *sys.argv[1:]]), "bulkformer_version": bulkformer.__version__,
        "working_directory": str(Path.cwd())}}
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        typer.echo(result.metrics.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if out is not None:
        typer.echo(f"wrote {result.to_json(out)}")
    if plot is not None:
        typer.echo(f"wrote {result.plot(plot)}")


def _match_prefix(index, length: Optional[int]):
    return index if not length else index.astype(str).str[:length]


def labels_by_data_ids(labels, data: Path, data_args: dict, id_length: Optional[int]):
    """``labels`` (indexed by IDs cut to ``id_length``) re-indexed by the data's full sample
    IDs, for code that reads the data itself (finetune): each kept sample gets the label of
    its cut ID; samples whose cut ID repeats an earlier one are left out, as in _samples."""
    import pandas as pd

    if not _checked_id_length(id_length):
        return labels
    full = _data_sample_ids(data, data_args)
    cut, first = _first_of_each_cut(full, id_length)
    labels = _cut_ids(labels.to_frame(), id_length).iloc[:, 0]
    keep = first & cut.isin(labels.index)
    return pd.Series(labels.reindex(cut[keep]).to_numpy(), index=full[keep], name=labels.name)


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
    from bulkformer.labels import match_samples

    # everything that can fail on the inputs is checked before the embedding pass
    _check_outputs(plot)
    data_args = _data_args(input, orientation, lengths, layer, gene_column)
    task.check_settings(n_splits=folds, n_components=n_components, n_estimators=trees)
    include = _include(features)
    check_model_dir(model)
    target = _cut_ids(column(read_table(labels, "labels"), column_name, "labels").to_frame(), id_length, first=False).iloc[:, 0]
    target = match_samples(target, _samples(data, data_args, id_length), what="labels")
    task.check_labels(target, folds)
    sets = _feature_sets(data, model, include, data_args, aggregate, batch_size, device, samples=target.index,
                         id_length=id_length, progress=progress)
    result = task.evaluate(sets, target, n_splits=folds, n_components=n_components, n_estimators=trees, seed=seed)
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

    _check_outputs(plot)
    data_args = _data_args(input, orientation, lengths, layer, gene_column)
    task.check_settings(n_splits=folds, n_components=n_components, n_estimators=trees)
    include = _include(features)
    check_model_dir(model)
    table = _cut_ids(read_table(survival, "survival"), id_length, first=False)
    checked = task.survival_for(table, _samples(data, data_args, id_length), time_col=time_column, event_col=event_column)
    task.check_events(checked["event"].to_numpy(), folds)
    if horizon is not None:
        task.status_at(horizon, checked["time"].to_numpy(dtype=float), checked["event"].to_numpy())
    sets = _feature_sets(data, model, include, data_args, aggregate, batch_size, device,
                         samples=checked.index, id_length=id_length, progress=progress)
    result = task.evaluate(sets, table.loc[checked.index], time_col=time_column, event_col=event_column, n_splits=folds,
                           n_components=n_components, n_estimators=trees, horizon=horizon, seed=seed)
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
    from bulkformer.tasks.common import check_folds

    _check_outputs(plot)
    data_args = _data_args(input, orientation, lengths, layer, gene_column)
    sizes = _sizes(hidden)
    task.check_settings(n_splits=folds, hidden=sizes, max_iter=max_iter)
    include = _include(features)
    check_model_dir(model)
    table = task.check_responses(read_table(responses, "responses").reset_index(), cell_column, drug_column, value_column)
    drug_table = task.check_drugs(read_table(drugs, "drug descriptors"))
    table = task.match_responses(table, _samples(data, data_args), drug_table.index)
    check_folds(folds, table["cell_line"].nunique(), "cell lines with responses")
    sets = _feature_sets(data, model, include, data_args, aggregate, batch_size, device,
                         samples=table["cell_line"].unique(), progress=progress)
    result = task.evaluate(sets, drug_table, table, cell_col="cell_line", drug_col="drug", value_col="value",
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
    import warnings

    from bulkformer.tasks import essentiality as task
    from bulkformer.tasks import features as build
    from bulkformer.tasks.common import check_folds
    from bulkformer.labels import match_samples

    _check_outputs(plot)
    data_args = _data_args(input, orientation, lengths, layer, gene_column)
    sizes = _sizes(hidden)
    task.check_settings(n_splits=folds, hidden=sizes, max_iter=max_iter)
    include = _include(features)
    bundle = load_model(model)
    table = task.effects_by_vocabulary(read_table(effects, "gene effects"), bundle)
    table = match_samples(table, _samples(data, data_args), what="gene effects", complete=False, id_length_option=False)
    effect = task.long_effects(table)  # values checked before the embedding pass
    logtpm = build.raw_logtpm_features(data, bundle, **data_args)
    measured = set(logtpm.columns)
    genes = [g for g in table.columns if g in measured]
    if not genes:
        raise ValueError("no gene of the effects table is measured in every sample of the data")
    if len(genes) < table.shape[1]:
        warnings.warn(f"{table.shape[1] - len(genes)} of {table.shape[1]} effect genes are not measured in every sample "
                      f"of the data and are left out (e.g. {[g for g in table.columns if g not in measured][:3]})")
    effect = effect[effect.index.get_level_values("gene").isin(genes)]
    check_folds(folds, effect.index.get_level_values("cell_line").nunique(), "cell lines with effects")
    sets = {}
    if "embedding" in include:
        sets["embedding"] = build.gene_embedding_features(data, bundle, genes, batch_size=batch_size, device=device,
                                                          **data_args)
    if "raw_logtpm" in include:
        sets["raw_logtpm"] = build.gene_logtpm_features(logtpm, genes)
    result = task.evaluate(sets, effect, n_splits=folds, hidden=sizes, max_iter=max_iter, seed=seed)
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
    from bulkformer.tasks.features import logtpm_matrix

    _check_outputs(plot)
    data_args = _data_args(input, orientation, lengths, layer, gene_column)
    chosen = [b.strip() for b in baselines.split(",") if b.strip()]
    task.check_settings(mask_fraction=mask_fraction, n_repeats=repeats, baselines=chosen)
    bundle = load_model(model)
    observed = logtpm_matrix(data, bundle, **data_args)
    result = task.evaluate(observed, model=bundle, baselines=chosen, mask_fraction=mask_fraction, n_repeats=repeats,
                           batch_size=batch_size, device=device, seed=seed)
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
    from bulkformer.preprocess import vocabulary_positions
    from bulkformer.tasks import prognosis as task
    from bulkformer.arguments import check_at_least
    from bulkformer.tasks.features import logtpm_matrix

    _check_outputs(plot)
    data_args = _data_args(input, orientation, lengths, layer, gene_column)
    check_at_least(n_plot, 1, "n_plot")
    bundle = load_model(model)
    wanted_genes = gene_list(genes)
    wanted = [bundle.gene_ids[p] for p in vocabulary_positions(wanted_genes, bundle, what="--genes")]
    table = _cut_ids(read_table(survival, "survival"), id_length, first=False)
    checked = task.survival_for(table, _samples(data, data_args, id_length), time_col=time_column, event_col=event_column)
    expression = logtpm_matrix(data, bundle, **data_args)
    unmeasured = [name for name, gene in zip(wanted_genes, wanted) if gene not in expression.columns]
    if unmeasured:
        raise ValueError(f"{len(unmeasured)} of the --genes are vocabulary genes that no sample of the data measures "
                         f"(e.g. {unmeasured[:5]}); pick measured genes")
    expression = _cut_ids(expression[wanted], id_length).loc[checked.index]
    result = task.gene_hazard_ratios(expression, table.loc[checked.index], time_col=time_column, event_col=event_column,
                                     n_plot=n_plot)
    # rows are vocabulary (Ensembl) genes; say how each was asked for (a symbol, say)
    result.metrics.insert(result.metrics.columns.get_loc("gene") + 1, "requested_as",
                          result.metrics["gene"].map(dict(zip(wanted, wanted_genes))))
    _report(result, out, plot)
