"""Pretraining building blocks: schedule, masking, the shard stream, checkpoints,
activation checkpointing, and that pretraining learns."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.model import MASK_VALUE
from bulkformer.training import PretrainConfig
from bulkformer.training import checkpoint as ckpt
from bulkformer.training.data import Corpus, Shard, build_corpus, file_shard
from bulkformer.training.masking import mask_measured, step_generator
from bulkformer.training.model_init import disable_activation_checkpointing, enable_activation_checkpointing
from bulkformer.training.schedule import warmup_cosine, warmup_cosine_factor


def test_warmup_then_cosine():
    total = 200  # warmup = 5% = 10 steps
    factors = [warmup_cosine_factor(s, total) for s in range(total)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert max(factors) == pytest.approx(1.0)
    assert factors[10 + 95] == pytest.approx(0.5, abs=0.01)  # half way through the cosine
    assert factors[-1] < 1e-3
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    scheduler = warmup_cosine(optimizer, total)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(lrs, 1e-4 * np.array(factors), rtol=1e-9)


def test_masking_hides_fraction_of_measured_only():
    x = torch.rand(64, 500) * 5
    x[:, :100] = MASK_VALUE
    masked, mask = mask_measured(x, 0.15, step_generator(0, 3))
    assert not mask[:, :100].any()
    assert mask[:, 100:].float().mean() == pytest.approx(0.15, abs=0.01)
    assert (masked[mask] == MASK_VALUE).all() and torch.equal(masked[~mask], x[~mask])
    again, mask_again = mask_measured(x, 0.15, step_generator(0, 3))
    assert torch.equal(mask, mask_again)
    _, other = mask_measured(x, 0.15, step_generator(0, 4))
    assert not torch.equal(mask, other)


def test_mask_rate_range_draws_one_rate_per_sample():
    x = torch.rand(400, 2000) * 5
    x[:, :200] = MASK_VALUE
    _, mask = mask_measured(x, 0.05, step_generator(1, 0), fraction_max=0.45)
    assert not mask[:, :200].any()
    rates = mask[:, 200:].float().mean(dim=1).numpy()
    assert rates.min() == pytest.approx(0.05, abs=0.02) and rates.max() == pytest.approx(0.45, abs=0.02)
    assert np.mean(rates) == pytest.approx(0.25, abs=0.02)
    assert np.histogram(rates, bins=4, range=(0.05, 0.45))[0].min() > 70  # uniform, not clumped
    _, again = mask_measured(x, 0.05, step_generator(1, 0), fraction_max=0.45)
    assert torch.equal(mask, again)
    with pytest.raises(ValueError, match="fraction_max"):
        mask_measured(x, 0.2, step_generator(1, 0), fraction_max=0.1)


def test_mask_rate_range_keeps_the_model_working_when_more_genes_are_missing():
    """Trained at 15% only, the model leans on that share of -10 entries and degrades when
    60% are missing; trained on 15-60% it holds up (seeds 0-3: +0.07 to +0.12 at 60%)."""
    from bulkformer.annotation import default_vocabulary
    from bulkformer.training.evaluation import evaluation_mask, masked_pearson, model_predictions

    vocabulary = default_vocabulary().iloc[:120]
    log_tpm = bulkformer.simulate_cohort(n_samples=260, vocabulary=vocabulary, n_genes=None, seed=4).log_tpm
    train, test = log_tpm.iloc[:200], np.asarray(log_tpm.iloc[200:], np.float32)
    scores = {}
    for rate_max in (None, 0.6):
        result = bulkformer.pretrain(train, None, PretrainConfig(vocabulary=vocabulary, dim=16, heads=2, p_repeat=1,
                                                                 epochs=6, batch_size=8, lr=3e-3, dropout=0.0,
                                                                 val_fraction=0, mask_fraction=0.15,
                                                                 mask_fraction_max=rate_max, progress=False),
                                     input="logtpm")
        assert result.bundle.metadata["pretraining"]["mask_fraction_max"] == rate_max
        for missing in (0.15, 0.6):
            masked, mask = evaluation_mask(test, missing, seed=1)
            scores[rate_max, missing] = masked_pearson(model_predictions(result.bundle.model, masked), test, mask)
    assert scores[0.6, 0.6] > scores[None, 0.6] + 0.05
    assert scores[0.6, 0.15] > scores[None, 0.15] - 0.02


def _toy_corpus(sizes=(7, 5, 9, 6), n_genes=3, shards_in_memory=2):
    shards, start = [], 0
    for size in sizes:
        values = np.arange(start, start + size, dtype=np.float32)[:, None].repeat(n_genes, axis=1)
        shards.append(Shard(name=f"s{start}", n_samples=size, read=lambda v=values: v))
        start += size
    return Corpus(shards, shards_in_memory=shards_in_memory)


def test_stream_covers_epoch_shuffles_across_shards_and_resumes():
    corpus = _toy_corpus()
    batches = list(corpus.batches(4, epoch=0, seed=1))
    ids = np.concatenate([b[:, 0] for _, b in batches]).astype(int)
    assert len(ids) == 24 == len(set(ids))  # 27 samples, last incomplete batch dropped
    assert [offset for offset, _ in batches] == [4, 8, 12, 16, 20, 24]
    shard_of = np.searchsorted(np.cumsum([7, 5, 9, 6]), ids, side="right")
    assert any(len(set(shard_of[i:i + 4])) > 1 for i in range(0, 24, 4))  # batches mix shards
    resumed = list(corpus.batches(4, epoch=0, seed=1, start=12))
    assert [o for o, _ in resumed] == [16, 20, 24]
    for (_, a), (_, b) in zip(batches[3:], resumed):
        np.testing.assert_array_equal(a, b)
    other_epoch = np.concatenate([b[:, 0] for _, b in corpus.batches(4, epoch=1, seed=1)])
    assert not np.array_equal(other_epoch, ids)


def test_resume_skips_reading_consumed_windows():
    reads = []
    shards = [Shard(name=str(i), n_samples=4, read=lambda i=i: (reads.append(i), np.full((4, 2), i, np.float32))[1])
              for i in range(6)]
    corpus = Corpus(shards, shards_in_memory=1)
    list(corpus.batches(4, epoch=0, seed=0, start=16))
    assert len(reads) == 2  # only the last two shards were read


def test_validation_holds_out_rows_of_one_file_and_whole_shards_of_several():
    from bulkformer.training.rows import TrainingRows, validation_split

    def split(corpus, val_fraction, max_val, seed):
        train, held, note = validation_split(TrainingRows.from_corpus(corpus), val_fraction, max_val, seed)
        return train, held, note

    def shards(sizes):
        starts = np.cumsum([0, *sizes])
        return [Shard(name=f"part{i}.parquet", n_samples=n,
                      read=lambda i=i, n=n: np.arange(starts[i], starts[i] + n, dtype=np.float32)[:, None].repeat(3, 1))
                for i, n in enumerate(sizes)]

    one = Corpus(shards([40]))  # a single file used to skip validation silently
    train, held, note = split(one, 0.1, 512, seed=0)
    assert len(held) == 4 and train.n_samples == 36 and note == "4 of 40 samples"
    assert set(held[:, 0]).isdisjoint(train.read(np.arange(train.n_samples))[:, 0])
    several = Corpus(shards([10, 10, 10, 10]))
    with pytest.warns(UserWarning, match=r"validation takes 25% of the samples \(val_fraction=0.1\) because whole "
                                         r"shard files are held out \(1 of 4\): give the validation samples with val_data="):
        train, held, note = split(several, 0.1, 512, seed=0)
    assert sorted(held[:, 0]) == list(range(30, 40)) and train.n_samples == 30
    assert "last 1 of 4 shard files (part3.parquet); whole shards, so 10 samples (25% of 40) leave training" in note
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 10% asked, 10% held out: nothing to say
        split(Corpus(shards([10] * 10)), 0.1, 512, seed=0)
    assert split(several, 0.0, 512, seed=0)[1] is None


def test_file_shards_are_prepared(tmp_path):
    cohort = bulkformer.simulate_cohort(n_samples=20, n_genes=50, seed=2, missing_fraction=0.0)
    from bulkformer.annotation import default_vocabulary
    from bulkformer.preprocess import prepare

    vocabulary = default_vocabulary().iloc[:50]
    cohort.counts.iloc[:12].to_parquet(tmp_path / "a.parquet")
    import anndata

    anndata.AnnData(cohort.counts.iloc[12:].astype(np.float32)).write_h5ad(tmp_path / "b.h5ad")
    corpus = build_corpus(tmp_path, vocabulary, input="counts")
    assert [s.n_samples for s in corpus.shards] == [12, 8]
    expected = prepare(cohort.counts, vocabulary, input="counts").values
    np.testing.assert_allclose(np.concatenate([s.read() for s in corpus.shards]), expected, rtol=1e-6)
    anndata.AnnData(cohort.counts.astype(np.float32)).write_zarr(tmp_path / "c.zarr")
    zarr_shard = file_shard(tmp_path / "c.zarr", vocabulary, input="counts")
    assert zarr_shard.n_samples == 20
    np.testing.assert_allclose(zarr_shard.read(), expected, rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="no such shard"):
        build_corpus(tmp_path / "missing.parquet", vocabulary)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no shard files"):
        build_corpus(tmp_path / "empty", vocabulary)


def test_checkpoints_are_complete_and_pruned(tmp_path):
    bundle = bulkformer.tiny_bundle(n_genes=40)
    for step in (2, 4, 6):
        ckpt.save_checkpoint(tmp_path, step, bundle, {"step": step, "rng": torch.get_rng_state()}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-00000004", "step-00000006"]
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.name == "step-00000006"
    assert ckpt.load_trainer_state(latest)["step"] == 6
    assert bulkformer.load(latest / "bundle").config == bundle.config
    assert ckpt.resolve_checkpoint(True, tmp_path / "fresh") is None
    with pytest.raises(FileNotFoundError):
        ckpt.resolve_checkpoint(tmp_path / "nowhere", None)


def test_activation_checkpointing_gives_the_same_gradients():
    bundle = bulkformer.tiny_bundle(n_genes=60)
    model = bundle.model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    x = torch.rand(4, 60) * 6

    def grads():
        model.zero_grad()
        model(x, 0.0).expr.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    enable_activation_checkpointing(model)
    recomputed = grads()
    disable_activation_checkpointing(model)
    assert plain.keys() == recomputed.keys()
    for name in plain:
        torch.testing.assert_close(recomputed[name], plain[name], rtol=1e-5, atol=1e-7)


def test_pretraining_learns(tmp_path):
    from bulkformer.annotation import default_vocabulary

    vocabulary = default_vocabulary().iloc[:120]
    cohort = bulkformer.simulate_cohort(n_samples=200, vocabulary=vocabulary, n_genes=None, seed=4)
    result = bulkformer.pretrain(cohort, tmp_path / "run", PretrainConfig(vocabulary=vocabulary, dim=16, heads=2,
                                                                          p_repeat=1, epochs=6, batch_size=8,
                                                                          lr=3e-3, dropout=0.0, progress=False))
    validation = result.validation
    assert len(validation) == 6
    # first epoch ~0.2 (per-sample level only), last ~0.7 (gene levels and co-expression)
    assert validation["masked_pcc"].iloc[-1] > validation["masked_pcc"].iloc[0] + 0.3
    assert validation["masked_pcc"].iloc[-1] > 0.6
    assert result.history["loss"].iloc[-5:].mean() < 0.75 * result.history["loss"].iloc[:5].mean()
    saved = bulkformer.load(tmp_path / "run" / "model")
    assert saved.metadata["pretraining"]["steps"] == len(result.history)
    assert (tmp_path / "run" / "history.csv").is_file() and (tmp_path / "run" / "log.jsonl").is_file()


def _strict_json(text: str):
    """json.loads that refuses NaN/Infinity, as R's jsonlite and JavaScript do."""
    import json

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_run_files_are_strict_json_without_validation_or_clipping(tmp_path):
    """With val_fraction=0 the validation scores are NaN and without clipping so is each
    step's grad_norm: they were written as the bare token NaN, which strict parsers reject."""
    vocabulary = bulkformer.annotation.default_vocabulary().iloc[:40]
    cohort = bulkformer.simulate_cohort(n_samples=24, vocabulary=vocabulary, n_genes=None, seed=1)
    bulkformer.pretrain(cohort, tmp_path / "run", PretrainConfig(vocabulary=vocabulary, dim=8, heads=2, p_repeat=1,
                                                                 epochs=1, batch_size=8, val_fraction=0.0,
                                                                 clip_norm=None, progress=False))
    config = _strict_json((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["metadata"]["pretraining"]["val_masked_pcc"] is None
    records = [_strict_json(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records and all(r["grad_norm"] is None for r in records)
    bundle = bulkformer.load(tmp_path / "run" / "model")
    bulkformer.embed(cohort.counts.iloc[:3], bundle, level="gene", lengths=cohort.lengths,
                     out=tmp_path / "genes.zarr", progress=False)
    zarr_json = next((tmp_path / "genes.zarr").glob("zarr.json"), None) or next((tmp_path / "genes.zarr").glob(".zattrs"))
    _strict_json(zarr_json.read_text())


def test_bad_arguments(tmp_path):
    values = np.zeros((10, 20), np.float32)
    vocabulary = pd.DataFrame({"ensembl_id": [f"ENSG{i:011d}" for i in range(20)]})
    with pytest.raises(ValueError, match="fewer than one step"):
        bulkformer.pretrain(values, None, PretrainConfig(vocabulary=vocabulary, batch_size=64, dim=16, heads=2,
                                                         val_fraction=0, progress=False), input="aligned")
    with pytest.raises(ValueError, match="mask_fraction"):
        bulkformer.pretrain(values, None, PretrainConfig(vocabulary=vocabulary, mask_fraction=1.5), input="aligned")
    with pytest.raises(ValueError, match="mask_fraction_max"):
        bulkformer.pretrain(values, None, PretrainConfig(vocabulary=vocabulary, mask_fraction=0.2,
                                                         mask_fraction_max=0.1), input="aligned")
    with pytest.raises(ValueError, match="aligned input"):
        bulkformer.pretrain(np.zeros((10, 7)), None, PretrainConfig(vocabulary=vocabulary, progress=False),
                            input="aligned")


def test_observed_weight_adds_a_denoising_term():
    import sys

    pretrain_module = sys.modules["bulkformer.training.steps"]
    bundle = bulkformer.tiny_bundle(n_genes=40)
    x = torch.rand(3, 40) * 5
    x[:, :4] = MASK_VALUE
    masked, mask = mask_measured(x, 0.2, step_generator(0, 0))
    output = bundle.model(masked, 0.1)
    raw = output.raw
    # the head's output before the v2 mask correction, which shifts the masked entries
    torch.testing.assert_close(raw, bundle.model.head(output.features).squeeze(-1))
    assert not torch.allclose(raw[mask], output.expr[mask])
    observed = (x != MASK_VALUE) & ~mask
    expected = ((raw - x)[mask] ** 2).sum() + 0.3 * ((raw - x)[observed] ** 2).sum()
    torch.testing.assert_close(pretrain_module.objective(output, x, mask, 0.3), expected)
    torch.testing.assert_close(pretrain_module.objective(output, x, mask), ((raw - x)[mask] ** 2).sum())


def test_pca_gene_init_starts_from_the_principal_axes():
    import sys

    pretrain_module = sys.modules["bulkformer.training.model_init"]
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(300, 1))
    loading = rng.normal(size=(1, 30))
    values = 3.0 + factor @ loading + 0.1 * rng.normal(size=(300, 30))
    values[:5, 7] = np.nan  # unmeasured entries are filled with the gene mean, not propagated
    model = bulkformer.tiny_bundle(n_genes=30).model  # d = 16
    pretrain_module.init_gene_embedding_pca(model, pretrain_module.filled(values), scale=1.6)
    weight = model.gene_emb_onehot_layer.weight.detach().numpy()
    assert np.isfinite(weight).all()
    # the first axis is the planted loading (up to sign), entries rescaled to sd 1.6
    assert abs(np.corrcoef(weight[:, 0], loading[0])[0, 1]) > 0.99
    assert weight[:, :16].std() == pytest.approx(1.6, rel=1e-4)
    assert abs(weight[:, 0]).mean() > 5 * abs(weight[:, 1]).mean()


def test_gene_init_is_checked():
    values = np.zeros((10, 20), np.float32)
    vocabulary = pd.DataFrame({"ensembl_id": [f"ENSG{i:011d}" for i in range(20)]})
    with pytest.raises(ValueError, match="gene_init must be 'pca' or 'random'"):
        bulkformer.pretrain(values, None, PretrainConfig(vocabulary=vocabulary, gene_init="esm2", progress=False),
                            input="aligned")


def test_validation_reports_the_gene_mean_baseline_and_warns_below_it():
    """The validation r rose epoch by epoch while the model stayed below each gene's
    training mean, and nothing said so."""
    from bulkformer.annotation import default_vocabulary
    from bulkformer.training.evaluation import evaluation_mask, gene_mean_baseline, masked_pearson

    vocabulary = default_vocabulary().iloc[:80]
    log_tpm = bulkformer.simulate_cohort(n_samples=120, vocabulary=vocabulary, n_genes=None, seed=5).log_tpm
    settings = dict(vocabulary=vocabulary, input="logtpm", dim=16, heads=2, p_repeat=1, batch_size=8, dropout=0.0,
                    val_data=log_tpm.iloc[100:], progress=False, seed=3)
    with pytest.warns(UserWarning, match=r"masked Pearson r on the held-out samples \(0\.\d+\) is below the gene-mean "
                                         r"baseline's \(0\.\d+\)"):
        untrained = bulkformer.pretrain(log_tpm.iloc[:100], None, epochs=1, lr=1e-7, **settings)
    held = np.asarray(log_tpm.iloc[100:], np.float32)
    masked, mask = evaluation_mask(held, 0.15, seed=3 + 7919)
    expected = masked_pearson(gene_mean_baseline(np.asarray(log_tpm.iloc[:100], np.float32), masked), held, mask)
    # named for what it is (issue 31): the training samples' gene means, not evaluate's cohort-own gene_mean
    assert "gene_mean_pcc" not in untrained.validation.columns
    assert "val_gene_mean_pcc" not in untrained.bundle.metadata["pretraining"]
    assert untrained.validation["train_gene_mean_pcc"].tolist() == pytest.approx([expected] * len(untrained.validation))
    assert untrained.bundle.metadata["pretraining"]["val_train_gene_mean_pcc"] == pytest.approx(expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        trained = bulkformer.pretrain(log_tpm.iloc[:100], None, epochs=30, lr=3e-3, **settings)
    assert trained.validation["masked_pcc"].iloc[-1] > expected


def test_lengths_fingerprint_ignores_the_number_type():
    """Lengths read by pandas (integers) and by the CLI (floats) are the same lengths: a run
    started on the command line resumed from Python was refused as 'lengths changed'."""
    from bulkformer.dataspec import lengths_identity as _lengths_fingerprint

    as_int = pd.Series([1200, 3400], index=["ENSG00000000003", "ENSG00000000005"])
    assert _lengths_fingerprint(as_int) == _lengths_fingerprint(as_int.astype(float))
    assert _lengths_fingerprint(as_int) != _lengths_fingerprint(as_int + 1)


def test_max_steps_beyond_the_epochs_warns():
    """--max-steps 100 with the default single epoch ran 10 steps without a word."""
    vocabulary = bulkformer.annotation.default_vocabulary().iloc[:40]
    cohort = bulkformer.simulate_cohort(n_samples=24, vocabulary=vocabulary, n_genes=None, seed=1)
    with pytest.warns(UserWarning, match=r"max_steps=100 is more than epochs=1 x 3 steps per epoch: the run stops after 3"):
        result = bulkformer.pretrain(cohort, None, PretrainConfig(vocabulary=vocabulary, dim=8, heads=2, p_repeat=1,
                                                                  batch_size=8, max_steps=100, val_fraction=0.0,
                                                                  progress=False))
    assert len(result.history) == 3


def test_each_torchrun_rank_draws_its_own_dropout_masks():
    """Every rank starts from the same seed (identical weights), so with dropout rank 1's
    rows got exactly rank 0's masks. Each rank now draws from a stream of its own, seeded by
    (seed, step, micro-batch, rank), and the global stream is left as it was."""
    from bulkformer.training.distributed import DistContext
    from bulkformer.training.steps import own_dropout_stream as _own_dropout_stream

    net = bulkformer.tiny_bundle(n_genes=20).model
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.1

    def draw(rank: int, step: int = 3) -> torch.Tensor:
        ctx = DistContext(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"))
        with _own_dropout_stream(net, ctx, seed=0, step=step, micro=0):
            return torch.rand(5)

    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert not torch.equal(draw(0), draw(1))
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(1, step=4))
    assert torch.equal(torch.get_rng_state(), before)
    single = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with _own_dropout_stream(net, single, seed=0, step=3, micro=0):  # one process: the global stream, as before
        torch.rand(1)
    assert not torch.equal(torch.get_rng_state(), before)


def test_resuming_with_other_precision_warns(tmp_path):
    """A checkpoint resumed with another precision (or number of processes) was accepted in
    silence, and its numbers then differ from the uninterrupted run's."""
    vocabulary = bulkformer.annotation.default_vocabulary().iloc[:30]
    cohort = bulkformer.simulate_cohort(n_samples=24, vocabulary=vocabulary, n_genes=None, seed=1)
    settings = dict(vocabulary=vocabulary, dim=8, heads=2, p_repeat=1, batch_size=8, epochs=2, val_fraction=0.0,
                    checkpoint_every=2, progress=False)
    bulkformer.pretrain(cohort, tmp_path / "run", **settings)
    first = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[0]
    with pytest.warns(UserWarning, match=r"written with bf16 autocast False \(now True\).*not be bit-identical"):
        bulkformer.pretrain(cohort, tmp_path / "run", resume=first, precision="bf16", **settings)


def test_resuming_a_continued_bundle_without_it_names_the_model(tmp_path):
    """Resuming a run that continued a bundle, without --model, failed on genes ('too few
    vocabulary genes matched') with no word of the model."""
    bundle = bulkformer.tiny_bundle(tmp_path / "base", n_genes=30)
    cohort = bulkformer.simulate_cohort(n_samples=24, vocabulary=bundle, n_genes=30, seed=1)
    settings = dict(batch_size=8, epochs=2, val_fraction=0.0, checkpoint_every=2, lengths=cohort.lengths, progress=False)
    bulkformer.pretrain(cohort.counts, tmp_path / "run", model=tmp_path / "base", **settings)
    first = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[0]
    with pytest.raises(ValueError, match=r"belongs to a run started from model='.*base' \(now '37M'\): resume with the same"):
        bulkformer.pretrain(cohort.counts, tmp_path / "run", resume=first, **settings)


def test_continued_pretraining_keeps_the_base_runs_record(tmp_path):
    vocabulary = bulkformer.annotation.default_vocabulary().iloc[:30]
    cohort = bulkformer.simulate_cohort(n_samples=24, vocabulary=vocabulary, n_genes=None, seed=1)
    settings = dict(batch_size=8, val_fraction=0.0, progress=False)
    base = bulkformer.pretrain(cohort, tmp_path / "base", vocabulary=vocabulary, dim=8, heads=2, p_repeat=1, **settings)
    continued = bulkformer.pretrain(cohort, tmp_path / "more", model=tmp_path / "base" / "model", epochs=2, **settings)
    record = bulkformer.load(tmp_path / "more" / "model").metadata["pretraining"]
    assert record["steps"] == 6 and record["continued_from"]["steps"] == 3
    assert record["continued_from"]["final_loss"] == pytest.approx(base.bundle.metadata["pretraining"]["final_loss"])
    assert "continued_from" not in base.bundle.metadata["pretraining"] and continued.bundle is not base.bundle
