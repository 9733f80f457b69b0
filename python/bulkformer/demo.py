"""The built-in demo: simulate a cohort, pretrain a small BulkFormer on it, impute
masked entries of held-out samples, embed them, and compare with the gene-mean and
KNN baselines; an HTML report with PNG figures goes to ``out``.

Offline and CPU-only: on 2 cores it takes a couple of minutes with the defaults.
"""
from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_directory, check_replaceable
from .model import MASK_VALUE
from .json_safe import json_safe

# what marks an earlier demo report, which a new run may replace (anything else it refuses)
DEMO_MARKER = "report.html"


@dataclass
class DemoSettings:
    n_samples: int = 600
    n_genes: int = 1000
    epochs: int = 20
    dim: int = 32
    heads: int = 4
    batch_size: int = 8
    lr: float = 3e-3  # the paper's 1e-4 is for 100k+ samples; a tiny model on 500 samples needs more
    observed_weight: float = 0.25  # denoising term: makes the v2 mask correction accurate
    test_fraction: float = 0.2
    mask_fraction: float = 0.15
    seed: int = 0

    @classmethod
    def fast(cls, seed: int = 0) -> "DemoSettings":
        """Seconds instead of minutes (for smoke tests): the numbers mean little."""
        return cls(n_samples=120, n_genes=200, epochs=2, dim=16, heads=2, batch_size=16, seed=seed)


@dataclass
class DemoResult:
    out: Path
    report: Path
    metrics: dict[str, Any]


def run_demo(out: str | Path = "bulkformer-demo", settings: DemoSettings | None = None, progress: bool = True) -> DemoResult:
    """Run the demo end to end; returns where the report is and the headline numbers."""
    import bulkformer
    from .annotation import default_vocabulary
    from .inference import run_imputation
    from .preprocess import prepare
    from .training import PretrainConfig, pretrain
    from .training.data import apply_measured
    from .training.evaluation import evaluation_mask, gene_mean_baseline, knn_baseline, masked_pearson

    settings = settings or DemoSettings()
    out = check_replaceable(out, DEMO_MARKER, "a demo report")  # before minutes of work
    say = (lambda message: print(f"[bulkformer demo] {message}", flush=True)) if progress else (lambda message: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    # 1. cohort
    vocabulary = default_vocabulary().iloc[:settings.n_genes].reset_index(drop=True)
    cohort = bulkformer.simulate_cohort(n_samples=settings.n_samples, vocabulary=vocabulary, n_genes=None, seed=settings.seed)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(settings.n_samples)
    n_test = max(4, int(round(settings.test_fraction * settings.n_samples)))
    test_ids = cohort.counts.index[np.sort(order[:n_test])]
    train_ids = cohort.counts.index[np.sort(order[n_test:])]
    say(f"simulated {settings.n_samples} samples x {settings.n_genes} genes "
        f"({cohort.obs['tissue'].nunique()} tissues, {cohort.obs['batch'].nunique()} batches, "
        f"{int(round(100 * cohort.params['missing_fraction']))}% of genes missing per batch); "
        f"{len(train_ids)} for pretraining, {len(test_ids)} held out")
    lap("simulate")

    # 2. pretrain
    with atomic_directory(out, marker=DEMO_MARKER, what="a demo report") as staging:
        train_cohort = _subset(cohort, train_ids)
        result = pretrain(train_cohort, None, PretrainConfig(
            vocabulary=vocabulary, dim=settings.dim, heads=settings.heads, p_repeat=1, epochs=settings.epochs,
            batch_size=settings.batch_size, lr=settings.lr, mask_fraction=settings.mask_fraction,
            observed_weight=settings.observed_weight, seed=settings.seed, device="cpu", dropout=0.0, log_every=200,
            progress=progress))
        bundle = result.bundle
        lap("pretrain")

        # 3. impute masked entries of held-out samples through the inference API
        prepared = prepare(cohort.counts.loc[test_ids], bundle, input="counts", lengths=cohort.lengths)
        truth = apply_measured(np.asarray(prepared.values, np.float32), _subset(cohort, test_ids), vocabulary)
        masked, mask = evaluation_mask(truth, settings.mask_fraction, seed=settings.seed + 1)
        masked_input = replace(prepared, values=masked, mask_prob=float((masked == MASK_VALUE).mean()))
        imputation = run_imputation(masked_input, bundle, which="all", progress=False, device="cpu")
        train_values = apply_measured(
            np.asarray(prepare(cohort.counts.loc[train_ids], bundle, input="counts", lengths=cohort.lengths).values, np.float32),
            train_cohort, vocabulary)
        predictions = {
            "BulkFormer": imputation.predicted,
            "gene mean": gene_mean_baseline(train_values, masked),
            "KNN (k=10)": knn_baseline(train_values, masked),
        }
        scores = {name: masked_pearson(pred, truth, mask) for name, pred in predictions.items()}
        lap("impute")

        # 4. embed held-out samples; how well do the embeddings separate tissues?
        embedding = bulkformer.embed(replace(prepared, values=truth, mask_prob=float((truth == MASK_VALUE).mean())), bundle,
                                     aggregate="mean", progress=False, device="cpu")
        tissue = cohort.obs.loc[test_ids, "tissue"].astype(str)
        tissue_accuracy = _tissue_accuracy(embedding.to_numpy(), tissue.to_numpy(), settings.seed)
        lap("embed")

        metrics = {
            "masked_pcc": scores["BulkFormer"], "gene_mean_pcc": scores["gene mean"], "knn_pcc": scores["KNN (k=10)"],
            "n_masked_entries": int(mask.sum()), "n_train": len(train_ids), "n_test": len(test_ids),
            "n_genes": settings.n_genes, "pretrain_steps": int(result.history["step"].iloc[-1]),
            "final_train_loss": float(result.history["loss"].iloc[-1]),
            "embedding_tissue_accuracy": tissue_accuracy, "parameters": bundle.model.count_parameters(),
            "settings": settings.__dict__, "seconds": timings,
        }
        figures = staging / "figures"
        figures.mkdir()
        _figures(figures, result, predictions, truth, mask, scores, embedding.to_numpy(), tissue.to_numpy())
        bundle.save(staging / "model")
        lap("report")
        metrics["seconds"] = timings
        (staging / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
        (staging / DEMO_MARKER).write_text(_html(metrics, result))
    say(f"masked Pearson r on {metrics['n_masked_entries']} held-out entries: BulkFormer {scores['BulkFormer']:.3f}, "
        f"gene mean {scores['gene mean']:.3f}, KNN {scores['KNN (k=10)']:.3f}")
    say(f"model written to {out / 'model'}, report to {out / 'report.html'}")
    return DemoResult(out=out, report=out / "report.html", metrics=metrics)


def _subset(cohort, sample_ids):
    """The cohort restricted to some samples (the fields pretraining reads)."""
    return replace(cohort, counts=cohort.counts.loc[sample_ids], measured=cohort.measured.loc[sample_ids],
                   obs=cohort.obs.loc[sample_ids])


def _tissue_accuracy(embedding: np.ndarray, tissue: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_splits = int(min(5, pd.Series(tissue).value_counts().min()))
    if n_splits < 2:
        return float("nan")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return float(cross_val_score(classifier, embedding, tissue, cv=folds).mean())


def _figures(directory: Path, result, predictions, truth, mask, scores, embedding, tissue) -> None:
    from .plotting import _pyplot

    plt = _pyplot()
    history, validation = result.history, result.validation
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(history["step"], history["loss"], lw=1)
    axes[0].set(xlabel="optimizer step", ylabel="masked MSE (train)", title="pretraining loss")
    axes[1].plot(validation["epoch"] + 1, validation["masked_pcc"], marker="o")
    axes[1].set(xlabel="epoch", ylabel="masked Pearson r", title="held-out validation")
    fig.tight_layout()
    fig.savefig(directory / "training.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(predictions), figsize=(4 * len(predictions), 3.6), sharey=True)
    for ax, (name, pred) in zip(np.atleast_1d(axes), predictions.items()):
        ax.scatter(truth[mask], pred[mask], s=2, alpha=0.3)
        lo, hi = float(truth[mask].min()), float(truth[mask].max())
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.set(xlabel="true log1p TPM (masked)", title=f"{name}: r = {scores[name]:.3f}")
    np.atleast_1d(axes)[0].set_ylabel("prediction")
    fig.tight_layout()
    fig.savefig(directory / "imputation.png", dpi=110)
    plt.close(fig)

    from sklearn.decomposition import PCA

    coords = PCA(n_components=2).fit_transform(embedding - embedding.mean(axis=0))
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    for name in sorted(set(tissue)):
        chosen = tissue == name
        ax.scatter(coords[chosen, 0], coords[chosen, 1], s=10, label=name)
    ax.set(xlabel="PC 1", ylabel="PC 2", title="sample embeddings (held out)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(directory / "embedding.png", dpi=110)
    plt.close(fig)


def _html(metrics: dict[str, Any], result) -> str:
    settings = metrics["settings"]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{metrics[key]:.4f}</td></tr>"
        for name, key in (("BulkFormer (pretrained here)", "masked_pcc"), ("gene mean", "gene_mean_pcc"), ("KNN imputer, k = 10", "knn_pcc"))
    )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in metrics["seconds"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>bulkformer demo</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}} td,th{{padding:.2em .8em;border-bottom:1px solid #ddd}} img{{max-width:100%}}</style>
</head><body>
<h1>bulkformer demo</h1>
<p>A simulated cohort of {settings['n_samples']} samples over the first {settings['n_genes']} genes of the shipped
vocabulary (co-expression modules, tissue and disease programs, negative-binomial counts, genes missing per batch).
A BulkFormer v2 (d = {settings['dim']}, 1 Performer layer, {metrics['parameters']:,} parameters) was pretrained by
masked-expression modelling (plus a denoising term at unmasked genes, weight {settings['observed_weight']}) on {metrics['n_train']} samples for {settings['epochs']} epochs
({metrics['pretrain_steps']} steps). Then {int(100 * settings['mask_fraction'])}% of the measured entries of
{metrics['n_test']} held-out samples were hidden and imputed.</p>
<h2>Masked-entry Pearson r (held-out samples, {metrics['n_masked_entries']:,} entries)</h2>
<table><tr><th>method</th><th>Pearson r</th></tr>{rows}</table>
<p><img src="figures/imputation.png" alt="imputation scatter"></p>
<h2>Pretraining</h2>
<p>Final training loss {metrics['final_train_loss']:.4f}.</p>
<p><img src="figures/training.png" alt="training curves"></p>
<h2>Embeddings</h2>
<p>Tissue recovered from the mean-pooled sample embeddings of the held-out samples by a logistic regression:
cross-validated accuracy {metrics['embedding_tissue_accuracy']:.3f}.</p>
<p><img src="figures/embedding.png" alt="embedding PCA"></p>
<p>Time: {timing}. The trained model is in <code>model/</code> (load it with <code>bulkformer.load</code>);
all numbers are in <code>metrics.json</code>.</p>
</body></html>
"""
