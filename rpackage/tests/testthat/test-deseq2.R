test_that("a DESeqDataSet with real Ensembl IDs goes through impute and embed on its raw counts", {
    skip_if_not_installed("DESeq2")
    model <- tiny_model()
    vocabulary <- bulkformerVocabulary(model)$ensembl_id
    set.seed(3)
    dds <- DESeq2::makeExampleDESeqDataSet(n = 250, m = 6)
    rownames(dds) <- vocabulary[1:250]
    # size factors must not change what BulkFormer sees: it reads the raw counts
    dds <- DESeq2::estimateSizeFactors(dds)

    out <- bulkformerImpute(dds, model, progress = FALSE)
    expect_s4_class(out, "SummarizedExperiment")
    expect_identical(dim(out), c(300L, 6L))
    expect_identical(out$condition, dds$condition)
    expect_identical(sum(SummarizedExperiment::rowData(out)$measured), 250L)
    on_counts <- bulkformerImpute(DESeq2::counts(dds, normalized = FALSE), model, progress = FALSE)
    expect_identical(SummarizedExperiment::assay(out, "imputed"), SummarizedExperiment::assay(on_counts, "imputed"))

    embedded <- bulkformerEmbed(dds, model, progress = FALSE)
    expect_s4_class(embedded, "DESeqDataSet")
    embedding <- bulkformerEmbedding(embedded)
    expect_identical(dim(embedding), c(6L, 19L))
    from_matrix <- bulkformerEmbed(DESeq2::counts(dds), model, progress = FALSE)
    attr(from_matrix, "mapping_report") <- attr(from_matrix, "model") <- NULL
    attr(from_matrix, "aggregate") <- NULL
    expect_identical(embedding, from_matrix)
})
