"""The prepared corpus (issue 28): shards read once into zarr, appended incrementally,
refused for another vocabulary, streamed by pretraining; a SIGTERM'd corpus-fed run
resumes to the uninterrupted run's numbers; two gloo ranks split every epoch exactly."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.annotation import default_vocabulary
from bulkformer.corpus import CorpusSettings, open_corpus, prepare_corpus, verify_corpus
from bulkformer.training import PretrainConfig
from bulkformer.training.callbacks import Interrupted
from bulkformer.training.loop import Callback

VOCABULARY = default_vocabulary().iloc[:50].reset_index(drop=True)
SMALL = PretrainConfig(vocabulary=VOCABULARY, dim=16, heads=2, p_repeat=1, dropout=0.0, batch_size=8, lr=1e-3,
                       epochs=2, val_fraction=0.0, progress=False, workers=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Three gzip TSV shards (samples x genes counts) of a simulated cohort."""
    root = tmp_path_factory.mktemp("corpus_shards")
    cohort = bulkformer.simulate_cohort(n_samples=60, vocabulary=VOCABULARY, n_genes=None, seed=4, missing_fraction=0)
    for i, rows in enumerate(np.array_split(np.arange(60), 3)):
        cohort.counts.iloc[rows].to_csv(root / f"part{i}.tsv.gz", sep="\t")
    cohort.counts.to_csv(root.parent / "all.csv")
    return root


def test_prepared_values_equal_prepare_and_appending_is_incremental(shards, tmp_path):
    files = sorted(shards.glob("*.tsv.gz"))
    corpus = prepare_corpus(files[:2], tmp_path / "corpus", VOCABULARY, progress=False)
    expected = bulkformer.prepare(shards.parent / "all.csv", VOCABULARY).values
    n_first = corpus.n_samples
    np.testing.assert_array_equal(corpus.read(0, n_first), expected[:n_first])
    np.testing.assert_array_equal(corpus.read(0, n_first, "measured"), expected[:n_first] != -10)
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["shards"]] == ["part0.tsv.gz", "part1.tsv.gz"]
    assert all(len(s["sha256"]) == 64 and len(s["values_sha256"]) == 64 for s in manifest["shards"])
    assert manifest["preparation"]["input"] == "counts" and manifest["vocabulary"]["n_genes"] == len(VOCABULARY)

    before = (tmp_path / "corpus" / "values").stat().st_mtime_ns
    again = prepare_corpus(files, tmp_path / "corpus", VOCABULARY, progress=False)  # only part2 is new
    assert again.n_samples == len(expected) and [s["name"] for s in again.shards][-1] == "part2.tsv.gz"
    np.testing.assert_array_equal(again.read(0, again.n_samples), expected)
    assert again.sample_ids == [str(s) for s in pd.read_csv(shards.parent / "all.csv", index_col=0).index]
    assert verify_corpus(tmp_path / "corpus") == [] and before  # checksums of the stored values hold

    with pytest.raises(ValueError, match="prepared with other settings: input='counts' \\(now 'tpm'\\)"):
        prepare_corpus(files, tmp_path / "corpus", VOCABULARY, settings=CorpusSettings(input="tpm"), progress=False)
    other = default_vocabulary().iloc[10:60]
    with pytest.raises(ValueError, match="another vocabulary"):
        prepare_corpus(files, tmp_path / "corpus", other, progress=False)
    with pytest.raises(ValueError, match="another vocabulary"):  # a model of other genes refuses the corpus
        bulkformer.pretrain(tmp_path / "corpus", None, replace(SMALL, vocabulary=other))


def test_float16_corpus_and_the_command_line(shards, tmp_path, capsys, monkeypatch):
    from bulkformer.cli.main import main

    vocabulary = tmp_path / "vocabulary.tsv"
    VOCABULARY.to_csv(vocabulary, sep="\t", index=False)
    monkeypatch.setattr(sys, "argv", ["bulkformer", "prepare-corpus", str(shards), "-o", str(tmp_path / "c16"),
                                      "--vocabulary", str(vocabulary), "--dtype", "float16", "--no-progress"])
    try:
        main()
    except SystemExit as stop:
        assert stop.code == 0
    assert "60 samples x 50 genes from 3 shard files (float16" in capsys.readouterr().out
    expected = bulkformer.prepare(shards.parent / "all.csv", VOCABULARY).values
    stored = open_corpus(tmp_path / "c16").read(0, 60)
    np.testing.assert_allclose(stored, expected, rtol=1e-3, atol=1e-3)
    assert ((stored == -10) == (expected == -10)).all()


class SigtermAt(Callback):
    """The scheduler's SIGTERM after step ``step``, to this process and its data-loading
    workers, as a scheduler signals every process of the job."""

    def __init__(self, step: int) -> None:
        self.step, self.workers = step, []

    def on_step(self, state) -> None:
        if state.step == self.step:
            children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
            self.workers = [int(c) for c in children.read_text().split()] if children.exists() else []
            for pid in self.workers:
                os.kill(pid, signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_checkpoints_and_the_resumed_run_matches_the_uninterrupted_one(shards, tmp_path):
    corpus = prepare_corpus(shards, tmp_path / "corpus", VOCABULARY, progress=False)
    config = replace(SMALL, checkpoint_every=100)  # no step checkpoint would come before the end
    reference = bulkformer.pretrain(corpus.path, tmp_path / "reference", config)
    n_steps = len(reference.history)
    assert n_steps == 2 * (corpus.n_samples // 8)  # every epoch's full batches

    sigterm = SigtermAt(4)
    with pytest.raises(Interrupted) as stopped:
        bulkformer.pretrain(corpus.path, tmp_path / "run", config, callbacks=[sigterm])
    assert sigterm.workers or not Path("/proc").is_dir()  # the loader's worker got the signal too, and survived it
    assert stopped.value.signum == signal.SIGTERM
    assert stopped.value.checkpoint.name == "step-00000005"  # the step after the signal, written before exiting
    assert not (tmp_path / "run" / "model").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again

    resumed = bulkformer.pretrain(corpus.path, tmp_path / "run", replace(config, resume=True))
    pd.testing.assert_frame_equal(resumed.history, reference.history)  # loss, lr, grad norm of every step
    for name, value in reference.bundle.model.state_dict().items():
        assert torch.equal(resumed.bundle.model.state_dict()[name], value), name


def test_max_time_stops_with_a_checkpoint_and_resume_finishes(shards, tmp_path):
    corpus = prepare_corpus(shards, tmp_path / "corpus", VOCABULARY, progress=False)
    reference = bulkformer.pretrain(corpus.path, None, SMALL)
    stopped = bulkformer.pretrain(corpus.path, tmp_path / "run", replace(SMALL, max_time=1e-9))
    assert len(stopped.history) == 1 and "max_time" in stopped.bundle.metadata["pretraining"]["stopped"]
    assert (tmp_path / "run" / "checkpoints" / "step-00000001").is_dir()
    finished = bulkformer.pretrain(corpus.path, tmp_path / "run", replace(SMALL, resume=True))
    pd.testing.assert_frame_equal(finished.history, reference.history)


def test_raw_shards_are_prepared_into_the_run_directory_once(shards, tmp_path, capsys):
    config = replace(SMALL, progress=True, max_steps=2, checkpoint_every=1)
    bulkformer.pretrain(shards, tmp_path / "run", config)
    said = capsys.readouterr().out
    assert f"preparing 3 shard file(s) once into the corpus {tmp_path / 'run' / 'corpus'}" in said
    assert open_corpus(tmp_path / "run" / "corpus").n_samples == 60
    config = replace(config, progress=False, checkpoint_every=None)
    from_corpus = bulkformer.pretrain(tmp_path / "run" / "corpus", None, config)
    from_shards = bulkformer.pretrain(shards, None, config)
    pd.testing.assert_frame_equal(from_corpus.history, from_shards.history)


RANK_SCRIPT = """
import json, sys
import numpy as np
from bulkformer.corpus import open_corpus
from bulkformer.corpus.stream import StepLayout
from bulkformer.training.distributed import init_distributed
from bulkformer.training.rows import TrainingRows

ctx = init_distributed("cpu")
rows = TrainingRows.from_prepared(open_corpus(sys.argv[1]), window=2)
layout = StepLayout(batch_size=8, grad_accum=2, rank=ctx.rank, world_size=ctx.world_size)
seen = {}
for epoch in (0, 1):
    batches = [b.numpy() for _, b in rows.steps(layout, epoch, 0, 0, workers=2)]
    seen[epoch] = [int(round(v)) for b in batches for v in b[:, 0] * 1000]
with open(f"{sys.argv[2]}/rank{ctx.rank}.json", "w") as handle:
    json.dump(seen, handle)
"""


def test_two_gloo_ranks_stream_one_corpus_each_sample_once_per_epoch(tmp_path):
    n, genes = 77, VOCABULARY["ensembl_id"].tolist()
    values = np.random.default_rng(0).uniform(0, 5, size=(n, len(genes))).astype(np.float32)
    values[:, 0] = np.arange(n) / 1000  # the sample's number, read back from what each rank got
    for i, rows in enumerate(np.array_split(np.arange(n), 4)):
        pd.DataFrame(values[rows], index=[f"s{r}" for r in rows], columns=genes).to_parquet(tmp_path / f"p{i}.parquet")
    corpus = prepare_corpus(sorted(tmp_path.glob("*.parquet")), tmp_path / "corpus", VOCABULARY,
                            settings=CorpusSettings(input="aligned", chunk_rows=8), progress=False)
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    done = subprocess.run([str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "2",
                           str(tmp_path / "rank.py"), str(corpus.path), str(tmp_path)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    step = 16  # batch 8 x 2 micro-batches: 4 full steps of the 77 samples, 13 left for no step
    for epoch in ("0", "1"):
        a, b = ranks[0][epoch], ranks[1][epoch]
        assert len(a) == len(b) == 4 * step // 2
        assert not set(a) & set(b)  # no sample on both ranks
        assert len(set(a) | set(b)) == len(a) + len(b) == 4 * step  # none twice on one rank either
    assert ranks[0]["0"] != ranks[0]["1"]  # each epoch its own order
