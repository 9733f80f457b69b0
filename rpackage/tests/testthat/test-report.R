# The mapping report in R: print/summary, one message per call, and a
# warning when many genes fall back to the default length.

test_that("the mapping report prints, summarises and is found on results", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    imputed <- suppressMessages(bulkformerImpute(counts, model,
        progress = FALSE))
    report <- bulkformerMappingReport(imputed)
    expect_s3_class(report, "bulkformer_mapping_report")
    expect_output(print(report), "<bulkformer mapping report: counts, 2")
    expect_output(print(report), "matched: +200 -> 200 of 300 vocabulary")
    expect_output(print(report), "imputed: +100 vocabulary genes")
    summary <- summary(report)
    expect_s3_class(summary, "data.frame")
    expect_identical(summary["matched", "count"], 200)
    expect_identical(summary["vocabulary_imputed", "count"], 100)
    expect_equal(summary["vocabulary_imputed", "share"], 1 / 3,
        tolerance = 1e-3)
    embedded <- suppressMessages(bulkformerEmbed(
        SummarizedExperiment::SummarizedExperiment(list(counts = counts)),
        model, progress = FALSE))
    expect_s3_class(bulkformerMappingReport(embedded),
        "bulkformer_mapping_report")
    matrix <- suppressMessages(bulkformerEmbed(counts, model,
        progress = FALSE))
    expect_identical(bulkformerMappingReport(matrix)$n_matched, 200L)
    expect_error(bulkformerMappingReport(counts), "no mapping report")
})

test_that("impute and embed say in one message what was matched", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    messages <- character()
    withCallingHandlers(
        bulkformerImpute(counts, model, progress = FALSE),
        message = function(m) {
            messages <<- c(messages, conditionMessage(m))
            invokeRestart("muffleMessage")
        })
    expect_identical(messages, paste0("bulkformer: 200 of 200 genes ",
        "matched 200 of 300 vocabulary genes (100 imputed)\n"))
    expect_message(bulkformerEmbed(counts, model, progress = FALSE),
        "200 of 200 genes matched", class = "bulkformer_mapping_message")
    expect_silent(suppressMessages(bulkformerImpute(counts, model,
        progress = FALSE)))
})

test_that("many genes without a known length are warned about", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    # 20 rows no table knows: 20 of 220 input genes (9%) get 1,000 bp
    unknown <- counts[1:20, ]
    rownames(unknown) <- sprintf("ENSG9%010d", 1:20)
    with.unknown <- rbind(counts, unknown)
    expect_warning(
        expect_message(bulkformerImpute(with.unknown, model,
            progress = FALSE), "20 genes without a known length"),
        paste0("20 of 220 input genes \\(9.1%\\) have no known length .* ",
            "avgTxLength .* lengths = "),
        class = "bulkformer_length_warning")
    # 5 of 205 (2.4%): said in the message, not warned
    expect_no_warning(suppressMessages(bulkformerImpute(
        rbind(counts, unknown[1:5, ]), model, progress = FALSE)))
    # given lengths, nothing falls back
    lengths <- stats::setNames(rep(1500, nrow(with.unknown)),
        rownames(with.unknown))
    expect_no_warning(suppressMessages(bulkformerImpute(with.unknown, model,
        lengths = lengths, progress = FALSE)))
})
