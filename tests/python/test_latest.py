"""bulkformer-latest reproduces the published code's outputs (../shared fixture
latest_tiny: a release folder plus every stage, output, probe row and a one-way-graph
probe), through the module, the fast path, prepare, impute and embed; and its negative
controls (a reversed edge direction, a missing visible-fraction scale) fail the same
comparisons. Every shape is read from the fixture."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.inference import embed, read_gene_embeddings, run_imputation
from bulkformer.model import PARAMETER_COUNTS, BulkFormer, layout_of, preset
from bulkformer.training import finetune
from tests.conftest import require_shared

MODEL_TOLERANCE = 1e-5
PREPARE_TOLERANCE = 1e-6
STAGES = ("gene_tokens", "expression_encoding", "input_norm", "gcn_conv", "graph_block", "pre_performer_norm",
          "performer", "output_norm")


def fixture(*parts: str):
    path = require_shared("fixtures", "reference", "latest_tiny", *parts)
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return path


@pytest.fixture(scope="module")
def release():
    return bulkformer.load(fixture("bulkformer-latest"))


@pytest.fixture(scope="module")
def aligned() -> torch.Tensor:
    return torch.from_numpy(fixture("aligned.npy"))


def _max_diff(got, expected) -> float:
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == np.shape(expected)
    return float(np.abs(got - expected).max())


def test_latest_release_folder_loads_as_the_latest_layout(release):
    metadata = fixture("metadata.json")
    assert release.config.version == "latest" and layout_of(release.config).name == "latest"
    assert release.config.n_genes == metadata["n_genes"] and release.config.dim == metadata["config"]["dim"]
    assert release.model.count_parameters() == metadata["parameter_count"]
    assert release.config.to_release_dict() == metadata["config"]
    assert release.gene_ids[:2] == pd.read_csv(fixture("bulkformer-latest", "gene_vocab.csv"))["canonical_ensg"][:2].tolist()


@pytest.mark.parametrize("sparse_graph", [True, False])
def test_latest_every_stage_matches_the_release(release, aligned, sparse_graph):
    model = release.model
    model.sparse_graph = sparse_graph
    try:
        with torch.inference_mode():
            stages = model.stages(aligned)
            out = model(aligned)
    finally:
        model.sparse_graph = True
    for name in STAGES:
        assert _max_diff(stages[name], fixture("intermediates", f"int_{name}.npy")) <= MODEL_TOLERANCE, name
    assert _max_diff(stages["input_visible_fraction"], fixture("input_visible_fraction.npy")) <= MODEL_TOLERANCE
    assert _max_diff(stages["mask_ratio_scale"], fixture("mask_ratio_scale.npy")) <= MODEL_TOLERANCE
    assert _max_diff(out.expr, fixture("expression_predictions.npy")) <= MODEL_TOLERANCE
    assert _max_diff(out.features, fixture("gene_features_all.npy")) <= MODEL_TOLERANCE


def test_latest_probe_rows_reach_both_clamps(release):
    probe = torch.from_numpy(fixture("probe", "input.npy"))
    config = release.config
    with torch.inference_mode():
        stages = release.model.stages(probe)
        out = release.model(probe)
    visible = fixture("probe", "input_visible_fraction.npy")
    scale = fixture("probe", "mask_ratio_scale.npy")
    # the probe reaches the max-scale clamp and the min-visible clamp
    assert (scale == config.mask_ratio_max_scale).any() and (visible < config.mask_ratio_min_visible_fraction).any()
    assert _max_diff(stages["input_visible_fraction"], visible) <= MODEL_TOLERANCE
    assert _max_diff(stages["mask_ratio_scale"], scale) <= MODEL_TOLERANCE
    assert _max_diff(out.expr, fixture("probe", "expression_predictions.npy")) <= MODEL_TOLERANCE
    observed = probe != -10
    pooled = (out.features * observed[..., None]).sum(1) / observed.sum(1, keepdim=True)
    assert _max_diff(pooled, fixture("probe", "sample_features.npy")) <= MODEL_TOLERANCE


def test_latest_direction_probe_and_its_negative_control(aligned):
    probe = bulkformer.load(fixture("direction_probe", "bulkformer-latest"))
    expected = fixture("direction_probe", "expression_predictions.npy")
    with torch.inference_mode():
        stages = probe.model.stages(aligned)
        out = probe.model(aligned)
    assert _max_diff(stages["gcn_conv"], fixture("direction_probe", "int_gcn_conv.npy")) <= MODEL_TOLERANCE
    assert _max_diff(out.expr, expected) <= MODEL_TOLERANCE
    observed = aligned != -10
    pooled = (out.features * observed[..., None]).sum(1) / observed.sum(1, keepdim=True)
    assert _max_diff(pooled, fixture("direction_probe", "sample_features.npy")) <= MODEL_TOLERANCE
    # a wrong edge direction still runs, and fails the same comparison by the published control's margin
    probe.model.set_graph(probe.edge_index.flip(0), probe.edge_weight)
    with torch.inference_mode():
        wrong = _max_diff(probe.model(aligned).expr, expected)
    assert wrong > 100 * MODEL_TOLERANCE
    assert wrong == pytest.approx(fixture("negative_controls.json")["direction_probe_graph_transposed"], abs=1e-5)


def test_latest_without_the_visible_fraction_scale_fails_the_comparison(release, aligned):
    unscaled = BulkFormer(replace(release.config, mask_ratio_scaling_enabled=False), release.edge_index,
                          release.edge_weight)
    unscaled.load_state_dict(release.model.state_dict())
    controls = fixture("negative_controls.json")
    with torch.inference_mode():
        dropped = _max_diff(unscaled.eval()(aligned).expr, fixture("expression_predictions.npy"))
        as_zero = _max_diff(release.model(aligned.clamp_min(0)).expr, fixture("expression_predictions.npy"))
    assert dropped > 100 * MODEL_TOLERANCE
    assert dropped == pytest.approx(controls["visible_fraction_scale_dropped"], abs=1e-5)
    # missing genes fed as 0 instead of -10: the published control's difference, too
    assert as_zero == pytest.approx(controls["missing_fed_as_zero_instead_of_minus_10"], abs=1e-5)


@pytest.mark.parametrize("gene_chunk,per_sample", [(None, False), (37, False), (64, True)])
def test_latest_fast_path_matches_the_release(release, aligned, gene_chunk, per_sample):
    forward = release.model.fast_path(gene_chunk=gene_chunk, per_sample=per_sample)
    n_genes = aligned.shape[1]
    with torch.inference_mode():
        out = forward(aligned, feature_index=torch.arange(n_genes))
    assert _max_diff(out.expr, fixture("expression_predictions.npy")) <= MODEL_TOLERANCE
    assert _max_diff(out.features, fixture("gene_features_all.npy")) <= MODEL_TOLERANCE


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_latest_prepare_applies_the_release_conventions(release, backend):
    if backend == "native" and bulkformer.preprocess.native_available() is False:
        pytest.skip("the native kernel is not built")
    prepared = bulkformer.prepare(fixture("counts.csv"), release, backend=backend)
    assert prepared.sample_ids == fixture("sample_ids.json")
    assert _max_diff(prepared.values, fixture("aligned.npy")) <= PREPARE_TOLERANCE
    normalized, columns = fixture("normalized.npy"), fixture("normalized_columns.json")
    got = prepared.values[:, [release.gene_ids.index(c) for c in columns]]
    measured = ~np.isnan(normalized)  # the published step keeps NaN; alignment makes it -10
    assert _max_diff(got[measured], normalized[measured]) <= PREPARE_TOLERANCE
    assert (got[~measured] == -10).all()
    assert np.array_equal(~prepared.measured, fixture("gene_mask.npy").astype(bool))
    assert sorted(np.array(release.gene_ids)[~prepared.measured]) == sorted(fixture("missing_genes.json"))
    report = prepared.report
    assert report.n_missing_entries == int((~measured).sum())
    assert report.id_types.get("ensembl_versioned") and "version suffixes dropped" in report.summary()
    assert "vocabulary-matched" in report.conventions


def test_latest_tpm_denominator_ignores_extra_genes_and_v2_keeps_its_rule(release):
    counts = pd.read_csv(fixture("counts.csv"), index_col=0).fillna(0)
    matched = [c for c in counts.columns if c.split(".")[0] in set(release.gene_ids)]
    base = bulkformer.prepare(counts[matched], release).values
    louder = counts.copy()
    extra = [c for c in counts.columns if c not in matched]
    louder[extra] *= 100  # genes outside the vocabulary must not move anything
    assert np.array_equal(bulkformer.prepare(louder, release).values, base)
    v2 = bulkformer.tiny_bundle(n_genes=40)
    genes = v2.gene_ids
    table = pd.DataFrame(np.full((2, 41), 10.0), columns=genes + ["ENSG99999999999"], index=["a", "b"])
    # v2: every input gene counts in the TPM sum, so an extra gene lowers the others
    assert (bulkformer.prepare(table, v2).values < bulkformer.prepare(table[genes], v2).values).all()
    with pytest.raises(ValueError, match="NaN"):  # v1/v2 conventions: NaN is an error
        bulkformer.prepare(table.assign(**{genes[0]: [np.nan, 1.0]}), v2)


def test_latest_outputs_through_impute_and_embed(release, tmp_path):
    counts = fixture("counts.csv")
    result = run_imputation(counts, release, progress=False)
    expected = fixture("expression_predictions.npy")
    assert _max_diff(result.predicted, expected) <= MODEL_TOLERANCE
    # the raw head output: never clipped (random weights predict some negatives)
    assert (result.predicted < 0).any() == (expected < 0).any()
    sample = embed(counts, release, progress=False)  # default: mean over each sample's observed genes
    assert sample.attrs["aggregate"] == "observed_mean" and sample.shape[1] == release.config.dim
    assert _max_diff(sample.to_numpy(), fixture("sample_features.npy")) <= MODEL_TOLERANCE
    selected = [release.gene_ids[i] for i in fixture("selected_gene_idx.npy")]
    pooled = embed(counts, release, genes=selected, progress=False)
    assert _max_diff(pooled.to_numpy(), fixture("sample_features_selected_pool.npy")) <= MODEL_TOLERANCE
    store = embed(counts, release, level="gene", genes=selected, out=tmp_path / "genes.zarr", progress=False)
    assert _max_diff(read_gene_embeddings(store).values, fixture("gene_features_selected.npy")) <= MODEL_TOLERANCE


def test_latest_imputing_chosen_observed_genes_hides_them_first(release, aligned):
    counts = fixture("counts.csv")
    chosen = [release.gene_ids[i] for i in np.flatnonzero(fixture("gene_mask.npy") == 0)[:3]]
    result = run_imputation(counts, release, mask_genes=chosen, progress=False)
    positions = [release.gene_ids.index(g) for g in chosen]
    hidden = aligned.clone()
    hidden[:, positions] = -10
    with torch.inference_mode():
        expected = release.model(hidden).expr.numpy()
    assert _max_diff(result.predicted, expected) <= MODEL_TOLERANCE
    assert (result.values[:, positions] == -10).all() and not result.measured[positions].any()
    assert np.array_equal(result.imputed[:, positions], result.predicted[:, positions])
    frame = result.to_frame("missing")
    assert set(chosen) <= set(frame.columns)


def test_latest_bundle_round_trip_keeps_outputs(release, aligned, tmp_path):
    release.save(tmp_path / "bundle")
    again = bulkformer.load(tmp_path / "bundle")
    assert again.config == release.config and again.genes["length"].tolist() == release.genes["length"].tolist()
    with torch.inference_mode():
        assert torch.equal(again.model(aligned).expr, release.model(aligned).expr)


def test_latest_release_with_a_damaged_file_is_refused(tmp_path):
    copy = tmp_path / "bulkformer-latest"
    shutil.copytree(fixture("bulkformer-latest"), copy)
    data = bytearray((copy / "model.pt").read_bytes())
    data[len(data) // 2] ^= 1
    (copy / "model.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model.pt does not match its SHA256 .*download model.pt of the release again"):
        bulkformer.load(copy)


def test_latest_preset_has_the_published_size():
    model = BulkFormer(preset("latest"), torch.zeros(2, 0, dtype=torch.long))
    assert model.count_parameters() == PARAMETER_COUNTS["latest"] == 101_323_778
    assert len(model.state_dict()) == 427
    small = preset("latest-small", n_genes=100)
    assert small.n_genes == 100 and layout_of(small).name == "latest"


def test_latest_pretrains_resumes_identically_and_finetunes(tmp_path):
    vocabulary = bulkformer.annotation.default_vocabulary().iloc[:40]
    cohort = bulkformer.simulate_cohort(n_samples=32, vocabulary=vocabulary, n_genes=None, seed=3)
    settings = dict(model="latest-tiny", vocabulary=vocabulary, dim=16, heads=2, p_repeat=1, batch_size=8, epochs=2,
                    val_fraction=0.0, checkpoint_every=2, keep_checkpoints=0, lr=3e-3, progress=False)
    run = bulkformer.pretrain(cohort, tmp_path / "run", **settings)
    assert run.bundle.config.version == "latest" and run.bundle.config.depth == 1
    assert np.isfinite(run.history["loss"]).all() and len(run.history) == 8
    record = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["metadata"]
    assert record["pretraining"]["mask_fraction"] == 0.05 and record["pretraining"]["mask_fraction_max"] == 0.15
    first = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[0]
    shutil.copytree(tmp_path / "run", tmp_path / "again")
    resumed = bulkformer.pretrain(cohort, tmp_path / "again", resume=tmp_path / "again" / "checkpoints" / first.name,
                                  **settings)
    np.testing.assert_array_equal(resumed.history["loss"].to_numpy(), run.history["loss"].to_numpy())
    for key, value in run.bundle.model.state_dict().items():
        assert torch.equal(resumed.bundle.model.state_dict()[key], value), key
    tuned = finetune(cohort.counts, cohort.obs["tissue"], run.bundle, mode="partial", lengths=cohort.lengths,
                                epochs=2, progress=False)
    assert len(tuned.model.predict(cohort.counts, lengths=cohort.lengths)) == len(cohort.counts)


def test_latest_release_folder_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from bulkformer.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["import-checkpoint", str(fixture("bulkformer-latest")), "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert f"{fixture('metadata.json')['parameter_count']:,} parameters" in result.output
    described = json.loads(runner.invoke(app, ["info", str(tmp_path / "m")]).output)
    assert described["config"]["version"] == "latest" and "bulkformer-latest" in described["layout"]
    embedded = runner.invoke(app, ["embed", str(fixture("counts.csv")), "-m", str(fixture("bulkformer-latest")),
                                   "-o", str(tmp_path / "emb.csv"), "--no-progress"])
    assert embedded.exit_code == 0, embedded.output
    frame = pd.read_csv(tmp_path / "emb.csv", index_col=0)
    assert _max_diff(frame.to_numpy(dtype=np.float32), fixture("sample_features.npy")) <= MODEL_TOLERANCE
