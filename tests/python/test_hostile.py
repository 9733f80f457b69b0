"""Hostile and faulty inputs (issue 31), table-driven: every case states the exit code
(or exception), words the message must contain, and is checked for no partial output
and for the user's existing files left byte-identical.

Command-line cases run in this process through the real entry point (seconds each);
the two that need separate processes (concurrent writers, a killed writer) run them.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bulkformer
from bulkformer.errors import ArgumentError, BulkformerError, InputError
from tests.conftest import Done, run_cli

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny bundle (no checksums: cases edit its files as a user would by hand) and a
    cohort measuring every vocabulary gene."""
    root = tmp_path_factory.mktemp("hostile")
    bundle = bulkformer.tiny_bundle(root / "model", n_genes=80)
    (root / "model" / "checksums.json").unlink(missing_ok=True)
    sim = bulkformer.simulate_cohort(n_samples=4, vocabulary=bundle.genes, n_genes=None, seed=3,
                                     missing_fraction=0.0)
    return root / "model", sim.counts


@dataclass
class Env:
    """One case's directory (the user's files) and the shared model."""

    dir: Path
    model: Path
    counts: pd.DataFrame

    def csv(self, name: str = "x.csv", frame: pd.DataFrame | None = None, **kwargs) -> Path:
        (frame if frame is not None else self.counts).to_csv(self.dir / name, **kwargs)
        return self.dir / name

    def bundle(self, edit: Callable[[Path], None]) -> Path:
        """A copy of the model inside the case directory, edited."""
        copy = self.dir / "bundle"
        shutil.copytree(self.model, copy)
        edit(copy)
        return copy


def snapshot(directory: Path) -> dict[str, str]:
    """relative path -> content hash of every file (hidden ones included); directories as 'dir'."""
    state = {}
    for entry in sorted(directory.rglob("*")):
        key = str(entry.relative_to(directory))
        state[key] = "dir" if entry.is_dir() else hashlib.sha256(entry.read_bytes()).hexdigest()
    return state




# ---------------------------------------------------------------- bundle edits

def edit_config(**model_values) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        doc = json.loads((bundle / "config.json").read_text())
        for key, value in model_values.items():
            if value is _DROP:
                del doc["model"][key]
            else:
                doc["model"][key] = value
        (bundle / "config.json").write_text(json.dumps(doc))
    return edit


_DROP = object()


def write_text(name: str, text: str | bytes) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        target = bundle / name
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return edit


def damage_header(bundle: Path) -> None:
    data = (bundle / "model.safetensors").read_bytes()
    (bundle / "model.safetensors").write_bytes(b"\xff" * 8 + data[8:])


def truncate(name: str, keep: float = 0.5) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        data = (bundle / name).read_bytes()
        (bundle / name).write_bytes(data[:int(len(data) * keep)])
    return edit


def tensor_edit(name: str, key: str, change: Callable) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(bundle / name))
        change(tensors[key])
        save_file(tensors, str(bundle / name))
    return edit


def set_item(index, value) -> Callable:
    def change(tensor) -> None:
        tensor[index] = value
    return change


def remove(name: str) -> Callable[[Path], None]:
    return lambda bundle: (bundle / name).unlink()


# ---------------------------------------------------------------- the command-line table

@dataclass
class Case:
    """``args(env)`` sets up the case's files and returns the command line; the run must
    exit ``code`` with every regex of ``says`` in its stderr; ``outputs``: the only files
    a successful run may add or change; ``check(env, done)``: further assertions."""

    id: str
    args: Callable[[Env], list]
    code: int = 2
    says: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    check: Callable[[Env, Done], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    traceback: bool = False


def impute(env: Env, data: Path | str, *extra, model: Path | None = None, out: str = "out.csv") -> list:
    return ["impute", data, "-m", model or env.model, "-o", env.dir / out, "--no-progress", *extra]


def embed(env: Env, data: Path | str, *extra, model: Path | None = None, out: str = "emb.csv") -> list:
    return ["embed", data, "-m", model or env.model, "-o", env.dir / out, "--no-progress", *extra]


def bad_bundle(edit: Callable[[Path], None]) -> Callable[[Env], list]:
    return lambda env: impute(env, env.csv(), model=env.bundle(edit))


def with_counts(change: Callable[[pd.DataFrame], pd.DataFrame], *extra, name: str = "x.csv") -> Callable[[Env], list]:
    return lambda env: impute(env, env.csv(name, change(env.counts.astype(float).copy())), *extra)


def set_value(value: float, row: int = 1, col: int = 2) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.iloc[row, col] = value
        return frame
    return change


def _raw(name: str, content: bytes) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        (env.dir / name).write_bytes(content)
        return env.dir / name
    return make


def truncated_gzip(env: Env) -> list:
    big = pd.concat([env.counts] * 60, ignore_index=True)
    big.index = [f"S{i}" for i in range(len(big))]
    data = gzip.compress(big.to_csv().encode())
    (env.dir / "x.csv.gz").write_bytes(data[:len(data) // 2])
    return impute(env, env.dir / "x.csv.gz")


def r_style_bom(env: Env) -> list:
    # R's write.table: no corner cell; Excel-style UTF-8 byte-order mark in front
    text = env.counts.to_csv(index_label=False)
    (env.dir / "x.csv").write_bytes("\ufeff".encode() + text.encode())
    return impute(env, env.dir / "x.csv", "--which", "all")


def bom_corner(env: Env) -> list:
    (env.dir / "x.csv").write_bytes(b"\xef\xbb\xbf" + env.counts.to_csv().encode())
    return impute(env, env.dir / "x.csv", "--which", "all")


def sample_ids_kept(env: Env, done: Done) -> None:
    assert "mapped 80 of 80 input genes" in done.err, done.err  # the BOM cost the first gene
    written = pd.read_csv(env.dir / "out.csv", index_col=0)
    assert list(written.index) == list(env.counts.index), list(written.index)[:2]
    assert written.shape[1] == 80 and np.isfinite(written.to_numpy()).all()


def refused_before_work(env: Env, done: Done) -> None:
    assert "mapped" not in done.err, "refused only after the computation"


def held_store(env: Env) -> list:
    """Another process (here: a lock taken as that process would) is writing the store."""
    from bulkformer.locks import OutputLock

    env.csv()
    (env.dir / ".g.zarr.partial").mkdir()
    (env.dir / ".g.zarr.partial" / "chunk").write_text("the other writer's data")
    lock = OutputLock(env.dir / "g.zarr")
    # flock is per open file: a lock held through another descriptor blocks this process too
    lock.acquire()
    env.held = lock  # type: ignore[attr-defined] - released by the check
    return embed(env, env.dir / "x.csv", "--level", "gene", out="g.zarr")


def release_held(env: Env, done: Done) -> None:
    env.held.release()  # type: ignore[attr-defined]
    assert (env.dir / ".g.zarr.partial" / "chunk").read_text() == "the other writer's data"


def stale_leftover(env: Env) -> list:
    # a temporary file a SIGKILLed writer (a pid no process has) left beside the output
    (env.dir / ".out.csv.4194302.abc.csv").write_bytes(b"")
    return impute(env, env.csv(), "--which", "all")


def leftover_swept(env: Env, done: Done) -> None:
    assert not (env.dir / ".out.csv.4194302.abc.csv").exists()


def existing_output(env: Env) -> list:
    (env.dir / "out.csv").write_text("the user's earlier result\n")
    return impute(env, env.csv("x.csv", set_value(float("inf"))(env.counts.astype(float).copy())))


def lengths_as_output(env: Env) -> list:
    pd.Series(1000, index=env.counts.columns, name="length").rename_axis("gene").to_csv(env.dir / "l.tsv", sep="\t")
    return ["impute", env.csv(), "-m", env.model, "--lengths", env.dir / "l.tsv", "-o", env.dir / "l.tsv",
            "--no-progress"]


def tpm_like_rsem(frame: pd.DataFrame) -> pd.DataFrame:
    # RSEM "normalized" values: per-sample sums of tens of millions
    return frame.div(frame.sum(axis=1), axis=0) * 3e7


def logtpm_on_counts(env: Env) -> list:
    return impute(env, env.csv(), "--input", "logtpm")


def noted_once(env: Env, done: Done) -> None:
    assert done.err.count("random weights") == 1, done.err


def evaluate_quiet(env: Env) -> list:
    labels = pd.Series(["a", "a", "b", "b"], index=env.counts.index, name="label")
    labels.to_csv(env.dir / "labels.csv")
    return ["evaluate", "classification", env.csv(), "--labels", env.dir / "labels.csv", "-m", env.model,
            "--folds", "2", "--pca", "2", "--trees", "5", "--no-progress"]


def no_bars(env: Env, done: Done) -> None:
    assert "sample/s" not in done.err and "%|" not in done.err, done.err


# MALAT1, NEAT1, XIST: GENCODE tables are two-thirds such genes, which no vocabulary holds
NON_CODING = ["ENSG00000251562.8", "ENSG00000245532.9", "ENSG00000229807.13"]


def with_non_coding(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{gene: 50.0 for gene in NON_CODING}, NOT_A_GENE=5.0)


CLI_CASES = [
    Case("non_coding_genes_said_on_success", with_counts(with_non_coding), code=0, outputs=("out.csv",),
         says=("(?m)^3 input genes are not in the vocabulary \\(non-coding",)),
    # quiet where asked, and never silent about a demo model
    Case("random_weights_noted", lambda e: impute(e, e.csv()), code=0, outputs=("out.csv",),
         says=("(?m)^note: .*has random weights \\(a demo model\\)",), check=noted_once),
    Case("random_weights_noted_by_evaluate", evaluate_quiet, code=0, says=("has random weights",), check=no_bars),
    # inputs are never outputs
    Case("impute_output_is_input", lambda e: impute(e, e.csv(), out="x.csv"), says=("is the input", r"x-bulkformer\.csv")),
    Case("impute_output_is_input_other_spelling",
         lambda e: impute(e, e.csv(), out="sub/../x.csv") if (e.dir / "sub").mkdir() is None else [],
         says=("is the input",)),
    Case("embed_output_is_input", lambda e: embed(e, e.csv(), out="x.csv"), says=("is the input",)),
    Case("lengths_file_is_output", lengths_as_output, says=("is the input", "--lengths")),
    Case("build_graph_output_is_input",
         lambda e: ["build-graph", e.csv("x.safetensors.csv"), "-o", e.dir / "x.safetensors.csv"],
         says=("safetensors",)),
    # outputs: refused before any work, never partial
    Case("output_is_a_directory", lambda e: impute(e, e.csv(), out="d.csv") if (e.dir / "d.csv").mkdir() is None else [],
         says=("is a directory", "one file"), check=refused_before_work),
    Case("output_under_a_file", lambda e: impute(e, e.csv(), out="x.csv/out.csv"), says=("is a file",)),
    Case("output_unknown_format", lambda e: impute(e, e.csv(), out="out.xlsx"), says=("cannot tell the output format",)),
    Case("gene_store_named_h5", lambda e: embed(e, e.csv(), "--level", "gene", out="g.h5"), says=("zarr",)),
    Case("gene_store_held_by_another_writer", held_store, says=("another process", "g.zarr"),
         check=release_held),
    Case("failing_run_keeps_existing_output", existing_output, says=("infinite",)),
    Case("killed_writers_leftover_swept", stale_leftover, code=0, outputs=("out.csv",), check=leftover_swept),
    # damaged or mis-encoded input files
    Case("truncated_gzip", truncated_gzip, says=("truncated or not a valid gzip", "x.csv.gz", "gzip -t")),
    Case("gz_name_plain_text", lambda e: impute(e, _raw("x.csv.gz", e.counts.to_csv().encode())(e)),
         says=("not a valid gzip",)),
    Case("utf16_text", lambda e: impute(e, e.csv("x.csv", encoding="utf-16")), says=("x.csv", "UTF-16", "UTF-8")),
    Case("binary_named_csv", lambda e: impute(e, _raw("x.csv", bytes(range(256)) * 8)(e)), says=("not UTF-8|not a text",)),
    Case("empty_h5ad", lambda e: impute(e, _raw("x.h5ad", b"")(e)), says=("x.h5ad", "empty")),
    Case("garbage_h5ad", lambda e: impute(e, _raw("x.h5ad", b"not hdf5 at all" * 50)(e)),
         says=("x.h5ad", "not a readable h5ad")),
    Case("empty_csv", lambda e: impute(e, _raw("x.csv", b"")(e)), says=("empty|no header",)),
    Case("header_only_csv", lambda e: impute(e, _raw("x.csv", b"sample,ENSG00000000003\n")(e)), says=("no samples|empty",)),
    Case("bom_r_style_header", r_style_bom, code=0, outputs=("out.csv",), check=sample_ids_kept),
    Case("bom_with_corner_cell", bom_corner, code=0, outputs=("out.csv",), check=sample_ids_kept),
    Case("missing_input", lambda e: impute(e, e.dir / "nope.csv"), says=("does not exist",)),
    Case("input_is_directory", lambda e: impute(e, e.dir), says=("is a directory",)),
    Case("spreadsheet_input", lambda e: impute(e, _raw("x.xlsx", b"PK\x03\x04")(e)), says=("CSV",)),
    # values that cannot be what they claim to be
    Case("counts_near_float_max", with_counts(set_value(1.7e308)), says=("above 1e\\+15", "NaN")),
    Case("infinite_counts", with_counts(set_value(float("inf"))), says=("infinite",)),
    Case("nan_counts", with_counts(set_value(float("nan"))), says=("NaN",)),
    Case("negative_counts", with_counts(set_value(-3.0)), says=("negative",)),
    Case("all_zero_sample", with_counts(lambda f: f.mul(np.r_[1, 0, 1, 1][:, None])), says=("all-zero",)),
    Case("rsem_normalized_as_tpm", with_counts(tpm_like_rsem, "--input", "tpm"), says=("sum to", "--input counts")),
    Case("logtpm_declared_on_counts", logtpm_on_counts, says=("log1p\\(1e6\\)", "--input counts")),
    Case("duplicate_samples", with_counts(lambda f: f.set_axis(["A", "A", "B", "C"])), says=("A",)),
    # bundles edited or damaged by hand
    Case("config_invalid_json", bad_bundle(write_text("config.json", '{"format": ')), says=("config.json", "not valid JSON", "line 1")),
    Case("config_not_utf8", bad_bundle(write_text("config.json", b"\xff\xfe{")), says=("config.json",)),
    Case("config_no_model_section", bad_bundle(write_text("config.json", '{"format": "bulkformer-bundle", "format_version": 1}')),
         says=("no model section",)),
    Case("config_value_as_string", bad_bundle(edit_config(dim="16")), says=("model.dim", "not a number")),
    Case("config_width_mismatch", bad_bundle(edit_config(dim=32)), says=("model.dim 32", "model.safetensors")),
    Case("config_bad_head_count", bad_bundle(edit_config(full_head=3)), says=("config.json", "model.full_head")),
    Case("config_huge_n_genes", bad_bundle(edit_config(n_genes=400_000_000)), says=("400,000,000", "genes.tsv lists 80")),
    Case("config_negative_depth", bad_bundle(edit_config(gb_repeat=-1)), says=("model.gb_repeat",)),
    Case("config_unknown_layout", bad_bundle(edit_config(version="v9")), says=("v9",)),
    Case("config_missing_key", bad_bundle(edit_config(dim=_DROP)), says=("config.json",)),
    Case("config_wrong_format_version", bad_bundle(lambda b: write_text("config.json", json.dumps(
        {**json.loads((b / "config.json").read_text()), "format_version": 99}))(b)), says=("format 99",)),
    Case("weights_header_damaged", bad_bundle(damage_header), says=("model.safetensors is damaged",)),
    Case("weights_truncated", bad_bundle(truncate("model.safetensors")), says=("model.safetensors",)),
    Case("weights_empty", bad_bundle(write_text("model.safetensors", b"")), says=("model.safetensors",)),
    Case("graph_truncated", bad_bundle(truncate("graph.safetensors")), says=("graph.safetensors",)),
    Case("nan_graph_weights", bad_bundle(tensor_edit("graph.safetensors", "edge_weight", set_item(3, float("nan")))),
         says=("edge_weight", "NaN or infinite")),
    Case("nan_model_weight", bad_bundle(tensor_edit("model.safetensors", "layernorm.weight", set_item(0, float("nan")))),
         says=("layernorm.weight", "NaN or infinite")),
    Case("inf_model_weight", bad_bundle(tensor_edit("model.safetensors", "head.3.weight", set_item((0, 0), float("inf")))),
         says=("head.3.weight",)),
    Case("negative_graph_index", bad_bundle(tensor_edit("graph.safetensors", "edge_index", set_item((0, 3), -1))),
         says=("index -1",)),
    Case("graph_index_past_vocabulary", bad_bundle(tensor_edit("graph.safetensors", "edge_index", set_item((1, 3), 80))),
         says=("index 80",)),
    Case("genes_tsv_missing", bad_bundle(remove("genes.tsv")), says=("genes.tsv is missing",)),
    Case("genes_tsv_short", bad_bundle(lambda b: (b / "genes.tsv").write_text(
        "\n".join((b / "genes.tsv").read_text().splitlines()[:41]) + "\n")), says=("genes.tsv lists 40",)),
    Case("model_dir_missing", lambda e: impute(e, e.csv(), model=e.dir / "nomodel"), says=("no model bundle",)),
    Case("model_is_a_pt_file", lambda e: impute(e, e.csv(), model=_raw("ckpt.pt", b"x")(e)), says=("import-checkpoint",)),
    # options
    Case("bad_which", lambda e: impute(e, e.csv(), "--which", "some"), says=("which",)),
    Case("bad_input_kind", lambda e: impute(e, e.csv(), "--input", "fpkm"), says=("fpkm",)),
    Case("bad_orientation", lambda e: impute(e, e.csv(), "--orientation", "sideways"), says=("orientation",)),
    Case("lengths_not_numbers", lambda e: impute(e, e.csv(), "--lengths", _raw("l.tsv", b"gene\tlength\nA\tlong\n")(e)),
         says=("l.tsv",)),
    Case("lengths_missing", lambda e: impute(e, e.csv(), "--lengths", e.dir / "nol.tsv"), says=("nol.tsv",)),
    Case("layer_on_csv", lambda e: impute(e, e.csv(), "--layer", "counts"), says=("--layer",)),
    Case("gene_list_file_missing", lambda e: embed(e, e.csv(), "--genes", "@nogenes.txt"), says=("nogenes.txt",)),
    Case("bad_aggregate", lambda e: embed(e, e.csv(), "--aggregate", "most"), says=("most",)),
    # tracebacks only when asked for
    Case("debug_flag_shows_traceback", lambda e: ["--debug", *impute(e, e.csv(), out="x.csv")],
         says=("is the input",), traceback=True),
    Case("debug_variable_shows_traceback", lambda e: impute(e, e.csv(), out="x.csv"), says=("is the input",),
         env={"BULKFORMER_DEBUG": "1"}, traceback=True),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_hostile_cli(case: Case, base, tmp_path, capsys, monkeypatch):
    model, counts = base
    monkeypatch.delenv("BULKFORMER_DEBUG", raising=False)
    env = Env(tmp_path, model, counts)
    args = case.args(env)
    before, model_before = snapshot(tmp_path), snapshot(model)
    done = run_cli(args, capsys, monkeypatch, case.env)
    assert done.code == case.code, done.err
    for pattern in case.says:
        assert re.search(pattern, done.err), f"{pattern!r} not in: {done.err}"
    assert ("Traceback" in done.err) == case.traceback, done.err
    if case.code != 0 and not case.traceback:
        errors = [line for line in done.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and done.err.strip().splitlines()[-1] == errors[0], done.err
    after = snapshot(tmp_path)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    allowed = set(case.outputs) | ({".out.csv.4194302.abc.csv"} if case.check is leftover_swept else set())
    assert changed <= allowed, f"files added, removed or changed: {sorted(changed - allowed)}"
    assert snapshot(model) == model_before
    if case.check is not None:
        case.check(env, done)


# ---------------------------------------------------------------- the Python API table

@dataclass
class ApiCase:
    """``call(env)`` must raise ``raises`` whose message matches ``says`` (or return, when
    ``raises`` is None, passing ``check``)."""

    id: str
    call: Callable[[Env], object]
    raises: type[BaseException] | None = InputError
    says: str = ""
    check: Callable[[Env, object], None] | None = None


def _load(edit: Callable[[Path], None]) -> Callable[[Env], object]:
    return lambda env: bulkformer.load(env.bundle(edit))


def _read(make: Callable[[Env], Path]) -> Callable[[Env], object]:
    return lambda env: bulkformer.io.read_expression(make(env))


def _bom_file(env: Env) -> Path:
    (env.dir / "x.csv").write_bytes("\ufeff".encode() + env.counts.to_csv(index_label=False).encode())
    return env.dir / "x.csv"


def _clean_names(env: Env, result) -> None:
    assert result.sample_ids == list(env.counts.index) and result.gene_ids == list(env.counts.columns)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _handle_closed_after_error(env: Env) -> None:
    from bulkformer.preprocess import prepare_chunks

    frame = env.counts.astype(float)
    frame.iloc[3, 0] = -1.0
    path = env.csv("x.csv", frame)
    model = bulkformer.load(env.model)
    before = _open_fds()
    errors = []  # kept alive with their tracebacks, as a notebook or a caller's log keeps them
    for _ in range(3):
        try:
            list(prepare_chunks(str(path), model, chunk_samples=1))
        except InputError as error:
            errors.append(error)
    assert len(errors) == 3
    assert _open_fds() <= before, "a failed read left file handles open until its traceback was collected"


def _second_store_writer(env: Env) -> None:
    from bulkformer.inference.stores import GeneEmbeddingWriter
    from bulkformer.locks import OutputBusyError

    first = GeneEmbeddingWriter(env.dir / "g.zarr", n_samples=2, n_genes=3, feature_dim=4)
    with pytest.raises(OutputBusyError, match="another process"):
        # the same process stands in for a second one: flock is per open file
        GeneEmbeddingWriter(env.dir / "g.zarr", n_samples=2, n_genes=3, feature_dim=4)
    assert first.staging.exists()  # the refused writer left the first one's store alone
    first.write(0, np.ones((2, 3, 4), dtype=np.float32))
    first.complete(sample_ids=["a", "b"], gene_ids=["g1", "g2", "g3"], metadata={})
    assert not (env.dir / ".g.zarr.lock").exists()
    assert bulkformer.inference.read_gene_embeddings(env.dir / "g.zarr").shape == (2, 3, 4)


def _prepare_values(value: float, input: str = "counts") -> Callable[[Env], object]:
    def call(env: Env) -> object:
        frame = env.counts.astype(float)
        frame.iloc[0, 0] = value
        return bulkformer.prepare(frame, bulkformer.load(env.model), input=input)
    return call


def _par_y_split(spelling: str) -> Callable[[Env], object]:
    """Salmon/RSEM split a pseudoautosomal gene's reads between its X row and its _PAR_Y
    row (GENCODE; ENSGR... before v25): the two are summed, as the unsplit gene."""
    def call(env: Env) -> object:
        frame = env.counts.astype(float)
        gene = str(frame.columns[0])
        y_name = spelling.format(digits=gene[5:], gene=gene)
        split = frame.assign(**{y_name: frame[gene] * 0.4})
        split[gene] = frame[gene] * 0.6
        model = bulkformer.load(env.model)
        with pytest.warns(UserWarning, match="merged"):
            prepared = bulkformer.prepare(split, model)
        whole = bulkformer.prepare(frame, model)
        np.testing.assert_allclose(prepared.values, whole.values, rtol=1e-6, atol=1e-6)
        report = prepared.report
        assert report.id_types.get("ensembl_par_y") == 1 and "symbol" not in report.id_types, report.id_types
        assert report.n_collapsed == 1 and report.n_matched == frame.shape[1] + 1
        assert sum(report.match_routes.values()) == report.n_matched, report.match_routes
    return call


def _routes_add_up(env: Env) -> None:
    frame = env.counts.astype(float)
    symbol = bulkformer.load(env.model).genes["symbol"].iloc[1]
    extra = frame.iloc[:, [1]].set_axis([symbol.lower()], axis=1)  # a tier-1 route to a directly measured gene
    with_superseded = pd.concat([frame, extra], axis=1)
    report = bulkformer.prepare(with_superseded, bulkformer.load(env.model)).report
    assert "superseded" not in report.match_routes, report.match_routes
    assert sum(report.match_routes.values()) == report.n_matched
    assert report.n_matched + report.n_unmatched == report.n_input_genes and report.n_unmatched == 1


def _non_coding_summary(env: Env) -> None:
    report = bulkformer.prepare(with_non_coding(env.counts.astype(float)), bulkformer.load(env.model)).report
    assert report.n_unmatched == 4 and report.n_outside_vocabulary == 3
    assert "3 input genes are not in the vocabulary" in report.summary(), report.summary()
    assert report.to_dict()["n_outside_vocabulary"] == 3


def _labelled_imputation(env: Env) -> None:
    """A cohort with genes in its own order (and one unmeasured): frame() labels every
    value by the vocabulary gene it belongs to, where .imputed is a bare array."""
    frame = env.counts.iloc[:, ::-1].iloc[:, 1:]
    result = bulkformer.inference.run_imputation(frame, bulkformer.load(env.model), progress=False)
    for name in ("imputed", "observed", "predicted"):
        labelled = result.frame(name)
        assert list(labelled.index) == result.sample_ids and list(labelled.columns) == result.gene_ids
        np.testing.assert_array_equal(labelled.to_numpy(), getattr(result, name))
    observed = result.frame("observed")
    assert observed[env.counts.columns[-1]].isna().all() and observed[frame.columns].notna().all().all()
    assert isinstance(result.imputed, np.ndarray)  # the array properties stay as they were
    with pytest.raises(ArgumentError, match="'imputed'"):
        result.frame("denoised")


API_CASES = [
    ApiCase("imputation_result_labelled_frame", _labelled_imputation, raises=None),
    ApiCase("non_coding_genes_in_report_summary", _non_coding_summary, raises=None),
    # real quantifications: GENCODE _PAR_Y rows, superseded IDs
    ApiCase("par_y_rows_summed_into_x", _par_y_split("{gene}_PAR_Y"), raises=None),
    ApiCase("old_ensgr_par_y_rows_summed_into_x", _par_y_split("ENSGR{digits}.7"), raises=None),
    ApiCase("mapping_routes_add_up_to_matched", _routes_add_up, raises=None),
    ApiCase("load_nan_weights", _load(tensor_edit("graph.safetensors", "edge_weight", set_item(0, float("nan")))),
            says="NaN or infinite"),
    ApiCase("load_invalid_config_json", _load(write_text("config.json", "{")), says="config.json is not valid JSON"),
    ApiCase("load_config_string_value", _load(edit_config(n_genes="80")), says="model.n_genes"),
    ApiCase("load_huge_n_genes", _load(edit_config(n_genes=400_000_000)), says="genes.tsv lists 80"),
    ApiCase("load_width_mismatch", _load(edit_config(dim=32)), says="model.dim 32"),
    ApiCase("load_damaged_header", _load(damage_header), says="is damaged"),
    ApiCase("load_negative_graph_index", _load(tensor_edit("graph.safetensors", "edge_index", set_item((0, 0), -5))),
            says="index -5"),
    ApiCase("load_gene_features_wrong_rows", _load(lambda b: __import__("safetensors.torch").torch.save_file(
        {"gene_features": __import__("torch").zeros(3, 2)}, str(b / "gene_features.safetensors"))), says="gene_features"),
    ApiCase("read_truncated_gzip", _read(lambda e: _raw("x.csv.gz", gzip.compress(e.counts.to_csv().encode())[:200])(e)),
            says="truncated"),
    ApiCase("read_utf16", _read(lambda e: e.csv("x.csv", encoding="utf-16")), says="UTF-16"),
    ApiCase("read_empty_h5ad", _read(lambda e: _raw("x.h5ad", b"")(e)), says="empty"),
    ApiCase("read_bom_r_style", _read(_bom_file), raises=None, check=_clean_names),
    ApiCase("prepare_float_max_counts", _prepare_values(1.7e308), says="above 1e\\+15"),
    ApiCase("prepare_logtpm_on_counts", _prepare_values(5000.0, "logtpm"), says="log1p"),
    ApiCase("file_handle_closed_after_error", _handle_closed_after_error, raises=None),
    ApiCase("second_store_writer_refused", _second_store_writer, raises=None),
]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.id)
def test_hostile_api(case: ApiCase, base, tmp_path):
    model, counts = base
    env = Env(tmp_path, model, counts)
    if case.raises is None:
        result = case.call(env)
        if case.check is not None:
            case.check(env, result)
        return
    with pytest.raises(case.raises, match=case.says) as raised:
        case.call(env)
    assert isinstance(raised.value, BulkformerError), type(raised.value)
    leftovers = [p.name for p in tmp_path.rglob(".*")]
    assert not leftovers, leftovers


# ---------------------------------------------------------------- separate processes

def _bulkformer(*args, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = Path(sys.executable).parent / "bulkformer"  # the installed entry point
    return subprocess.Popen([str(command), *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_hostile_concurrent_gene_stores(base, tmp_path):
    """Two `embed --level gene` runs writing one store leave one readable store: the
    second is refused (exit 2, naming the other writer) or runs after the first."""
    model, counts = base
    counts.to_csv(tmp_path / "x.csv")
    runs = [_bulkformer("embed", "x.csv", "-m", model, "--level", "gene", "-o", "same.zarr", "--no-progress",
                        cwd=tmp_path) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for code, err in results:
        assert code == 0 or (code == 2 and "another process" in err), err
    assert any(code == 0 for code, _ in results)
    store = bulkformer.inference.read_gene_embeddings(tmp_path / "same.zarr")
    assert store.shape == (len(counts), 80, 19) and np.isfinite(store.values).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.zarr", "x.csv"]


def test_hostile_resume_passes_over_truncated_checkpoint(tmp_path):
    """A full disk or a killed copy truncates the newest trainer.pt: resume takes the
    previous good checkpoint with a warning naming the damaged one (it said to download
    the file again), and a dead writer's hidden staging folder does not outlive a
    successful resume."""
    from bulkformer.annotation import default_vocabulary

    vocabulary = default_vocabulary().iloc[:40].reset_index(drop=True)
    counts = bulkformer.simulate_cohort(n_samples=16, vocabulary=vocabulary, n_genes=None, seed=3,
                                        missing_fraction=0.0).counts
    settings = dict(vocabulary=vocabulary, dim=16, heads=2, p_repeat=1, batch_size=8, device="cpu", progress=False,
                    epochs=3, checkpoint_every=2, val_fraction=0)
    run = tmp_path / "run"
    bulkformer.pretrain(counts, run, **settings)
    root = run / "checkpoints"
    newest = root / (root / "latest").read_text().strip()
    assert newest.name == "step-00000004"
    trainer = newest / "trainer.pt"
    trainer.write_bytes(trainer.read_bytes()[: trainer.stat().st_size // 2])
    orphan = root / ".step-00000006.4194302.abc"  # a SIGKILLed writer's staging (no process has that pid)
    (orphan / "bundle").mkdir(parents=True)
    with pytest.warns(UserWarning, match=r"passed over the damaged checkpoint step-00000004 .*resuming from "
                                         r"step-00000002") as caught:
        result = bulkformer.pretrain(counts, run, resume=True, **settings)
    assert not any("download" in str(w.message) for w in caught)
    assert result.bundle.metadata["pretraining"]["epochs_completed"] == 3
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]
