"""A tiny, deterministic, random-weight bundle for tests, R examples and vignettes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..bundle import Bundle
from ..model import BulkFormer, get_layout
from ..graph import correlation_edges
from ..preprocess import vocabulary_table
from .simulate import simulate_cohort



def tiny_bundle(
    path: str | Path | None = None,
    n_genes: int = 300,
    seed: int = 0,
    version: str = "v2",
    *,
    vocabulary: Any = None,
    top_k: int = 10,
    min_abs_r: float = 0.4,
) -> Bundle:
    """A small random-weight bundle of layout ``version`` ("v2", the default; "v1", with a
    random 8-wide stand-in for the ESM2 gene table; "latest"): d = 16, one Performer
    layer (two for latest), 2 heads.

    Covers the first ``n_genes`` genes of ``vocabulary`` (default: the shipped
    ``default_vocabulary()``). Its graph is co-expression style: for each gene the
    ``top_k`` partners by |Pearson r| (kept when |r| >= ``min_abs_r``) over a cohort
    simulated with the same ``seed``. The same arguments give bit-identical weights;
    the global torch RNG is left untouched. Saved to ``path`` when given (~200 kB at 300 genes).
    The weights are untrained: outputs are meaningless, shapes and plumbing are real.

    Example::

        bundle = bulkformer.datasets.tiny_bundle("tiny-model")
        bulkformer.load("tiny-model").config.n_genes   # 300
    """
    genes = vocabulary_table(vocabulary, n_genes)
    config = get_layout(version).tiny(len(genes))
    cohort = simulate_cohort(n_samples=200, vocabulary=genes, n_genes=None, seed=seed, missing_fraction=0.0)
    edge_index, edge_weight = correlation_edges(cohort.log_tpm.to_numpy(), top_k=top_k, min_abs_r=min_abs_r)
    edge_index = _stored_order(edge_index, get_layout(version).network.receiver_row)
    table_dim = getattr(config, "gene_table_dim", None)  # v1: a random stand-in for the ESM2 table
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gene_table = torch.randn(len(genes), table_dim) * 0.02 if table_dim else None
        model = BulkFormer(config, edge_index, edge_weight, gene_table=gene_table)
    model.eval()
    bundle = Bundle(
        model=model,
        genes=genes,
        gene_features=gene_table.clone() if gene_table is not None else None,
        metadata={"name": f"tiny-{version}", "seed": seed, "trained": False,
                  "note": "random weights for tests and examples; not a trained model"},
    )
    if path is not None:
        bundle.save(path)
    return bundle


def _stored_order(receiver_first: torch.Tensor, receiver_row: int) -> torch.Tensor:
    """The correlation graph (receiver-first) in the row order the layout stores."""
    return receiver_first if receiver_row == 0 else receiver_first.flip(0).contiguous()
