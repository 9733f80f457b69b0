# The R package's side of the agreement suite, run once per test session by
# test_r_python_agreement.py in an Rscript subprocess (reticulate cannot share a
# process with rpy2). Reads a list of cases built by rpy2, runs each through the
# public R API exactly as a user would, and saves what the user gets back.
#
# Usage: Rscript r_side.R cases.rds results.rds
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 2L)

suppressPackageStartupMessages({
    library(bulkformer)
    library(SummarizedExperiment)
    library(DESeq2)  # DESeqDataSet methods (counts(), design) for the dds cases
})
if (!bulkformer_available()) {
    stop("Python bulkformer is not available from RETICULATE_PYTHON=", Sys.getenv("RETICULATE_PYTHON"))
}

cases <- readRDS(args[[1]])
models <- list()
results <- list()
for (name in names(cases)) {
    case <- cases[[name]]
    if (is.null(models[[case$model]])) {
        models[[case$model]] <- load_bulkformer_model(case$model)
    }
    model <- models[[case$model]]
    imputed <- bulkformerImpute(case$x, model, predicted = TRUE, progress = FALSE)
    embedded <- bulkformerEmbed(case$x, model, aggregate = case$aggregate, progress = FALSE)
    if (is(embedded, "SummarizedExperiment")) {
        embedding <- bulkformerEmbedding(embedded)
        embed_report <- S4Vectors::metadata(embedded)$bulkformer_embedding$bulkformer$mapping_report
    } else {
        embedding <- embedded
        embed_report <- attr(embedded, "mapping_report")
    }
    results[[name]] <- list(imputed = imputed, embedded = embedded, embedding = unclass(embedding),
                            embed_report = embed_report)
    if (isTRUE(case$gene_level)) {
        store <- bulkformerEmbed(case$x, model, level = "gene", genes = case$genes,
                                 out = file.path(tempdir(), paste0(name, "-genes.zarr")), progress = FALSE)
        results[[name]]$gene_embeddings <- readBulkformerGeneEmbeddings(store)
    }
    message("agreement: ", name, " done")
}
saveRDS(results, args[[2]])
