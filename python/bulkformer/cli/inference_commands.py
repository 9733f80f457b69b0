"""Commands that run a model over a cohort: impute, embed, build-graph."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from bulkformer.atomic import check_file_output, check_not_input
from bulkformer.preprocess.report import outside_vocabulary_note

from .data_options import (BATCH, DEVICE, GENE_COLUMN, INPUT, INPUT_HELP, LAYER, LENGTHS, MIN_MATCHED, ORIENTATION,
                           PRECISION, data_spec, runtime)
from .outputs import TABLE_SUFFIXES, output_format, write_table
from .inputs import check_expression_file, check_model_dir, gene_list, load_model, output_path



def register(app: typer.Typer) -> None:
    app.command("impute")(impute)
    app.command("embed")(embed)
    app.command("build-graph")(build_graph)


def _report(frame_or_dict) -> None:
    report = getattr(frame_or_dict, "attrs", {}).get("mapping_report") if hasattr(frame_or_dict, "attrs") else frame_or_dict
    if report and _is_main_process():
        typer.echo(f"mapped {report.get('n_matched')} of {report.get('n_input_genes')} input genes; "
                   f"{report.get('n_missing')} of {report.get('n_vocabulary')} vocabulary genes missing "
                   f"(mask_prob {report.get('mask_prob', 0):.3f})", err=True)
        note = outside_vocabulary_note(report)
        if note:
            typer.echo(note, err=True)


def impute(
    data: Path = typer.Argument(..., metavar="DATA", help="Expression table: CSV/TSV(.gz), parquet or h5ad."),
    model: Path = typer.Option(..., "--model", "-m", help="Model bundle directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Output table: .csv or .tsv (optionally .gz), .parquet or .h5ad.", callback=output_path),
    which: str = typer.Option("missing", help="missing: genes the data lacks; all: denoised values for every gene."),
    input: str = INPUT, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN, lengths: Optional[Path] = LENGTHS,
    min_matched_fraction: float = MIN_MATCHED,
    batch_size: int = BATCH, device: Optional[str] = DEVICE, precision: Optional[str] = PRECISION,
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Impute log1p TPM for the vocabulary genes a cohort lacks (or denoise all genes).

    The data are aligned to the model's vocabulary first (the mapping report is printed).
    Rows: samples; columns: the genes the data lack (--which missing) or every vocabulary
    gene (--which all), in natural log1p TPM. Under torchrun the samples are shared out.

    Examples:
      bulkformer impute counts.csv -m models/bulkformer-147M -o imputed.parquet
      bulkformer impute tpm.tsv -m models/bulkformer-147M --input tpm --which all -o denoised.h5ad
      torchrun --nproc_per_node 4 "$(command -v bulkformer)" impute counts.parquet -m model -o imputed.parquet
    """
    from bulkformer.inference import run_imputation

    check_expression_file(data, layer, gene_column)
    output_format(out, TABLE_SUFFIXES)
    check_not_input(out, {"DATA": data, "--lengths": lengths, "--model": model})
    check_model_dir(model)
    spec = data_spec(data, input=input, orientation=orientation, layer=layer, gene_column=gene_column,
                     lengths=lengths, min_matched_fraction=min_matched_fraction)
    result = run_imputation(spec, str(model), which=which,
                            runtime=runtime(batch_size=batch_size, device=device, precision=precision, progress=progress))
    frame = result.to_frame(which)
    _report(frame)
    if _is_main_process():
        write_table(frame, out, data, orientation, var=result.gene_annotation(frame), which=which)
        typer.echo(f"wrote {out}: {frame.shape[0]} samples x {frame.shape[1]} genes")
        if which == "missing" and frame.shape[1] == 0:
            typer.echo("the data measure every vocabulary gene, so none is missing: --which all gives denoised "
                       "values for all of them", err=True)


def embed(
    data: Path = typer.Argument(..., metavar="DATA", help="Expression table: CSV/TSV(.gz), parquet or h5ad."),
    model: Path = typer.Option(..., "--model", "-m", help="Model bundle directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Sample level: .csv/.tsv(.gz), .parquet or .h5ad; gene level: a .zarr store.", callback=output_path),
    level: str = typer.Option("sample", help="sample (one vector per sample) or gene (one per sample and gene)."),
    aggregate: Optional[str] = typer.Option(None, help="Sample level: max, mean, median, all (their sum) or observed_mean (over each sample's measured genes); default: the model's (max for v1/v2, observed_mean for bulkformer-latest)."),
    genes: Optional[str] = typer.Option(None, help="Gene subset: comma-separated Ensembl IDs or symbols, or a file with one per line (path or @path)."),
    dtype: str = typer.Option("float32", help="Gene level: float32 or float16."),
    fuse_gene_features: bool = typer.Option(False, help="Gene level: append the bundle's per-gene table (ESM2)."),
    input: str = INPUT, orientation: str = ORIENTATION, layer: Optional[str] = LAYER,
    gene_column: Optional[str] = GENE_COLUMN, lengths: Optional[Path] = LENGTHS,
    min_matched_fraction: float = MIN_MATCHED,
    batch_size: int = BATCH, device: Optional[str] = DEVICE, precision: Optional[str] = PRECISION,
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Sample embeddings (samples x d+3) or gene-level embeddings streamed to a zarr store.

    Sample level: one row per sample, the gene states pooled over genes (--aggregate) plus
    three per-sample statistics (v2 models; v1 models give d features). Gene level:
    samples x genes x (d+3) in a zarr store written batch by batch, so memory does not
    grow with the cohort; --genes keeps it small.

    Examples:
      bulkformer embed counts.csv -m models/bulkformer-147M -o sample_emb.parquet --aggregate mean
      bulkformer embed counts.csv -m models/bulkformer-147M --level gene --genes @genes.txt --dtype float16 -o genes.zarr
      python -c "import bulkformer.inference as i; print(i.read_gene_embeddings('genes.zarr').shape)"
    """
    from bulkformer.inference import embed as run

    check_expression_file(data, layer, gene_column)
    if level == "gene":
        if out.suffix != ".zarr":
            raise ValueError(f"gene-level embeddings go to a zarr store: name the output *.zarr, got {out}")
    else:
        output_format(out, TABLE_SUFFIXES)
    check_not_input(out, {"DATA": data, "--lengths": lengths, "--model": model})
    check_model_dir(model)
    spec = data_spec(data, input=input, orientation=orientation, layer=layer, gene_column=gene_column,
                     lengths=lengths, min_matched_fraction=min_matched_fraction)
    result = run(spec, str(model), level=level, aggregate=aggregate, genes=gene_list(genes),
                 out=out if level == "gene" else None, dtype=dtype, fuse_gene_features=fuse_gene_features,
                 runtime=runtime(batch_size=batch_size, device=device, precision=precision, progress=progress))
    if level == "gene":
        if _is_main_process():
            from bulkformer.inference.stores import open_store

            _report(dict(open_store(result).attrs).get("mapping_report"))  # kept with the store
            typer.echo(f"wrote {result}")
        return
    _report(result)
    if _is_main_process():
        write_table(result, out, data, orientation)
        typer.echo(f"wrote {out}: {result.shape[0]} samples x {result.shape[1]} features")


def build_graph(
    data: Path = typer.Argument(..., metavar="DATA", help="Cohort expression table: CSV/TSV(.gz), parquet or h5ad (samples x genes)."),
    out: Path = typer.Option(..., "--out", "-o", help="graph.safetensors to write (bundle format).", callback=output_path),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Align to this bundle's vocabulary first."),
    input: str = typer.Option("logtpm", "--input", help=INPUT_HELP + " Other than logtpm, only with --model."),
    orientation: str = ORIENTATION, layer: Optional[str] = LAYER, gene_column: Optional[str] = GENE_COLUMN,
    top_k: int = typer.Option(20, help="Partners kept per gene."),
    min_abs_r: float = typer.Option(0.4, help="Drop edges with |Pearson r| below this."),
) -> None:
    """Build a gene co-expression graph: |Pearson r|, top 20 partners per gene, |r| >= 0.4.

    Correlations are computed in blocks of genes, so 20,000 genes x 100,000 samples fit in
    24 GiB; the graph is written in the bundle format (graph.safetensors).

    Examples:
      bulkformer build-graph gtex_logtpm.parquet -o graph.safetensors
      bulkformer build-graph counts.csv --model models/bulkformer-147M --input counts -o graph.safetensors
    """
    from bulkformer.graph import build_graph as run

    check_expression_file(data, layer, gene_column)
    if out.suffix != ".safetensors":
        raise ValueError(f"the graph is written as safetensors: name the output *.safetensors, got {out}")
    check_file_output(out)
    check_not_input(out, {"DATA": data, "--model": model})
    graph = run(str(data), vocabulary=None if model is None else load_model(model), input=input,
                orientation=orientation, top_k=top_k, min_abs_r=min_abs_r, out=out, layer=layer, genes=gene_column)
    typer.echo(f"wrote {out}: {len(graph.gene_ids)} genes, {graph.n_edges} edges")


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
