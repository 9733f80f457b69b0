"""Native fused kernel vs the NumPy path: counts -> aligned log1p TPM.

2,000 samples x 60,000 genes of synthetic integer counts (negative binomial around
log-normal gene means), 19,4xx of the genes mapped onto the default vocabulary in
shuffled order (the rest only count in the TPM denominator), lengths from the shipped
annotation. Each backend runs in its own process so that peak memory is its own:
peak extra memory = peak RSS during the call minus RSS just before it (the input
already resident), via /proc/self/status VmHWM reset with /proc/self/clear_refs;
tracemalloc's peak is printed alongside. Time = best of --repeats.

    .venv/bin/python benchmarks/bench_preprocess.py [--samples 2000 --genes 60000 --threads N]

Last line: preprocess_speedup=<NumPy time / native time> memory_ratio=<native / NumPy peak extra memory>
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def make_inputs(n_samples: int, n_genes: int, seed: int = 0):
    from bulkformer.annotation import default_vocabulary

    rng = np.random.default_rng(seed)
    vocabulary = default_vocabulary()
    n_vocab = len(vocabulary)
    column_index = np.full(n_genes, -1, dtype=np.int64)
    mapped = rng.choice(n_genes, size=min(n_vocab, n_genes), replace=False)
    column_index[mapped] = rng.permutation(n_vocab)[: mapped.size]
    vocabulary_lengths = vocabulary["length"].astype("float64").fillna(1000.0).to_numpy()
    lengths = rng.uniform(300, 8000, n_genes)
    lengths[mapped] = vocabulary_lengths[column_index[mapped]]
    means = np.exp(rng.normal(1.5, 2.0, n_genes))
    counts = np.empty((n_samples, n_genes), dtype=np.int32)
    for start in range(0, n_samples, 100):  # block-wise: no input-sized temporaries
        stop = min(start + 100, n_samples)
        p = 1.0 / (1.0 + means * 0.2)  # negative binomial, dispersion 0.2
        counts[start:stop] = rng.negative_binomial(5.0, p, size=(stop - start, n_genes))
    return counts, column_index, lengths, n_vocab


def run_one(backend: str, n_samples: int, n_genes: int, repeats: int, threads: int | None) -> dict:
    from bulkformer.preprocess.normalize import transform_aligned

    counts, column_index, lengths, n_vocab = make_inputs(n_samples, n_genes)
    result = {}
    times = []
    for attempt in range(repeats):
        out = None
        reset = _reset_peak()
        rss_before = _status_kb("VmRSS")
        if attempt == 0:
            tracemalloc.start()
        start = time.perf_counter()
        out = transform_aligned(counts, column_index, n_vocab, lengths_bp=lengths, backend=backend, n_threads=threads)
        times.append(time.perf_counter() - start)
        if attempt == 0:
            _, traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result["peak_extra_mb"] = (_status_kb("VmHWM") - rss_before) / 1024 if reset else float("nan")
            result["traced_peak_mb"] = traced_peak / 2**20
            result["checksum"] = float(np.float64(out[:, :100]).sum())
            np.save(os.environ["BENCH_OUT"], out[:50])
        del out
    result["seconds"] = min(times)
    result["all_seconds"] = times
    # the whole prepare() call (ID mapping, validation, kernel) on the same matrix, once
    from bulkformer.annotation import default_vocabulary
    from bulkformer.preprocess import prepare

    vocabulary = default_vocabulary()
    gene_ids = np.array([f"ENSG99{j:09d}" for j in range(n_genes)], dtype=object)
    gene_ids[column_index >= 0] = vocabulary["ensembl_id"].to_numpy()[column_index[column_index >= 0]]
    start = time.perf_counter()
    prepare(counts, vocabulary, genes=gene_ids, backend=backend, n_threads=threads)
    result["prepare_seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--genes", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="native threads (default: all cores)")
    parser.add_argument("--worker", choices=["native", "numpy"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_one(args.worker, args.samples, args.genes, args.repeats, args.threads)))
        return

    from bulkformer.preprocess import native_available

    if not native_available():
        sys.exit("the native kernel is not built: pip install -e . (needs a C++ compiler with OpenMP)")
    import tempfile

    results = {}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("numpy", "native"):
            env = dict(os.environ, BENCH_OUT=os.path.join(tmp, f"{backend}.npy"))
            command = [sys.executable, __file__, "--worker", backend, "--samples", str(args.samples),
                       "--genes", str(args.genes), "--repeats", str(args.repeats)]
            if args.threads:
                command += ["--threads", str(args.threads)]
            completed = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            results[backend] = json.loads(completed.stdout.strip().splitlines()[-1])
            outputs[backend] = np.load(env["BENCH_OUT"])
            print(f"{backend}: best {results[backend]['seconds']:.3f} s of {results[backend]['all_seconds']}, "
                  f"peak extra RSS {results[backend]['peak_extra_mb']:.0f} MB, "
                  f"tracemalloc peak {results[backend]['traced_peak_mb']:.0f} MB")
    reference = outputs["numpy"].astype(np.float64)
    relative = np.abs(outputs["native"] - reference) / np.maximum(np.abs(reference), 1e-12)
    print(f"whole prepare() call: numpy {results['numpy']['prepare_seconds']:.2f} s, "
          f"native {results['native']['prepare_seconds']:.2f} s")
    print(f"samples={args.samples} genes={args.genes} cores={os.cpu_count()} threads={args.threads or 'all'} "
          f"load_average={os.getloadavg()[0]:.2f} max_relative_diff={relative.max():.2e}")
    speedup = results["numpy"]["seconds"] / results["native"]["seconds"]
    memory_ratio = results["native"]["peak_extra_mb"] / results["numpy"]["peak_extra_mb"]
    print(f"preprocess_speedup={speedup:.2f} memory_ratio={memory_ratio:.3f}")


if __name__ == "__main__":
    main()
