"""Inference: imputation, embeddings, on-disk gene-embedding stores, torchrun sharding.

    run_imputation(data, model)   -> ImputationResult (observed / imputed / predicted)
    impute(data, model)           -> DataFrame | AnnData
    embed(data, model, level=...) -> DataFrame | AnnData | store path
    read_gene_embeddings(path)    -> GeneEmbeddings
"""
from .embed import aggregate_genes, embed
from .execution import Engine, choose_device, choose_precision
from .fast import FastBulkFormer, normalised_adjacency
from .impute import ImputationResult, impute, run_imputation
from .stores import GeneEmbeddings, read_gene_embeddings

__all__ = [
    "Engine", "FastBulkFormer", "GeneEmbeddings", "ImputationResult", "aggregate_genes", "choose_device",
    "choose_precision", "embed", "impute", "normalised_adjacency", "read_gene_embeddings", "run_imputation",
]
