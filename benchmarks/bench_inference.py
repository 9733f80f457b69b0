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
Last line: speedup_vs_published=<published time / engine time> max_abs_diff=<max |diff| over predictions
and the first batch's gene features, fp32>
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from bulkformer.bundle import Bundle
from bulkformer.inference.execution import Engine
from bulkformer.model import BulkFormer, preset


def synthetic(preset_name: str, n_genes: int, n_samples: int, seed: int) -> tuple[Bundle, np.ndarray, float]:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    config = preset(preset_name, n_genes=n_genes)
    receivers = torch.arange(n_genes).repeat_interleave(20)
    senders = torch.randint(0, n_genes, (receivers.shape[0],), generator=generator)
    weights = torch.rand(receivers.shape[0], generator=generator) * 0.6 + 0.4
    model = BulkFormer(config, torch.stack([receivers, senders]), weights).eval()
    import pandas as pd

    genes = pd.DataFrame({"ensembl_id": [f"ENSG{i:011d}" for i in range(n_genes)]})
    rng = np.random.default_rng(seed)
    values = rng.gamma(1.5, 1.2, size=(n_samples, n_genes)).astype(np.float32)
    unmeasured = rng.random(n_genes) < 0.1
    values[:, unmeasured] = -10.0
    return Bundle(model=model, genes=genes), values, float(unmeasured.mean())


def published(model: BulkFormer, values: np.ndarray, mask_prob: float, batch_size: int) -> tuple[np.ndarray, list]:
    expr, features = [], []
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

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return result, time.perf_counter() - start

    (reference, held), t_published = timed(lambda: published(model, values, mask_prob, args.batch_size))
    fast, t_engine = timed(lambda: engine_run(engine, values, mask_prob))
    # after timing: the first batch's gene features too (random heads may output ReLU zeros)
    first = next(engine.stream(values, mask_prob, feature_index=np.arange(values.shape[1]),
                               rows=range(min(args.batch_size, values.shape[0]))))
    feature_diff = float(np.abs(first.features - held[0]).max())
    del held
    diff = max(float(np.abs(fast - reference).max()), feature_diff)
    print(f"expr_max_abs_diff={float(np.abs(fast - reference).max()):.2e} feature_max_abs_diff={feature_diff:.2e} "
          f"expr_fraction_nonzero={float((reference != 0).mean()):.3f}")
    print(f"published_s={t_published:.2f} engine_s={t_engine:.2f} "
          f"published_s_per_sample={t_published / args.samples:.3f} engine_s_per_sample={t_engine / args.samples:.3f}")
    print(f"speedup_vs_published={t_published / t_engine:.2f} max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
