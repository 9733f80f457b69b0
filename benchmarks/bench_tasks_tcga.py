"""Downstream tasks on real TCGA data: BulkFormer embeddings vs plain log1p TPM.

Six TCGA cancer types (ACC, CHOL, DLBC, KICH, UCS, UVM; 364 primary tumours, raw
counts) from ../shared/data/tcga, overall survival from tcga_survival.tsv.gz (keyed by
the first 15 characters of the barcode). Prints one line per task, feature set and
head, e.g.

    task=classification features=embedding head=random_forest weighted_f1=0.97 ...
    task=classification features=raw_logtpm head=random_forest weighted_f1=0.99 ...
    task=prognosis features=embedding head=cox c_index=0.71
    task=prognosis features=embedding head=random_forest auroc=0.74 auprc=0.52

(prognosis also scores ``cancer_type_only``, a one-hot of the cancer type: survival
differs between the six types, so that is the level expression features must beat) and a final key=value line. The model comes from --model; without it the first bundle
found among the pretraining outputs (see MODEL_CANDIDATES) is used, else a random-weight
``tiny_bundle`` over TCGA-measured vocabulary genes. Random weights say nothing about
the foundation model: the output states which model was used and whether it is trained.

    python benchmarks/bench_tasks_tcga.py                       # default model, 10 folds
    python benchmarks/bench_tasks_tcga.py --model models/bulkformer-37M --folds 5
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("BULKFORMER_SHARED", REPO.parent / "shared")) / "data" / "tcga"
# Bundles the pretraining benchmark / demo may have left behind, most specific first.
MODEL_CANDIDATES = (
    "bulkformer-demo/model",          # `bulkformer demo` (pretrained on its simulated cohort)
    "benchmarks/output/*/model",      # pretraining benchmark runs (`pretrain(out=...)` -> out/model)
    "benchmarks/output/*/bundle",
    "models/*",                       # converted official releases
)


def find_pretrained() -> Path | None:
    for pattern in MODEL_CANDIDATES:
        for hit in sorted(glob.glob(str(REPO / pattern))):
            if (Path(hit) / "config.json").exists() and (Path(hit) / "model.safetensors").exists():
                return Path(hit)
    return None


def read_tcga(data: Path) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """counts (genes x samples), cancer type per sample, survival table."""
    count_files = sorted(data.glob("TCGA_*_Counts.exp.gz"))
    if not count_files:
        raise FileNotFoundError(f"no TCGA_*_Counts.exp.gz under {data}; pass --data")
    counts, labels = [], []
    for path in count_files:
        cancer = path.name.split("_")[1]
        block = pd.read_csv(path, sep="\t", index_col=0)
        counts.append(block)
        labels.append(pd.Series(cancer, index=block.columns))
    counts = pd.concat(counts, axis=1).fillna(0)
    survival = pd.read_csv(data / "tcga_survival.tsv.gz", sep="\t", index_col=0)
    return counts, pd.concat(labels), survival


def tiny_model(counts: pd.DataFrame, n_genes: int, seed: int):
    """Random-weight tiny bundle over the first ``n_genes`` vocabulary genes TCGA measures."""
    from bulkformer.annotation import default_vocabulary
    from bulkformer.datasets import tiny_bundle

    vocabulary = default_vocabulary()
    vocabulary = vocabulary[vocabulary["ensembl_id"].isin(counts.index)].head(n_genes).reset_index(drop=True)
    return tiny_bundle(n_genes=len(vocabulary), vocabulary=vocabulary, seed=seed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=None, help="bundle directory (default: a pretrained one if found, else tiny_bundle)")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--tiny-genes", type=int, default=2000, help="genes of the fallback tiny bundle")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aggregate", default="max", help="sample embedding pooling over genes: max | mean | median | all")
    parser.add_argument("--no-imputation", action="store_true", help="skip the imputation task")
    parser.add_argument("--out-dir", type=Path, default=None, help="write each TaskResult as JSON + figure here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    import bulkformer
    from bulkformer.tasks import classification, imputation, prognosis
    from bulkformer.tasks.features import feature_sets, logtpm_matrix, raw_logtpm_features

    start = time.perf_counter()
    counts, cancer, survival = read_tcga(args.data)
    print(f"data: {counts.shape[1]} samples, {counts.shape[0]} genes, cancer types {dict(cancer.value_counts().sort_index())}")

    model_path = args.model or find_pretrained()
    if model_path is not None:
        bundle = bulkformer.load(model_path, device=args.device or "cpu")
        trained = bundle.metadata.get("trained", True)
        model_desc = f"bundle {model_path} ({bundle.config.version}, d={bundle.config.dim}, {bundle.config.n_genes} genes, trained={trained})"
    else:
        bundle = tiny_model(counts, args.tiny_genes, args.seed)
        trained = False
        model_desc = (f"tiny_bundle (RANDOM WEIGHTS, d={bundle.config.dim}, {bundle.config.n_genes} TCGA-measured vocabulary genes): "
                      "no pretrained bundle found; figures show the plumbing, not the foundation model")
    print(f"model: {model_desc}; sample embedding = {args.aggregate} over genes")

    sets = feature_sets(counts, bundle, orientation="genes_by_samples", input="counts", batch_size=args.batch_size,
                        device=args.device, aggregate=args.aggregate)
    from bulkformer.annotation import default_vocabulary

    if bundle.config.n_genes < len(default_vocabulary()):
        # The model covers part of the vocabulary: also show the baseline on every protein-coding gene.
        sets["raw_logtpm_all_genes"] = raw_logtpm_features(counts, default_vocabulary(), orientation="genes_by_samples",
                                                           input="counts")
    print("features: " + ", ".join(f"{k} {v.shape[1]} columns" for k, v in sets.items()) + f" ({time.perf_counter() - start:.0f}s)")
    summary: dict[str, float] = {}

    def report(result, keys, tag):
        for _, row in result.metrics.iterrows():
            values = " ".join(f"{k}={row[k]:.4f}" for k in keys if k in row and np.isfinite(row[k]))
            print(f"task={result.task} features={row['features']} head={row['head']} {values}", flush=True)
            for k in keys:
                if k in row and np.isfinite(row[k]):
                    summary[f"{tag}_{row['features']}_{row['head']}_{k}"] = float(row[k])
        if args.out_dir is not None:
            result.to_json(args.out_dir / f"{result.task}.json")
            result.plot(args.out_dir / f"{result.task}.png")

    result = classification.evaluate(sets, cancer, n_splits=args.folds, n_estimators=args.trees, seed=args.seed)
    report(result, ["weighted_f1", "accuracy", "macro_f1"], "classification")

    surv = survival[~survival.index.duplicated()]
    by_patient = {k: v.set_axis(v.index.str[:15]) for k, v in sets.items()}
    by_patient = {k: v[~v.index.duplicated()] for k, v in by_patient.items()}
    # The cohort pools six cancer types whose survival differs: the cancer type alone is the
    # baseline an expression feature set has to beat to show more than the type.
    cancer_type = pd.get_dummies(cancer, dtype=float).set_axis(cancer.index.str[:15])
    by_patient["cancer_type_only"] = cancer_type[~cancer_type.index.duplicated()]
    result = prognosis.evaluate(by_patient, surv, time_col="OS.time", event_col="OS", n_splits=args.folds,
                                n_estimators=args.trees, seed=args.seed)
    print(f"prognosis: {int(result.metrics['n_samples'].iloc[0])} samples with OS, {int(result.metrics['n_events'].iloc[0])} deaths")
    report(result, ["c_index", "auroc", "auprc"], "prognosis")

    if not args.no_imputation:
        observed = logtpm_matrix(counts, bundle, orientation="genes_by_samples", input="counts")
        result = imputation.evaluate(observed, model=bundle, batch_size=args.batch_size, device=args.device, seed=args.seed)
        report(result, ["pearson", "spearman", "mae"], "imputation")

    summary["trained_model"] = float(bool(trained))
    summary["seconds"] = time.perf_counter() - start
    print(" ".join(f"{k}={v:.4f}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
