# Builders and checks evaluated by rpy2 inside the pytest process. Only
# Bioconductor containers are used here, never the bulkformer R package (it loads
# reticulate, which cannot share a process with rpy2).
suppressPackageStartupMessages({
    library(SummarizedExperiment)
    library(DESeq2)
})

agreement_counts <- function(values, genes, samples) {
    matrix(as.numeric(values), nrow = length(genes), dimnames = list(genes, samples))
}

agreement_coldata <- function(samples, condition, age) {
    S4Vectors::DataFrame(condition = factor(condition), age = as.numeric(age), row.names = samples)
}

agreement_se <- function(counts, col_data) {
    row_data <- S4Vectors::DataFrame(source = rep("agreement-suite", nrow(counts)), row.names = rownames(counts))
    SummarizedExperiment(assays = list(counts = counts), colData = col_data, rowData = row_data)
}

agreement_dds_from_matrix <- function(counts, col_data) {
    storage.mode(counts) <- "integer"
    suppressMessages(DESeqDataSetFromMatrix(countData = counts, colData = col_data, design = ~ condition))
}

agreement_example_dds <- function(genes, n_samples, seed) {
    set.seed(seed)
    dds <- makeExampleDESeqDataSet(n = length(genes), m = n_samples)
    rownames(dds) <- genes
    dds
}

# tximport(type = "salmon")-shaped: counts, abundance (TPM) and avgTxLength assays.
agreement_tximport_se <- function(counts, lengths, col_data) {
    abundance <- counts / lengths
    abundance <- t(t(abundance) / colSums(abundance)) * 1e6
    SummarizedExperiment(assays = list(counts = counts, abundance = abundance, avgTxLength = lengths),
                         colData = col_data, metadata = list(countsFromAbundance = "no"))
}

agreement_assay <- function(se, name) assay(se, name, withDimnames = TRUE)

agreement_rowdata <- function(se) as.data.frame(rowData(se))

agreement_sample_names <- function(x) if (is(x, "SummarizedExperiment")) colnames(x) else rownames(x)

# What a user's object must keep through bulkformerImpute / bulkformerEmbed; returns
# the problems found (an empty character vector when everything is preserved).
agreement_preserved <- function(input, imputed, embedded) {
    problems <- character()
    input_coldata <- if (is(input, "SummarizedExperiment")) colData(input) else S4Vectors::DataFrame(row.names = colnames(input))
    if (!identical(as.data.frame(colData(imputed)), as.data.frame(input_coldata)))
        problems <- c(problems, "bulkformerImpute() did not carry colData over")
    if (!identical(colnames(imputed), colnames(input)))
        problems <- c(problems, "bulkformerImpute() changed the sample order")
    if (is(input, "SummarizedExperiment")) {
        if (!identical(class(embedded), class(input)))
            problems <- c(problems, paste("bulkformerEmbed() returned", class(embedded)[1], "for", class(input)[1]))
        if (!identical(dimnames(embedded), dimnames(input)))
            problems <- c(problems, "bulkformerEmbed() changed gene or sample names/order")
        if (!identical(as.list(assays(embedded)), as.list(assays(input))))
            problems <- c(problems, "bulkformerEmbed() changed the assays")
        if (!identical(rowData(embedded), rowData(input)))
            problems <- c(problems, "bulkformerEmbed() changed rowData")
        kept <- colData(embedded)[, colnames(colData(input)), drop = FALSE]
        if (!identical(kept, colData(input)))
            problems <- c(problems, "bulkformerEmbed() changed the existing colData columns")
        if (!identical(setdiff(colnames(colData(embedded)), colnames(colData(input))), "bulkformer"))
            problems <- c(problems, "bulkformerEmbed() did not add exactly the 'bulkformer' colData column")
        # compared as text: a formula read back by readRDS has a new environment
        if (is(input, "DESeqDataSet") && !identical(deparse(design(embedded)), deparse(design(input))))
            problems <- c(problems, "bulkformerEmbed() changed the DESeq2 design")
    } else if (!identical(rownames(embedded), colnames(input))) {
        problems <- c(problems, "bulkformerEmbed() on a matrix changed the sample order")
    }
    problems
}
