"""R <-> Python agreement: the R package and the Python API give the same science.

rpy2 (in this process) builds the Bioconductor objects a user would hold; one
``Rscript`` subprocess runs every case through the installed R package
(``r_side.R``; reticulate cannot share a process with rpy2) and saves the results;
rpy2 reads them back. The Python side runs the public API on the same numbers and
the same bundle. Imputation (observed, imputed, predicted), sample embeddings and
mapping reports must agree to 1e-6 with identical gene and sample order, and the
user's colData / rowData / assays must survive."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REFERENCE
from tests.r_helpers import have_r, run_rscript

pytestmark = pytest.mark.skipif(not have_r(), reason="R is not installed")

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-6


@dataclass
class Case:
    """One input kind: the R object (rpy2), the Python call that should match it."""

    r_object: Any
    model: Path
    frame: pd.DataFrame  # samples x genes, the same numbers the R object holds
    aggregate: str
    lengths: pd.DataFrame | None = None  # samples x genes (tximport avgTxLength)
    gene_level: bool = False  # also compare level = "gene" embeddings
    genes: list[str] | None = None  # gene subset for the gene-level store
    python: dict = field(default_factory=dict)  # filled by the python_results fixture


# --------------------------------------------------------------------------- rpy2 side

@pytest.fixture(scope="module")
def r():
    """rpy2's embedded R with the builders of helpers.R (never the bulkformer R package).

    Starting R in-process rewrites os.environ (R_HOME, and LD_LIBRARY_PATH with
    /usr/lib/x86_64-linux-gnu first, where Debian's libpython3.11 would then shadow
    the venv interpreter's own in every later subprocess: `import ssl` fails there).
    The environment is put back as it was once R is up, and again at teardown."""
    saved = dict(os.environ)

    def restore() -> None:
        os.environ.clear()
        os.environ.update(saved)

    try:
        import rpy2.robjects as ro

        ro.r["source"](str(HERE / "helpers.R"))
    finally:
        restore()
    yield ro
    restore()


def _to_numpy(matrix) -> np.ndarray:
    import rpy2.robjects as ro
    from rpy2.robjects import numpy2ri
    from rpy2.robjects.conversion import localconverter

    with localconverter(ro.default_converter + numpy2ri.converter):
        return np.asarray(ro.conversion.rpy2py(matrix), dtype=np.float64)


def _strings(vector) -> list[str]:
    return [str(v) for v in vector]


def _r_matrix(r, frame: pd.DataFrame):
    """samples x genes frame -> R genes x samples numeric matrix with dimnames."""
    values = frame.to_numpy(dtype=np.float64).T  # genes x samples
    return r.r["agreement_counts"](r.FloatVector(values.ravel(order="F")), r.StrVector(list(frame.columns)),
                                   r.StrVector(list(frame.index)))


def _r_coldata(r, samples: list[str], seed: int):
    rng = np.random.default_rng(seed)
    condition = ["treated" if i % 2 else "control" for i in range(len(samples))]
    return r.r["agreement_coldata"](r.StrVector(samples), r.StrVector(condition),
                                    r.FloatVector(rng.integers(20, 80, len(samples)).astype(float)))


def r_to_python(value):
    """An R value read back with rpy2 -> plain Python (named list -> dict, vector -> list,
    length-one vector -> scalar), the shape reticulate gave the report in R."""
    import rpy2.rinterface as ri
    import rpy2.robjects as ro

    if value is ri.NULL or value is None:
        return None
    if isinstance(value, (ro.vectors.ListVector, ri.ListSexpVector)):
        names = list(value.names) if value.names is not ri.NULL else None
        items = [r_to_python(v) for v in value]
        if names and any(names):
            return dict(zip(names, items))
        return items
    items = [None if v is ri.NA_Logical or v is ri.NA_Character or v is ri.NA_Integer else v for v in value]
    items = [bool(v) if isinstance(v, (bool, np.bool_)) else v for v in items]
    return items[0] if len(items) == 1 else items


def normalise_report(report) -> Any:
    """A JSON-safe report in the R-side shape: one-element sequences are scalars, empty
    sequences and mappings are None (R cannot tell list() from an empty dict)."""
    if isinstance(report, dict):
        return None if not report else {k: normalise_report(v) for k, v in report.items()}
    if isinstance(report, (list, tuple)):
        if not report:
            return None
        return normalise_report(report[0]) if len(report) == 1 else [normalise_report(v) for v in report]
    return report


# --------------------------------------------------------------------------- the cases

def _vocabulary_counts(bundle, n_samples: int, seed: int) -> pd.DataFrame:
    """Simulated counts (samples x genes) over a bundle's whole vocabulary."""
    import bulkformer

    cohort = bulkformer.simulate_cohort(n_samples=n_samples, vocabulary=bundle.genes, seed=seed, n_genes=None,
                                        missing_fraction=0.0)
    counts = cohort.counts.astype(np.float64)
    counts.index = [f"patient_{i + 1}" for i in range(n_samples)]
    return counts


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import bulkformer

    path = tmp_path_factory.mktemp("agreement") / "tiny-bundle"
    bulkformer.tiny_bundle(path, n_genes=300, seed=0)
    return path


@pytest.fixture(scope="module")
def cases(r, tiny_model, request) -> dict[str, Case]:
    import bulkformer

    bundle = bulkformer.load(tiny_model)
    vocabulary = bundle.genes.reset_index(drop=True)
    rng = np.random.default_rng(8)
    built: dict[str, Case] = {}

    # 1. SummarizedExperiment, counts assay, unversioned Ensembl IDs in shuffled order,
    #    a few IDs outside the vocabulary
    counts = _vocabulary_counts(bundle, 6, seed=1)
    genes = list(rng.choice(vocabulary.ensembl_id, 220, replace=False))
    frame = counts[genes].copy()
    for i in range(3):
        frame[f"ENSG0000099999{i}"] = rng.poisson(40, len(frame)).astype(np.float64)
    built["se_counts"] = Case(r.r["agreement_se"](_r_matrix(r, frame), _r_coldata(r, list(frame.index), 1)),
                              tiny_model, frame, "max", gene_level=True)

    # 2. DESeqDataSetFromMatrix with a design
    counts = _vocabulary_counts(bundle, 8, seed=2)
    frame = counts[list(vocabulary.ensembl_id[20:270])]
    built["dds_matrix"] = Case(r.r["agreement_dds_from_matrix"](_r_matrix(r, frame), _r_coldata(r, list(frame.index), 2)),
                               tiny_model, frame, "mean")

    # 3. makeExampleDESeqDataSet() with rownames set to real Ensembl IDs; the Python
    #    side reads the very counts DESeq2 simulated
    genes = list(rng.choice(vocabulary.ensembl_id, 240, replace=False))
    dds = r.r["agreement_example_dds"](r.StrVector(genes), 6, 3)
    values = _to_numpy(r.r["agreement_assay"](dds, "counts"))
    frame = pd.DataFrame(values.T, index=_strings(r.r["colnames"](dds)), columns=genes)
    built["dds_example"] = Case(dds, tiny_model, frame, "median", gene_level=True,
                                genes=list(vocabulary.ensembl_id[[250, 3, 77, 120]]))

    # 4. tximport-style SummarizedExperiment: counts, abundance and avgTxLength assays
    counts = _vocabulary_counts(bundle, 5, seed=4)
    frame = counts[list(vocabulary.ensembl_id[:200])]
    base = vocabulary.set_index("ensembl_id")["length"].astype("float64").fillna(1000.0)[frame.columns]
    lengths = pd.DataFrame(base.to_numpy()[None, :] * rng.uniform(0.6, 1.4, frame.shape), index=frame.index,
                           columns=frame.columns)
    built["tximport_se"] = Case(
        r.r["agreement_tximport_se"](_r_matrix(r, frame), _r_matrix(r, lengths), _r_coldata(r, list(frame.index), 4)),
        tiny_model, frame, "all", lengths=lengths)

    # 5. plain matrix: versioned Ensembl IDs mixed with gene symbols (and two unknowns)
    counts = _vocabulary_counts(bundle, 5, seed=5)
    chosen = vocabulary.iloc[30:290]
    names = []
    for i, (gene, symbol) in enumerate(zip(chosen.ensembl_id, chosen.symbol)):
        if i % 3 == 0 and isinstance(symbol, str) and symbol:
            names.append(symbol)
        elif i % 3 == 1:
            names.append(f"{gene}.{1 + i % 7}")
        else:
            names.append(gene)
    frame = counts[list(chosen.ensembl_id)].copy()
    frame.columns = names
    frame["NOT_A_GENE"] = 7.0
    frame["ENSG00000000000.1"] = 3.0
    built["matrix_mixed"] = Case(_r_matrix(r, frame), tiny_model, frame, "max")

    # 6. the engine-core reference fixture (v2_tiny, synthetic ENSG IDs) as a bundle
    if (REFERENCE / "v2_tiny").exists():
        fixture = request.getfixturevalue("reference_bundles")["v2_tiny"]
        fixture_bundle = bulkformer.load(fixture)
        counts = _vocabulary_counts(fixture_bundle, 4, seed=6)
        frame = counts[fixture_bundle.gene_ids[: int(0.8 * len(fixture_bundle.gene_ids))]]
        built["se_fixture_v2"] = Case(r.r["agreement_se"](_r_matrix(r, frame), _r_coldata(r, list(frame.index), 6)),
                                      fixture, frame, "mean")

    # 7. bulkformer-latest: its release folder, as downloaded, is the model; a DESeqDataSet
    #    lacking some of its genes; its own pooling (the mean over each sample's measured genes)
    release = REFERENCE / "latest_tiny" / "bulkformer-latest"
    if release.exists():
        latest = bulkformer.load(release)
        counts = _vocabulary_counts(latest, 6, seed=7)
        frame = counts[latest.gene_ids[: int(0.85 * len(latest.gene_ids))]]
        built["dds_latest_release"] = Case(
            r.r["agreement_dds_from_matrix"](_r_matrix(r, frame), _r_coldata(r, list(frame.index), 7)),
            release, frame, "default", gene_level=True)  # R's "default" = Python's None = observed_mean
    return built


@pytest.fixture(scope="module")
def r_results(r, cases, installed_r_library, tmp_path_factory) -> dict[str, Any]:
    """All cases through the R package in ONE Rscript call (R + reticulate + torch start once)."""
    work = tmp_path_factory.mktemp("agreement-r")
    def entry(case: Case):
        fields = {"x": case.r_object, "model": str(case.model), "aggregate": case.aggregate,
                  "gene_level": case.gene_level}
        if case.genes is not None:
            fields["genes"] = r.StrVector(case.genes)
        return r.ListVector(fields)

    payload = r.ListVector({name: entry(case) for name, case in cases.items()})
    r.r["saveRDS"](payload, str(work / "cases.rds"))
    run_rscript([str(HERE / "r_side.R"), str(work / "cases.rds"), str(work / "results.rds")],
                library=installed_r_library, cwd=work)
    results = r.r["readRDS"](str(work / "results.rds"))
    return {name: results.rx2(name) for name in results.names}


@pytest.fixture(scope="module")
def python_results(cases, tmp_path_factory) -> dict[str, dict]:
    import bulkformer
    from bulkformer.inference import read_gene_embeddings, run_imputation

    out = {}
    for name, case in cases.items():
        bundle = bulkformer.load(case.model)
        lengths = case.lengths
        imputation = run_imputation(case.frame, bundle, input="counts", lengths=lengths, progress=False)
        pooling = None if case.aggregate == "default" else case.aggregate  # R's "default": the model's own
        embedding = bulkformer.embed(case.frame, bundle, aggregate=pooling, lengths=lengths, progress=False)
        out[name] = {"imputation": imputation, "embedding": embedding, "bundle": bundle}
        if case.gene_level:
            store = tmp_path_factory.mktemp("agreement-py") / f"{name}-genes.zarr"
            bulkformer.embed(case.frame, bundle, level="gene", genes=case.genes, out=store, lengths=lengths,
                             progress=False)
            out[name]["gene_embeddings"] = read_gene_embeddings(store)
    return out


# --------------------------------------------------------------------------- comparisons

def assert_close(r_values: np.ndarray, py_values: np.ndarray, what: str) -> None:
    """Same shape, NA exactly where Python has NaN, max |diff| <= TOLERANCE elsewhere."""
    assert r_values.shape == py_values.shape, f"{what}: shape R {r_values.shape} vs Python {py_values.shape}"
    r_na, py_na = np.isnan(r_values), np.isnan(py_values)
    assert np.array_equal(r_na, py_na), f"{what}: missing values differ at {int((r_na != py_na).sum())} entries"
    diff = float(np.max(np.abs(r_values[~r_na] - py_values[~py_na]), initial=0.0))
    assert diff <= TOLERANCE, f"{what}: max abs diff {diff:.3g} > {TOLERANCE}"


def r_imputation(r, result) -> dict[str, Any]:
    imputed = result.rx2("imputed")
    rowdata = r.r["agreement_rowdata"](imputed)
    return {
        "genes": _strings(r.r["rownames"](imputed)),
        "samples": _strings(r.r["colnames"](imputed)),
        **{assay: _to_numpy(r.r["agreement_assay"](imputed, assay)).T for assay in ("logtpm", "imputed", "predicted")},
        "rowdata": {col: list(rowdata.rx2(col)) for col in rowdata.names},
        "report": r_to_python(r.r["metadata"](imputed).rx2("mapping_report")),
    }


def r_embedding(r, result) -> dict[str, Any]:
    embedding = result.rx2("embedding")
    return {
        "values": _to_numpy(embedding),
        "samples": _strings(r.r["rownames"](embedding)),
        "sample_order": _strings(r.r["agreement_sample_names"](result.rx2("embedded"))),
        "report": r_to_python(result.rx2("embed_report")),
    }


def assert_imputation_agrees(r_side: dict, py_result) -> None:
    assert r_side["genes"] == list(py_result.gene_ids), "gene order differs"
    assert r_side["samples"] == list(py_result.sample_ids), "sample order differs"
    for assay, py_values in (("logtpm", py_result.observed), ("imputed", py_result.imputed),
                             ("predicted", py_result.predicted)):
        assert_close(r_side[assay], np.asarray(py_values, dtype=np.float64), f"assay {assay}")


def assert_embedding_agrees(r_side: dict, py_frame: pd.DataFrame) -> None:
    assert r_side["samples"] == [str(s) for s in py_frame.index], "sample order differs"
    assert_close(r_side["values"], py_frame.to_numpy(dtype=np.float64), "sample embedding")


CASE_NAMES = ["se_counts", "dds_matrix", "dds_example", "tximport_se", "matrix_mixed", "se_fixture_v2",
              "dds_latest_release"]


def _case(name: str, cases: dict[str, Case]) -> Case:
    if name not in cases:
        pytest.skip(f"case {name} needs ../shared (reference fixtures)")
    return cases[name]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_imputation_agrees(name, r, cases, r_results, python_results):
    case = _case(name, cases)
    r_side = r_imputation(r, r_results[name])
    py = python_results[name]["imputation"]
    assert_imputation_agrees(r_side, py)
    assert r_side["samples"] == list(case.frame.index)
    # something was imputed and something measured: the comparison is not vacuous
    assert 0 < int(py.measured.sum()) < len(py.gene_ids)
    assert np.isfinite(r_side["imputed"]).all()


@pytest.mark.parametrize("name", CASE_NAMES)
def test_rowdata_is_the_vocabulary_with_the_measured_flag(name, r, cases, r_results, python_results):
    _case(name, cases)
    rowdata = r_imputation(r, r_results[name])["rowdata"]
    py = python_results[name]
    genes = py["bundle"].genes.reset_index(drop=True)
    assert [str(g) for g in rowdata["ensembl_id"]] == list(genes.ensembl_id)
    assert [bool(m) for m in rowdata["measured"]] == [bool(m) for m in py["imputation"].measured]
    r_symbols = [None if s is None or (isinstance(s, float) and math.isnan(s)) or str(s) == "NA" else str(s)
                 for s in rowdata["symbol"]]
    py_symbols = [None if not isinstance(s, str) or not s else s for s in genes.symbol]
    assert r_symbols == py_symbols
    r_lengths = np.array([np.nan if v is None else float(v) for v in rowdata["length"]])
    py_lengths = genes.length.astype("float64").to_numpy()
    assert np.array_equal(np.isnan(r_lengths), np.isnan(py_lengths))
    assert np.array_equal(r_lengths[~np.isnan(r_lengths)], py_lengths[~np.isnan(py_lengths)])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_sample_embedding_agrees(name, r, cases, r_results, python_results):
    case = _case(name, cases)
    r_side = r_embedding(r, r_results[name])
    assert_embedding_agrees(r_side, python_results[name]["embedding"])
    assert r_side["sample_order"] == list(case.frame.index)
    assert r_side["values"].shape[1] == python_results[name]["bundle"].config.feature_dim


@pytest.mark.parametrize("name", CASE_NAMES)
def test_mapping_reports_agree(name, r, cases, r_results, python_results):
    _case(name, cases)
    py = python_results[name]
    expected = normalise_report(json.loads(json.dumps(py["imputation"].report.to_dict())))
    assert normalise_report(r_imputation(r, r_results[name])["report"]) == expected
    embedded = normalise_report(json.loads(json.dumps(py["embedding"].attrs["mapping_report"])))
    assert normalise_report(r_embedding(r, r_results[name])["report"]) == embedded
    assert expected["n_input_genes"] == cases[name].frame.shape[1]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_user_objects_are_preserved(name, r, cases, r_results):
    case = _case(name, cases)
    result = r_results[name]
    problems = _strings(r.r["agreement_preserved"](case.r_object, result.rx2("imputed"), result.rx2("embedded")))
    assert problems == []


@pytest.mark.parametrize("name", [n for n in CASE_NAMES if n in ("se_counts", "dds_example")])
def test_gene_level_embeddings_agree(name, r, cases, r_results, python_results):
    """level = "gene": the on-disk store written from R and read back with
    readBulkformerGeneEmbeddings() holds Python's samples x genes x features array."""
    case = _case(name, cases)
    stored = r_results[name].rx2("gene_embeddings")
    expected = python_results[name]["gene_embeddings"]
    dimnames = stored.do_slot("dimnames")
    assert _strings(dimnames[0]) == list(expected.sample_ids) == list(case.frame.index)
    assert _strings(dimnames[1]) == list(expected.gene_ids)
    if case.genes is not None:
        assert list(expected.gene_ids) == case.genes
    assert_close(_to_numpy(stored), expected.values.astype(np.float64), "gene-level embedding")


def test_report_covers_each_identifier_kind(r, cases, r_results):
    """The mixed matrix really exercised symbols, versioned IDs and unknown names."""
    report = r_imputation(r, r_results["matrix_mixed"])["report"]
    assert report["n_unmatched"] == 2
    assert len(report["id_types"]) >= 2, report["id_types"]
    assert r_imputation(r, r_results["se_counts"])["report"]["n_unmatched"] == 3


def test_starting_r_in_process_leaves_the_environment_alone(r):
    """Later tests start Python subprocesses (torchrun, notebook kernels, the CLI)."""
    import subprocess

    from tests.r_helpers import repo_python

    assert "/usr/lib/R/lib" not in os.environ.get("LD_LIBRARY_PATH", "")
    probe = subprocess.run([repo_python(), "-c", "import ssl"], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr


def test_a_1e3_perturbation_on_either_side_is_caught(r, r_results, python_results):
    """The comparison can fail: 1e-3 added to one entry of one side is reported."""
    r_side = r_imputation(r, r_results["tximport_se"])
    py = python_results["tximport_se"]["imputation"]
    assert_imputation_agrees(r_side, py)  # unperturbed: agrees

    missing_gene = int(np.flatnonzero(~py.measured)[0])
    perturbed_r = dict(r_side, imputed=r_side["imputed"].copy())
    perturbed_r["imputed"][1, missing_gene] += 1e-3
    with pytest.raises(AssertionError, match="assay imputed: max abs diff 0.001"):
        assert_imputation_agrees(perturbed_r, py)

    r_emb = r_embedding(r, r_results["tximport_se"])
    py_emb = python_results["tximport_se"]["embedding"].astype("float64")
    py_emb.iloc[0, 3] += 1e-3
    with pytest.raises(AssertionError, match="sample embedding: max abs diff 0.001"):
        assert_embedding_agrees(r_emb, py_emb)
