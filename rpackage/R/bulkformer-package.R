#' bulkformer: BulkFormer for SummarizedExperiment and DESeqDataSet
#'
#' Impute missing genes ([bulkformerImpute()]) and
#' compute sample or gene embeddings
#' ([bulkformerEmbed()]) of bulk RNA-seq data with
#' the BulkFormer foundation model. The R package converts Bioconductor objects
#' and calls the Python package `bulkformer` through reticulate; see
#' [install_bulkformer()] for setting up Python
#' without conda or network access, and
#' `vignette("bulkformer-bioconductor", package = "bulkformer")` for a
#' workflow with DESeq2.
#'
#' @name bulkformer-package
#' @aliases bulkformer
#' @docType package
#' @keywords internal
#' @importFrom methods setGeneric setMethod is
#' @importClassesFrom SummarizedExperiment SummarizedExperiment
NULL
