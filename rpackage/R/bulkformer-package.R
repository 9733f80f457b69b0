#' bulkformer: BulkFormer for SummarizedExperiment and DESeqDataSet
#'
#' Impute missing genes ([bulkformerImpute()]) and compute sample or gene
#' embeddings ([bulkformerEmbed()]) of bulk RNA-seq data with the BulkFormer
#' foundation model. The R package converts Bioconductor objects and calls the
#' Python package `bulkformer` through reticulate; see [install_bulkformer()] for
#' setting up Python without conda or network access.
#'
#' Worked examples (a Bioconductor workflow with DESeq2, and a mixed R + Python
#' report) are the R Markdown files in the `vignettes/` folder of the bulkformer
#' source repository, beside `rpackage/`; they are not installed with the package
#' because they need the Python engine to build.
#'
#' @keywords internal
#' @importFrom methods setGeneric setMethod is
#' @importClassesFrom SummarizedExperiment SummarizedExperiment
"_PACKAGE"
