# The R package's side of the agreement suite, run once per test session by
# test_r_python_agreement.py in an Rscript subprocess (reticulate cannot share a
# process with rpy2). Reads a list of cases built by rpy2, runs each through the
# public R API exactly as a user would, and saves what the user gets back.
#
# Usage: Rscript r_side.R cases.rds results.rds
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 2L)

# R links its own (reference) BLAS into the global symbol scope, and torch's
# libtorch_cpu.so exports MKL's sgemm_ & co. with default visibility, so inside an R
# process torch's matrix products bind to R's BLAS: ~15x slower and ~1e-6 different
# from the same Python code run by python. Importing torch with RTLD_DEEPBIND makes
# it use its own MKL. The R package does not do this yet (test_torch_blas_in_r.py
# shows it); until it does, this suite applies it so that it compares the code paths,
# not two BLAS libraries.
if (!identical(Sys.getenv("AGREEMENT_NO_DEEPBIND"), "true")) {
    reticulate::py_run_string(paste(
        "import os, sys", "flags = sys.getdlopenflags()",
        "sys.setdlopenflags(flags | os.RTLD_DEEPBIND)", "import torch", "sys.setdlopenflags(flags)", sep = "\n"))
}
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
        embed_report <- S4Vectors::metadata(embedded)$bulkformer_embedding$mapping_report
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
