"""Inference speed: the published algorithm vs the engine's default path, one run,
same weights (random init) and inputs.

published: the model modules as released (performer-pytorch FAVOR+, torch-geometric
  GCNConv), called per batch under ``torch.no_grad`` as the release's extraction code
  does: the gene-token embedding is recomputed for every batch and all outputs
  (predictions and B x G x (d+3) gene features) are held in RAM.
engine: ``bulkformer.inference.Engine`` (default path: cached gene tokens, CSR graph
  matmul, chunked FAVOR+ with fused normaliser, ``inference_mode``), producing the same
  predictions and gene features, streamed per batch.

    .venv/bin/python benchmarks/bench_inference.py --preset 147M [--genes 2000 --samples 8 --batch-size 4]

The full vocabulary (--genes 20010) costs ~1 TFLOP per sample at 147M: minutes per
sample on a laptop CPU; --genes keeps CPU runs short (all costs are linear in genes).
Before it, a roofline line: the model's multiply-add count, this machine's fp32 GEMM
rate (measured in the same run on the model's largest GEMM shape), the rate each path
achieved, and ``fp32_bound_speedup``: published time / the time of the model's FLOPs at
that GEMM rate, the most any fp32 implementation could gain over the published path here.

Last line: speedup_vs_published=<published time / engine time> max_abs_diff=<max |diff| over predictions
and the first batch's gene features, fp32>
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from bulkformer.bundle import Bundle
from bulkformer.inference.execution import Engine
from bulkformer.model import BulkFormer, preset


def random_graph(n_genes: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Receiver-first edge index and weights: 20 random partners per gene, |r|-like
    weights in [0.4, 1) (the released graphs' shape)."""
    receivers = torch.arange(n_genes).repeat_interleave(20)
    senders = torch.randint(0, n_genes, (receivers.shape[0],), generator=generator)
    weights = torch.rand(receivers.shape[0], generator=generator) * 0.6 + 0.4
    return torch.stack([receivers, senders]), weights


def synthetic(preset_name: str, n_genes: int, n_samples: int, seed: int) -> tuple[Bundle, np.ndarray, float]:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    config = preset(preset_name, n_genes=n_genes)
    model = BulkFormer(config, *random_graph(n_genes, generator)).eval()
    import pandas as pd

    genes = pd.DataFrame({"ensembl_id": [f"ENSG{i:011d}" for i in range(n_genes)]})
    rng = np.random.default_rng(seed)
    values = rng.gamma(1.5, 1.2, size=(n_samples, n_genes)).astype(np.float32)
    unmeasured = rng.random(n_genes) < 0.1
    values[:, unmeasured] = -10.0
    return Bundle(model=model, genes=genes), values, float(unmeasured.mean())


def published(model: BulkFormer, values: np.ndarray, mask_prob: float, batch_size: int) -> tuple[np.ndarray, list]:
    expr, features = [], []
    model.sparse_graph = False  # torch-geometric message passing, as released
    with torch.no_grad():
        for start in range(0, values.shape[0], batch_size):
            out = model(torch.from_numpy(values[start:start + batch_size]), mask_prob)
            expr.append(out.expr.numpy())
            features.append(out.features.numpy())
    return np.concatenate(expr), features


def engine_run(engine: Engine, values: np.ndarray, mask_prob: float) -> np.ndarray:
    expr = np.empty(values.shape, dtype=np.float32)
    everything = np.arange(values.shape[1])
    for batch in engine.stream(values, mask_prob, feature_index=everything):
        expr[batch.start:batch.stop] = batch.expr  # features are streamed (discarded here)
    return expr


def forward_flops(config, n_samples: int, batch_size: int, gene_tokens_per_batch: bool) -> float:
    """Floating-point operations (2 per multiply-add) of the dense and attention math of
    ``n_samples`` forward passes; element-wise work and the sparse graph product are left out."""
    d, n, heads = config.dim, config.n_genes, config.full_head
    dim_head = d // heads
    m = int(dim_head * math.log(dim_head))  # FAVOR+ random features (performer-pytorch default)
    layers = config.gb_repeat * config.p_repeat
    per_token = (
        16 * d * d  # x_proj MLP d -> 4d -> d
        + config.gb_repeat * 2 * d * d  # graph convolution's linear map
        + layers * (24 * d * d + 4 * d * m + 4 * heads * m * (dim_head + 1))  # q,k,v,out + FF; feature maps; k'v, q'(k'v)
        + 2 * ((d + 3) * d + d)  # v2 head
    )
    per_sample = n * per_token + 2 * (n * 4 * d + 4 * d * d)  # + the whole-profile context MLP
    table = config.gene_table_dim or d
    gene_tokens = 2 * n * (table * 4 * d + 4 * d * d)
    batches = math.ceil(n_samples / batch_size) if gene_tokens_per_batch else 1
    return float(n_samples * per_sample + batches * gene_tokens)


def timed(fn, device: torch.device):
    """(fn(), wall seconds), with the device's queued work inside the measurement."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def gemm_rate(rows: int, dim: int, device: torch.device, repeats: int = 5) -> float:
    """fp32 FLOP/s of this machine on the model's feed-forward GEMM shape (rows x d) @ (d x 4d)."""
    a = torch.randn(rows, dim, device=device)
    w = torch.randn(4 * dim, dim, device=device)
    torch.nn.functional.linear(a, w)
    _, seconds = timed(lambda: [torch.nn.functional.linear(a, w) for _ in range(repeats)], device)
    return repeats * 2.0 * rows * dim * 4 * dim / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="147M")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default=None, help="engine precision (default: fp32 on CPU, bf16 on GPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    bundle, values, mask_prob = synthetic(args.preset, args.genes, args.samples, args.seed)
    device = torch.device(args.device)
    print(f"preset={args.preset} genes={args.genes} samples={args.samples} batch_size={args.batch_size} "
          f"device={device} threads={torch.get_num_threads()} cuda_available={torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        print("note: no GPU on this machine; CPU figures only")
    engine = Engine.create(bundle, device=device, precision=args.precision, batch_size=args.batch_size, progress=False)
    print(f"engine precision={engine.precision}")
    model = bundle.model

    # warm-up both paths on one sample (allocator, thread pools, lazy init)
    published(model, values[:1], mask_prob, 1)
    engine_run(engine, values[:1], mask_prob)

    (reference, held), t_published = timed(lambda: published(model, values, mask_prob, args.batch_size), device)
    fast, t_engine = timed(lambda: engine_run(engine, values, mask_prob), device)
    # after timing: the first batch's gene features too (random heads may output ReLU zeros)
    first = next(engine.stream(values, mask_prob, feature_index=np.arange(values.shape[1]),
                               rows=range(min(args.batch_size, values.shape[0]))))
    feature_diff = float(np.abs(first.features - held[0]).max())
    del held
    diff = max(float(np.abs(fast - reference).max()), feature_diff)
    print(f"expr_max_abs_diff={float(np.abs(fast - reference).max()):.2e} feature_max_abs_diff={feature_diff:.2e} "
          f"expr_fraction_nonzero={float((reference != 0).mean()):.3f}")
    config = model.config
    published_flops = forward_flops(config, args.samples, args.batch_size, gene_tokens_per_batch=True)
    engine_flops = forward_flops(config, args.samples, args.batch_size, gene_tokens_per_batch=False)
    peak = gemm_rate(min(args.batch_size * args.genes, 8192), config.dim, device)
    print(f"tflop_published={published_flops / 1e12:.3f} tflop_engine={engine_flops / 1e12:.3f} "
          f"gemm_fp32_gflops={peak / 1e9:.0f} published_gflops={published_flops / t_published / 1e9:.0f} "
          f"engine_gflops={engine_flops / t_engine / 1e9:.0f} "
          f"fp32_bound_speedup={t_published / (engine_flops / peak):.2f}")
    print(f"published_s={t_published:.2f} engine_s={t_engine:.2f} "
          f"published_s_per_sample={t_published / args.samples:.3f} engine_s_per_sample={t_engine / args.samples:.3f}")
    print(f"speedup_vs_published={t_published / t_engine:.2f} max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
