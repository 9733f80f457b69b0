"""The pieces every layout's fast inference path shares.

Same math as the modules (performer-pytorch 1.1.4 FAVOR+, torch-geometric GCNConv
with ``add_self_loops=False``), reorganised for speed and memory; the fast paths read
the model's own weights, so nothing is copied or converted:

* the gene-token embedding and the normalised graph are computed once per run;
* the GCN is one sparse CSR matmul with the normalisation precomputed;
* each Performer layer makes two passes over gene chunks: pass 1 accumulates the
  FAVOR+ key/value context ``k'^T [v, 1]`` with an online (rescaled) key maximum,
  pass 2 does queries, attention output, residuals and the feed-forward for one
  chunk while it sits in cache. ``[v, 1]`` gives context and normaliser from one
  GEMM; the ``m^-0.5`` factors of both feature maps cancel in the quotient;
* the feature maps run in fp32 even under GPU autocast (``exp`` of a half-precision
  projection loses several digits), the dense layers take autocast's precision.

Runs are deterministic for a given batch composition; batch sizes change results only
by float rounding (~1e-6). torchrun sharding keeps the single-process batches (see
``distributed.shard_rows``), so sharded outputs are bit-identical to one process.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .autocast import no_autocast

# performer-pytorch softmax_kernel's additive stabiliser
_FAVOR_EPS = 1e-4


@dataclass
class LayerWeights:
    """Views of one performer-pytorch layer's parameters (no copies: the weights are
    the model's own, and a fused k/v copy would add 2 d^2 floats per layer)."""

    ln1: nn.LayerNorm
    wq: torch.Tensor
    bq: torch.Tensor | None
    wk: torch.Tensor
    bk: torch.Tensor | None
    wv: torch.Tensor
    bv: torch.Tensor | None
    wo: torch.Tensor
    bo: torch.Tensor | None
    ln2: nn.LayerNorm
    w1: nn.Linear
    w2: nn.Linear
    projection_t: torch.Tensor  # (dh, m) = (dh^-0.25 * P)^T
    half_norm_scale: float  # dh^-0.5 / 2
    heads: int

    @classmethod
    def from_performer(cls, performer: nn.Module) -> list["LayerWeights"]:
        layers = []
        for attn_wrapper, ff_wrapper in performer.net.layers:
            attn = attn_wrapper.fn
            feed_forward = ff_wrapper.fn.fn
            if getattr(ff_wrapper.fn, "chunks", 1) != 1 or getattr(feed_forward, "glu", False):
                raise ValueError("the fast path supports the published Performer layout only")
            projection = attn.fast_attention.projection_matrix.float()
            dim_head = projection.shape[1]
            scale = dim_head ** -0.25
            layers.append(cls(
                ln1=attn_wrapper.norm,
                wq=attn.to_q.weight, bq=attn.to_q.bias,
                wk=attn.to_k.weight, bk=attn.to_k.bias, wv=attn.to_v.weight, bv=attn.to_v.bias,
                wo=attn.to_out.weight, bo=attn.to_out.bias,
                ln2=ff_wrapper.norm, w1=feed_forward.w1, w2=feed_forward.w2,
                projection_t=(projection * scale).t().contiguous(),
                half_norm_scale=scale * scale / 2.0,
                heads=attn.heads,
            ))
        return layers

    @classmethod
    def from_performer_stack(cls, stack: nn.Module) -> list["LayerWeights"]:
        """A block's ``f``: a sequence of one-layer Performers."""
        return [layer for performer in stack for layer in cls.from_performer(performer)]


def chunked_layernorm_(norm: nn.LayerNorm, h: torch.Tensor, chunks: list[slice]) -> None:
    """``h = norm(h)`` in place, chunk by chunk (no second B x G x d copy)."""
    for part in chunks:
        h[:, part] = norm(h[:, part])


@dataclass
class FastOutput:
    """expr: B x G predictions (None when not requested); features: B x len(feature_index)
    x feature_dim gene-level embeddings for the requested genes (None when not requested)."""

    expr: torch.Tensor | None
    features: torch.Tensor | None


class FastPath:
    """Inference-only forward pass over a layout's network (eval mode, no grad).

    Build once per run (a layout caches what does not depend on the batch), then call
    per batch. ``gene_chunk`` bounds the working set of each layer (genes per chunk;
    default 1,024 on CPU, the whole vocabulary on GPUs); ``per_sample`` processes
    samples one at a time (smaller temporaries, but many more small kernels: slower
    with several threads). Subclasses implement ``_forward``.
    """

    def __init__(self, model: nn.Module, *, gene_chunk: int | None = None, per_sample: bool = False) -> None:
        if model.training:
            raise ValueError("the inference engine needs the model in eval mode (call model.eval())")
        self.model = model
        self.config = model.config
        device = model.graph_edge_index.device
        self.per_sample = bool(per_sample)
        # CPU: 1,024-gene chunks run the GEMMs at the rate 2,048 did (measured) with half the temporaries
        self.gene_chunk = gene_chunk or (1024 if device.type == "cpu" else 1 << 30)

    def __call__(
        self,
        x: torch.Tensor,
        mask_prob: float | torch.Tensor | None = None,
        *,
        want_expr: bool = True,
        feature_index: torch.Tensor | None = None,
    ) -> FastOutput:
        """``x``: B x G (log1p TPM, -10 where unmeasured). ``feature_index``: gene
        positions whose gene-level embeddings to return (None: no features)."""
        self.model._check_input(x)
        if isinstance(mask_prob, torch.Tensor) and mask_prob.dim() == 1 and mask_prob.shape[0] == x.shape[0]:
            probs = list(mask_prob.unbind(0))
        else:
            probs = [mask_prob] * x.shape[0]
        if not self.per_sample:
            return self._forward(x, mask_prob, want_expr, feature_index)
        parts = [self._forward(x[i:i + 1], probs[i], want_expr, feature_index) for i in range(x.shape[0])]
        return FastOutput(
            expr=torch.cat([p.expr for p in parts]) if want_expr else None,
            features=torch.cat([p.features for p in parts]) if feature_index is not None else None,
        )

    def _forward(self, x: torch.Tensor, mask_prob, want_expr: bool, feature_index: torch.Tensor | None) -> FastOutput:
        raise NotImplementedError

    def chunks(self, n: int) -> list[slice]:
        return [slice(start, min(start + self.gene_chunk, n)) for start in range(0, n, self.gene_chunk)]

    def outputs(self, x: torch.Tensor, h: torch.Tensor, want_expr: bool, feature_index: torch.Tensor | None,
                features_of, predict) -> FastOutput:
        """Chunk by chunk: ``z = features_of(h chunk)`` (the gene-level embedding),
        ``predict(z)`` (B x chunk predictions) where wanted, and the requested genes' ``z``."""
        pred = None
        if want_expr:
            pred = torch.empty(x.shape[0], x.shape[1], dtype=torch.float32, device=x.device)
        features = None
        if feature_index is not None:
            features = torch.empty(
                x.shape[0], feature_index.shape[0], self.config.feature_dim, dtype=torch.float32, device=x.device
            )
        for part in self.chunks(x.shape[1]):
            z = features_of(h[:, part])
            if want_expr:
                pred[:, part] = predict(z).float()
            if feature_index is not None:
                start, stop = part.start, part.stop
                inside = (feature_index >= start) & (feature_index < stop)
                if bool(inside.any()):
                    features[:, inside] = z[:, feature_index[inside] - start].float()
        return FastOutput(expr=pred, features=features)


def performer_layer_(h: torch.Tensor, w: LayerWeights, chunks: list[slice]) -> None:
    """One Performer layer, updating ``h`` (B x G x d) in place."""
    batch = h.shape[0]
    heads = w.heads
    inner = w.wq.shape[0]  # heads x dim_head (d in every published layout)
    dim_head = inner // heads
    # k and v in one GEMM; the fused weight is made per call (2 d^2 floats, ~1 ms), not held
    wkv = torch.cat([w.wk, w.wv])
    bkv = None if w.bk is None or w.bv is None else torch.cat([w.bk, w.bv])

    # pass 1: context = e_k^T [v, 1] with e_k = exp(u - s - max over all tokens and features)
    context = running_max = value_sum = None
    for part in chunks:
        normed = w.ln1(h[:, part])
        kv = F.linear(normed, wkv, bkv)
        size = kv.shape[1]
        with no_autocast(h.device):
            kv = kv.float()
            keys = kv[..., :inner].reshape(batch, size, heads, dim_head).transpose(1, 2)
            values = torch.cat(
                [kv[..., inner:].reshape(batch, size, heads, dim_head).transpose(1, 2),
                 kv.new_ones(batch, heads, size, 1)], dim=-1)
            u = torch.matmul(keys, w.projection_t)  # (B, H, T, m)
            chunk_max = u.amax(dim=(-1, -2))
            if running_max is None:
                running_max = chunk_max
            else:
                new_max = torch.maximum(running_max, chunk_max)
                context.mul_(torch.exp(running_max - new_max)[..., None, None])
                running_max = new_max
            shift = keys.square().sum(-1, keepdim=True).mul_(w.half_norm_scale).add_(running_max[..., None, None])
            e_k = u.sub_(shift).exp_()
            update = torch.matmul(e_k.transpose(-1, -2), values)  # (B, H, m, dh+1)
            context = update if context is None else context.add_(update)
            part_sum = values.sum(dim=-2)
            value_sum = part_sum if value_sum is None else value_sum.add_(part_sum)
    with no_autocast(h.device):
        context.add_(value_sum.unsqueeze(-2), alpha=_FAVOR_EPS)
        query_offset = context.sum(dim=-2, keepdim=True).mul_(_FAVOR_EPS)  # eps term of q'

    # pass 2: queries, attention output, residual, feed-forward, residual
    for part in chunks:
        block = h[:, part]
        normed = w.ln1(block)
        queries = F.linear(normed, w.wq, w.bq)
        size = queries.shape[1]
        with no_autocast(h.device):
            queries = queries.float().reshape(batch, size, heads, dim_head).transpose(1, 2)
            u = torch.matmul(queries, w.projection_t)
            shift = queries.square().sum(-1, keepdim=True).mul_(w.half_norm_scale).add_(u.amax(dim=-1, keepdim=True))
            e_q = u.sub_(shift).exp_()
            ratio = torch.matmul(e_q, context).add_(query_offset)  # (B, H, T, dh+1)
            attended = (ratio[..., :dim_head] / ratio[..., dim_head:]).transpose(1, 2).reshape(batch, size, inner)
        block = block + F.linear(attended.to(block.dtype), w.wo, w.bo)
        block = block + w.w2(F.gelu(w.w1(w.ln2(block))))
        h[:, part] = block


__all__ = ["FastOutput", "FastPath", "LayerWeights", "chunked_layernorm_", "performer_layer_"]
