"""bulkformer-latest (October 2026, architecture "BulkFormerV1Plus-v1"): a learned
RMS-normalised gene table, a sinusoidal expression code scaled by each sample's visible
fraction, one gated bottleneck graph convolution, one Performer stack and a GELU head;
its own 19,973-gene vocabulary, graph and gene lengths, released as a six-file folder
with a SHA256 manifest (REFERENCE.md, "bulkformer-latest").

Everything the layout is lives here: config, presets, network, fast inference path,
release reader and input conventions. Over 400 lines, on purpose: a layout is one module
(model/layouts/, README "Architecture"), so that a fourth layout is one new file and
nothing about this one lives elsewhere; v1 and v2 are shorter only because they share
``original.py``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from performer_pytorch import Performer
from torch import nn
from torch_geometric.nn.conv import GCNConv

from ...checksums import check_files
from ...preprocess.conventions import InputConventions
from ..config import LayoutConfig
from ..embedding import MASK_VALUE
from ..fast_performer import FastOutput, FastPath, LayerWeights, chunked_layernorm_, performer_layer_
from ..graph_conv import propagate_batch
from ..network import BulkFormer, ModelOutput
from .base import Layout, PretrainRecipe, ReleaseFile

ARCHITECTURE = "BulkFormerV1Plus-v1"
RELEASED_N_GENES = 19_973
RELEASE_FILES = ("model.pt", "model_config.json", "gene_vocab.csv", "edge_index.pt", "edge_weight.pt")
_RMS_EPS = 1e-8


@dataclass(frozen=True)
class LatestConfig(LayoutConfig, layout="latest"):
    """The published ``BulkFormerV1PlusConfig`` fields (same names and defaults), plus
    ``version``, the layout key bundles store."""

    num_genes: int = RELEASED_N_GENES
    dim: int = 768
    depth: int = 12
    heads: int = 12
    dim_head: int = 64
    ff_mult: int = 4
    nb_features: int = 256
    dropout: float = 0.1
    attention_dropout: float = 0.05
    graph_hidden_dim: int = 192
    graph_dropout: float = 0.1
    graph_scale_init: float = 0.01
    expression_base: float = 100.0
    expression_scale_init: float = 1.0
    mask_value: float = MASK_VALUE
    mask_ratio_scaling_enabled: bool = True
    mask_ratio_reference: float = 0.10
    mask_ratio_max_scale: float = 2.0
    mask_ratio_min_visible_fraction: float = 0.05
    fix_performer_projection_matrices: bool = True
    version: str = "latest"

    def __post_init__(self) -> None:
        if self.num_genes < 1 or self.depth < 1 or self.graph_hidden_dim < 1 or self.nb_features < 1:
            raise ValueError("num_genes, depth, graph_hidden_dim and nb_features must be positive")
        if self.dim < 2 or self.dim % 2:
            raise ValueError(f"dim must be a positive even number (sin/cos expression code), got {self.dim}")
        if self.heads * self.dim_head != self.dim:
            raise ValueError(f"heads x dim_head must equal dim: {self.heads} x {self.dim_head} != {self.dim}")
        if self.mask_value != MASK_VALUE:
            raise ValueError(f"mask_value must be {MASK_VALUE} (the mask token of every bulkformer input), "
                             f"got {self.mask_value}")
        if not 0.0 <= self.mask_ratio_reference < 1.0:
            raise ValueError("mask_ratio_reference must be in [0, 1)")
        if not 0.0 < self.mask_ratio_min_visible_fraction <= 1.0:
            raise ValueError("mask_ratio_min_visible_fraction must be in (0, 1]")
        if self.mask_ratio_max_scale < 1.0:
            raise ValueError("mask_ratio_max_scale must be at least one")
        if self.expression_base <= 1.0:
            raise ValueError("expression_base must be greater than one")

    @property
    def n_genes(self) -> int:
        return self.num_genes

    @property
    def feature_dim(self) -> int:
        return self.dim  # plain d-wide states: no appended summary features

    @property
    def n_layers(self) -> int:
        return self.depth

    def describe(self) -> str:
        return (f"latest, {self.num_genes:,} genes, width {self.dim}, {self.depth} Performer layer(s), "
                f"{self.heads} heads x {self.dim_head}, graph bottleneck {self.graph_hidden_dim}")

    def to_release_dict(self) -> dict[str, Any]:
        """The release's ``model_config.json["model"]`` (the 20 published fields)."""
        return {k: v for k, v in self.to_dict().items() if k != "version"}

    @classmethod
    def from_release_dict(cls, data: Mapping[str, Any], source: str = "model_config.json") -> LatestConfig:
        known = {f.name for f in fields(cls)} - {"version"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown model fields {unknown}; this bulkformer reads the "
                             f"{ARCHITECTURE} fields {sorted(known)}")
        return cls(**dict(data))


class GatedGraphBlock(nn.Module):
    """``h + gamma * W_out GELU(GCN(W_in LN(h)))``: one hop, pre-norm, bottleneck
    d -> r -> d, no biases, near-zero residual gate at init (published keys)."""

    def __init__(self, config: LatestConfig) -> None:
        super().__init__()
        r = config.graph_hidden_dim
        self.norm = nn.LayerNorm(config.dim)
        self.input_projection = nn.Linear(config.dim, r, bias=False)
        # not cached: the graph may be replaced after construction (set_graph)
        self.convolution = GCNConv(r, r, cached=False, add_self_loops=False, normalize=True, bias=False)
        self.output_projection = nn.Linear(r, config.dim, bias=False)
        self.dropout = nn.Dropout(config.graph_dropout)
        self.residual_scale = nn.Parameter(torch.full((config.dim,), config.graph_scale_init))

    def message(self, h: torch.Tensor, model: BulkFormerLatest) -> torch.Tensor:
        """The convolution's output ``c`` (B x G x r), before the GELU."""
        adjacency = model.graph_adjacency() if model.sparse_graph else None
        update = self.input_projection(self.norm(h))
        if adjacency is None:
            return self.convolution(update, model.graph_source_target, model.graph_edge_weight)
        return propagate_batch(self.convolution.lin(update), adjacency).to(update.dtype)

    def gated(self, message: torch.Tensor) -> torch.Tensor:
        return self.residual_scale * self.dropout(self.output_projection(F.gelu(message)))


class BulkFormerLatest(BulkFormer, layout="latest"):
    """The bulkformer-latest network; state-dict keys as released (427 entries at full size)."""

    receiver_row = 1  # the release stores (source, target)
    config: LatestConfig

    def __init__(self, config: LatestConfig, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None,
                 gene_table: torch.Tensor | None = None) -> None:
        super().__init__()
        if gene_table is not None:
            raise ValueError("bulkformer-latest learns its gene table; gene_table= initialises v1 models only")
        self.config = config
        d = config.dim
        self.gene_embedding = nn.Embedding(config.num_genes, d)
        nn.init.normal_(self.gene_embedding.weight, mean=0.0, std=1.0 / math.sqrt(d))
        inv_freq = 1.0 / (config.expression_base ** (torch.arange(0, d, 2).float() / d))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.expression_scale = nn.Parameter(torch.tensor(config.expression_scale_init))
        self.input_norm = nn.LayerNorm(d)
        self.graph_block = GatedGraphBlock(config)
        self.pre_performer_norm = nn.LayerNorm(d)
        self.performer = Performer(
            dim=d, depth=config.depth, heads=config.heads, dim_head=config.dim_head, ff_mult=config.ff_mult,
            nb_features=config.nb_features, feature_redraw_interval=None, reversible=False,
            generalized_attention=False, no_projection=False, causal=False, local_attn_heads=0,
            attn_dropout=config.attention_dropout, ff_dropout=config.dropout,
        )
        if config.fix_performer_projection_matrices:
            self.performer.fix_projection_matrices_()
        self.output_norm = nn.LayerNorm(d)
        self.expression_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(d, 1))
        self.set_graph(edge_index, edge_weight)

    # ------------------------------------------------------------- pieces
    def gene_tokens(self, rows: slice = slice(None)) -> torch.Tensor:
        """Each gene's table row RMS-normalised (no affine weight); ``rows``: those genes only."""
        weight = self.gene_embedding.weight[rows]
        return F.rms_norm(weight, (weight.shape[-1],), weight=None, eps=_RMS_EPS)

    def expression_code(self, x: torch.Tensor) -> torch.Tensor:
        """sqrt(2) * [sin(x f), cos(x f)] (sines first, RMS 1); masked entries -> zeros."""
        masked = x == MASK_VALUE
        phase = x.masked_fill(masked, 0.0).float().unsqueeze(-1) * self.inv_freq
        code = torch.cat((phase.sin(), phase.cos()), dim=-1) * math.sqrt(2.0)
        return code.masked_fill(masked.unsqueeze(-1), 0.0)

    def visible_fraction_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the share of entries != -10, and the scale of its expression code
        ``min(0.9 / max(v, 0.05), 2)`` (1 when the flag is off)."""
        config = self.config
        visible = (x != MASK_VALUE).float().mean(dim=1)
        if not config.mask_ratio_scaling_enabled:
            return visible, torch.ones_like(visible)
        scale = (1.0 - config.mask_ratio_reference) / visible.clamp_min(config.mask_ratio_min_visible_fraction)
        return visible, scale.clamp(max=config.mask_ratio_max_scale)

    # ------------------------------------------------------------ forward
    def stages(self, x: torch.Tensor, gene_tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every stage of the forward pass by name (as the release's fixtures name them)."""
        self._check_input(x)
        tokens = self.gene_tokens() if gene_tokens is None else gene_tokens
        code = self.expression_code(x)
        visible, scale = self.visible_fraction_scale(x)
        h0 = self.input_norm(tokens + self.expression_scale * (code * scale[:, None, None]))
        message = self.graph_block.message(h0, self)
        h1 = h0 + self.graph_block.gated(message)
        pre = self.pre_performer_norm(h1)
        performed = self.performer(pre)
        out = self.output_norm(performed)
        return {"gene_tokens": tokens, "expression_encoding": code, "input_norm": h0, "gcn_conv": message,
                "graph_block": h1, "pre_performer_norm": pre, "performer": performed, "output_norm": out,
                "input_visible_fraction": visible, "mask_ratio_scale": scale}

    def forward(self, x: torch.Tensor, mask_prob: float | torch.Tensor | None = None, *,
                gene_tokens: torch.Tensor | None = None, return_hidden: bool = False) -> ModelOutput:
        """``mask_prob`` is ignored: this layout reads each sample's visible share off ``x``.
        ``expr`` is the head's raw output (ln(TPM+1) scale, unconstrained: it can be negative)."""
        stage = self.stages(x, gene_tokens)
        features = stage["output_norm"]
        pred = self.expression_head(features).squeeze(-1)
        hidden = [stage["graph_block"], stage["performer"]] if return_hidden else []
        return ModelOutput(expr=pred, features=features, hidden=hidden, raw=pred)

    def fast_path(self, *, gene_chunk: int | None = None, per_sample: bool = False) -> FastLatest:
        return FastLatest(self, gene_chunk=gene_chunk, per_sample=per_sample)

    # ----------------------------------------------------------- training
    def encoder_layers(self) -> list[nn.Module]:
        return list(self.performer.net.layers)

    def output_norm_module(self) -> nn.Module:
        return self.output_norm

    def checkpoint_units(self) -> list[nn.Module]:
        # each attention and feed-forward sub-layer (the Performer is one module of all layers)
        return [sublayer for pair in self.performer.net.layers for sublayer in pair]

    def output_linear(self) -> nn.Linear:
        return self.expression_head[-1]

    def gene_identity_table(self) -> nn.Parameter:
        return self.gene_embedding.weight


class FastLatest(FastPath):
    """The cached graph; the input layer (gene tokens are a row norm, made per chunk
    rather than held), the graph block's projections, every Performer layer and the head
    chunk by chunk over genes (the residual stream is the only B x G x d tensor)."""

    model: BulkFormerLatest

    def __init__(self, model: BulkFormerLatest, *, gene_chunk: int | None = None, per_sample: bool = False) -> None:
        super().__init__(model, gene_chunk=gene_chunk, per_sample=per_sample)
        with torch.inference_mode():
            self.adjacency = model.graph_adjacency()  # None (MPS): the GCNConv module runs
            self.layers = LayerWeights.from_performer(model.performer)

    def _forward(self, x: torch.Tensor, mask_prob, want_expr: bool, feature_index: torch.Tensor | None) -> FastOutput:
        model = self.model
        block = model.graph_block
        chunks = self.chunks(x.shape[1])
        _, scale = model.visible_fraction_scale(x)
        code_scale = model.expression_scale * scale[:, None, None]
        h = torch.empty(x.shape[0], x.shape[1], self.config.dim, dtype=torch.float32, device=x.device)
        reduced = None
        for part in chunks:
            tokens = model.gene_tokens(part).float()
            h[:, part] = model.input_norm(tokens + code_scale * model.expression_code(x[:, part]))
            projected = block.convolution.lin(block.input_projection(block.norm(h[:, part])))
            if reduced is None:
                reduced = torch.empty(x.shape[0], x.shape[1], projected.shape[-1], dtype=torch.float32,
                                      device=x.device)
            reduced[:, part] = projected
        if self.adjacency is None:  # no sparse matmul here: the module's message passing
            message = block.message(h, model)
        else:
            message = propagate_batch(reduced, self.adjacency)
        del reduced
        for part in chunks:
            h[:, part] += block.gated(message[:, part])
        del message
        chunked_layernorm_(model.pre_performer_norm, h, chunks)
        for layer in self.layers:
            performer_layer_(h, layer, chunks)
        return self.outputs(x, h, want_expr, feature_index, features_of=model.output_norm,
                            predict=lambda z: model.expression_head(z).squeeze(-1))


# ------------------------------------------------------------------ release
def is_release(path: str | Path) -> bool:
    """Whether ``path`` is a bulkformer-latest release folder (its manifest names the architecture)."""
    manifest = Path(path) / "manifest.json"
    if not manifest.is_file() or not (Path(path) / "model.pt").is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("architecture") == ARCHITECTURE
    except (ValueError, UnicodeDecodeError):
        return False


@dataclass
class Release:
    """A verified release folder, read: the network (eval mode), the vocabulary table
    (ensembl_id, symbol, length) and the release's metadata."""

    model: BulkFormerLatest
    genes: pd.DataFrame
    metadata: dict[str, Any]


def verify_release(folder: str | Path, download_manifest: str | Path | None = None) -> int:
    """Check every release file's size and SHA256 against ``manifest.json`` (and, given
    the authors' download manifest, format 2, all six files against it first); the
    number of files checked. Nothing is read before this passes."""
    folder = Path(folder)
    fix = f"download {{name}} of the release again into {folder}"
    checked = 0
    if download_manifest is not None:
        document = json.loads(Path(download_manifest).read_text())
        if document.get("format_version") != 2 or set(document.get("files", {})) != {*RELEASE_FILES, "manifest.json"}:
            raise ValueError(f"{download_manifest} is not a bulkformer-latest download manifest (format_version 2, "
                             "the six release files)")
        check_files(folder, document["files"], source=str(download_manifest), fix=fix)
        checked = len(document["files"])
    manifest = _manifest(folder)
    listed = manifest.get("files", {})
    unlisted = [name for name in RELEASE_FILES if name not in listed]
    if unlisted:
        raise ValueError(f"{folder / 'manifest.json'} does not list {unlisted}: it is not the release's manifest")
    check_files(folder, {name: listed[name] for name in RELEASE_FILES}, source=str(folder / "manifest.json"), fix=fix)
    return max(checked, len(RELEASE_FILES))


def _manifest(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format_version") != 1 or manifest.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{folder / 'manifest.json'} is not a bulkformer-latest manifest (format_version 1, "
                         f"architecture {ARCHITECTURE})")
    return manifest


def read_release(folder: str | Path, download_manifest: str | Path | None = None) -> Release:
    """Verify every file of a release folder (:func:`verify_release`) before reading it,
    then load it as the published loader does (``weights_only=True``, strict keys, the
    manifest's parameter count)."""
    folder = Path(folder)
    verify_release(folder, download_manifest)
    manifest = _manifest(folder)
    config_doc = json.loads((folder / "model_config.json").read_text())
    config = LatestConfig.from_release_dict(config_doc["model"], str(folder / "model_config.json"))
    genes = read_gene_vocab(folder / "gene_vocab.csv", config.num_genes)
    edge_index = torch.load(folder / "edge_index.pt", map_location="cpu", weights_only=True)
    edge_weight = torch.load(folder / "edge_weight.pt", map_location="cpu", weights_only=True)
    _check_release_graph(edge_index, edge_weight, config.num_genes, folder)
    payload = torch.load(folder / "model.pt", map_location="cpu", weights_only=True, mmap=True)
    if (payload.get("architecture") != ARCHITECTURE or payload.get("model_config") != config_doc["model"]
            or payload.get("checkpoint_metadata") != manifest.get("checkpoint_metadata")):
        raise ValueError(f"{folder / 'model.pt'} does not belong to this release (its architecture, config or "
                         "checkpoint metadata differ from model_config.json / manifest.json)")
    model = BulkFormerLatest(config, edge_index, edge_weight)
    model.load_state_dict(payload["model"], strict=True)
    expected_parameters = manifest.get("trainable_parameters")
    if expected_parameters is not None and model.count_parameters() != int(expected_parameters):
        raise ValueError(f"{folder}: the model has {model.count_parameters():,} parameters, the manifest says "
                         f"{int(expected_parameters):,}")
    model.eval()
    metadata = {"name": manifest.get("release_name") or folder.name, "source": "official release",
                "architecture": ARCHITECTURE, "trained": True,
                "checkpoint_metadata": manifest.get("checkpoint_metadata", {})}
    return Release(model=model, genes=genes, metadata=metadata)


def read_gene_vocab(path: Path, n_genes: int) -> pd.DataFrame:
    """``gene_vocab.csv`` (columns read by name) -> vocabulary table, checked as the release does."""
    vocab = pd.read_csv(path, dtype={"canonical_ensg": str, "gene_symbol": str})
    missing = {"vocab_index", "canonical_ensg", "gene_length_bp"} - set(vocab.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    if len(vocab) != n_genes or not np.array_equal(vocab["vocab_index"].to_numpy(), np.arange(n_genes)):
        raise ValueError(f"{path} must list vocab_index 0..{n_genes - 1} in order (the model's gene axis)")
    if vocab["canonical_ensg"].nunique() != n_genes:
        raise ValueError(f"{path} repeats canonical_ensg values")
    lengths = pd.to_numeric(vocab["gene_length_bp"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(lengths).all() or (lengths <= 0).any():
        raise ValueError(f"{path} has gene lengths that are not positive numbers")
    symbols = vocab["gene_symbol"] if "gene_symbol" in vocab.columns else pd.Series([pd.NA] * n_genes)
    return pd.DataFrame({"ensembl_id": vocab["canonical_ensg"].to_numpy(), "symbol": symbols.to_numpy(),
                         "length": lengths})


def _check_release_graph(edge_index: Any, edge_weight: Any, n_genes: int, folder: Path) -> None:
    if not isinstance(edge_index, torch.Tensor) or edge_index.dtype != torch.int64 or edge_index.dim() != 2 \
            or edge_index.shape[0] != 2:
        raise ValueError(f"{folder / 'edge_index.pt'} must hold an int64 [2, E] tensor")
    if not isinstance(edge_weight, torch.Tensor) or edge_weight.shape != (edge_index.shape[1],):
        raise ValueError(f"{folder / 'edge_weight.pt'} must hold one weight per edge ({edge_index.shape[1]})")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n_genes):
        raise ValueError(f"{folder / 'edge_index.pt'} names genes outside 0..{n_genes - 1}")
    if not bool(torch.isfinite(edge_weight).all()) or bool((edge_weight <= 0).any()):
        raise ValueError(f"{folder / 'edge_weight.pt'} must hold finite, positive weights")
    if bool((edge_index[0] == edge_index[1]).any()):
        raise ValueError(f"{folder / 'edge_index.pt'} has self-loops, which the release's graph never has")


# ------------------------------------------------------------------ layout
def _recognises(state: Mapping[str, torch.Tensor]) -> bool:
    return "gene_embedding.weight" in state and "graph_block.input_projection.weight" in state


def _infer_config(state: Mapping[str, torch.Tensor]) -> LatestConfig:
    n_genes, dim = state["gene_embedding.weight"].shape
    depth = len({k.split(".")[3] for k in state if k.startswith("performer.net.layers.")})
    projection = state["performer.net.layers.0.0.fn.fast_attention.projection_matrix"]
    nb_features, dim_head = projection.shape
    inner = state["performer.net.layers.0.0.fn.to_q.weight"].shape[0]
    hidden = state["performer.net.layers.0.1.fn.fn.w1.weight"].shape[0]
    return LatestConfig(num_genes=int(n_genes), dim=int(dim), depth=depth, heads=int(inner // dim_head),
                        dim_head=int(dim_head), ff_mult=int(hidden // dim), nb_features=int(nb_features),
                        graph_hidden_dim=int(state["graph_block.input_projection.weight"].shape[0]))


def _resize(config: LatestConfig, *, n_genes: int | None = None, dim: int | None = None, layers: int | None = None,
            heads: int | None = None, dropout: float | None = None) -> LatestConfig:
    """Another vocabulary size, or a smaller model: width ``dim`` split over ``heads``
    (the graph bottleneck stays a quarter of the width, as released)."""
    changes: dict[str, Any] = {}
    if n_genes is not None:
        changes["num_genes"] = n_genes
    if layers is not None:
        changes["depth"] = layers
    if dim is not None or heads is not None:
        width = dim if dim is not None else config.dim
        n_heads = heads if heads is not None else config.heads
        if width % n_heads:
            raise ValueError(f"dim={width} is not divisible by heads={n_heads}")
        changes.update(dim=width, heads=n_heads, dim_head=width // n_heads, graph_hidden_dim=max(1, width // 4))
    if dropout is not None:
        changes.update(dropout=dropout, attention_dropout=dropout, graph_dropout=dropout)
    return replace(config, **changes)


_DRIVE = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"
# the authors' download manifest (KangBoming/BulkFormer @ 3c5a9a8, model/downloads/bulkformer-latest.json):
# each file's size and SHA256, and its Google Drive file
DOWNLOADS = (
    ReleaseFile("model.pt", 406_165_934, "0fb65ec123386ef753651cfcc43e2a64728c719307fe565a5ffe16f5d8cf3cfa",
                _DRIVE.format("1ly4CNE6XHqHKSP1a5c0UGUeaSVC0Was1")),
    ReleaseFile("model_config.json", 1_079, "7942ecd57865791515ae8d3d3c285ed5c96c3856456c89ea8c2202231bb2dfff",
                _DRIVE.format("1Fm-rEBC3jwJWe-OKlnM9y5G-jHmm1jY0")),
    ReleaseFile("gene_vocab.csv", 704_213, "447fcecce510e1bb81e1eebf2bcfbbfefbc21e626395b003034ff70159303e40",
                _DRIVE.format("1iOweEpX-Ub5pIfhBVvwvpQcQwhVkOv02")),
    ReleaseFile("edge_index.pt", 10_739_627, "ce2eabbeb9b6f053eeae2cc994b2f6e0e03c46590b86b733f6035b346012ca1f",
                _DRIVE.format("1-l-IILGstdAnK96lo6fd4IWK1xpvBa3w")),
    ReleaseFile("edge_weight.pt", 2_685_808, "182f34418d07e7f6e4d487068b5e466d4410baa06e28973ca667db3b5a76e61d",
                _DRIVE.format("1e15aL7AX2P-QFwZmryuC1kOYvt_PwFaT")),
    ReleaseFile("manifest.json", 1_623, "37d00cd00e3a544fcd4b21e57d974196305765741bfcb9f3f527a38a85bb4b0b",
                _DRIVE.format("1nk-Db3Xzfcbgs8Cv2AnzX-ST-H6L_o32")),
)

PRESETS = {
    "latest": LatestConfig(),
    # the same layout at small scale, for pretraining on one machine
    "latest-small": LatestConfig(dim=256, depth=4, heads=4, dim_head=64, nb_features=128, graph_hidden_dim=64),
    "latest-tiny": LatestConfig(dim=64, depth=2, heads=4, dim_head=16, nb_features=32, graph_hidden_dim=16),
}

LAYOUT = Layout(
    name="latest",
    description="bulkformer-latest (October 2026; 101M, BulkFormerV1Plus-v1)",
    network=BulkFormerLatest,
    presets=PRESETS,
    parameter_counts={"latest": 101_323_778},  # at 19,973 genes (the release's manifest)
    conventions=InputConventions(tpm_denominator="vocabulary_genes", nan_is_unmeasured=True),
    sample_pooling="observed_mean",
    recognises=_recognises,
    infer_config=_infer_config,
    resize=_resize,
    tiny=lambda n_genes: _resize(PRESETS["latest-tiny"], n_genes=n_genes, dim=16, heads=2),
    recipe=PretrainRecipe(mask_fraction=0.05, mask_fraction_max=0.15, observed_weight=0.0, gene_init="random"),
    is_release=is_release,
    read_release=read_release,
    verify_release=verify_release,
    downloads=DOWNLOADS,
    release_directory="bulkformer-latest",
)
