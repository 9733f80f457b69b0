"""Commands about models: info, import-checkpoint, verify, download."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..json_safe import json_safe
from .inputs import output_path


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("import-checkpoint")(import_checkpoint)
    app.command("verify")(verify)
    app.command("download")(download)


def info(
    model: Optional[Path] = typer.Argument(None, metavar="MODEL", help="A model bundle directory; omit for the package and environment."),
) -> None:
    """Show the installed bulkformer and its environment, or describe a model bundle.

    Without a model: the package and torch versions, whether CUDA is available, and the
    model presets. With a bundle directory: its configuration, parameter count, genes,
    graph edges and metadata, as JSON.

    Examples:
      bulkformer info
      bulkformer info models/bulkformer-37M
    """
    import torch

    import bulkformer

    if model is None:
        from bulkformer.model import PARAMETER_COUNTS

        typer.echo(f"bulkformer {bulkformer.__version__}")
        typer.echo(f"torch {torch.__version__}; cuda available: {torch.cuda.is_available()}")
        typer.echo("presets: " + ", ".join(f"{k} ({v:,} parameters)" for k, v in PARAMETER_COUNTS.items()))
        return
    from bulkformer.bundle import verify as verify_files

    from .inputs import load_model

    checked = verify_files(model)  # before loading: a damaged file is named, not half-read
    bundle = load_model(model, note=False)  # the JSON says "trained" itself
    summary = {
        "path": str(model),
        "checksums": f"verified: {checked}",
        "layout": bundle.layout.description,
        "config": bundle.config.to_dict(),
        "parameters": bundle.model.count_parameters(),
        "genes": len(bundle.genes),
        "graph_edges": int(bundle.edge_index.shape[1]),
        "gene_features": None if bundle.gene_features is None else list(bundle.gene_features.shape),
        "metadata": bundle.metadata,
    }
    typer.echo(json.dumps(json_safe(summary), indent=2))


def import_checkpoint(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="Official checkpoint (.pt state dict), or a release folder (bulkformer-latest's six files)."),
    gene_info: Optional[Path] = typer.Option(None, "--gene-info", help="The release's gene-info CSV (column ensg_id); v1/v2 checkpoints."),
    graph: Optional[Path] = typer.Option(None, "--graph", help="Graph edge index G_*.pt (2 x n_edges); v1/v2 checkpoints."),
    graph_weight: Optional[Path] = typer.Option(None, "--graph-weight", help="Graph edge weights G_*_weight.pt."),
    gene_features: Optional[Path] = typer.Option(None, "--gene-features", help="Optional ESM2 table esm2_feature_concat.pt."),
    gene_lengths: Optional[Path] = typer.Option(None, "--gene-lengths", help="v1/v2: the authors' gene-length table data/gene_length_df.csv, so that counts are normalised as the release does."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write.", callback=output_path),
    download_manifest: Optional[Path] = typer.Option(None, "--download-manifest", help="A release folder: also check all six files against the authors' download manifest (format 2)."),
) -> None:
    """Convert an official BulkFormer release into a model bundle (layout and preset detected).

    A release folder's files are checked against its manifest (size and SHA256) before
    anything is read; a file that differs is named and nothing is written.

    Examples:
      bulkformer import-checkpoint bulkformer-latest/ -o models/bulkformer-latest
      bulkformer import-checkpoint BulkFormer_147M.pt --gene-info bulkformer_gene_info.csv \\
          --graph G_gtex.pt --graph-weight G_gtex_weight.pt -o models/bulkformer-147M
    """
    from bulkformer.bundle import Bundle, release_layout
    from bulkformer.convert import import_checkpoint as convert

    layout = release_layout(checkpoint)
    if layout is not None:  # a release folder: verified against its manifest, then saved
        release = layout.read_release(checkpoint, download_manifest)
        bundle = Bundle(model=release.model, genes=release.genes, metadata=release.metadata)
        bundle.save(out)
        typer.echo(f"wrote {out}: {bundle.layout.description}, {bundle.config.n_genes:,} genes, "
                   f"{bundle.model.count_parameters():,} parameters")
        return
    if download_manifest is not None:
        raise typer.BadParameter("--download-manifest checks a release folder; CHECKPOINT is not one",
                                 param_hint="--download-manifest")
    if gene_info is None or graph is None:
        raise typer.BadParameter("a .pt checkpoint needs --gene-info and --graph (the release's gene table and "
                                 "graph); a release folder (bulkformer-latest) needs neither", param_hint="CHECKPOINT")
    bundle = convert(checkpoint, gene_info, graph, graph_weight, gene_features, out=out, gene_lengths=gene_lengths)
    preset = bundle.metadata.get("preset") or "custom"
    typer.echo(f"wrote {out}: BulkFormer {bundle.config.version} ({preset}), {bundle.config.n_genes} genes")


def verify(
    model: Path = typer.Argument(..., metavar="MODEL", help="A model bundle directory or a release folder."),
) -> None:
    """Re-check a model's files: a bundle against its checksums.json, a release folder
    (bulkformer-latest) against its manifest. Exits 2 naming the first file that differs.

    Example:
      bulkformer verify models/bulkformer-latest
    """
    from bulkformer.bundle import verify as verify_files

    typer.echo(f"ok: {verify_files(model)}")


def download(
    name: str = typer.Argument("latest", metavar="RELEASE", help="The release: latest (bulkformer-latest)."),
    out: Path = typer.Option(Path("bulkformer-latest"), "--out", "-o", help="Folder for the release's files."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Another download manifest (format 2) to check against."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="A mirror serving the release's files by name."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """Download an official release, verified (size and SHA256 of every file), resuming
    partial files; the folder is then a model (-m OUT) wherever one is accepted.

    Without a network it stops at once and says where to put files downloaded by hand.

    Example:
      bulkformer download latest -o models/bulkformer-latest
      bulkformer embed counts.csv -m models/bulkformer-latest -o emb.parquet
    """
    from bulkformer.download import download_release

    folder = download_release(name, out, manifest=manifest, base_url=base_url, progress=progress)
    typer.echo(f"ready: {folder} (verified; use it as -m {folder})")
