"""Turn an official BulkFormer release into a bundle.

An official release is: the checkpoint (.pt state dict, usually with the
``module.`` prefix), the gene-info CSV (column ``ensg_id``, model order), the graph
``G_*.pt`` (2 x n_edges) with its weights ``G_*_weight.pt``, and optionally the
ESM2 table ``esm2_feature_concat.pt`` (G x 1280). Layout (v1 / v2) and preset are
read off the tensor shapes.
"""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .bundle import Bundle
from .model import BulkFormer, layout_of, layout_of_state
from .safe_load import safe_torch_load, unwrap_state_dict

_SYMBOL_COLUMNS = ("gene_symbol", "symbol", "gene_name", "hgnc_symbol")
_LENGTH_COLUMNS = ("gene_length", "length", "eff_length")


def infer_config(state: dict[str, torch.Tensor]) -> Any:
    """Read the model config off a state dict's keys and shapes (any layout)."""
    return layout_of_state(state).infer_config(state)


def _layout(config: Any) -> str:
    """The layout in words (a dataclass repr reads like options the command does not have)."""
    return config.describe()


def _with_performer_aliases(state: dict[str, torch.Tensor], model: BulkFormer) -> dict[str, torch.Tensor]:
    """performer-pytorch holds each layer twice (``...net.*`` and the same tensors as
    ``...proj_updater.instance.*``) plus a redraw counter; exports that drop the duplicates
    (safetensors' save_model) get them back from ``net``."""
    filled = dict(state)
    for key, tensor in model.state_dict().items():
        if key in filled:
            continue
        if ".proj_updater.instance." in key:
            twin = key.replace(".proj_updater.instance.", ".net.")
            if twin in filled:
                filled[key] = filled[twin]
        elif key.endswith(".proj_updater.calls_since_last_redraw"):
            filled[key] = tensor
    return filled


def _warn_if_graph_covers_few_genes(edge_index: torch.Tensor, n_genes: int, graph: str | Path) -> None:
    """A graph built for a smaller vocabulary fits (its indices are all in range) but leaves
    most genes without neighbours: the graph convolution then does nothing for them."""
    if not edge_index.numel():
        return
    highest = int(edge_index.max())
    if highest + 1 < n_genes // 2:
        warnings.warn(f"the graph {graph} only names genes 0-{highest} of the checkpoint's {n_genes:,}: it looks built "
                      "for another vocabulary (the release's graph for this checkpoint covers all of them); genes "
                      "beyond it get no graph neighbours", UserWarning, stacklevel=3)


def preset_name(config: Any) -> str | None:
    """Name of the published preset with this shape (any vocabulary size), if any."""
    return layout_of(config).preset_name(config)


def read_gene_info(path: str | Path, n_genes: int) -> pd.DataFrame:
    """The release's gene-info CSV -> vocabulary table (ensembl_id, symbol, length)."""
    try:
        info = pd.read_csv(path, sep=_delimiter(path), dtype={"ensg_id": str})
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text table: gene_info= takes the release's gene-info CSV "
                         "(bulkformer_gene_info.csv, column ensg_id), not a .pt file") from None
    if "ensg_id" not in info.columns:
        raise ValueError(f"{path} has no 'ensg_id' column (columns: {list(info.columns)}); pass the release's gene-info CSV")
    if len(info) != n_genes:
        raise ValueError(f"{path} lists {len(info)} genes but the checkpoint was trained on {n_genes}")
    blank = info["ensg_id"].isna() | (info["ensg_id"].astype(str).str.strip() == "")
    if blank.any():
        rows = (blank[blank].index + 2).tolist()  # file lines: header is line 1
        raise ValueError(f"{path}: {int(blank.sum())} rows have no ensg_id (lines {rows[:5]}); every vocabulary "
                         "gene needs its Ensembl ID, in model order: use the gene-info file of the release")
    table = pd.DataFrame({"ensembl_id": info["ensg_id"].astype(str).str.strip().str.split(".").str[0]})
    not_ensembl = ~table["ensembl_id"].str.fullmatch(r"ENSG\d{11}")
    if not_ensembl.any():  # symbols here would leave every Ensembl-ID input unmatched, found only much later
        warnings.warn(f"{path}: {int(not_ensembl.sum()):,} of {len(table):,} ensg_id values are not human Ensembl gene "
                      f"IDs (e.g. {table['ensembl_id'][not_ensembl].iloc[0]!r}); the vocabulary is keyed by them: use "
                      "the release's gene-info file", UserWarning, stacklevel=3)
    symbol = next((c for c in _SYMBOL_COLUMNS if c in info.columns), None)
    table["symbol"] = info[symbol].astype("string") if symbol else pd.NA
    length = next((c for c in _LENGTH_COLUMNS if c in info.columns), None)
    table["length"] = pd.to_numeric(info[length], errors="coerce") if length else pd.NA
    return table


def read_length_table(path: str | Path) -> pd.Series:
    """The release's gene-length table (ensg_id, length; .csv or .csv.gz) as gene ID -> bp."""
    table = pd.read_csv(path, sep=_delimiter(path), dtype={"ensg_id": str})
    missing = {"ensg_id", "length"} - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)} (it has {list(table.columns)}); gene_lengths= "
                         "takes the authors' data/gene_length_df.csv (ensg_id, length)")
    lengths = pd.to_numeric(table["length"], errors="coerce")
    bad = ~(lengths > 0)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum()):,} lengths are not positive numbers (e.g. "
                         f"{table['ensg_id'][bad].iloc[0]})")
    ids = table["ensg_id"].astype(str).str.strip().str.split(".").str[0]
    return pd.Series(lengths.to_numpy(dtype=float), index=pd.Index(ids, name="ensembl_id"), name="length")


def _delimiter(path: str | Path) -> str:
    """The gene-info file's delimiter, read off its header line (tab, semicolon or comma).
    Not pandas' sniffer: on a one-column file it picks a letter of the header."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        header = handle.readline().decode("utf-8")
    return next((d for d in ("\t", ";", ",") if d in header), ",")


def _read_graph(graph: str | Path, graph_weight: str | Path | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The edge index and weights files, with errors that name the file and the likely mix-up."""
    edge_index = safe_torch_load(graph)
    if not isinstance(edge_index, torch.Tensor):
        raise ValueError(f"{graph} should hold a 2 x n_edges tensor, got {type(edge_index).__name__}; "
                         "graph= takes the release's G_*.pt file")
    if edge_index.dim() == 1:
        raise ValueError(f"{graph} holds a vector of {edge_index.numel()} values, which looks like edge weights: "
                         "graph= takes the edge index G_*.pt (2 x n_edges) and graph_weight= its weights G_*_weight.pt. "
                         "Were the two swapped?")
    if graph_weight is None:
        warnings.warn("no graph_weight given: every graph edge gets weight 1, but the released models were trained "
                      "with weighted graphs; pass the weights file G_*_weight.pt that comes with the graph as "
                      "graph_weight", UserWarning, stacklevel=3)
        return edge_index, None
    edge_weight = safe_torch_load(graph_weight)
    if not isinstance(edge_weight, torch.Tensor) or edge_weight.dim() != 1:
        shape = tuple(edge_weight.shape) if isinstance(edge_weight, torch.Tensor) else type(edge_weight).__name__
        raise ValueError(f"{graph_weight} should hold one weight per edge (a vector), got {shape}; graph_weight= "
                         "takes the release's G_*_weight.pt file")
    if edge_index.dim() == 2 and edge_index.shape[0] == 2 and edge_weight.numel() != edge_index.shape[1]:
        raise ValueError(f"{graph_weight} has {edge_weight.numel()} edge weights but the graph {graph} has "
                         f"{edge_index.shape[1]} edges: pass the weights file of the same graph (G_x.pt with "
                         "G_x_weight.pt)")
    return edge_index, edge_weight


def import_checkpoint(
    checkpoint: str | Path,
    gene_info: str | Path,
    graph: str | Path,
    graph_weight: str | Path | None = None,
    gene_features: str | Path | None = None,
    out: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    gene_lengths: str | Path | None = None,
) -> Bundle:
    """Build a :class:`Bundle` from official release files; write it to ``out`` if given.

    ``checkpoint``: the released weights (e.g. ``BulkFormer_147M.pt``; layout and size are
    read from it); ``gene_info``: the gene table (``bulkformer_gene_info.csv``, column
    ``ensg_id``); ``graph`` / ``graph_weight``: the graph's edge index and edge weights
    (``G_gtex.pt``, ``G_gtex_weight.pt``; without weights every edge gets 1, with a
    warning); ``gene_features``: the ESM2 gene table (v1 models); ``metadata``: entries
    added to the bundle's metadata (name, source, ...). ``gene_lengths``: the release's
    gene-length table (the authors' ``data/gene_length_df.csv``, columns ensg_id and
    length), stored in the bundle so that counts become TPM as the release's pipeline
    makes them (that table for every input gene, 1,000 bp for genes it lacks); without
    it a warning says so, and bulkformer's shipped lengths are used. Pickles are read with
    ``torch.load(weights_only=True)``.
    """
    state = unwrap_state_dict(safe_torch_load(checkpoint), checkpoint)
    config = infer_config(state)
    edge_index, edge_weight = _read_graph(graph, graph_weight)
    try:
        model = BulkFormer(config, edge_index, edge_weight)
    except ValueError as err:  # the graph does not fit the checkpoint
        raise ValueError(f"the graph {graph} does not fit the checkpoint {checkpoint}: {err}") from None
    _warn_if_graph_covers_few_genes(edge_index, config.n_genes, graph)
    try:
        result = model.load_state_dict(_with_performer_aliases(state, model), strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"the checkpoint does not fit the layout read from it ({_layout(config)}): {err}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"the checkpoint does not fit the layout read from it ({_layout(config)}): "
            f"missing {result.missing_keys[:8]}, unexpected {result.unexpected_keys[:8]}"
        )
    model.eval()
    table = safe_torch_load(gene_features) if gene_features is not None else None
    if table is not None and not isinstance(table, torch.Tensor):
        raise ValueError(f"{gene_features} should hold a genes x features tensor")
    meta = {
        "name": Path(checkpoint).stem,
        "source": "official checkpoint",
        "trained": True,
        "checkpoint": Path(checkpoint).name,
        "preset": preset_name(config),
        **(metadata or {}),
    }
    length_table = read_length_table(gene_lengths) if gene_lengths is not None else None
    if length_table is None:
        warnings.warn("no gene_lengths given: counts will become TPM with bulkformer's shipped gene lengths, which "
                      "differ from the table this release was trained with (median ratio ~0.5): pass the authors' "
                      "data/gene_length_df.csv as gene_lengths to prepare counts as the release does",
                      UserWarning, stacklevel=2)
    else:
        meta["gene_lengths"] = Path(gene_lengths).name
    bundle = Bundle(model=model, genes=read_gene_info(gene_info, config.n_genes), gene_features=table, metadata=meta,
                    length_table=length_table)
    if out is not None:
        bundle.save(out)
    return bundle
