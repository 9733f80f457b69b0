"""End to end: a small simulated cohort through `bulkformer impute | embed | build-graph`."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import anndata
import numpy as np
import pandas as pd
import pytest

import bulkformer
from bulkformer.inference import read_gene_embeddings


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    bundle = bulkformer.tiny_bundle(root / "model", n_genes=80)
    sim = bulkformer.simulate_cohort(n_samples=7, vocabulary=bundle.genes, n_genes=None, seed=3, missing_fraction=0.0)
    counts = sim.counts.iloc[:, 5:]  # the cohort lacks the first five vocabulary genes
    counts.to_csv(root / "counts.csv")
    lengths = sim.lengths * (1 + np.arange(len(sim.lengths)) % 4)  # differ from the vocabulary's lengths
    lengths.rename("length").rename_axis("gene").to_csv(root / "lengths.tsv", sep="\t")
    return root, bundle, counts


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `bulkformer ...` in-process through the real entry point (exit codes included)."""
    from bulkformer.cli import main

    def run(*args: str) -> Done:
        monkeypatch.setattr(sys, "argv", ["bulkformer", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        captured = capsys.readouterr()
        return Done(code, captured.out, captured.err)

    return run


def test_cli_impute_matches_the_python_api(cli, cohort):
    root, bundle, counts = cohort
    done = cli("impute", str(root / "counts.csv"), "-m", str(root / "model"), "-o", str(root / "imputed.parquet"),
                "--no-progress", "--batch-size", "3")
    assert done.returncode == 0, done.stderr
    written = pd.read_parquet(root / "imputed.parquet")
    expected = bulkformer.impute(counts, bundle, progress=False)
    assert list(written.columns) == bundle.gene_ids[:5]
    assert np.allclose(written.to_numpy(), expected.to_numpy(), atol=1e-6)
    assert "mapped 75 of 75" in done.stderr


def test_cli_impute_with_gene_lengths(cli, cohort):
    root, bundle, counts = cohort
    done = cli("impute", root / "counts.csv", "-m", root / "model", "--which", "all", "--lengths", root / "lengths.tsv",
               "-o", root / "denoised.csv", "--no-progress")
    assert done.returncode == 0, done.stderr
    lengths = pd.read_csv(root / "lengths.tsv", sep="\t", index_col=0)["length"]
    expected = bulkformer.impute(counts, bundle, which="all", lengths=lengths, progress=False)
    without = bulkformer.impute(counts, bundle, which="all", progress=False)
    written = pd.read_csv(root / "denoised.csv", index_col=0)
    assert np.allclose(written.to_numpy(), expected.to_numpy(), atol=1e-5)
    assert not np.allclose(expected.to_numpy(), without.to_numpy(), atol=1e-5)  # the lengths were used


def test_cli_embed_sample_and_gene_level(cli, cohort):
    root, bundle, counts = cohort
    done = cli("embed", str(root / "counts.csv"), "-m", str(root / "model"), "-o", str(root / "emb.h5ad"),
                "--aggregate", "mean", "--no-progress")
    assert done.returncode == 0, done.stderr
    adata = anndata.read_h5ad(root / "emb.h5ad")
    expected = bulkformer.embed(counts, bundle, aggregate="mean", progress=False)
    assert np.allclose(adata.X, expected.to_numpy(), atol=1e-6)
    genes = ",".join(bundle.gene_ids[:4])
    done = cli("embed", str(root / "counts.csv"), "-m", str(root / "model"), "--level", "gene", "--genes", genes,
                "--dtype", "float16", "-o", str(root / "genes.zarr"), "--no-progress")
    assert done.returncode == 0, done.stderr
    stored = read_gene_embeddings(root / "genes.zarr")
    assert stored.values.dtype == np.float16 and stored.shape == (7, 4, bundle.config.feature_dim)
    assert stored.gene_ids == bundle.gene_ids[:4] and stored.sample_ids == [str(s) for s in counts.index]


def test_cli_build_graph(cli, cohort):
    root, bundle, counts = cohort
    done = cli("build-graph", str(root / "counts.csv"), "-m", str(root / "model"), "--input", "counts",
                "--top-k", "5", "-o", str(root / "graph.safetensors"))
    assert done.returncode == 0, done.stderr
    from bulkformer.graph import read_graph

    graph = read_graph(root / "graph.safetensors")
    assert graph.gene_ids == bundle.gene_ids
    assert graph.n_edges > 0 and graph.edge_index[0].bincount().max() <= 5
    assert not set(range(5)) & set(graph.edge_index.flatten().tolist())  # unmeasured genes get no edges


@pytest.mark.parametrize("args,message", [
    (["impute", "missing.csv", "-m", "model", "-o", "x.csv"], "does not exist"),
    (["impute", "{counts}", "-m", "{model}", "-o", "x.xlsx"], "output format"),
    (["embed", "{counts}", "-m", "{model}", "--level", "gene", "-o", "x.csv"], "zarr"),
    (["impute", "{counts}", "-m", "{model}", "--which", "some", "-o", "{root}/x.csv"], "which must be"),
    (["impute", "{counts}", "-m", "{root}/nomodel", "-o", "{root}/x.csv"], "no model bundle"),
])
def test_cli_errors_exit_2_with_a_message(cli, cohort, args, message):
    root, _, _ = cohort
    args = [a.format(counts=root / "counts.csv", model=root / "model", root=root) for a in args]
    done = cli(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_messages_name_flags_not_python_arguments(cli, cohort):
    root, _, counts = cohort
    counts.T.to_csv(root / "genes_by_samples.csv")
    done = cli("impute", root / "genes_by_samples.csv", "-m", root / "model", "-o", root / "x.csv")
    assert done.returncode == 2 and "--orientation genes_by_samples" in done.stderr, done.stderr
    import warnings

    from bulkformer.cli.main import as_cli_advice

    assert warnings.formatwarning(UserWarning("input='counts' but the values look logged: pass input='logtpm'"),
                                  UserWarning, "prepare.py", 139) == (
        "warning: --input counts but the values look logged: pass --input logtpm\n")  # main() installed it
    assert as_cli_advice("set val_fraction=0 or n_splits=3") == "set --val-fraction 0 or n_splits=3"  # no such flag


def test_cli_help_has_examples(cli):
    for command in ("impute", "embed", "build-graph", "info"):
        done = cli(command, "--help")
        assert done.returncode == 0 and "Examples" in done.stdout
        # the examples stay indented under their heading (typer dedents a docstring's
        # remaining paragraphs together, so "Examples:" must not come first among them)
        lines = done.stdout.splitlines()
        heading = next(i for i, line in enumerate(lines) if line.strip() == "Examples:")
        indent = lambda line: len(line) - len(line.lstrip())  # noqa: E731
        assert indent(lines[heading + 1]) > indent(lines[heading]), lines[heading:heading + 2]
