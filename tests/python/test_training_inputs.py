"""Pretraining on data as users hold it: shard folders with stray, empty or odd files,
h5ad layers, genes x samples tables, R's headers, repeated samples, and the run
directory (what may be written over, what --resume may continue)."""
from __future__ import annotations

import sys
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.annotation import default_vocabulary
from bulkformer.preprocess import prepare
from bulkformer.training import checkpoint as ckpt
from bulkformer.training import PretrainConfig
from bulkformer.training.data import build_corpus

VOCABULARY = default_vocabulary().iloc[:60].reset_index(drop=True)
SMALL = PretrainConfig(vocabulary=VOCABULARY, dim=16, heads=2, p_repeat=1, batch_size=8, device="cpu", progress=False)


def small(**settings) -> PretrainConfig:
    return replace(SMALL, **settings)


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    return bulkformer.simulate_cohort(n_samples=48, vocabulary=VOCABULARY, n_genes=None, seed=3,
                                      missing_fraction=0.0).counts


def _values(corpus) -> np.ndarray:
    return np.concatenate([s.read() for s in corpus.shards])


# ---------------------------------------------------------------------------- reading shards
def test_shard_files_are_read_as_prepare_reads_them(tmp_path, counts):
    """A parquet shard whose sample IDs are a plain column, and a csv shard with a gene
    twice, used to be read by pandas directly: the first failed ('non-numeric columns'),
    the second's repeat was renamed TSPAN6.1 and silently dropped."""
    symbols = counts.iloc[:20].copy()
    symbols.columns = VOCABULARY["symbol"].tolist()
    symbols.insert(1, symbols.columns[0], 0, allow_duplicates=True)  # the gene again, with no reads: sums to the same values
    symbols.to_csv(tmp_path / "a.csv")
    counts.iloc[20:].rename_axis("sample_id").reset_index().to_parquet(tmp_path / "b.parquet", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the merged repeat is reported by prepare
        corpus = build_corpus(tmp_path, VOCABULARY)
        expected = prepare(counts, VOCABULARY).values
    assert [s.n_samples for s in corpus.shards] == [20, 28]
    np.testing.assert_allclose(_values(corpus), expected, rtol=1e-6)


def test_genes_by_samples_shards_and_h5ad_layers(tmp_path, counts):
    import anndata

    counts.T.to_csv(tmp_path / "genes_by_samples.csv")
    counts.T.to_parquet(tmp_path / "genes_by_samples.parquet")
    expected = prepare(counts, VOCABULARY).values
    for name in ("genes_by_samples.csv", "genes_by_samples.parquet"):
        corpus = build_corpus(tmp_path / name, VOCABULARY, orientation="genes_by_samples")
        np.testing.assert_allclose(_values(corpus), expected, rtol=1e-6)
    layered = anndata.AnnData(np.log1p(counts.to_numpy(np.float32)), obs=pd.DataFrame(index=counts.index),
                              var=pd.DataFrame(index=counts.columns))
    layered.layers["counts"] = counts.to_numpy(np.float32)
    layered.write_h5ad(tmp_path / "cohort.h5ad")
    np.testing.assert_allclose(_values(build_corpus(tmp_path / "cohort.h5ad", VOCABULARY, layer="counts")), expected,
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"cannot read shard .*cohort.h5ad: layer 'raw' is not in"):
        build_corpus(tmp_path / "cohort.h5ad", VOCABULARY, layer="raw")
    result = bulkformer.pretrain(tmp_path / "genes_by_samples.csv", None, small(epochs=1, val_fraction=0),
                                 orientation="genes_by_samples")
    assert len(result.history) == 6


def _opaque_anndata(counts: pd.DataFrame):
    """scanpy's layout: var_names that are not IDs, the Ensembl IDs in var['gene_ids']."""
    import anndata

    var = pd.DataFrame({"gene_ids": list(counts.columns)}, index=[f"gene{i}" for i in range(counts.shape[1])])
    return anndata.AnnData(counts.to_numpy(np.float32), obs=pd.DataFrame(index=counts.index), var=var)


def test_shards_take_gene_ids_from_a_var_column(tmp_path, counts):
    shards = tmp_path / "shards"
    shards.mkdir()
    _opaque_anndata(counts.iloc[:20]).write_h5ad(shards / "a.h5ad")
    _opaque_anndata(counts.iloc[20:]).write_zarr(shards / "b.zarr")
    expected = prepare(counts, VOCABULARY).values
    np.testing.assert_allclose(_values(build_corpus(shards, VOCABULARY, gene_names="gene_ids")), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"shard .*a\.h5ad: too few .*var column 'gene_ids' matches 60 vocabulary "
                                         r"genes: pass genes='gene_ids' \(gene_names='gene_ids' in"):
        _values(build_corpus(shards / "a.h5ad", VOCABULARY))
    with pytest.raises(ValueError, match=r"cannot read shard .*a\.h5ad: the gene ID column 'ensembl' is not a column "
                                         r"of a\.h5ad's var"):  # from the metadata, before any values are read
        build_corpus(shards, VOCABULARY, gene_names="ensembl")


def test_r_write_table_header_without_a_row_name_cell(tmp_path, counts):
    """R's write.table writes one header field fewer than each row has; that shifted
    every gene by one column (samples x genes) or read the gene IDs as NaN (genes x samples)."""
    expected = prepare(counts, VOCABULARY).values
    for table, orientation in ((counts, "samples_by_genes"), (counts.T, "genes_by_samples")):
        path = tmp_path / f"{orientation}.tsv"
        lines = ["\t".join(table.columns)] + ["\t".join([str(i), *map(str, row)]) for i, row in
                                               zip(table.index, table.to_numpy())]
        path.write_text("\n".join(lines) + "\n")
        prepared = prepare(path, VOCABULARY, orientation=orientation)
        assert prepared.sample_ids == counts.index.tolist()
        np.testing.assert_allclose(prepared.values, expected, rtol=1e-6)


def test_shard_folder_listing(tmp_path, counts):
    """Upper-case suffixes used to be left out silently; other files are named; hidden
    files (macOS ._ copies) and shards without samples are skipped before reading."""
    counts.iloc[:24].to_csv(tmp_path / "A.CSV")
    counts.iloc[24:].to_parquet(tmp_path / "b.parquet")
    counts.iloc[:0].to_parquet(tmp_path / "c_empty.parquet")
    counts.iloc[:0].to_csv(tmp_path / "d_header_only.csv")
    (tmp_path / "._b.parquet").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "README.txt").write_text("cohort 2023\n")
    with pytest.warns(UserWarning) as caught:
        corpus = build_corpus(tmp_path, VOCABULARY)
    messages = " ".join(str(w.message) for w in caught)
    assert "README.txt" in messages and "c_empty.parquet, d_header_only.csv" in messages
    assert [s.name for s in corpus.shards] == ["A.CSV", "b.parquet"] and corpus.n_samples == 48
    for path in (tmp_path / "A.CSV", tmp_path / "b.parquet", tmp_path / "README.txt"):
        path.unlink()
    with pytest.raises(ValueError, match="hold no samples"):
        build_corpus(tmp_path, VOCABULARY)
    (tmp_path / "zero.csv").write_text("")
    with pytest.raises(ValueError, match=r"cannot read shard .*zero.csv"):
        build_corpus(tmp_path / "zero.csv", VOCABULARY)


def test_a_file_named_on_its_own_may_be_any_table_the_readers_take(tmp_path, counts):
    """TCGA's .exp.gz (what impute reads and the README uses) was refused by pretrain as
    'unsupported shard format'."""
    counts.T.to_csv(tmp_path / "TCGA_X_Counts.exp.gz", sep="\t")
    corpus = build_corpus(tmp_path / "TCGA_X_Counts.exp.gz", VOCABULARY, orientation="genes_by_samples")
    np.testing.assert_allclose(_values(corpus), prepare(counts, VOCABULARY).values, rtol=1e-6)
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(ValueError, match=r"unsupported shard format notes.docx; .* \(or, named on its own, .txt, .tab"):
        build_corpus(tmp_path / "notes.docx", VOCABULARY)


def test_errors_in_a_shard_name_the_file(tmp_path, counts):
    counts.iloc[:24].to_parquet(tmp_path / "a.parquet")
    broken = counts.iloc[24:].astype(float)
    broken.iloc[2, 3] = np.nan
    broken.to_parquet(tmp_path / "b.parquet")
    corpus = build_corpus(tmp_path, VOCABULARY)
    corpus.shards[0].read()
    with pytest.raises(ValueError, match=r"^shard .*b\.parquet: NaN \(missing\) values"):
        corpus.shards[1].read()
    np.log1p(counts.iloc[:24]).to_parquet(tmp_path / "c.parquet")  # log values in a counts corpus
    with pytest.warns(UserWarning, match=r"^shard .*c\.parquet: .*log-transformed"):  # named no shard
        build_corpus(tmp_path / "c.parquet", VOCABULARY).shards[0].read()


def test_repeated_samples_across_shards_or_in_validation_are_refused(tmp_path, counts):
    counts.iloc[:30].to_parquet(tmp_path / "a.parquet")
    counts.iloc[20:].to_parquet(tmp_path / "b.parquet")  # 10 samples exported twice
    with pytest.raises(ValueError, match=r"10 samples of shard b.parquet are also in a.parquet"):
        build_corpus(tmp_path, VOCABULARY)
    with pytest.raises(ValueError, match="8 validation samples are also training samples"):
        bulkformer.pretrain(counts.iloc[:40], None, small(val_data=counts.iloc[32:]))
    unnamed = counts.reset_index(drop=True)  # positions 0, 1, ... name no sample: not compared
    unnamed.iloc[:24].to_parquet(tmp_path / "c.parquet", index=False)
    unnamed.iloc[24:].reset_index(drop=True).to_parquet(tmp_path / "d.parquet", index=False)
    assert build_corpus([tmp_path / "c.parquet", tmp_path / "d.parquet"], VOCABULARY).n_samples == 48


def test_aligned_input_must_be_in_vocabulary_order(counts):
    """input='aligned' used to take any table with the right number of columns: a
    reordered one trained every gene at another gene's place."""
    aligned = pd.DataFrame(prepare(counts, VOCABULARY).values, index=counts.index, columns=VOCABULARY["ensembl_id"])
    assert build_corpus(aligned, VOCABULARY, input="aligned").n_samples == 48
    with pytest.raises(ValueError, match=r"not the vocabulary's 60 in order \(gene 1"):
        build_corpus(aligned.iloc[:, ::-1], VOCABULARY, input="aligned")
    broken = aligned.copy()
    broken.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        build_corpus(broken, VOCABULARY, input="aligned")
    with pytest.raises(ValueError, match="carries no gene IDs: pass a DataFrame"):  # pretrain has no genes=
        bulkformer.pretrain(counts.to_numpy(), None, small())
    with pytest.raises(ValueError, match="the list of shard files is empty"):
        bulkformer.pretrain([], None, small())


def test_arguments_that_would_train_wrongly_are_refused(counts):
    for arguments, message in (({"clip_norm": -1.0}, "clip_norm must be > 0"),  # climbed the loss
                               ({"max_steps": 0}, "max_steps must be >= 1"),  # was 'total_steps must be'
                               ({"checkpoint_every": -2}, "checkpoint_every must be >= 1"),
                               ({"keep_checkpoints": -1}, "keep_checkpoints must be >= 1")):
        with pytest.raises(ValueError, match=message):
            bulkformer.pretrain(counts, None, small(**arguments))


# ---------------------------------------------------------------------------- models and run directories
def test_continuing_a_bundle(tmp_path, counts):
    bundle = bulkformer.tiny_bundle(n_genes=60)
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    small = dict(batch_size=8, device="cpu", progress=False)  # the deprecated keyword spelling, still accepted
    result = bulkformer.pretrain(counts, None, model=bundle, epochs=1, lr=1e-2, **small)
    assert all(torch.equal(v, bundle.model.state_dict()[k]) for k, v in before.items())  # the caller's: unchanged
    assert not all(torch.equal(v, result.bundle.model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="the bundle keeps its own 60 genes"):
        bulkformer.pretrain(counts, None, model=bundle, vocabulary=VOCABULARY, **small)
    with pytest.raises(ValueError, match=r"dim=32: these shape a new model .*\(d=16"):
        bulkformer.pretrain(counts, None, model=bundle, dim=32, **small)
    (tmp_path / "run").mkdir()
    bundle.save(tmp_path / "run" / "model")
    with pytest.raises(ValueError, match=r"run is a pretraining run directory, not a bundle: .*model='.*run/model'"):
        bulkformer.pretrain(counts, None, model=tmp_path / "run", **small)
    with pytest.raises(FileNotFoundError, match="no model bundle at"):
        bulkformer.pretrain(counts, None, model=str(tmp_path / "typo" / "model"), **small)


def test_output_directory_is_checked_before_training(tmp_path, counts):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        bulkformer.pretrain(counts, tmp_path / "file", small())
    data = tmp_path / "shards"  # e.g. -o pointing at the data: history.csv would be read as a shard next time
    data.mkdir()
    counts.to_parquet(data / "a.parquet")
    with pytest.raises(ValueError, match=r"already holds files of its own \(a.parquet\)"):
        bulkformer.pretrain(data, data, small())
    assert sorted(p.name for p in data.iterdir()) == ["a.parquet"]

    run = tmp_path / "run"
    bulkformer.pretrain(counts, run, small(epochs=1))  # finished, no checkpoints
    bulkformer.pretrain(counts, run, small(epochs=1))  # running it again replaces it
    with pytest.raises(ValueError, match="holds a finished run .* nothing to resume"):
        bulkformer.pretrain(counts, run, small(epochs=1, resume=True))
    bulkformer.pretrain(counts, run, small(epochs=2, checkpoint_every=2))
    with pytest.raises(ValueError, match=r"holds checkpoints of an earlier run \(latest: step-00000008\)"):
        bulkformer.pretrain(counts, run, small(epochs=1, checkpoint_every=2))


def test_resume_refuses_other_settings_and_keeps_the_checkpoints_graph(tmp_path, counts):
    run = tmp_path / "run"
    finished = bulkformer.pretrain(counts, run, small(epochs=2, checkpoint_every=3, val_fraction=0))
    assert finished.bundle.metadata["pretraining"]["epochs_completed"] == 2  # was 1: the last epoch's index
    latest = ckpt.latest_checkpoint(run)
    assert latest.name == "step-00000009"
    with pytest.raises(ValueError, match=r"other settings: lr=0.0001 \(now 0.01\)"):  # was silently ignored
        bulkformer.pretrain(counts, run, small(epochs=2, checkpoint_every=3, val_fraction=0, lr=1e-2, resume=True))
    with pytest.raises(ValueError, match=r"other settings: epochs=2 \(now 3\), seed=0 \(now 1\)|"
                                         r"other settings: seed=0 \(now 1\), epochs=2 \(now 3\)"):
        bulkformer.pretrain(counts, run, small(epochs=3, seed=1, checkpoint_every=3, val_fraction=0, resume=True))
    # other gene lengths change every TPM value of a counts corpus: resuming with them was not noticed
    lengths = pd.Series(2000.0, index=VOCABULARY["ensembl_id"])
    with pytest.raises(ValueError, match=r"other settings: lengths=None \(now '60 gene lengths \(sha256 [0-9a-f]{12}\)'\)"):
        bulkformer.pretrain(counts, run, small(epochs=2, checkpoint_every=3, val_fraction=0, resume=True),
                            lengths=lengths)
    with pytest.raises(ValueError, match=r"holds another model .*dim=16 \(now 32\)"):  # was a state-dict traceback
        bulkformer.pretrain(counts, run, small(epochs=2, checkpoint_every=3, val_fraction=0, resume=True, dim=32))
    # other data of the same shape: a new model's graph would be rebuilt from it; the checkpoint's is kept
    other = bulkformer.simulate_cohort(n_samples=48, vocabulary=VOCABULARY, n_genes=None, seed=11,
                                       missing_fraction=0.0).counts
    resumed = bulkformer.pretrain(other, tmp_path / "resumed", small(epochs=2, checkpoint_every=3, val_fraction=0,
                                                                     resume=latest))
    saved = bulkformer.load(latest / "bundle")
    assert torch.equal(resumed.bundle.edge_index, saved.edge_index)
    assert len(resumed.history) == 12


def test_cli_pretrain_options(tmp_path, counts, capsys, monkeypatch):
    import anndata

    from bulkformer.cli import main

    def cli(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["bulkformer", "pretrain", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code
        return code, capsys.readouterr().err

    vocabulary = tmp_path / "vocabulary.tsv"
    VOCABULARY.to_csv(vocabulary, sep="\t", index=False)
    layered = anndata.AnnData(np.log1p(counts.to_numpy(np.float32)), obs=pd.DataFrame(index=counts.index),
                              var=pd.DataFrame(index=counts.columns))
    layered.layers["counts"] = counts.to_numpy(np.float32)
    layered.write_h5ad(tmp_path / "cohort.h5ad")
    small = ["--vocabulary", vocabulary, "--dim", "16", "--heads", "2", "--layers", "1", "--batch-size", "8",
             "--device", "cpu", "--no-progress"]
    code, err = cli(tmp_path / "cohort.h5ad", "-o", tmp_path / "run", "--layer", "counts", "--checkpoint-every", "2",
                    "--epochs", "2", *small)
    assert code == 0, err
    assert "log-transformed" not in err  # X holds log values; --layer read the counts
    code, err = cli(tmp_path / "cohort.h5ad", "-o", tmp_path / "run", "--layer", "counts", *small)
    assert code == 2 and "continue it with --resume" in err
    code, err = cli(tmp_path / "cohort.h5ad", "-o", tmp_path / "more", "--model", tmp_path / "run" / "model",
                    "--n-genes", "30", "--quiet")
    assert code == 2 and "--vocabulary and --n-genes choose a new model's genes" in err
    _opaque_anndata(counts).write_h5ad(tmp_path / "opaque.h5ad")
    code, err = cli(tmp_path / "opaque.h5ad", "-o", tmp_path / "opaque", *small)
    assert code == 2 and "var column 'gene_ids' matches 60 vocabulary genes: pass --gene-column gene_ids" in err, err
    code, err = cli(tmp_path / "opaque.h5ad", "-o", tmp_path / "opaque", "--gene-column", "gene_ids", "--max-steps", "1",
                    *small)
    assert code == 0, err
    counts.T.to_csv(tmp_path / "genes_by_samples.csv")
    code, err = cli(tmp_path / "genes_by_samples.csv", "-o", tmp_path / "gbs", "--orientation", "genes_by_samples",
                    "--min-matched-fraction", "0.9", *small)
    assert code == 0, err


def test_a_shard_listed_twice_is_named(tmp_path):
    """It was reported as 'samples of shard part-0000.parquet are also in part-0000.parquet'."""
    from bulkformer.training.data import shard_paths

    shard = tmp_path / "part-0000.parquet"
    pd.DataFrame({"ENSG00000000003": [1.0]}, index=["s1"]).to_parquet(shard)
    with pytest.raises(ValueError, match="the same shard file is listed more than once: .*part-0000.parquet"):
        shard_paths([shard, tmp_path / "." / "part-0000.parquet"])
    assert shard_paths([shard]) == [shard]


def test_a_shards_warnings_are_said_once_not_every_epoch(tmp_path):
    """log1p values passed as counts warned for every shard on every epoch."""
    import warnings as _warnings

    from bulkformer.training.data import file_shard

    vocabulary = bulkformer.annotation.default_vocabulary().iloc[:50]
    cohort = bulkformer.simulate_cohort(n_samples=6, vocabulary=vocabulary, n_genes=None, seed=0)
    np.log1p(cohort.counts).to_parquet(tmp_path / "part.parquet")  # log values given as counts
    shard = file_shard(tmp_path / "part.parquet", vocabulary, input="counts", lengths=cohort.lengths)
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        shard.read()
        first = len(caught)
        shard.read()
    assert first >= 1 and len(caught) == first
