"""Peak memory of gene-level embeddings: ``bulkformer.embed(level="gene")`` streams the
samples x genes x (d+3) tensor batch by batch into a zarr store, so peak memory stays
flat in the number of samples. The published procedure stacks every sample's
G x (d+3) floats in RAM: 51 MB per sample at d = 640 and 20,010 genes (>= 51 GB for
1,000 samples); its estimate for the chosen size is printed for comparison.

    .venv/bin/python benchmarks/bench_gene_embeddings.py --samples 1000 --preset 147M --genes 256

Random-weight model of the preset's shape over the first --genes vocabulary genes
(the full 20,010 genes cost ~1 TFLOP per sample at 147M: hours on CPU; memory per
batch is linear in genes, see the printed estimate). Run twice with different
--samples to see that peak_rss_gb does not move.
Last line: peak_rss_gb=<peak resident set size of this process, GB>
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import bulkformer
from bulkformer.bundle import Bundle
from bulkformer.model import BulkFormer, preset


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--preset", default="147M")
    parser.add_argument("--genes", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--out", default=None, help="store path (default: a temporary directory, removed afterwards)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from bulkformer.annotation import default_vocabulary

    torch.manual_seed(args.seed)
    genes = default_vocabulary().iloc[:args.genes].reset_index(drop=True)
    n_genes = len(genes)
    config = preset(args.preset, n_genes=n_genes)
    generator = torch.Generator().manual_seed(args.seed)
    receivers = torch.arange(n_genes).repeat_interleave(20)
    senders = torch.randint(0, n_genes, (receivers.shape[0],), generator=generator)
    bundle = Bundle(model=BulkFormer(config, torch.stack([receivers, senders]), torch.rand(receivers.shape[0]) + 0.4).eval(),
                    genes=genes)
    rng = np.random.default_rng(args.seed)
    log_tpm = pd.DataFrame(rng.gamma(1.5, 1.2, size=(args.samples, n_genes)).clip(max=12).astype(np.float32),
                           index=[f"s{i}" for i in range(args.samples)], columns=genes["ensembl_id"])
    log_tpm = log_tpm.iloc[:, : max(1, int(n_genes * 0.9))]  # the cohort lacks 10% of the vocabulary
    baseline = peak_rss_gb()

    scratch = None
    if args.out is None:
        scratch = Path(tempfile.mkdtemp(prefix="bench_gene_emb_"))
        out = scratch / "genes.zarr"
    else:
        out = Path(args.out)
    start = time.perf_counter()
    try:
        bulkformer.embed(log_tpm, bundle, level="gene", input="logtpm", out=out, dtype=args.dtype,
                         batch_size=args.batch_size, progress=False)
        elapsed = time.perf_counter() - start
        store = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e9
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    width = config.feature_dim
    published = args.samples * n_genes * width * 4 / 1e9
    full_width = args.samples * 20_010 * (config.dim + 3) * 4 / 1e9
    per_batch_full = args.batch_size * 20_010 * (config.dim + 3) * 4 / 1e9
    print(f"preset={args.preset} samples={args.samples} genes={n_genes} batch_size={args.batch_size} dtype={args.dtype} "
          f"cuda_available={torch.cuda.is_available()} seconds={elapsed:.1f} store_gb={store:.3f}")
    print(f"rss_before_embed_gb={baseline:.2f} published_in_memory_gb={published:.2f} "
          f"published_in_memory_gb_at_20010_genes={full_width:.1f} engine_batch_features_gb_at_20010_genes={per_batch_full:.2f}")
    print(f"peak_rss_gb={peak_rss_gb():.2f}")


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
