# tximport results (issue 31): raw counts go with their average transcript
# lengths; counts made from abundances are not divided by length a second time.

fake_tximport <- function(model, how, n_genes = 200, n_samples = 3) {
    genes <- bulkformerVocabulary(model)$ensembl_id[seq_len(n_genes)]
    set.seed(7)
    length <- matrix(runif(n_genes * n_samples, 500, 5000), n_genes,
        dimnames = list(genes, paste0("S", seq_len(n_samples))))
    raw <- matrix(rpois(n_genes * n_samples, 80), n_genes, dimnames = dimnames(length))
    rate <- raw / length
    abundance <- t(t(rate) / colSums(rate)) * 1e6
    # what tximport makes of them for each countsFromAbundance setting
    counts <- switch(how,
        no = raw,
        scaledTPM = t(t(abundance) / 1e6 * colSums(raw)),
        lengthScaledTPM = {
            scaled <- abundance * rowMeans(length)
            t(t(scaled) / colSums(scaled) * colSums(raw))
        })
    list(abundance = abundance, counts = counts, length = length,
        countsFromAbundance = how)
}

test_that("a tximport list of raw counts is read with its average transcript lengths", {
    model <- tiny_model()
    txi <- fake_tximport(model, "no")
    embedded <- suppressMessages(bulkformerEmbed(txi, model, progress = FALSE))
    direct <- suppressMessages(bulkformerEmbed(txi$counts, model, lengths = txi$length,
        progress = FALSE))
    expect_identical(embedded, direct)
})

test_that("tximport counts made from abundances are read as the abundances (TPM)", {
    model <- tiny_model()
    for (how in c("scaledTPM", "lengthScaledTPM")) {
        txi <- fake_tximport(model, how)
        said <- capture_messages(out <- bulkformerImpute(txi, model, progress = FALSE))
        expect_match(said, paste0("countsFromAbundance = \"", how, "\": using its abundances"),
            all = FALSE, fixed = TRUE)
        as_tpm <- suppressMessages(bulkformerImpute(txi$abundance, model, input = "tpm",
            progress = FALSE))
        expect_identical(SummarizedExperiment::assay(out, "logtpm"),
            SummarizedExperiment::assay(as_tpm, "logtpm"))
        # read as raw counts they would be off: the check can fail
        as_counts <- suppressWarnings(suppressMessages(bulkformerImpute(txi$counts, model,
            progress = FALSE)))
        measured <- !is.na(SummarizedExperiment::assay(as_tpm, "logtpm"))
        off <- abs(SummarizedExperiment::assay(as_counts, "logtpm") -
            SummarizedExperiment::assay(as_tpm, "logtpm"))[measured]
        expect_gt(max(off), 0.1)
    }
})

test_that("a tximport list refuses input and lengths, and other lists say what to pass", {
    model <- tiny_model()
    txi <- fake_tximport(model, "no")
    expect_error(bulkformerEmbed(txi, model, input = "tpm"),
        "x is a tximport result, which sets input itself")
    expect_error(bulkformerImpute(list(a = 1), model), "pass a genes x samples matrix")
})

test_that("a SummarizedExperiment of counts made from abundances (tximeta) is refused as counts", {
    model <- tiny_model()
    txi <- fake_tximport(model, "lengthScaledTPM")
    se <- SummarizedExperiment::SummarizedExperiment(
        list(counts = txi$counts, abundance = txi$abundance),
        metadata = list(countsFromAbundance = "lengthScaledTPM"))
    expect_error(bulkformerEmbed(se, model),
        "countsFromAbundance = \"lengthScaledTPM\".*use assay.type = \"abundance\", input = \"tpm\"")
    fixed <- suppressMessages(bulkformerEmbed(se, model, assay.type = "abundance",
        input = "tpm", progress = FALSE))
    expect_identical(dim(bulkformerEmbedding(fixed)), c(3L, ncol(bulkformerEmbedding(fixed))))
})
