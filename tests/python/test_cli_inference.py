"""End to end: a small simulated cohort through `bulkformer impute | embed | build-graph`."""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass

import anndata
import numpy as np
import pandas as pd
import pytest

import bulkformer
from bulkformer.inference import read_gene_embeddings
from tests.conftest import run_cli


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

    def run(*args: str) -> Done:
        done = run_cli(list(args), capsys, monkeypatch)
        return Done(done.code, done.out, done.err)

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


def test_cli_impute_h5ad_names_gene_symbols(cli, cohort):
    """scanpy users label genes by symbol: the h5ad's var carries the vocabulary's."""
    root, bundle, counts = cohort
    done = cli("impute", root / "counts.csv", "-m", root / "model", "-o", root / "imputed.h5ad", "--no-progress")
    assert done.returncode == 0, done.stderr
    adata = anndata.read_h5ad(root / "imputed.h5ad")
    assert list(adata.var_names) == bundle.gene_ids[:5]
    assert list(adata.var["symbol"]) == bundle.genes["symbol"].astype(str).tolist()[:5]
    library = bulkformer.impute(anndata.AnnData(counts.astype(np.float32)), bundle, progress=False)
    assert list(library.var["symbol"]) == list(adata.var["symbol"])
    # the run's record in uns, as the library's AnnData result has it (the CLI's lacked which and model)
    assert adata.uns["bulkformer"]["which"] == library.uns["bulkformer"]["which"] == "missing"
    assert dict(adata.uns["bulkformer"]["model"]) == dict(library.uns["bulkformer"]["model"])
    # no per-gene list in the frame's attrs: pandas deep-copies attrs on every column operation,
    # and writing 20,010 columns to parquet took 60 s and 3 GB with one there
    frame = bulkformer.impute(counts, bundle, which="all", progress=False)
    assert set(frame.attrs) == {"mapping_report", "model"}


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
    assert "mapped 75 of 75" in done.stderr  # the mapping report, as at sample level


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

    from bulkformer.cli.main import _plain_warning, as_cli_advice

    assert _plain_warning(UserWarning("input='counts' but the values look logged: pass input='logtpm'"),
                          UserWarning, "prepare.py", 139) == (
        "warning: --input counts but the values look logged: pass --input logtpm\n")  # what main() installs
    assert warnings.formatwarning is not _plain_warning  # and takes away when the command ends
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


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]


def test_cli_help_gives_flags_no_value_type(cli):
    # typer's rich help printed `--help <bool>` and `--progress --no-progress <bool>`
    for args in (["--help"], ["impute", "--help"], ["embed", "--help"]):
        done = cli(*args)
        assert done.returncode == 0 and "--help" in done.stdout
        assert "<bool>" not in done.stdout, done.stdout
    assert "<path>" in cli("impute", "--help").stdout  # options that take a value keep their type


def test_cli_orientation_advice_names_the_other_orientation(cli, cohort):
    root, _, _ = cohort
    # samples x genes given as genes_by_samples: the advice was to pass genes_by_samples
    done = cli("impute", root / "counts.csv", "-m", root / "model", "-o", root / "x.csv", "--orientation", "genes_by_samples")
    assert done.returncode == 2
    assert "Rows are samples: leave out --orientation genes_by_samples" in done.stderr, done.stderr
    assert "Pass --orientation genes_by_samples" not in done.stderr


def test_cli_warns_about_tpm_given_as_counts(cli, cohort, tmp_path):
    root, bundle, counts = cohort
    per_kb = counts / (bundle.genes.set_index("ensembl_id")["length"].reindex(counts.columns).to_numpy() / 1e3)
    (per_kb.div(per_kb.sum(axis=1), axis=0) * 1e6).to_csv(tmp_path / "tpm.csv")
    with pytest.warns(UserWarning, match=r"sums to 1e6, as TPM do: pass input='tpm'"):
        done = cli("impute", tmp_path / "tpm.csv", "-m", root / "model", "-o", tmp_path / "x.csv", "--no-progress")
    assert done.returncode == 0, done.stderr
    with _no_warnings():
        done = cli("impute", tmp_path / "tpm.csv", "-m", root / "model", "-o", tmp_path / "x.csv", "--no-progress",
                   "--input", "tpm")
    assert done.returncode == 0, done.stderr


def test_cli_build_graph_without_a_model_checks_the_table(cli, cohort, tmp_path):
    root, _, counts = cohort
    out = tmp_path / "graph.safetensors"
    # --input was ignored without --model: a graph of raw counts, silently
    done = cli("build-graph", root / "counts.csv", "--input", "counts", "-o", out)
    assert done.returncode == 2 and "--input counts needs --model (a model bundle" in done.stderr, done.stderr
    with pytest.warns(UserWarning, match="look like counts"):
        done = cli("build-graph", root / "counts.csv", "-o", out)
    assert done.returncode == 0, done.stderr
    # genes x samples read as samples x genes gave a graph over the samples
    np.log1p(counts.div(counts.sum(axis=1), axis=0) * 1e6).T.to_csv(tmp_path / "genes_by_samples.csv")
    done = cli("build-graph", tmp_path / "genes_by_samples.csv", "-o", out)
    assert done.returncode == 2 and "Pass --orientation genes_by_samples" in done.stderr, done.stderr
    with _no_warnings():
        done = cli("build-graph", tmp_path / "genes_by_samples.csv", "--orientation", "genes_by_samples", "-o", out)
    assert done.returncode == 0, done.stderr
    from bulkformer.graph import read_graph

    assert read_graph(out).gene_ids == [str(g) for g in counts.columns]


def test_cli_run_directory_as_model_names_its_model(cli, cohort, tmp_path):
    import shutil

    root, _, _ = cohort
    shutil.copytree(root / "model", tmp_path / "run" / "model")  # as `pretrain -o run` and `demo -o run` leave it
    for args in (["info", tmp_path / "run"],
                 ["impute", root / "counts.csv", "-m", tmp_path / "run", "-o", tmp_path / "x.csv"],
                 ["build-graph", root / "counts.csv", "-m", tmp_path / "run", "-o", tmp_path / "g.safetensors"]):
        done = cli(*args)
        assert done.returncode == 2 and f"the model in it is {tmp_path / 'run' / 'model'}" in done.stderr, done.stderr


@pytest.mark.parametrize("name,args,message", [
    ("data_dir", [], "is a directory: give one expression file"),
    ("counts.xlsx", [], "save a spreadsheet as CSV"),
    ("counts.csv", ["--layer", "counts"], "leave --layer out"),
])
def test_cli_input_errors_speak_command_line(cli, cohort, tmp_path, name, args, message):
    root, _, _ = cohort
    path = tmp_path / name
    path.mkdir() if name == "data_dir" else path.write_bytes((root / "counts.csv").read_bytes())
    done = cli("impute", path, "-m", root / "model", "-o", tmp_path / "x.csv", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "DataFrame" not in done.stderr


def test_cli_writes_compressed_tables(cli, cohort, tmp_path):
    root, _, _ = cohort
    done = cli("impute", root / "counts.csv", "-m", root / "model", "-o", tmp_path / "imputed.tsv.gz", "--no-progress")
    assert done.returncode == 0, done.stderr
    written = pd.read_csv(tmp_path / "imputed.tsv.gz", sep="\t", index_col=0)  # gzip, inferred from the name
    assert written.shape == (7, 5)


def test_cli_impute_says_when_no_gene_is_missing(cli, cohort, tmp_path):
    root, bundle, _ = cohort
    full = bulkformer.simulate_cohort(n_samples=4, vocabulary=bundle.genes, n_genes=None, seed=1, missing_fraction=0.0)
    full.counts.to_csv(tmp_path / "full.csv")
    done = cli("impute", tmp_path / "full.csv", "-m", root / "model", "-o", tmp_path / "x.csv", "--no-progress")
    assert done.returncode == 0 and "4 samples x 0 genes" in done.stdout
    assert "none is missing: --which all" in done.stderr, done.stderr


def test_cli_lengths_files(cli, cohort, tmp_path):
    root, bundle, counts = cohort
    lengths = pd.read_csv(root / "lengths.tsv", sep="\t")
    lengths.to_csv(tmp_path / "no_header.tsv", sep="\t", header=False, index=False)
    with_header = cli("impute", root / "counts.csv", "-m", root / "model", "--which", "all", "--lengths",
                      root / "lengths.tsv", "-o", tmp_path / "a.csv", "--no-progress")
    # the first gene was taken as a header: its length was silently the vocabulary's
    with _no_warnings():  # "1 of the matched genes have no length in lengths="
        without = cli("impute", root / "counts.csv", "-m", root / "model", "--which", "all", "--lengths",
                      tmp_path / "no_header.tsv", "-o", tmp_path / "b.csv", "--no-progress")
    assert with_header.returncode == without.returncode == 0, without.stderr
    assert pd.read_csv(tmp_path / "a.csv", index_col=0).equals(pd.read_csv(tmp_path / "b.csv", index_col=0))
    lengths.to_parquet(tmp_path / "lengths.parquet")
    done = cli("impute", root / "counts.csv", "-m", root / "model", "--lengths", tmp_path / "lengths.parquet",
               "-o", tmp_path / "c.csv", "--no-progress")
    assert done.returncode == 2 and "is not a text table" in done.stderr, done.stderr


@pytest.mark.parametrize("command", [
    ["impute", "{counts}", "-m", "{model}", "-o", "{blocker}/x.csv"],
    ["embed", "{counts}", "-m", "{model}", "--level", "gene", "-o", "{blocker}/deeper/g.zarr"],
    ["finetune", "{counts}", "--labels", "{counts}", "--column", "x", "-m", "{model}", "-o", "{blocker}/ft"],
    ["evaluate", "imputation", "{counts}", "-m", "{model}", "-o", "{blocker}/r.json"],
])
def test_cli_output_inside_a_file_fails_before_the_work(cli, cohort, tmp_path, command, monkeypatch):
    """An output path under an existing file ran the whole computation, then ended in a
    FileExistsError traceback (rc 1) when the result was written."""
    root, _, _ = cohort
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    import bulkformer.inference as inference

    def no_work(*args, **kwargs):
        raise AssertionError("the computation ran before the output path was checked")

    monkeypatch.setattr(inference.execution.Engine, "create", no_work)
    done = cli(*[a.format(counts=root / "counts.csv", model=root / "model", blocker=blocker) for a in command])
    assert done.returncode == 2, done.stderr
    assert "afile is a file, not a directory; give an output path inside a directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_sigterm_removes_the_unfinished_output(cohort, tmp_path):
    """A scheduler's SIGTERM killed the command outright and left the hidden staging
    store (.g.zarr.partial) behind; Ctrl-C already cleaned up."""
    import signal
    import subprocess
    import time

    root, _, counts = cohort
    many = pd.concat([counts] * 150)
    many.index = [f"S{i}" for i in range(len(many))]
    many.to_csv(tmp_path / "many.csv")
    out, staging = tmp_path / "g.zarr", tmp_path / ".g.zarr.partial"
    command = [sys.executable, "-c", "from bulkformer.cli import main; main()", "embed", str(tmp_path / "many.csv"),
               "-m", str(root / "model"), "--level", "gene", "-o", str(out), "--batch-size", "1", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not staging.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert staging.exists(), "the embedding finished (or failed) before it could be stopped"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM, process.stderr.read()
    assert not staging.exists() and not out.exists()


@pytest.mark.parametrize("failure,message,not_said", [
    (OSError(28, "No space left on device", "store/c/0/0/0"), "error: no space left on the device writing store/c/0/0/0: free space", "--dtype"),
    # a gene store's own levers for a store; none of them for a table (they would not help)
    (OSError(28, "No space left on device", "g.zarr/c/0/0/0"), "--dtype float16 halves it, --genes keeps fewer genes", None),
    (OSError(28, "No space left on device", "out.csv"), "error: no space left on the device writing out.csv: free space, or write the output to another disk", "--dtype"),
    (MemoryError(), "error: out of memory: lower --batch-size", None),
])
def test_cli_full_disk_and_memory_are_one_line_errors(cli, cohort, tmp_path, monkeypatch, failure, message, not_said):
    """A full disk or exhausted memory ended in a raw traceback with no advice; a full disk
    under a CSV output was advised to store fewer genes of a gene store."""
    root, _, _ = cohort
    import bulkformer.inference as inference

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(inference.execution.Engine, "create", fail)
    done = cli("embed", root / "counts.csv", "-m", root / "model", "--level", "gene", "-o", tmp_path / "g.zarr")
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not_said is None or not_said not in done.stderr, done.stderr


def test_gene_lists_take_a_file_by_path_or_at_path(tmp_path):
    """embed documented --genes @genes.txt and gene-survival --genes genes.txt; each
    command refused the other's spelling, treating it as one gene name."""
    from bulkformer.cli.inputs import gene_list

    (tmp_path / "genes.txt").write_text("TP53\nBRCA1, EGFR\n\n")
    assert gene_list(str(tmp_path / "genes.txt")) == ["TP53", "BRCA1", "EGFR"]
    assert gene_list("@" + str(tmp_path / "genes.txt")) == ["TP53", "BRCA1", "EGFR"]
    assert gene_list("TP53, BRCA1") == ["TP53", "BRCA1"]
    with pytest.raises(FileNotFoundError, match="gene list file .*missing.txt does not exist"):
        gene_list("@" + str(tmp_path / "missing.txt"))
