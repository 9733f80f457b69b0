"""The simulator's ground truth is really in its data, and the tiny bundle is deterministic."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines.utils import concordance_index

import bulkformer
from bulkformer.datasets import simulate_cohort, tiny_bundle

VOCAB = pd.DataFrame({
    "ensembl_id": [f"ENSG{i:011d}" for i in range(1, 801)],
    "symbol": [f"G{i}" for i in range(1, 801)],
    "length": [None if i % 7 == 0 else 500 + 10 * i for i in range(1, 801)],
})


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(n_samples=240, vocabulary=VOCAB, n_genes=600, seed=3)


def test_deterministic_by_seed():
    a = simulate_cohort(n_samples=30, vocabulary=VOCAB, n_genes=100, seed=7)
    b = simulate_cohort(n_samples=30, vocabulary=VOCAB, n_genes=100, seed=7)
    c = simulate_cohort(n_samples=30, vocabulary=VOCAB, n_genes=100, seed=8)
    pd.testing.assert_frame_equal(a.counts, b.counts)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.essentiality, b.essentiality)
    assert not a.counts.equals(c.counts)


def test_layout_and_lengths(cohort):
    assert cohort.counts.shape == (240, 600)
    assert cohort.counts.columns.tolist() == VOCAB["ensembl_id"][:600].tolist()
    assert (cohort.counts.to_numpy() >= 0).all() and cohort.counts.dtypes.eq(np.int64).all()
    # known lengths are the vocabulary's; unknown ones are drawn (positive)
    known = VOCAB.set_index("ensembl_id")["length"].iloc[:600].dropna()
    assert (cohort.lengths[known.index] == known.astype(np.int64)).all()
    assert (cohort.lengths > 0).all()
    for frame in (cohort.measured, cohort.log_tpm, cohort.drug_response, cohort.essentiality, cohort.module_activity):
        assert frame.index.equals(cohort.counts.index)


def test_counts_follow_true_expression_with_overdispersion(cohort):
    observed = cohort.observed_log_tpm().where(cohort.measured)
    truth = cohort.log_tpm.where(cohort.measured)
    r = np.corrcoef(observed.stack().to_numpy(), truth.stack().to_numpy())[0, 1]
    assert r > 0.95
    # negative binomial: for well-expressed genes the variance exceeds the mean at fixed
    # expected count; check via the residual Fano factor of counts over their expectation
    counts = cohort.counts.to_numpy(float)
    tpm = np.expm1(cohort.log_tpm.to_numpy()) * cohort.lengths.to_numpy()
    expected = tpm / tpm.sum(1, keepdims=True) * counts.sum(1, keepdims=True)
    high = expected > 200
    fano = ((counts - expected) ** 2 / expected)[high].mean()
    assert fano > 3.0  # Poisson would give ~1


def test_library_sizes_vary(cohort):
    libsize = cohort.obs["library_size"].to_numpy(float)
    cv = libsize.std() / libsize.mean()
    assert 0.2 < cv < 0.8
    assert (libsize == cohort.counts.sum(axis=1).to_numpy()).all()


def test_coexpression_modules(cohort):
    info = cohort.gene_info
    values = cohort.log_tpm.to_numpy()
    corr = np.corrcoef(values.T)
    module = info["module"].to_numpy()
    same = (module[:, None] == module[None, :]) & (module[:, None] >= 0)
    np.fill_diagonal(same, False)
    other = (module[:, None] != module[None, :]) & (module[:, None] >= 0) & (module[None, :] >= 0)
    assert np.abs(corr[same]).mean() > np.abs(corr[other]).mean() + 0.2


def test_tissue_programs_and_markers(cohort):
    obs = cohort.obs
    info = cohort.gene_info
    for tissue in obs["tissue"].cat.categories[:2]:
        markers = info.index[info["marker_of"] == tissue]
        inside = cohort.log_tpm.loc[obs["tissue"] == tissue, markers].mean().mean()
        outside = cohort.log_tpm.loc[obs["tissue"] != tissue, markers].mean().mean()
        assert inside - outside > 1.0


def test_missing_genes_per_batch(cohort):
    obs = cohort.obs
    for batch, lost in cohort.missing_genes.items():
        rows = obs["batch"] == batch
        assert len(lost) == 60  # 10% of 600
        assert not cohort.measured.loc[rows, lost].to_numpy().any()
        assert cohort.measured.loc[rows].to_numpy().sum() == rows.sum() * 540
        frame = cohort.batch_counts(batch)
        assert frame.shape == (rows.sum(), 540) and not set(lost) & set(frame.columns)
    assert cohort.observed_counts().isna().to_numpy().sum() == (~cohort.measured.to_numpy()).sum()
    with pytest.raises(ValueError, match="unknown batch"):
        cohort.batch_counts("nope")


def test_survival_signal(cohort):
    obs = cohort.obs
    assert 0.3 < obs["event"].mean() < 0.95
    # truth risk orders the survival times (higher risk, shorter time)
    assert concordance_index(obs["survival_time"], -obs["risk_score"], obs["event"]) > 0.7
    recomputed = cohort.module_activity.to_numpy() @ cohort.survival_coefficients.to_numpy() + 0.5 * (obs["disease"] != "healthy")
    np.testing.assert_allclose(recomputed, obs["risk_score"], atol=1e-12)


def test_drug_response_signal(cohort):
    activity = cohort.module_activity.to_numpy()
    design = np.c_[np.ones(len(activity)), activity]
    coef, *_ = np.linalg.lstsq(design, cohort.drug_response.to_numpy(), rcond=None)
    np.testing.assert_allclose(coef[1:].T, cohort.drug_weights.to_numpy(), atol=0.1)


def test_essentiality_signal(cohort):
    truth = cohort.essentiality_truth
    assert len(truth) == 50 and truth["common_essential"].any()
    assert (cohort.essentiality.loc[:, truth.index[truth["common_essential"]]].mean() < -0.8).all()
    selective = truth.index[~truth["common_essential"]]
    for gene in selective[:5]:
        module = cohort.module_activity.iloc[:, truth.loc[gene, "module"]]
        assert np.corrcoef(cohort.essentiality[gene], module)[0, 1] < -0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        simulate_cohort(0, vocabulary=VOCAB)
    with pytest.raises(ValueError, match="missing_fraction"):
        simulate_cohort(10, vocabulary=VOCAB, n_genes=50, missing_fraction=1.5)
    with pytest.raises(ValueError, match="n_genes"):
        simulate_cohort(10, vocabulary=VOCAB, n_genes=10_000)
    with pytest.raises(ValueError, match="vocabulary"):
        simulate_cohort(10, vocabulary=[1, 2])


def test_tiny_bundle_deterministic_small_and_loadable(tmp_path):
    rng_before = torch.random.get_rng_state()
    a = tiny_bundle(tmp_path / "tiny", n_genes=120, vocabulary=VOCAB, seed=1)
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    b = tiny_bundle(n_genes=120, vocabulary=VOCAB, seed=1)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert torch.equal(a.edge_index, b.edge_index)
    size = sum(p.stat().st_size for p in (tmp_path / "tiny").iterdir())
    assert size < 300_000
    loaded = bulkformer.load(tmp_path / "tiny")
    assert loaded.gene_ids == VOCAB["ensembl_id"][:120].tolist()
    x = torch.rand(3, 120) * 5
    x[:, :10] = -10.0
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, 0.1).expr, a.model(x, 0.1).expr)
    # the graph links genes of the same simulated module
    cohort = simulate_cohort(n_samples=200, vocabulary=VOCAB, n_genes=120, seed=1, missing_fraction=0.0)
    module = cohort.gene_info["module"].to_numpy()
    receivers, senders = a.edge_index.numpy()
    assert a.edge_index.shape[1] > 120
    in_module = module[receivers] >= 0
    same = (module[receivers] == module[senders])[in_module].mean()
    assert same > 0.25  # chance (20 modules) is ~0.05; tissue programs couple modules
    assert (a.edge_weight >= 0.4).all()


def test_tiny_bundle_v1_and_default_vocabulary():
    v1 = tiny_bundle(n_genes=50, vocabulary=VOCAB, version="v1")
    assert v1.config.version == "v1" and v1.gene_features.shape == (50, 8)
    annotation = pytest.importorskip("bulkformer.annotation")
    if not hasattr(annotation, "default_vocabulary"):
        pytest.skip("bulkformer.annotation.default_vocabulary not available yet")
    bundle = bulkformer.tiny_bundle(n_genes=300)
    assert bundle.gene_ids == annotation.default_vocabulary()["ensembl_id"][:300].tolist()


def test_simulate_command_writes_shards_and_truth(tmp_path):
    from typer.testing import CliRunner

    from bulkformer.cli import app

    result = CliRunner().invoke(app, ["simulate", "-o", str(tmp_path / "sim"), "--n-samples", "30", "--n-genes", "80",
                                      "--shards", "3", "--seed", "2"])
    assert result.exit_code == 0, result.output
    shards = sorted((tmp_path / "sim" / "shards").glob("*.parquet"))
    expected = simulate_cohort(n_samples=30, n_genes=80, seed=2)
    assert len(shards) == 3  # 3 batches of ~10 samples: one shard each
    # each shard is one batch's samples with only the genes that batch measured (as a lab's
    # files are): --missing-fraction reached only measured.parquet before, and pretraining on
    # the shards saw every gene
    seen = []
    for path in shards:
        part = pd.read_parquet(path)
        batch = expected.obs.loc[part.index, "batch"].unique()
        assert len(batch) == 1
        pd.testing.assert_frame_equal(part, expected.batch_counts(batch[0]), check_names=False)
        assert part.shape[1] == 80 - len(expected.missing_genes[batch[0]]) < 80
        seen += list(part.index)
    assert sorted(seen) == sorted(expected.counts.index)
    # the whole file stays beside the shards: finetune and evaluate read one file, and the
    # help's examples run them on sim/counts.parquet after a sharded simulate
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sim" / "counts.parquet"), expected.counts, check_names=False)
    obs = pd.read_csv(tmp_path / "sim" / "obs.tsv", sep="\t", index_col=0)
    assert obs["tissue"].tolist() == expected.obs["tissue"].astype(str).tolist()
    for name in ("lengths.tsv", "log_tpm.parquet", "gene_info.tsv", "essentiality_truth.tsv", "missing_genes.json"):
        assert (tmp_path / "sim" / name).is_file(), name


def test_gene_count_is_checked_where_a_vocabulary_is_cut():
    """simulate_cohort, tiny_bundle and the CLI's --n-genes cut the vocabulary through one
    function (preprocess.vocabulary_table), with one message."""
    from bulkformer.preprocess import vocabulary_table

    with pytest.raises(ValueError, match="n_genes must be between 2 and the vocabulary size"):
        simulate_cohort(n_samples=10, n_genes=1)
    with pytest.raises(ValueError, match="--n-genes must be between 2 and the vocabulary size 3, got 5"):
        vocabulary_table(["ENSG00000000003", "ENSG00000000005", "ENSG00000000419"], 5, what="--n-genes")
    table = vocabulary_table(None, 4)
    assert list(table.columns) == ["ensembl_id", "symbol", "length"] and len(table) == 4
