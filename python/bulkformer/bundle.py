"""Model bundles: one directory with everything needed to run a model.

    config.json            bundle format version, model config, metadata
    checksums.json         every other file's size and SHA256, checked on loading
    model.safetensors      weights (state-dict keys as published)
    genes.tsv              vocabulary in model order: ensembl_id, symbol, length
    graph.safetensors      edge_index (2 x E, receiver-first as released), edge_weight
    gene_features.safetensors   optional per-gene table (ESM2) for fused gene embeddings
    lengths.tsv            optional: the release's gene-length table (v1/v2), used for counts
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from . import bundle_checks
from .atomic import atomic_directory
from .checksums import CHECKSUMS, IntegrityError, verify_directory, write_checksums
from .model import LAYOUTS, BulkFormer
from .json_safe import json_safe

BUNDLE_FORMAT_VERSION = 1
LENGTH_TABLE = "lengths.tsv"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@dataclass
class Bundle:
    """A model with its vocabulary, graph and optional per-gene feature table."""

    model: BulkFormer
    genes: pd.DataFrame
    gene_features: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # the release's own gene-length table (gene ID -> bp, every gene it lists, not only the
    # vocabulary's): counts are then normalised as the release's pipeline does
    length_table: pd.Series | None = None

    def __post_init__(self) -> None:
        self.genes = normalise_gene_table(self.genes)
        n_genes = self.config.n_genes
        if len(self.genes) != n_genes:
            raise ValueError(f"the vocabulary has {len(self.genes)} genes but the model expects {n_genes}")
        if self.gene_features is not None and self.gene_features.shape[0] != n_genes:
            raise ValueError(f"gene_features has {self.gene_features.shape[0]} rows, expected {n_genes} (one per vocabulary gene)")

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def layout(self) -> Any:
        """The model's published layout (``bulkformer.model.Layout``)."""
        return self.model.layout

    @property
    def input_conventions(self) -> Any:
        """How the layout's release prepares input (read by ``prepare``)."""
        return self.model.layout.conventions

    @property
    def gene_ids(self) -> list[str]:
        return self.genes["ensembl_id"].tolist()

    @property
    def edge_index(self) -> torch.Tensor:
        return self.model.graph_edge_index

    @property
    def edge_weight(self) -> torch.Tensor | None:
        return self.model.graph_edge_weight

    def __repr__(self) -> str:
        # the dataclass default would print every weight and the whole gene table
        config = self.config
        name = self.metadata.get("name")
        parts = [f"{config.version}", f"{config.n_genes:,} genes", f"dim {config.dim}",
                 _count(config.n_layers, "Performer layer"), f"feature dim {config.feature_dim}",
                 f"{self.edge_index.shape[1]:,} graph edges"]
        if self.gene_features is not None:
            parts.append(f"gene features {self.gene_features.shape[1]}")
        if self.metadata.get("trained") is False:
            parts.append("random weights (demo)")
        if name:
            parts.append(f"name {name!r}")
        return f"<bulkformer model: {', '.join(parts)}>"

    def describe(self) -> dict[str, Any]:
        """Which model produced a result, for its provenance record: the bundle's name,
        layout, size, and ``trained`` (False for random-weight demo models, None when
        the bundle does not say)."""
        config = self.config
        return {"name": self.metadata.get("name"), "version": config.version, "n_genes": config.n_genes,
                "dim": config.dim, "trained": self.metadata.get("trained")}

    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically: a temporary sibling directory renamed at the end."""
        path = Path(path)
        with atomic_directory(path, marker="config.json", what="a model bundle") as staging:
            config = {
                "format": "bulkformer-bundle",
                "format_version": BUNDLE_FORMAT_VERSION,
                "model": self.config.to_dict(),
                "metadata": self.metadata,
            }
            # NaN metadata (a run without validation) as null: strict JSON readers (R, JS) reject NaN
            (staging / "config.json").write_text(json.dumps(json_safe(config), indent=2, allow_nan=False) + "\n")
            # save_model drops the aliased proj_updater.instance.* copies; load_model restores them
            save_model(self.model, str(staging / "model.safetensors"))
            self.genes.to_csv(staging / "genes.tsv", sep="\t", index=False)
            graph = {"edge_index": self.edge_index.cpu().contiguous()}
            if self.edge_weight is not None:
                graph["edge_weight"] = self.edge_weight.cpu().contiguous()
            save_file(graph, str(staging / "graph.safetensors"))
            if self.gene_features is not None:
                save_file({"gene_features": self.gene_features.cpu().contiguous()}, str(staging / "gene_features.safetensors"))
            if self.length_table is not None:
                self.length_table.rename_axis("ensembl_id").rename("length").to_csv(staging / LENGTH_TABLE, sep="\t")
            # last, over everything above: load() and `bulkformer verify` check the files against it
            write_checksums(staging, [p.name for p in staging.iterdir() if p.is_file()])
        return path


# What marks a fine-tuning output directory (training.finetune writes it); named here
# so that loading one as a bundle can say what it is.
FINETUNED_MARKER = "finetune.json"


def is_finetuned(path: str | Path) -> bool:
    """Whether ``path`` is a fine-tuning output directory (training.finetune's)."""
    return (Path(path) / FINETUNED_MARKER).is_file()


def check_bundle_dir(path: str | Path) -> Path:
    """``path`` as a bundle directory with all its files, without reading them: callers
    check it before expensive work; errors say what the path is instead (a .pt
    checkpoint, a fine-tuning output, a pretraining run) and what to do."""
    path = Path(path)
    if release_layout(path) is not None:  # read directly by load()
        return path
    if not path.is_dir():
        hint = " (an official .pt checkpoint? convert it into a bundle first: bulkformer.convert.import_checkpoint, the import-checkpoint command)" if path.suffix in (".pt", ".pth") else ""
        raise FileNotFoundError(f"no model bundle at {path}: expected a directory{hint}")
    if is_finetuned(path) and not (path / "config.json").is_file():
        raise ValueError(f"{path} is a fine-tuned model (it has {FINETUNED_MARKER}), not a model bundle: load it with "
                         f"bulkformer.training.load_finetuned('{path}') and call .predict(data) (on the command line: "
                         f"bulkformer predict DATA -m {path}), or use its encoder as the model: {path / 'encoder'}")
    if not (path / "config.json").exists() and (path / "model" / "config.json").is_file():
        # `pretrain -o runs/x` and `demo -o out` write the trained bundle to their model/
        raise FileNotFoundError(f"{path} is an output directory (a pretraining run or the demo), not a model bundle: "
                                f"the model in it is {path / 'model'}")
    if not (path / "config.json").exists() and (any(path.glob("*.pt")) or any(path.glob("*.pth"))):
        raise FileNotFoundError(f"{path} is not a model bundle but holds .pt files (an official release?): convert it "
                                "once with bulkformer.convert.import_checkpoint (the import-checkpoint command): the checkpoint, "
                                "the gene table, G_*.pt and G_*_weight.pt -> a bundle directory, and load that")
    for required in ("config.json", "model.safetensors", "genes.tsv", "graph.safetensors"):
        if not (path / required).is_file():
            raise FileNotFoundError(f"incomplete model bundle {path}: {required} is missing")
    return path


def release_layout(path: str | Path) -> Any:
    """The layout whose release folder ``path`` is (verified and read directly), or None."""
    return next((layout for layout in LAYOUTS.values() if layout.is_release(Path(path))), None)


def verify(path: str | Path) -> str:
    """Re-check a bundle's files against its ``checksums.json``, or a release folder's
    against its manifest, without loading anything; says what was checked, raises
    :class:`bulkformer.checksums.IntegrityError` naming the first file that differs."""
    path = Path(path)
    layout = release_layout(path)
    if layout is not None:
        return f"{layout.verify_release(path)} files of the {layout.name} release {path} match its manifest"
    path = check_bundle_dir(path)
    checked = verify_directory(path)
    if not checked:
        raise IntegrityError(f"{path} has no {CHECKSUMS} (a bundle written by an older bulkformer)",
                             argument=CHECKSUMS, value=str(path), joiner=": ",
                             fix="load it and save it again to record its checksums")
    return f"{checked} files of the bundle {path} match {CHECKSUMS}"


def load(path: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle directory written by :meth:`Bundle.save`, or an official release
    folder that is read directly (bulkformer-latest's six files, checked against their
    manifest first). The model is in eval mode, on ``device`` (default CPU;
    ``impute`` / ``embed`` move it to their own device)."""
    layout = release_layout(path)
    if layout is not None:
        release = layout.read_release(Path(path))
        return Bundle(model=release.model.to(device), genes=release.genes, metadata=release.metadata)
    path = check_bundle_dir(path)
    verify_directory(path)  # before anything is read: a damaged or edited file is named
    config_doc = bundle_checks.read_config(path)
    if config_doc.get("format") != "bulkformer-bundle":
        raise ValueError(f"{path / 'config.json'} is not a bulkformer bundle config")
    version = config_doc.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise ValueError(f"bundle format {version} is not supported by this bulkformer (reads format {BUNDLE_FORMAT_VERSION}); upgrade bulkformer")
    config = bundle_checks.model_config(path, config_doc)
    weights = bundle_checks.check_config_sizes(path, config)  # before anything is allocated
    graph = load_file(str(path / "graph.safetensors"))
    bundle_checks.check_graph(path, graph["edge_index"], config.n_genes)
    model = BulkFormer(config, graph["edge_index"], graph.get("edge_weight"))
    bundle_checks.check_weight_shapes(path, model, weights, config)
    load_model(model, str(path / "model.safetensors"), strict=True)
    genes = pd.read_csv(path / "genes.tsv", sep="\t", dtype={"ensembl_id": str, "symbol": str})
    features_path = path / "gene_features.safetensors"
    gene_features = load_file(str(features_path))["gene_features"] if features_path.is_file() else None
    length_table = None
    if (path / LENGTH_TABLE).is_file():
        table = pd.read_csv(path / LENGTH_TABLE, sep="\t", dtype={"ensembl_id": str})
        length_table = table.set_index("ensembl_id")["length"].astype(float)
    bundle_checks.check_finite(path, [*model.state_dict().items(), *graph.items(), ("gene_features", gene_features)])
    model.eval()
    model.to(device)
    return Bundle(model=model, genes=genes, gene_features=gene_features, metadata=config_doc.get("metadata", {}),
                  length_table=length_table)


def normalise_gene_table(genes: pd.DataFrame) -> pd.DataFrame:
    """Vocabulary table with exactly ensembl_id, symbol, length (nullable Int64)."""
    if "ensembl_id" not in genes.columns:
        raise ValueError(f"the gene table needs an 'ensembl_id' column, got {list(genes.columns)}")
    table = pd.DataFrame({"ensembl_id": genes["ensembl_id"].astype(str).to_numpy()})
    table["symbol"] = genes["symbol"].astype("string").to_numpy() if "symbol" in genes.columns else pd.array([pd.NA] * len(table), dtype="string")
    length = genes["length"] if "length" in genes.columns else pd.Series([pd.NA] * len(table))
    from .preprocess.align import numeric_lengths  # the one check for lengths that are not numbers

    table["length"] = numeric_lengths(length, "the gene table's length column").round().astype("Int64").to_numpy()
    duplicated = table["ensembl_id"][table["ensembl_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"the vocabulary repeats gene IDs, e.g. {duplicated.iloc[:3].tolist()}")
    return table

