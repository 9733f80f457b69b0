"""Pretraining's data path: gzip text shards read and prepared every epoch vs a prepared corpus.

Simulates ``--samples`` counts over the first ``--genes`` vocabulary genes (default: the
whole shipped vocabulary, 19,417), writes them as ``--shards`` gzip TSV shards, then
times the same pretraining steps (mask, forward, backward, AdamW) of a small model fed

* from the text shards as pretraining read them before issue 28: every epoch re-reads and
  re-prepares every shard (``bulkformer.training.data.Corpus`` over the files), and
* from a corpus ``bulkformer.corpus.prepare_corpus`` wrote once (zarr), streamed by the
  ``torch.utils.data`` loader pretraining now uses (``--workers`` processes),

for ``--epochs`` epochs each, in one run. The model is small on purpose (d = ``--dim``,
one Performer layer, over the first ``--model-genes`` vocabulary genes as in the TCGA run
of issue 28; the shards hold every vocabulary gene, as raw tables do): the point is the
data path. Last line::

    steps_per_s_text=<a> steps_per_s_corpus=<b> corpus_speedup=<b/a> prepare_s=<c>

``prepare_s`` is the one-off cost of preparing the corpus (it pays for itself after
prepare_s / (1/a - 1/b) steps). Run: ``python benchmarks/bench_corpus.py`` (~3-4 min on 2 cores).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--genes", type=int, default=None, help="first N vocabulary genes (default: all)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--model-genes", type=int, default=1000,
                        help="the model's vocabulary: the first N genes (the issue's TCGA run: 1,000; 0: all)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bulkformer.annotation import default_vocabulary

    vocabulary = default_vocabulary()
    vocabulary = vocabulary if args.genes is None else vocabulary.iloc[:args.genes].reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as folder:
        run(args, vocabulary, Path(folder))


def run(args: argparse.Namespace, vocabulary, work: Path) -> None:
    import bulkformer
    from bulkformer.corpus import CorpusSettings, prepare_corpus
    from bulkformer.corpus.stream import StepLayout
    from bulkformer.model import PRESETS, BulkFormer, layout_of
    from bulkformer.training.config import PretrainConfig
    from bulkformer.training.data import build_corpus
    from bulkformer.training.distributed import init_distributed
    from bulkformer.training.rows import TrainingRows
    from bulkformer.training.schedule import warmup_cosine
    from bulkformer.training.steps import Trainee, train_step

    clock = time.perf_counter()
    cohort = bulkformer.simulate_cohort(n_samples=args.samples, vocabulary=vocabulary, n_genes=None, seed=0,
                                        missing_fraction=0.0)
    for i, rows in enumerate(np.array_split(np.arange(args.samples), args.shards)):
        cohort.counts.iloc[rows].to_csv(work / f"shard{i:03d}.tsv.gz", sep="\t")
    print(f"wrote {args.shards} gzip TSV shards of {args.samples} samples x {len(vocabulary)} genes "
          f"({sum(p.stat().st_size for p in work.glob('*.gz')) / 1e6:.0f} MB) in {time.perf_counter() - clock:.0f} s",
          flush=True)

    config = PretrainConfig(batch_size=args.batch_size, lr=1e-3, seed=0)
    ctx = init_distributed("cpu")
    model_genes = vocabulary if not args.model_genes else vocabulary.iloc[:args.model_genes].reset_index(drop=True)
    model_config = layout_of(PRESETS["37M"]).resize(PRESETS["37M"], n_genes=len(model_genes), dim=args.dim, layers=1,
                                                    heads=2, dropout=0.0)
    layout = StepLayout(args.batch_size)
    n_steps = args.epochs * (args.samples // args.batch_size)

    def timed(batches) -> float:
        torch.manual_seed(0)
        net = BulkFormer(model_config, torch.zeros((2, 0), dtype=torch.long), torch.zeros(0)).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr)
        trainee = Trainee(net, net, net, list(net.parameters()), optimizer, warmup_cosine(optimizer, n_steps))
        start, done = time.perf_counter(), 0
        for batch in batches:
            train_step(trainee, batch, ctx, config, step=done, mask_fraction=0.15, mask_fraction_max=None,
                       observed_weight=0.0, use_bf16=False)
            done += 1
        assert done == n_steps, (done, n_steps)
        return done / (time.perf_counter() - start)

    text = build_corpus(sorted(work.glob("*.tsv.gz")), model_genes, input="counts", min_matched_fraction=0.0)

    def text_batches():
        for epoch in range(args.epochs):
            for _, batch in text.batches(args.batch_size, epoch, config.seed):
                yield torch.from_numpy(batch)

    steps_text = timed(text_batches())
    print(f"text shards: {steps_text:.2f} steps/s", flush=True)

    clock = time.perf_counter()
    corpus = prepare_corpus(sorted(work.glob("*.tsv.gz")), work / "corpus", model_genes, progress=False,
                            settings=CorpusSettings(dtype=args.dtype, min_matched_fraction=0.0))
    prepare_s = time.perf_counter() - clock
    rows = TrainingRows.from_prepared(corpus, window=2)

    def corpus_batches():
        for epoch in range(args.epochs):
            for _, batch in rows.steps(layout, epoch, config.seed, 0, workers=args.workers):
                yield batch

    steps_corpus = timed(corpus_batches())
    print(f"prepared corpus ({args.dtype}, {args.workers} worker(s)): {steps_corpus:.2f} steps/s; prepared in "
          f"{prepare_s:.0f} s", flush=True)
    print(f"steps_per_s_text={steps_text:.3f} steps_per_s_corpus={steps_corpus:.3f} "
          f"corpus_speedup={steps_corpus / steps_text:.2f} prepare_s={prepare_s:.1f}")


if __name__ == "__main__":
    main()
