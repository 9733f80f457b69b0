"""Under torchrun (2 gloo processes on CPU) embed/impute shard samples across ranks and
give outputs identical to one process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import torch

import bulkformer
from bulkformer.inference import read_gene_embeddings
from tests.conftest import REPO_ROOT

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import pandas as pd
    import torch.distributed as dist
    import bulkformer

    root = sys.argv[1]
    counts = pd.read_csv(f"{root}/counts.csv", index_col=0)
    path = bulkformer.embed(counts, f"{root}/model", level="gene", out=f"{root}/dist.zarr", batch_size=2,
                            fuse_gene_features=True, progress=False)
    imputed = bulkformer.impute(counts, f"{root}/model", which="all", batch_size=2, progress=False)
    sample = bulkformer.embed(counts, f"{root}/model", aggregate="median", batch_size=2, progress=False)
    rank = dist.get_rank()
    imputed.to_csv(f"{root}/imputed_rank{rank}.csv")
    sample.to_csv(f"{root}/sample_rank{rank}.csv")
    dist.destroy_process_group()
""")


def test_two_gloo_ranks_match_one_process(tmp_path):
    bundle = bulkformer.tiny_bundle(n_genes=60)
    bundle.gene_features = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    bundle.save(tmp_path / "model")
    sim = bulkformer.simulate_cohort(n_samples=5, vocabulary=bundle.genes, n_genes=None, seed=1, missing_fraction=0.0)
    counts = sim.counts.iloc[:, 3:]
    counts.to_csv(tmp_path / "counts.csv")
    counts = pd.read_csv(tmp_path / "counts.csv", index_col=0)
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "worker.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    single_path = bulkformer.embed(counts, bundle, level="gene", out=tmp_path / "single.zarr", batch_size=2,
                                   fuse_gene_features=True, progress=False)
    distributed_store, single = read_gene_embeddings(tmp_path / "dist.zarr"), read_gene_embeddings(single_path)
    assert np.array_equal(distributed_store.values, single.values)
    assert distributed_store.sample_ids == single.sample_ids == [str(s) for s in counts.index]
    assert not list(tmp_path.glob(".*partial"))

    imputed = bulkformer.impute(counts, bundle, which="all", batch_size=2, progress=False)
    sample = bulkformer.embed(counts, bundle, aggregate="median", batch_size=2, progress=False)
    for rank in (0, 1):  # every rank returns the whole result
        assert np.allclose(pd.read_csv(tmp_path / f"imputed_rank{rank}.csv", index_col=0).to_numpy(),
                           imputed.to_numpy(), atol=1e-6, rtol=0)  # CSV round trip; the store above is bit-exact
        assert np.allclose(pd.read_csv(tmp_path / f"sample_rank{rank}.csv", index_col=0).to_numpy(),
                           sample.to_numpy(), atol=1e-6, rtol=0)


def test_ranks_take_whole_batches_covering_every_sample(monkeypatch):
    import torch.distributed as dist

    from bulkformer.inference import distributed

    monkeypatch.setattr(distributed, "launched_by_torchrun", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    for n_samples, batch_size in ((10, 4), (5, 2), (2, 4), (100, 16)):
        rows = []
        for rank in range(3):
            monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
            shard = distributed.shard_rows(n_samples, batch_size)
            assert shard.rows.start % batch_size == 0
            rows.extend(shard.rows)
        assert rows == list(range(n_samples))


def test_bare_cuda_under_torchrun_means_this_ranks_gpu(monkeypatch):
    """device="cuda" (the CLI's --device cuda) put every rank on GPU 0; NCCL then fails."""
    from bulkformer.inference import distributed

    chosen = []
    monkeypatch.setattr(distributed, "launched_by_torchrun", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "1")
    for device in (None, "cuda", torch.device("cuda")):
        assert distributed.local_device(device) == torch.device("cuda", 1)
    assert chosen == [1, 1, 1]
    for device in ("cuda:0", "cpu", torch.device("cuda", 0), "gpu"):  # explicit choices stay; choose_device checks them
        assert distributed.local_device(device) == device
    monkeypatch.setattr(distributed, "launched_by_torchrun", lambda: False)
    assert distributed.local_device("cuda") == "cuda"
