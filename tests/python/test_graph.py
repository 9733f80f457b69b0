"""build_graph matches a brute-force numpy reference and writes the bundle format."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.graph import build_graph, read_graph


def _brute_force(values: np.ndarray, top_k: int, min_abs_r: float) -> dict[tuple[int, int], float]:
    corr = np.abs(np.corrcoef(values, rowvar=False))
    np.fill_diagonal(corr, -1)
    edges = {}
    for gene in range(corr.shape[0]):
        for partner in np.argsort(-corr[gene])[:top_k]:
            if corr[gene, partner] >= min_abs_r:
                edges[(gene, int(partner))] = float(corr[gene, partner])
    return edges


def _cohort(n_samples=60, n_genes=37, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    modules = rng.normal(size=(n_samples, 4))
    loadings = rng.normal(size=(4, n_genes)) * (rng.random(n_genes) > 0.3)
    return (modules @ loadings + rng.normal(scale=0.8, size=(n_samples, n_genes))).astype(np.float32)


@pytest.mark.parametrize("block_size", [5, 2048])
def test_graph_matches_brute_force(block_size):
    values = _cohort()
    genes = [f"ENSG{i:011d}" for i in range(values.shape[1])]
    graph = build_graph(pd.DataFrame(values, columns=genes), top_k=6, min_abs_r=0.3, block_size=block_size)
    got = {(int(r), int(s)): float(w) for r, s, w in zip(*graph.edge_index, graph.edge_weight)}
    expected = _brute_force(values.astype(np.float64), 6, 0.3)
    assert got.keys() == expected.keys()
    assert max(abs(got[e] - expected[e]) for e in got) < 1e-5
    assert len(got) > 50  # the threshold leaves a real graph
    assert graph.gene_ids == genes


def test_graph_defaults_are_the_papers_and_constant_genes_get_no_edges():
    values = _cohort(n_genes=30)
    values[:, 3] = 1.0
    graph = build_graph(values, genes=[f"g{i}" for i in range(30)])
    assert graph.edge_weight.min() >= 0.4
    assert np.bincount(graph.edge_index[0].numpy(), minlength=30).max() <= 20
    assert 3 not in set(graph.edge_index.flatten().tolist())
    assert graph.edge_index.dtype == torch.int64


def test_graph_round_trips_and_plugs_into_a_bundle(tmp_path):
    bundle = bulkformer.tiny_bundle(n_genes=40)
    values = _cohort(n_genes=40)
    graph = build_graph(pd.DataFrame(values, columns=bundle.gene_ids), top_k=5, min_abs_r=0.2, out=tmp_path / "graph.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.safetensors"]
    again = read_graph(tmp_path / "graph.safetensors")
    assert torch.equal(again.edge_index, graph.edge_index) and torch.equal(again.edge_weight, graph.edge_weight)
    assert again.gene_ids == bundle.gene_ids
    bundle.model.set_graph(again.edge_index, again.edge_weight)  # valid for the model's vocabulary


def test_graph_errors_are_actionable():
    with pytest.raises(ValueError, match="at least 3 samples"):
        build_graph(np.zeros((2, 4)), genes=list("abcd"))
    with pytest.raises(ValueError, match="genes="):
        build_graph(np.zeros((5, 4)))


def test_graph_argument_mistakes_are_not_ignored(tmp_path):
    path = tmp_path / "cohort.csv"
    pd.DataFrame(_cohort(n_genes=6), columns=[f"g{i}" for i in range(6)]).to_csv(path)
    with pytest.raises(ValueError, match="a file carries its own gene IDs"):  # genes= was silently ignored
        build_graph(path, genes=[f"x{i}" for i in range(6)])
    with pytest.raises(ValueError, match="block_size=0: must be a whole number"):  # was range()'s message
        build_graph(path, block_size=0)
