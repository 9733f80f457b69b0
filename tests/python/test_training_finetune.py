"""Fine-tuning heads on the encoder: which parameters move in each mode, that the head
learns a simulated label with known signal, and that the saved model predicts the same."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.training import finetune, load_finetuned


@pytest.fixture(scope="module")
def cohort():
    return bulkformer.simulate_cohort(n_samples=120, n_genes=150, seed=2, missing_fraction=0.0)


@pytest.fixture(scope="module")
def bundle():
    return bulkformer.tiny_bundle(n_genes=150, seed=0)


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("mode", ["frozen", "partial", "full"])
def test_modes_train_the_right_parameters(cohort, bundle, mode):
    fresh = bulkformer.tiny_bundle(n_genes=150, seed=0)
    before = _snapshot(fresh.model)
    result = finetune(cohort.counts, cohort.obs["tissue"], fresh, mode=mode, lengths=cohort.lengths, epochs=2,
                      progress=False)
    after = _snapshot(result.model.encoder)
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    if mode == "frozen":
        assert moved == set()
    elif mode == "partial":
        assert moved and all(name.startswith(("gb_formers.0.f.0.", "layernorm.")) for name in moved)
        assert "gene_emb_onehot_layer.weight" not in moved
    else:
        assert {"gene_emb_onehot_layer.weight", "global_expr_proj.0.weight", "head.1.weight"} - moved == {"head.1.weight"}


def test_classification_learns_tissue_and_round_trips(cohort, bundle, tmp_path):
    result = finetune(cohort.counts, cohort.obs["tissue"], bundle, mode="frozen", lengths=cohort.lengths, epochs=40,
                      head_lr=3e-3, out=tmp_path / "ft", progress=False)
    assert result.metrics["accuracy"] > 0.5  # 4 balanced tissues: chance 0.25
    loaded = load_finetuned(tmp_path / "ft")
    a = result.model.predict(cohort.counts.iloc[:5], lengths=cohort.lengths)
    b = loaded.predict(cohort.counts.iloc[:5], lengths=cohort.lengths)
    assert list(a.columns) == sorted(cohort.obs["tissue"].astype(str).unique())
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-5)


def test_the_head_reads_standardised_features_and_learns_with_the_defaults(cohort, bundle):
    """The pooled features vary little between samples, and the head's LayerNorm (per
    sample) kept that signal tiny: with the default settings accuracy was 0.29-0.58 on
    this cohort (chance 0.25), now 0.83-0.92 (seeds 0-2)."""
    result = finetune(cohort.counts, cohort.obs["tissue"], bundle, mode="frozen", lengths=cohort.lengths,
                      progress=False)
    assert result.metrics["accuracy"] > 0.75
    scaler = result.model.head[0]
    train = result.model.sample_features(torch.from_numpy(np.asarray(
        bulkformer.prepare(cohort.counts, bundle, lengths=cohort.lengths).values, np.float32)))
    assert torch.all(scaler.scale > 0) and scaler.mean.shape == train.shape[1:]
    assert float(((train - scaler.mean) / scaler.scale).std(dim=0).mean()) == pytest.approx(1.0, abs=0.15)


def test_regression_and_label_errors(cohort, bundle):
    result = finetune(cohort.counts, cohort.drug_response["drug_1"], bundle, task="regression", mode="frozen",
                      lengths=cohort.lengths, epochs=3, progress=False)
    assert set(result.metrics) == {"loss", "pearson_r", "mse"}
    assert len(result.history) == 3
    with pytest.raises(ValueError, match="mode"):
        finetune(cohort.counts, cohort.obs["tissue"], bundle, mode="half", progress=False)


def test_regression_targets_in_any_units_train_alike_and_predict_in_those_units(cohort, bundle, tmp_path):
    """Targets in days (mean ~1,300, SD ~1,100) trained the head on raw MSE from outputs
    near 0: predictions stayed near 300 and r was about 0. Targets are now standardised
    on the training samples, so an affine change of units changes nothing but the units."""
    y = cohort.drug_response["drug_1"]
    days = y * 1000.0 + 5000.0
    settings = dict(task="regression", mode="frozen", lengths=cohort.lengths, epochs=15, head_lr=3e-3, progress=False)
    plain = finetune(cohort.counts, y, bundle, **settings)
    in_days = finetune(cohort.counts, days, bundle, out=tmp_path / "days", **settings)
    np.testing.assert_allclose(in_days.history["train_loss"], plain.history["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(in_days.metrics["pearson_r"], plain.metrics["pearson_r"], rtol=1e-4)
    np.testing.assert_allclose(in_days.metrics["mse"], plain.metrics["mse"] * 1e6, rtol=1e-3)
    assert plain.metrics["pearson_r"] > 0.3  # simulated drug response carries signal
    predicted = load_finetuned(tmp_path / "days").predict(cohort.counts, lengths=cohort.lengths)["prediction"]
    expected = plain.model.predict(cohort.counts, lengths=cohort.lengths)["prediction"] * 1000.0 + 5000.0
    np.testing.assert_allclose(predicted, expected, rtol=1e-4)
    assert abs(predicted.mean() - days.mean()) < days.std()


@pytest.fixture(scope="module")
def small():
    return bulkformer.simulate_cohort(n_samples=40, n_genes=150, seed=3, missing_fraction=0.0)


def _quick(small, labels, model, **kw):
    return finetune(small.counts, labels, model, lengths=small.lengths, progress=False, **{"epochs": 1, **kw})


def test_output_directory_with_other_content_is_refused(small, bundle, tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "counts.csv").write_text("keep me")
    with pytest.raises(ValueError, match="not a fine-tuning output.*Give a new or empty directory"):
        _quick(small, small.obs["tissue"], bundle, out=precious)
    assert (precious / "counts.csv").read_text() == "keep me"
    model_dir = tmp_path / "base"
    bulkformer.tiny_bundle(model_dir, n_genes=150, seed=0)
    with pytest.raises(ValueError, match="not a fine-tuning output"):
        _quick(small, small.obs["tissue"], bundle, out=model_dir)
    assert (model_dir / "config.json").is_file()
    # an earlier fine-tuning output may be replaced; metrics and history are saved beside the model
    run = tmp_path / "run"
    _quick(small, small.obs["tissue"], bundle, out=run)
    result = _quick(small, small.obs["tissue"], bundle, out=run, seed=1)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["validation"] == pytest.approx(result.metrics)
    assert len(saved["history"]) == 1 and saved["settings"]["seed"] == 1
    assert load_finetuned(run).classes == result.model.classes


def test_the_callers_bundle_is_not_changed(small):
    fresh = bulkformer.tiny_bundle(n_genes=150, seed=0)
    before = _snapshot(fresh.model)
    flags = {name: p.requires_grad for name, p in fresh.model.named_parameters()}
    embedding = bulkformer.embed(small.counts, fresh, aggregate="mean", lengths=small.lengths, progress=False)
    for mode in ("partial", "frozen", "full"):
        result = _quick(small, small.obs["tissue"], fresh, mode=mode, lr=1e-2)
        assert result.model.encoder is not fresh.model
    after = _snapshot(fresh.model)
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert {name: p.requires_grad for name, p in fresh.model.named_parameters()} == flags
    again = bulkformer.embed(small.counts, fresh, aggregate="mean", lengths=small.lengths, progress=False)
    np.testing.assert_array_equal(embedding.to_numpy(), again.to_numpy())


def test_labels_are_matched_by_sample_id(small, bundle, tmp_path):
    labels = small.obs["tissue"]
    with pytest.raises(ValueError, match="matched by sample ID, not by row order"):
        _quick(small, labels.iloc[::-1].reset_index(drop=True), bundle)
    with pytest.raises(ValueError, match=f"several rows for the same sample: '{labels.index[0]}' \\(2 rows\\)"):
        _quick(small, pd.concat([labels, labels.iloc[:1]]), bundle)
    # by ID, so a shuffled Series trains the same model as the ordered one
    a = _quick(small, labels, bundle)
    b = _quick(small, labels.sample(frac=1.0, random_state=0), bundle)
    assert a.metrics == b.metrics
    # unlabelled samples (no entry, or NaN) are left out, visibly, as in the tasks
    partial = labels.astype(object).iloc[5:]
    partial.iloc[:3] = np.nan
    with pytest.warns(UserWarning, match=f"8 of {len(labels)} samples are left out: 5 have no row in the labels"):
        _quick(small, partial, bundle, val_fraction=0.25, out=tmp_path / "ft")
    settings = json.loads((tmp_path / "ft" / "metrics.json").read_text())["settings"]
    assert (settings["n_train"], settings["n_val"]) == (24, 8)  # the 32 labelled samples


def test_task_hints_and_bad_settings(small, bundle):
    with pytest.raises(ValueError, match="continuous measurement.*task='regression'"):
        _quick(small, small.obs["risk_score"], bundle)
    with pytest.raises(ValueError, match="not numbers.*task='classification'"):
        _quick(small, small.obs["tissue"], bundle, task="regression")
    for bad, message in [(dict(epochs=0), "epochs=0: must be a whole number >= 1"),
                         (dict(batch_size=0), "batch_size=0: must be a whole number >= 1"),
                         (dict(val_fraction=-0.2), "val_fraction=-0.2: must be in \\[0, 1\\)"),
                         (dict(mode="partial", trainable_layers=99), "trainable_layers=99 but the model has 1 Performer"),
                         # ignored outside partial mode, silently: now refused
                         (dict(trainable_layers=2), "trainable_layers=2 applies to mode='partial' \\(mode='frozen'"),
                         (dict(mode="full", trainable_layers=1), "applies to mode='partial' \\(mode='full' trains every")]:
        with pytest.raises(ValueError, match=message):
            _quick(small, small.obs["tissue"], bundle, **bad)


def test_aligned_input_gets_the_checks_pretraining_has(small, bundle):
    """finetune(input='aligned') took any samples x G array: a table with its genes
    reordered trained with every gene in the wrong place, NaN trained to a NaN loss, and
    a DataFrame's sample IDs were replaced by row numbers so that labels matched nothing."""
    aligned = bulkformer.preprocess.prepare(small.counts, bundle, input="counts", lengths=small.lengths)
    frame = pd.DataFrame(aligned.values, index=aligned.sample_ids, columns=bundle.gene_ids)
    labels = small.obs["tissue"].set_axis(small.obs.index.astype(str))
    by_ids = finetune(frame, labels, bundle, input="aligned", epochs=1, progress=False)
    assert by_ids.metrics == _quick(small, labels, bundle).metrics  # same data, same model
    with pytest.raises(ValueError, match="not the vocabulary's 150 in order"):
        finetune(frame[frame.columns[::-1]], labels, bundle, input="aligned", epochs=1, progress=False)
    with_nan = frame.copy()
    with_nan.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        finetune(with_nan, labels, bundle, input="aligned", epochs=1, progress=False)
    # raw counts in vocabulary order passed the checks and trained on values up to ~1e5
    counts = small.counts.set_axis(frame.index).astype(np.float32)
    with pytest.raises(ValueError, match=r"input='aligned' takes natural log1p TPM .* but the values range from .* to 1.97e\+07"):
        finetune(counts, labels, bundle, input="aligned", epochs=1, progress=False)
    with pytest.raises(ValueError, match="takes natural log1p TPM"):
        bulkformer.pretrain(counts, None, model=bundle, input="aligned", epochs=1, progress=False)


def test_torchrun_is_refused(small, bundle, monkeypatch):
    """Under torchrun every rank trained the same model and wrote the same output."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="run it without torchrun"):
        _quick(small, small.obs["tissue"], bundle)


def test_cli_lr_in_frozen_mode_is_refused(small, tmp_path, monkeypatch, capsys):
    """--lr is the encoder's rate; in the default frozen mode it was silently unused."""
    from bulkformer.cli.main import main

    small.counts.iloc[:4].to_csv(tmp_path / "x.csv")
    small.obs[["tissue"]].to_csv(tmp_path / "l.csv")
    monkeypatch.setattr("sys.argv", ["bulkformer", "finetune", str(tmp_path / "x.csv"), "--labels", str(tmp_path / "l.csv"),
                                     "--column", "tissue", "-m", str(tmp_path / "m"), "-o", str(tmp_path / "o"), "--lr", "1e-3"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "--mode frozen trains only the head: use --head-lr" in " ".join(capsys.readouterr().err.split())


def test_predict_prepares_new_data_as_the_training_data(small, bundle, tmp_path):
    """A model fine-tuned on log1p TPM was applied to new log1p TPM as counts by default
    (predict's input='counts'), giving other features; the model now records its input."""
    logtpm = np.log1p(small.counts.div(small.lengths, axis=1).pipe(lambda x: x.div(x.sum(axis=1), axis=0) * 1e6))
    result = finetune(logtpm, small.obs["tissue"], bundle, input="logtpm", epochs=1, progress=False, out=tmp_path / "ft")
    saved = load_finetuned(tmp_path / "ft")
    assert saved.input_kind == "logtpm"
    pd.testing.assert_frame_equal(saved.predict(logtpm), result.model.predict(logtpm, input="logtpm"))
    with pytest.warns(UserWarning, match="fine-tuned on input='logtpm' data and is given input='tpm'"):
        saved.predict(np.expm1(logtpm), input="tpm")
