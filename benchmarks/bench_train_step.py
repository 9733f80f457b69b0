"""Training-step speed: the graph convolution as torch-geometric message passing (as
released) vs the CSR matmul the model uses by default, one run, same weights and batch;
also the CSR matmul with torch's own backward (which transposes the adjacency on every
step) vs the model's precomputed transpose.

A step is what ``pretrain`` does per batch: mask 15%, forward, masked MSE, backward,
AdamW. Message passing materialises one d-vector per edge and sample (20 per gene), so
it costs time and activation memory that grow with 20 x the hidden state; the CSR
matmul reads the hidden state once.

    .venv/bin/python benchmarks/bench_train_step.py                      # the TCGA bench's model
    .venv/bin/python benchmarks/bench_train_step.py --dim 640 --heads 8 --layers 2 --genes 2000 --batch-size 2

Last line: speedup_vs_message_passing=<message-passing step time / CSR step time>
speedup_vs_csr_autograd=<step time with torch's CSR backward / CSR step time>
max_grad_rel_diff=<max |gradient difference| over all parameters / largest |gradient| entry>
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from bulkformer.model import BulkFormer, graph_conv, preset
from bulkformer.training.masking import mask_measured
from bench_inference import random_graph  # benchmarks/ is on sys.path when run as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)

    config = replace(preset("37M", n_genes=args.genes), dim=args.dim, full_head=args.heads, p_repeat=args.layers,
                     attn_dropout=0.0, ff_dropout=0.0)
    model = BulkFormer(config, *random_graph(args.genes, generator)).train()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [torch.distributions.Gamma(1.5, 1 / 1.2).sample((args.batch_size, args.genes)) for _ in range(4)]
    parameters = [p for p in model.parameters() if p.requires_grad]

    def run(sparse_graph: bool) -> tuple[float, list[torch.Tensor]]:
        model.load_state_dict(initial)
        model.sparse_graph = sparse_graph
        optimizer = torch.optim.AdamW(parameters, lr=1e-4)
        first_grads: list[torch.Tensor] = []
        started = 0.0
        for step in range(args.steps + 1):  # step 0 warms up and is not timed
            if step == 1:
                started = time.perf_counter()
            x = batches[step % len(batches)]
            masked, mask = mask_measured(x, 0.15, torch.Generator().manual_seed(step))
            loss = ((model(masked).expr - x) ** 2)[mask].mean()
            optimizer.zero_grad()
            loss.backward()
            if step == 0:
                first_grads = [p.grad.clone() for p in parameters]
            optimizer.step()
        return (time.perf_counter() - started) / args.steps, first_grads

    t_passing, g_passing = run(False)
    t_sparse, g_sparse = run(True)
    propagate = graph_conv.propagate
    # torch's CSR backward: A^T derived anew in every backward pass
    graph_conv.propagate = lambda dense, rows, columns, values, *transpose: torch.sparse.mm(
        graph_conv._csr((rows, columns, values)), dense)
    try:
        t_autograd, _ = run(True)
    finally:
        graph_conv.propagate = propagate
    # relative to the largest gradient entry: a parameter whose gradient cancels to ~1e-8
    # would otherwise turn float rounding into a large ratio
    scale = max(float(g.abs().max()) for g in g_passing)
    diff = max(float((a - b).abs().max()) for a, b in zip(g_sparse, g_passing)) / scale
    print(f"genes={args.genes} dim={args.dim} layers={args.layers} batch={args.batch_size} threads={args.threads} "
          f"message_passing_ms={t_passing * 1e3:.1f} csr_autograd_ms={t_autograd * 1e3:.1f} csr_ms={t_sparse * 1e3:.1f}")
    print(f"speedup_vs_message_passing={t_passing / t_sparse:.2f} speedup_vs_csr_autograd={t_autograd / t_sparse:.2f} "
          f"max_grad_rel_diff={diff:.1e}")


if __name__ == "__main__":
    main()
