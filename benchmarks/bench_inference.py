"""Inference speed and memory: the published algorithm vs the engine's default path,
one run, same weights (random init) and inputs, any layout's preset.

published: the model modules as released (performer-pytorch Performer, torch-geometric
  GCNConv message passing), called per batch as the release's extraction code does
  (v1/v2 under ``torch.no_grad``, bulkformer-latest under ``torch.inference_mode``):
  the gene tokens are recomputed for every batch and all outputs (predictions and
  B x G x F gene features) are held in RAM.
engine: ``bulkformer.inference.Engine`` (the layout's fast path: cached gene tokens, CSR
  graph matmul, chunked FAVOR+ with fused normaliser, ``inference_mode``), producing the
  same predictions and gene features, streamed per batch.

Each path runs in its own child process, one after the other, so that its peak
resident memory is its own: the peak RSS from the moment the model and inputs are built
(weights included: the ratio), and its growth over that (``*_forward_rss_mib``).

    .venv/bin/python benchmarks/bench_inference.py --preset 147M [--genes 2000 --samples 8 --batch-size 4]
    .venv/bin/python benchmarks/bench_inference.py --preset latest --genes 19973 --samples 2 --batch-size 1

The full vocabulary costs ~1 TFLOP per sample at 147M and ~3.5 at latest: minutes per
sample on a laptop CPU; --genes keeps CPU runs short (all costs are linear in genes).
Before it, a roofline line: the forward's FLOPs (torch's flop counter), this machine's
fp32 GEMM rate (measured in the same run on the model's feed-forward GEMM shape), the
rate each path achieved, and ``fp32_bound_speedup``: published time / the time of the
model's FLOPs at that GEMM rate, the most any fp32 implementation could gain here.

Last line: speedup_vs_published=<published time / engine time> max_abs_diff=<max |diff| over
predictions and the first batch's gene features, fp32> peak_rss_ratio=<published peak RSS /
engine peak RSS>
"""
from __future__ import annotations

import argparse
import json
import os
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


# how each layout's release runs its extraction loop (v1/v2: torch.no_grad; latest's
# extract_feature: torch.inference_mode)
PUBLISHED_GRAD_MODE = {"latest": torch.inference_mode}


def published(model: BulkFormer, values: np.ndarray, mask_prob: float, batch_size: int) -> tuple[np.ndarray, list]:
    expr, features = [], []
    model.sparse_graph = False  # torch-geometric message passing, as released
    device = next(model.parameters()).device
    with PUBLISHED_GRAD_MODE.get(model.config.version, torch.no_grad)():
        for start in range(0, values.shape[0], batch_size):
            out = model(torch.from_numpy(values[start:start + batch_size]).to(device), mask_prob)
            expr.append(out.expr.cpu().numpy())
            features.append(out.features.cpu().numpy())
    return np.concatenate(expr), features


def engine_run(engine: Engine, values: np.ndarray, mask_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictions, and the first batch's gene features (the rest are streamed and dropped)."""
    expr = np.empty(values.shape, dtype=np.float32)
    everything = np.arange(values.shape[1])
    first = None
    for batch in engine.stream(values, mask_prob, feature_index=everything):
        expr[batch.start:batch.stop] = batch.expr
        if first is None:
            first = batch.features
    return expr, first


def forward_flops(preset_name: str, n_genes: int, n_samples: int, seed: int) -> float:
    """Floating-point operations of ``n_samples`` published forward passes (torch's flop
    counter: matmuls and attention products; element-wise work and the graph's sparse
    product are left out), counted on a 256-gene model of the same preset and scaled
    to ``n_genes`` (every cost is linear in genes)."""
    from torch.utils.flop_counter import FlopCounterMode

    small = min(n_genes, 256)
    bundle, values, mask_prob = synthetic(preset_name, small, 1, seed)
    bundle.model.sparse_graph = False
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        bundle.model(torch.from_numpy(values), mask_prob)
    return float(counter.get_total_flops()) * n_genes / small * n_samples


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


def reset_peak_rss() -> None:
    """Start the peak-RSS count afresh (Linux: writing 5 to clear_refs resets VmHWM), so
    that building the model and inputs does not count as the path's peak."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_bytes() -> int:
    """This process's peak resident set since the last reset (VmHWM)."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def run_path(args: argparse.Namespace) -> None:
    """One path in this (child) process: build, warm up, time, save its outputs, report."""
    bundle, values, mask_prob = synthetic(args.preset, args.genes, args.samples, args.seed)
    device = torch.device(args.device)
    gc.collect()
    setup_rss = current_rss_bytes()
    reset_peak_rss()
    if args.path == "published":
        model = bundle.model.to(device)
        run = lambda rows: published(model, values[rows], mask_prob, args.batch_size)  # noqa: E731
    else:
        engine = Engine.create(bundle, device=device, precision=args.precision, batch_size=args.batch_size,
                               progress=False)
        run = lambda rows: engine_run(engine, values[rows], mask_prob)  # noqa: E731
    run(slice(0, 1))  # warm-up on one sample (allocator, thread pools, lazy init)
    (expr, features), seconds = timed(lambda: run(slice(None)), device)
    first = features[0] if isinstance(features, list) else features
    np.save(Path(args.save) / f"{args.path}_expr.npy", expr)
    np.save(Path(args.save) / f"{args.path}_features.npy", first)
    peak_gpu = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss_bytes(), "setup_rss": setup_rss,
                      "peak_gpu": peak_gpu, "nonzero": float((expr != 0).mean())}))


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def in_child(args: argparse.Namespace, path: str, save: Path) -> dict:
    command = [sys.executable, __file__, "--path", path, "--save", str(save)]
    for name in ("preset", "genes", "samples", "batch_size", "device", "seed"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.precision:
        command += ["--precision", args.precision]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the {path} path failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="147M")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default=None, help="engine precision (default: fp32 on CPU, bf16 on GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", choices=("published", "engine"), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        run_path(args)
        return

    device = torch.device(args.device)
    print(f"preset={args.preset} genes={args.genes} samples={args.samples} batch_size={args.batch_size} "
          f"device={device} threads={torch.get_num_threads()} cuda_available={torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        print("note: no GPU on this machine; CPU figures only")
    with tempfile.TemporaryDirectory() as scratch:
        # each path in its own process, one after the other: its peak RSS is its own
        reference = in_child(args, "published", Path(scratch))
        fast = in_child(args, "engine", Path(scratch))
        outputs = {name: (np.load(Path(scratch) / f"{name}_expr.npy"), np.load(Path(scratch) / f"{name}_features.npy"))
                   for name in ("published", "engine")}
    expr_diff = float(np.abs(outputs["engine"][0] - outputs["published"][0]).max())
    feature_diff = float(np.abs(outputs["engine"][1] - outputs["published"][1]).max())
    diff = max(expr_diff, feature_diff)
    print(f"expr_max_abs_diff={expr_diff:.2e} feature_max_abs_diff={feature_diff:.2e} "
          f"expr_fraction_nonzero={reference['nonzero']:.3f}")
    t_published, t_engine = reference["seconds"], fast["seconds"]
    flops = forward_flops(args.preset, args.genes, args.samples, args.seed)
    dim = preset(args.preset).dim
    peak = gemm_rate(min(args.batch_size * args.genes, 8192), dim, device)
    print(f"tflop_forward={flops / 1e12:.3f} gemm_fp32_gflops={peak / 1e9:.0f} "
          f"published_gflops={flops / t_published / 1e9:.0f} engine_gflops={flops / t_engine / 1e9:.0f} "
          f"fp32_bound_speedup={t_published / (flops / peak):.2f}")
    mib = 1 << 20
    print(f"published_peak_rss_mib={reference['peak_rss'] / mib:.0f} engine_peak_rss_mib={fast['peak_rss'] / mib:.0f} "
          f"published_forward_rss_mib={(reference['peak_rss'] - reference['setup_rss']) / mib:.0f} "
          f"engine_forward_rss_mib={(fast['peak_rss'] - fast['setup_rss']) / mib:.0f} "
          f"setup_rss_mib={reference['setup_rss'] / mib:.0f}")
    if device.type == "cuda":
        print(f"published_peak_gpu_mib={reference['peak_gpu'] / mib:.0f} engine_peak_gpu_mib={fast['peak_gpu'] / mib:.0f}")
    print(f"published_s={t_published:.2f} engine_s={t_engine:.2f} "
          f"published_s_per_sample={t_published / args.samples:.3f} engine_s_per_sample={t_engine / args.samples:.3f}")
    print(f"speedup_vs_published={t_published / t_engine:.2f} max_abs_diff={diff:.2e} "
          f"peak_rss_ratio={reference['peak_rss'] / fast['peak_rss']:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
