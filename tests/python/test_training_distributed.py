"""End-to-end pretraining through the CLI in subprocesses:

* 2 gloo processes under torchrun give the same parameters as 1 process with the same
  global batch (tolerance: max |difference| <= 1e-5 per tensor after 8 AdamW steps at
  lr 1e-3; only the float32 summation order of the gradient all-reduce differs).
* a run SIGKILLed after step 5 (last checkpoint: step 4) and resumed with --resume has
  the uninterrupted run's loss curve and final weights (bit-identical on CPU).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import bulkformer

BIN = Path(sys.executable).parent
N_GENES = 60


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain_e2e")
    cohort = bulkformer.simulate_cohort(n_samples=48, n_genes=N_GENES, seed=5)
    cohort.save(root / "sim", shards=3)
    return root


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", str(root / "sim" / "shards"), "-o", str(out), "--n-genes", str(N_GENES), "--dim", "16",
            "--heads", "2", "--layers", "1", "--dropout", "0", "--batch-size", "8", "--epochs", "2", "--lr", "1e-3",
            "--lengths", str(root / "sim" / "lengths.tsv"), "--device", "cpu", "--checkpoint-every", "2", "--quiet",
            *extra]


def _run(command: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference_run(workspace):
    out = workspace / "single"
    done = _run([str(BIN / "bulkformer"), *_args(workspace, out)])
    assert done.returncode == 0, done.stderr
    return out


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_single_run_layout(reference_run):
    history = pd.read_csv(reference_run / "history.csv")
    assert history["step"].tolist() == list(range(1, 9))  # 2 shards of 16 for training, batch 8, 2 epochs
    assert len(pd.read_csv(reference_run / "validation.csv")) == 2  # the third shard is held out
    assert sorted(p.name for p in (reference_run / "checkpoints").iterdir()) == ["latest", "step-00000004", "step-00000006"]
    assert bulkformer.load(reference_run / "model").metadata["pretraining"]["steps"] == 8


def test_two_gloo_processes_match_one(workspace, reference_run):
    out = workspace / "ddp"
    done = _run([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", str(BIN / "bulkformer"),
                 *_args(workspace, out)])
    assert done.returncode == 0, done.stderr[-3000:]
    single, ddp = _weights(reference_run), _weights(out)
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=0, atol=1e-5, msg=name)
    changed = max(float((single[k] - v).abs().max()) for k, v in load_file(str(out / "checkpoints" / "step-00000004" / "bundle" / "model.safetensors")).items())
    assert changed > 1e-4  # the comparison is not vacuous: steps 5..8 moved the weights
    losses_single = pd.read_csv(reference_run / "history.csv")["loss"]
    losses_ddp = pd.read_csv(out / "history.csv")["loss"]
    pd.testing.assert_series_equal(losses_ddp, losses_single, rtol=1e-5, atol=0)


# the kill switch is a callback the test installs (none lives in the library): the command
# line's pretrain, with a callback that SIGKILLs the process after step N
KILL_RUNNER = """
import os, signal, sys
import bulkformer.training as training
from bulkformer.training.loop import Callback

STEP = int(sys.argv[1])

class KillAfter(Callback):
    def on_step(self, state):
        if state.step == STEP:
            os.kill(os.getpid(), signal.SIGKILL)

run = training.pretrain
training.pretrain = lambda *args, **kwargs: run(*args, callbacks=[KillAfter()], **kwargs)
from bulkformer.cli.main import main
sys.argv = ["bulkformer", *sys.argv[2:]]
main()
"""


def test_kill_and_resume_reproduces_the_loss_curve(workspace, reference_run):
    out = workspace / "killed"
    killed = _run([sys.executable, "-c", KILL_RUNNER, "5", *_args(workspace, out)])
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "model").exists()
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000004"
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5]

    resumed = _run([str(BIN / "bulkformer"), *_args(workspace, out, "--resume")])
    assert resumed.returncode == 0, resumed.stderr
    reference = pd.read_csv(reference_run / "history.csv")
    after = pd.read_csv(out / "history.csv")
    pd.testing.assert_frame_equal(after, reference)  # every step's loss, lr and grad norm
    logged = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 9))
    single, again = _weights(reference_run), _weights(out)
    for name in single:
        assert torch.equal(again[name], single[name]), name


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch, capsys):
    """Ctrl-C ended the run with exit 130 and no word on the checkpoints it left."""
    import bulkformer.training as training
    from bulkformer.cli.main import main
    from bulkformer.training.checkpoint import TRAINER_FILE

    def interrupted(data, out, **kwargs):
        step = Path(out) / "checkpoints" / "step-00000004"
        step.mkdir(parents=True)
        (step / TRAINER_FILE).write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "pretrain", interrupted)
    (tmp_path / "data.csv").write_text("sample,ENSG00000000003\ns1,1\n")
    monkeypatch.setattr("sys.argv", ["bulkformer", "pretrain", str(tmp_path / "data.csv"), "-o", str(tmp_path / "run")])
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert "--resume` (same settings) continues from step-00000004" in err
