"""bulkformer.io: every supported source gives the same samples x genes matrix."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bulkformer.annotation import default_vocabulary
from bulkformer.io import as_matrix, file_format, iter_file, read_expression, read_gene_ids, read_sample_ids
from bulkformer.preprocess import prepare

GENES = list(default_vocabulary()["ensembl_id"].iloc[:30])


@pytest.fixture()
def counts() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.integers(0, 1000, size=(7, 30)), index=[f"S{i}" for i in range(7)], columns=GENES)


def _write(frame: pd.DataFrame, path, kind: str) -> None:
    if kind == "csv":
        frame.to_csv(path)
    elif kind == "tsv.gz":
        frame.to_csv(path, sep="\t")
    elif kind == "parquet":
        frame.to_parquet(path)
    elif kind == "h5ad":
        import anndata
        anndata.AnnData(X=frame.to_numpy(np.float32), obs=pd.DataFrame(index=frame.index.astype(str)),
                        var=pd.DataFrame(index=frame.columns.astype(str))).write_h5ad(path)


@pytest.mark.parametrize("kind", ["csv", "tsv.gz", "parquet", "h5ad"])
@pytest.mark.parametrize("orientation", ["samples_by_genes", "genes_by_samples"])
def test_files_read_whole_and_chunked(tmp_path, counts, kind, orientation):
    path = tmp_path / f"counts.{kind}"
    stored = counts if orientation == "samples_by_genes" else counts.T
    _write(stored, path, kind)
    matrix = read_expression(path, orientation=orientation)
    assert matrix.gene_ids == GENES and matrix.sample_ids == list(counts.index)
    np.testing.assert_array_equal(matrix.values, counts.to_numpy())
    gene_ids, chunks = iter_file(path, orientation=orientation, chunk_samples=3)
    chunks = list(chunks)
    assert gene_ids == GENES and [len(c.sample_ids) for c in chunks] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([c.values for c in chunks]), counts.to_numpy())
    assert read_gene_ids(path, orientation=orientation) == GENES
    prepared = prepare(path, GENES, orientation=orientation, chunk_samples=2)
    np.testing.assert_allclose(prepared.values, prepare(counts, GENES).values, rtol=1e-6)


def test_text_keeps_repeated_gene_ids(tmp_path, counts):
    path = tmp_path / "dup.csv"
    counts.set_axis(GENES[:-1] + [GENES[0]], axis=1).to_csv(path)
    matrix = read_expression(path)
    assert matrix.gene_ids[-1] == GENES[0]  # pandas would have renamed it to "<id>.1"


@pytest.mark.parametrize("orientation", ["samples_by_genes", "genes_by_samples"])
def test_numeric_looking_sample_ids_of_a_text_file_are_kept_as_written(tmp_path, counts, orientation):
    """'001' came back as '1' and '3' as '3.0' (the ID column was parsed as numbers), so
    outputs were renamed and labels written with the same IDs matched nothing."""
    ids = ["001", "002", "010", "3", "4.0", "1e5", "S7"]
    path = tmp_path / "ids.csv"
    named = counts.set_axis(ids, axis=0)
    (named if orientation == "samples_by_genes" else named.T).to_csv(path)
    assert read_expression(path, orientation=orientation).sample_ids == ids
    assert read_sample_ids(path, orientation=orientation) == ids
    assert [s for c in iter_file(path, orientation=orientation, chunk_samples=3)[1] for s in c.sample_ids] == ids


def test_semicolon_tables_are_read_and_other_separators_named(tmp_path, counts):
    """A spreadsheet's ';' table was one column per line: 'no genes' when small, and a
    csv.Error traceback (field larger than field limit) when wide."""
    path = tmp_path / "excel.csv"
    counts.to_csv(path, sep=";")
    matrix = read_expression(path)
    assert matrix.gene_ids == GENES and matrix.sample_ids == list(counts.index)
    np.testing.assert_array_equal(matrix.values, counts.to_numpy())
    wide = tmp_path / "pipes.txt"
    wide.write_text("|".join(["sample", *[f"ENSG{i:011d}" for i in range(20_000)]]) + "\nA|" + "|".join(["1"] * 20_000))
    with pytest.raises(ValueError, match=r"header line is not separated by tabs, commas or semicolons \(one field of "
                                         r"[0-9,]+ characters\): save the table as CSV or TSV"):
        read_expression(wide)


def test_repeated_sample_names_in_a_file_are_an_error(tmp_path, counts):
    path = tmp_path / "dup_samples.tsv"
    counts.T.set_axis(["A", "B", "A", "C", "D", "E", "F"], axis=1).to_csv(path, sep="\t")
    with pytest.raises(ValueError, match="duplicated sample names: 'A'"):
        prepare(path, GENES, orientation="genes_by_samples")


def test_parquet_with_a_leading_id_column(tmp_path, counts):
    path = tmp_path / "plain.parquet"
    counts.T.reset_index(names="gene").to_parquet(path, index=False)
    matrix = read_expression(path, orientation="genes_by_samples")
    assert matrix.gene_ids == GENES and matrix.sample_ids == list(counts.index)


def test_in_memory_sources(counts):
    anndata = pytest.importorskip("anndata")
    from scipy import sparse

    sparse_adata = anndata.AnnData(X=sparse.csr_matrix(counts.to_numpy(np.float32)),
                                   obs=pd.DataFrame(index=counts.index), var=pd.DataFrame(index=counts.columns))
    matrix = as_matrix(sparse_adata)
    np.testing.assert_array_equal(matrix.values, counts.to_numpy())
    nullable = counts.astype("Int64")
    np.testing.assert_array_equal(as_matrix(nullable).values, counts.to_numpy())
    explicit = as_matrix(counts.to_numpy().T, genes=GENES, samples=list("abcdefg"), orientation="genes_by_samples")
    assert explicit.sample_ids == list("abcdefg") and explicit.values.shape == (7, 30)
    with pytest.raises(ValueError, match="layer 'missing' is not in the AnnData"):
        as_matrix(sparse_adata, layer="missing")


def test_file_format_names():
    assert file_format("a.tsv.gz") == file_format("x.csv") == file_format("TCGA_ACC_Counts.exp.gz") == "text"
    assert file_format("a.parquet") == "parquet" and file_format("a.h5ad") == "h5ad"
    with pytest.raises(ValueError, match="unsupported file type"):
        file_format("a.xlsx")


@pytest.mark.parametrize("kind", ["parquet", "h5ad"])
def test_prepare_of_a_file_holds_one_copy_of_the_output(tmp_path, kind):
    """Formats that tell their sample count (h5ad, parquet) are written block by block into
    one output; the blocks were concatenated, holding the output twice at the end."""
    import tracemalloc

    vocabulary = default_vocabulary()
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.integers(0, 1000, size=(240, 200)).astype(np.float32),
                         index=[f"S{i}" for i in range(240)], columns=list(vocabulary["ensembl_id"].iloc[:200]))
    path = tmp_path / f"cohort.{kind}"
    _write(frame, path, kind)
    expected = prepare(frame, vocabulary, min_matched_fraction=0).values
    output_bytes = expected.nbytes  # 240 x ~19,400 float32: 19 MB
    tracemalloc.start()
    try:
        prepared = prepare(path, vocabulary, chunk_samples=30, min_matched_fraction=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(prepared.values, expected, rtol=1e-6)
    assert prepared.sample_ids == list(frame.index)
    assert peak < 1.5 * output_bytes, f"peak {peak / 1e6:.1f} MB for an output of {output_bytes / 1e6:.1f} MB"



@pytest.mark.parametrize("kind", ["h5ad"])  # parquet chunks live in arrow buffers, which tracemalloc does not see
def test_read_expression_of_a_file_holds_one_copy(tmp_path, kind, monkeypatch):
    """The whole-file reader (build_graph reads a cohort with it) copies each chunk into
    one matrix as it is read; the chunks were concatenated, holding the values twice."""
    import tracemalloc

    import bulkformer.io.files

    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(4000, 200)).astype(np.float32), index=[f"S{i}" for i in range(4000)],
                         columns=list(default_vocabulary()["ensembl_id"].iloc[:200]))
    path = tmp_path / f"cohort.{kind}"
    _write(frame, path, kind)
    monkeypatch.setattr(bulkformer.io.files, "CHUNK_BYTES", 200 * 8 * 250)  # chunks of 250 samples
    tracemalloc.start()
    try:
        matrix = read_expression(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(matrix.values, frame.to_numpy())
    assert peak < 1.5 * matrix.values.nbytes, f"peak {peak / 1e6:.1f} MB for {matrix.values.nbytes / 1e6:.1f} MB of values"
