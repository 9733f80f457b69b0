"""GPU readiness in one short run (under 8 minutes on one H100/H200-class GPU).

Sections, each bounded in time and reported even when another fails:

1. fidelity: every published layout (the ../shared reference fixtures: v1, v2,
   bulkformer-latest) on CUDA at fp32 against the CPU run and the fixture's published
   outputs (both graph-convolution paths and the engine's fast path; target <= 1e-4),
   and the engine under bf16 autocast (its error is reported, not judged).
2. inference: ``bench_inference.py`` on CUDA for the 147M and latest presets over the
   full vocabulary (published algorithm vs engine: speed, peak GPU memory, agreement at
   fp32; then the engine at bf16), and the largest batch of the latest preset that fits
   in GPU memory, for the engine and for the published algorithm.
3. pretraining: a simulated full-vocabulary cohort prepared once with
   ``bulkformer prepare-corpus`` (timed), then 1-GPU torchrun (NCCL) DDP runs of
   ``bulkformer pretrain`` on that corpus (DataLoader workers, pinned memory) with
   ``--compile`` and bf16, timed per optimizer step (torch's global optimizer-step
   hook): samples per second after warm-up, for latest-small and the latest preset.

On a bare GPU machine (torch only), carry as wheels what it imports besides torch:
performer-pytorch 1.1.4 (with local-attention, axial-positional-embedding,
hyper-connections, torch-einops-utils), torch-geometric, and for the pretraining section
zarr 3 (with numcodecs, donfig, google-crc32c); a section whose packages are missing
says so and is skipped.

Without a CUDA GPU it prints that it skipped and exits 0 (``--allow-cpu`` runs every
section on the CPU at toy sizes, which is how the script itself is tested).

    bash benchmarks/gpu_check.sh [--fixtures ../shared/fixtures/reference] [--budget-s 450] [--out DIR]

Last line: ``gpu_check fidelity_max_abs_diff=<a> bf16_max_abs_diff=<b> ...`` (the figures
named there are the ones to quote).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
FIDELITY_TOLERANCE = 1e-4
SUMMARY: dict[str, object] = {}


def say(line: str) -> None:
    print(line, flush=True)


class Clock:
    """The run's time budget: each section asks for a share and is skipped when none is left."""

    def __init__(self, budget_s: float) -> None:
        self.deadline = time.monotonic() + budget_s

    def left(self) -> float:
        return self.deadline - time.monotonic()


# what each section imports besides torch and the project's core dependencies
SECTION_PACKAGES = {
    "fidelity": ("performer_pytorch", "torch_geometric"),
    "inference": ("performer_pytorch", "torch_geometric"),
    "pretraining": ("performer_pytorch", "torch_geometric", "zarr"),
}


def missing_packages(name: str) -> list[str]:
    import importlib.util

    return [module for module in SECTION_PACKAGES.get(name, ()) if importlib.util.find_spec(module) is None]


def section(name: str, clock: Clock, needs_s: float, body: Callable[[], None]) -> None:
    missing = missing_packages(name)
    if missing:
        say(f"[{name}] skipped: Python packages missing here: {', '.join(missing)} (carry them as wheels)")
        SUMMARY[f"{name}_status"] = "skipped"
        return
    if clock.left() < needs_s:
        say(f"[{name}] skipped: {clock.left():.0f} s of the budget left, it needs about {needs_s:.0f} s")
        SUMMARY[f"{name}_status"] = "skipped"
        return
    started = time.monotonic()
    say(f"[{name}] start ({clock.left():.0f} s of the budget left)")
    try:
        body()
        SUMMARY[f"{name}_status"] = "ok"
    except Exception:  # a failing section is reported; the others still run
        SUMMARY[f"{name}_status"] = "failed"
        say(f"[{name}] FAILED:\n{traceback.format_exc()}")
    say(f"[{name}] done in {time.monotonic() - started:.0f} s")


# ---------------------------------------------------------------- 1. fidelity

def reference_models(fixtures: Path, scratch: Path) -> dict[str, tuple]:
    """name -> (bundle on CPU, input, mask_prob, expected predictions, expected gene features)."""
    import pandas as pd

    import bulkformer
    from bulkformer.convert import import_checkpoint

    import warnings

    warnings.filterwarnings("ignore", message="no gene_lengths given")  # lengths play no part here
    models = {}
    for name, features_file in (("v1_tiny", None), ("v2_tiny", "expected_gene_emb")):
        source = fixtures / name
        if not source.is_dir():
            continue
        config = json.loads((source / "config.json").read_text())
        n_genes = config["gene_length"]
        gene_info = scratch / f"{name}_genes.csv"
        pd.DataFrame({"ensg_id": [f"ENSG{i:011d}" for i in range(1, n_genes + 1)]}).to_csv(gene_info, index=False)
        import_checkpoint(checkpoint=source / "checkpoint.pt", graph=source / "graph.pt",
                          graph_weight=source / "graph_weight.pt", gene_features=source / "gene_emb.pt",
                          gene_info=gene_info, out=scratch / name)
        bundle = bulkformer.load(scratch / name)
        load = lambda item: torch.load(source / f"{item}.pt", weights_only=True)  # noqa: E731
        if features_file is None:  # v1: the last hidden state is the final norm's output (features)
            features_file = f"expected_hidden_{bundle.config.gb_repeat - 1}"
        models[name] = (bundle, load("input"), config.get("mask_prob"), load("expected_expr"), load(features_file))
    latest = fixtures / "latest_tiny"
    if latest.is_dir():
        bundle = bulkformer.load(latest / "bulkformer-latest")
        models["latest_tiny"] = (bundle, torch.from_numpy(np.load(latest / "aligned.npy")), None,
                                 torch.from_numpy(np.load(latest / "expression_predictions.npy")),
                                 torch.from_numpy(np.load(latest / "gene_features_all.npy")))
    return models


def max_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a = torch.as_tensor(a).detach().float().cpu()
    b = torch.as_tensor(b).detach().float().cpu()
    return float((a - b).abs().max())


def engine_outputs(bundle, values: np.ndarray, mask_prob, device: torch.device, precision: str) -> tuple[np.ndarray, np.ndarray]:
    from bulkformer.inference.execution import Engine

    engine = Engine.create(bundle, device=device, precision=precision, batch_size=values.shape[0], progress=False)
    batch = next(engine.stream(values, mask_prob, feature_index=np.arange(values.shape[1])))
    return batch.expr, batch.features


def fidelity(fixtures: Path, device: torch.device) -> None:
    import copy

    if not fixtures.is_dir():
        raise FileNotFoundError(f"{fixtures} not found: pass --fixtures (the ../shared/fixtures/reference folder)")
    worst, worst_bf16 = 0.0, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for name, (bundle, x, mask_prob, expected_expr, expected_features) in reference_models(fixtures, Path(scratch)).items():
            with torch.inference_mode():
                cpu = bundle.model(x, mask_prob)
            model = copy.deepcopy(bundle.model).to(device)
            figures = {"cpu_vs_published": max_diff(cpu.expr, expected_expr)}
            for sparse in (True, False):
                model.sparse_graph = sparse
                with torch.inference_mode():
                    out = model(x.to(device), mask_prob)
                path = "csr" if sparse else "message_passing"
                figures[f"{path}_vs_cpu"] = max(max_diff(out.expr, cpu.expr), max_diff(out.features, cpu.features))
                figures[f"{path}_vs_published"] = max(max_diff(out.expr, expected_expr),
                                                      max_diff(out.features, expected_features))
            bundle.model = model
            expr, features = engine_outputs(bundle, x.numpy(), mask_prob, device, "fp32")
            figures["engine_fp32_vs_published"] = max(max_diff(expr, expected_expr), max_diff(features, expected_features))
            expr, features = engine_outputs(bundle, x.numpy(), mask_prob, device, "bf16")
            figures["engine_bf16_vs_published"] = max(max_diff(expr, expected_expr), max_diff(features, expected_features))
            figures["engine_bf16_expr_vs_published"] = max_diff(expr, expected_expr)
            judged = max(v for k, v in figures.items() if "bf16" not in k and k != "cpu_vs_published")
            worst = max(worst, judged)
            worst_bf16 = max(worst_bf16, figures["engine_bf16_vs_published"])
            verdict = "ok" if judged <= FIDELITY_TOLERANCE else f"ABOVE {FIDELITY_TOLERANCE:g}"
            say(f"  {name}: " + " ".join(f"{k}={v:.2e}" for k, v in figures.items()) + f" -> {verdict}")
    SUMMARY["fidelity_max_abs_diff"] = f"{worst:.2e}"
    SUMMARY["bf16_max_abs_diff"] = f"{worst_bf16:.2e}"
    SUMMARY["fidelity"] = "ok" if worst <= FIDELITY_TOLERANCE else "FAILED"


# ---------------------------------------------------------------- 2. inference

def bench_inference(preset: str, genes: int, samples: int, batch_size: int, device: torch.device, precision: str,
                    timeout_s: float) -> dict[str, str]:
    command = [sys.executable, str(HERE / "bench_inference.py"), "--preset", preset, "--genes", str(genes),
               "--samples", str(samples), "--batch-size", str(batch_size), "--device", device.type,
               "--precision", precision]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode:
        raise RuntimeError(f"bench_inference.py failed:\n{done.stderr[-3000:]}")
    figures = {}
    for line in done.stdout.splitlines():
        say(f"  {line}")
        figures.update(re.findall(r"(\w+)=(\S+)", line))
    return figures


def largest_batch(preset: str, genes: int, device: torch.device, path: str, clock: Clock, ceiling: int) -> int:
    """The largest power-of-two batch (from 1) whose forward fits in device memory."""
    from bulkformer.inference.execution import Engine

    sys.path.insert(0, str(HERE))
    from bench_inference import synthetic  # the same random-weight model as the speed runs

    bundle = synthetic(preset, genes, 1, seed=0)[0]
    model = bundle.model
    fits, batch = 0, 1
    while batch <= ceiling and clock.left() > 20:
        values = np.random.default_rng(0).gamma(1.5, 1.2, size=(batch, genes)).astype(np.float32)
        try:
            started = time.perf_counter()
            if path == "engine":
                engine = Engine.create(bundle, device=device, precision="bf16", batch_size=batch, progress=False)
                next(engine.stream(values, 0.1))
                del engine
            else:
                model.to(device).sparse_graph = False
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    model(torch.from_numpy(values).to(device), 0.1)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
        except (torch.cuda.OutOfMemoryError, RuntimeError) as error:  # cuBLAS reports some as RuntimeError
            if "out of memory" not in str(error).lower() and "alloc" not in str(error).lower():
                raise
            say(f"  {path} {preset} batch {batch} does not fit")
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        fits = batch
        say(f"  {path} {preset} batch {batch} fits ({seconds:.2f} s, {batch / seconds:.1f} samples/s)")
        if seconds > 15:  # the next doubling would eat the budget
            break
        batch *= 2
    return fits


def inference(device: torch.device, quick: bool, clock: Clock) -> None:
    vocabulary = {"147M": 20010, "latest": 19973}
    genes = (lambda n: 64) if quick else (lambda n: n)
    samples, batch = (2, 1) if quick else (16, 8)
    for preset_name in ("147M", "latest"):
        figures = bench_inference(preset_name, genes(vocabulary[preset_name]), samples, batch, device, "fp32",
                                  timeout_s=max(30.0, clock.left() - 60))
        SUMMARY[f"{preset_name}_fp32_speedup"] = figures.get("speedup_vs_published")
        SUMMARY[f"{preset_name}_fp32_max_abs_diff"] = figures.get("max_abs_diff")
        SUMMARY[f"{preset_name}_engine_s_per_sample_fp32"] = figures.get("engine_s_per_sample")
        SUMMARY[f"{preset_name}_peak_gpu_mib_published_engine"] = (
            f"{figures.get('published_peak_gpu_mib', 'n/a')}/{figures.get('engine_peak_gpu_mib', 'n/a')}")
    figures = bench_inference("latest", genes(vocabulary["latest"]), samples, batch, device, "bf16",
                              timeout_s=max(30.0, clock.left() - 60))
    SUMMARY["latest_bf16_speedup_vs_published_fp32"] = figures.get("speedup_vs_published")
    SUMMARY["latest_engine_s_per_sample_bf16"] = figures.get("engine_s_per_sample")
    ceiling = 4 if quick else 1024
    for path in ("engine", "published"):
        SUMMARY[f"latest_largest_batch_{path}"] = largest_batch("latest", genes(vocabulary["latest"]), device, path,
                                                                clock, ceiling)


# ---------------------------------------------------------------- 3. pretraining

def pretraining(device: torch.device, quick: bool, clock: Clock) -> None:
    """Simulated shards -> ``bulkformer prepare-corpus`` (timed) -> corpus-fed torchrun runs."""
    from bulkformer.datasets import simulate_cohort

    runs = [("latest-tiny", 8, 12)] if quick else [("latest-small", 32, 60), ("latest", 8, 40)]
    with tempfile.TemporaryDirectory() as scratch:
        cohort = simulate_cohort(n_samples=64 if quick else 1024, n_genes=200 if quick else None, seed=0)
        cohort.save(Path(scratch) / "cohort", shards=2)
        shards, corpus = Path(scratch) / "cohort" / "shards", Path(scratch) / "corpus"
        panel = ["--min-matched-fraction", "0.001"] if quick else []  # the toy cohort: a few hundred genes
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", "from bulkformer.cli import main; main()", "prepare-corpus",
                               str(shards), "-o", str(corpus), "--model", runs[0][0], *panel],
                              capture_output=True, text=True, timeout=max(60.0, clock.left() - 60))
        if done.returncode:
            raise RuntimeError(f"prepare-corpus failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        SUMMARY["prepare_corpus_s"] = f"{time.monotonic() - started:.1f}"
        say(f"  prepare-corpus: {time.monotonic() - started:.1f} s for {cohort.counts.shape[0]} samples")
        for model, batch_size, steps in runs:
            if clock.left() < 90:
                say(f"  {model}: skipped, {clock.left():.0f} s left")
                continue
            extra = ["--activation-checkpointing"] if model == "latest" else []
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                       str(Path(__file__).resolve()), "--pretrain-worker", "--",
                       "pretrain", str(corpus), "-o", str(Path(scratch) / f"run-{model}"), "--model", model,
                       "--batch-size", str(batch_size), "--max-steps", str(steps), "--epochs", "1000", "--compile",
                       "--precision", "bf16" if device.type == "cuda" else "fp32", "--checkpoint-every", str(steps // 2),
                       "--workers", "0" if quick else "4", "--val-fraction", "0.05", "--no-progress", *extra]
            if device.type != "cuda":
                command += ["--device", "cpu"]
            env = {**os.environ, "BULKFORMER_GPU_CHECK_REPORT": str(Path(scratch) / f"{model}.json")}
            started = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=max(60.0, clock.left() - 30))
            if done.returncode:
                raise RuntimeError(f"pretraining {model} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
            report = json.loads(Path(env["BULKFORMER_GPU_CHECK_REPORT"]).read_text())
            times = np.asarray(report["step_ends"])
            warm = min(10, len(times) // 2)  # the first steps compile
            rate = batch_size * report["world_size"] * (len(times) - 1 - warm) / (times[-1] - times[warm])
            say(f"  {model}: backend={report['backend']} world_size={report['world_size']} steps={len(times)} "
                f"batch={batch_size} first_step_s={times[0] - report['started']:.1f} "
                f"samples_per_s={rate:.1f} peak_gpu_mib={report['peak_gpu'] / 2**20:.0f} "
                f"wall_s={time.monotonic() - started:.0f}")
            SUMMARY[f"pretrain_{model}_samples_per_s"] = f"{rate:.1f}"
            SUMMARY[f"pretrain_{model}_backend"] = report["backend"]


def pretrain_worker(cli_args: list[str]) -> None:
    """Under torchrun: `bulkformer ...` with every optimizer step timed (device work included)."""
    import torch.distributed as dist
    from torch.optim.optimizer import register_optimizer_step_post_hook

    record: dict[str, object] = {"step_ends": [], "started": time.perf_counter(), "backend": None, "world_size": 1}

    def after_step(optimizer, args, kwargs) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        record["step_ends"].append(time.perf_counter())
        if dist.is_available() and dist.is_initialized():
            record["backend"], record["world_size"] = dist.get_backend(), dist.get_world_size()

    register_optimizer_step_post_hook(after_step)
    from bulkformer.cli import main

    sys.argv = ["bulkformer", *cli_args]
    try:
        main()
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    record["peak_gpu"] = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    if int(os.environ.get("RANK", "0")) == 0:
        Path(os.environ["BULKFORMER_GPU_CHECK_REPORT"]).write_text(json.dumps(record))


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=HERE.parent.parent / "shared" / "fixtures" / "reference")
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget for all sections")
    parser.add_argument("--sections", default="fidelity,inference,pretraining")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when no GPU is present (toy sizes)")
    parser.add_argument("--out", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--pretrain-worker", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.pretrain_worker:
        pretrain_worker([a for a in rest if a != "--"])
        return
    if not torch.cuda.is_available() and not args.allow_cpu:
        say("gpu_check: skipped: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
            "run it where one is present, or pass --allow-cpu for a CPU smoke run")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    quick = device.type != "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: the fidelity bound is for IEEE fp32
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    say(f"gpu_check on {name}: torch {torch.__version__}, cuda {torch.version.cuda}, python {sys.version.split()[0]}, "
        f"numpy {np.__version__}, budget {args.budget_s:.0f} s{' (toy sizes on CPU)' if quick else ''}")
    clock = Clock(args.budget_s)
    wanted = set(args.sections.split(","))
    if "fidelity" in wanted:
        section("fidelity", clock, 10, lambda: fidelity(args.fixtures, device))
    if "inference" in wanted:
        section("inference", clock, 60, lambda: inference(device, quick, clock))
    if "pretraining" in wanted:
        section("pretraining", clock, 90, lambda: pretraining(device, quick, clock))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(json.dumps(SUMMARY, indent=1, default=str))
    say("gpu_check " + " ".join(f"{k}={v}" for k, v in SUMMARY.items()))


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
