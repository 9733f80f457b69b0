# log1p TPM as REFERENCE.md defines it, written out here as an independent check.
reference_logtpm <- function(counts, lengths_bp) {
    lengths_bp[is.na(lengths_bp)] <- 1000
    rate <- counts / (lengths_bp / 1000)
    log1p(sweep(rate, 2, colSums(rate), "/") * 1e6)
}

test_that("bulkformerImpute on a SummarizedExperiment matches the Python API on the fixture bundle", {
    model <- load_bulkformer_model(fixture_bundle())
    counts <- example_counts(model, n_measured = 250, n_samples = 3)
    se <- SummarizedExperiment::SummarizedExperiment(
        list(counts = counts),
        colData = S4Vectors::DataFrame(condition = c("a", "b", "a"), row.names = colnames(counts)))
    # the fixture's synthetic genes have no known length: said once
    expect_warning(out <- bulkformerImpute(se, model, predicted = TRUE, progress = FALSE),
                   "have no known length and count as 1,000 bp")
    expected <- python_imputation(counts, model)

    vocabulary <- bulkformerVocabulary(model)
    expect_s4_class(out, "SummarizedExperiment")
    expect_identical(rownames(out), vocabulary$ensembl_id)
    expect_identical(colnames(out), colnames(counts))
    expect_identical(SummarizedExperiment::assayNames(out), c("logtpm", "imputed", "predicted"))
    expect_identical(rownames(expected$imputed), rownames(out))
    expect_identical(is.na(SummarizedExperiment::assay(out, "logtpm")), is.na(expected$observed))
    expect_lte(max_abs_diff(SummarizedExperiment::assay(out, "logtpm"), expected$observed), 1e-6)
    expect_lte(max_abs_diff(SummarizedExperiment::assay(out, "imputed"), expected$imputed), 1e-6)
    expect_lte(max_abs_diff(SummarizedExperiment::assay(out, "predicted"), expected$predicted), 1e-6)
    expect_identical(SummarizedExperiment::rowData(out)$measured, expected$measured)
    expect_identical(unclass(S4Vectors::metadata(out)$mapping_report), expected$report)
})

test_that("observed values are log1p TPM of the counts and imputation fills exactly the missing genes", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 240)
    out <- bulkformerImpute(counts, model, progress = FALSE)
    vocabulary <- bulkformerVocabulary(model)
    measured <- vocabulary$ensembl_id %in% rownames(counts)
    logtpm <- SummarizedExperiment::assay(out, "logtpm")
    imputed <- SummarizedExperiment::assay(out, "imputed")

    expect_identical(SummarizedExperiment::rowData(out)$measured, measured)
    expect_identical(SummarizedExperiment::rowData(out)$symbol, vocabulary$symbol)
    expect_identical(SummarizedExperiment::rowData(out)$input_id, ifelse(measured, vocabulary$ensembl_id, NA_character_))
    expected <- reference_logtpm(counts, vocabulary[rownames(counts), "length"])
    expect_equal(logtpm[rownames(counts), ], expected, tolerance = 1e-6)
    expect_true(all(is.na(logtpm[!measured, ])))
    expect_identical(imputed[measured, ], logtpm[measured, ])
    expect_false(anyNA(imputed))
    # predictions for the 60 missing genes are finite, differ between samples and are not the mask value
    expect_true(all(is.finite(imputed[!measured, ])))
    expect_gt(max(apply(imputed[!measured, ], 1, sd)), 0)
    expect_true(all(imputed[!measured, ] != -10))
    report <- S4Vectors::metadata(out)$mapping_report
    expect_equal(report$n_matched, 240)
    expect_equal(report$n_vocabulary, 300)
    expect_equal(report$n_missing, 60)
    expect_equal(report$mask_prob, 60 / 300, tolerance = 1e-6)
})

test_that("matrix, data.frame and SummarizedExperiment inputs give identical results", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 3)
    from_matrix <- bulkformerImpute(counts, model, progress = FALSE)
    from_frame <- bulkformerImpute(as.data.frame(counts), model, progress = FALSE)
    from_se <- bulkformerImpute(SummarizedExperiment::SummarizedExperiment(list(raw = counts)), model,
                                assay.type = "raw", progress = FALSE)
    from_sparse <- bulkformerImpute(Matrix::Matrix(counts, sparse = TRUE), model, progress = FALSE)
    for (other in list(from_frame, from_se, from_sparse)) {
        expect_identical(SummarizedExperiment::assay(other, "imputed"),
                         SummarizedExperiment::assay(from_matrix, "imputed"))
    }
    # a model given as a bundle path is loaded on the fly
    path <- file.path(tempdir(), "tiny-bundle")
    expect_identical(SummarizedExperiment::assay(bulkformerImpute(counts, path, progress = FALSE), "imputed"),
                     SummarizedExperiment::assay(from_matrix, "imputed"))
})

test_that("log TPM and TPM inputs reproduce the observed values of a counts run", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    out <- bulkformerImpute(counts, model, progress = FALSE)
    logtpm <- SummarizedExperiment::assay(out, "logtpm")[rownames(counts), ]
    again <- bulkformerImpute(logtpm, model, input = "logtpm", progress = FALSE)
    expect_lte(max_abs_diff(SummarizedExperiment::assay(again, "imputed"),
                            SummarizedExperiment::assay(out, "imputed")), 1e-5)
    from_tpm <- bulkformerImpute(expm1(logtpm), model, input = "tpm", progress = FALSE)
    expect_lte(max_abs_diff(SummarizedExperiment::assay(from_tpm, "logtpm"),
                            SummarizedExperiment::assay(out, "logtpm")), 1e-5)
})

test_that("an avgTxLength assay gives the per-sample lengths", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 3)
    set.seed(2)
    lengths <- matrix(runif(length(counts), 500, 5000), nrow(counts), dimnames = dimnames(counts))
    se <- SummarizedExperiment::SummarizedExperiment(list(counts = counts, avgTxLength = lengths))
    out <- bulkformerImpute(se, model, progress = FALSE)
    observed <- SummarizedExperiment::assay(out, "logtpm")[rownames(counts), ]
    expect_equal(observed, reference_logtpm(counts, lengths), tolerance = 1e-6)
    explicit <- bulkformerImpute(counts, model, lengths = lengths, progress = FALSE)
    expect_identical(SummarizedExperiment::assay(out, "imputed"), SummarizedExperiment::assay(explicit, "imputed"))
    ignored <- bulkformerImpute(se, model, length.assay = NA, progress = FALSE)
    expect_gt(max_abs_diff(SummarizedExperiment::assay(ignored, "logtpm"),
                           SummarizedExperiment::assay(out, "logtpm")), 0.01)
    # a named vector of gene lengths
    per_gene <- stats::setNames(rep(2000, nrow(counts)), rownames(counts))
    flat <- bulkformerImpute(counts, model, lengths = per_gene, progress = FALSE)
    expect_equal(SummarizedExperiment::assay(flat, "logtpm")[rownames(counts), ],
                 reference_logtpm(counts, per_gene), tolerance = 1e-6)
})

test_that("bad input is refused with a message that names the problem", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 50, n_samples = 2)
    expect_error(bulkformerImpute(unname(counts), model), "rownames")
    expect_error(bulkformerImpute(SummarizedExperiment::SummarizedExperiment(list(counts = counts)), model,
                                  assay.type = "tpm"), "no assay 'tpm'")
    expect_error(bulkformerImpute(counts, model, lengths = matrix(1, 2, 2)), "same genes x samples")
    expect_error(bulkformerImpute(counts, model = 42), "load_bulkformer_model")
    expect_error(bulkformerImpute(list(1, 2), model), "must be numeric")
    # nothing matches the vocabulary: the Python error reaches R as a condition
    alien <- counts
    rownames(alien) <- paste0("NOT_A_GENE_", seq_len(nrow(alien)))
    err <- expect_error(bulkformerImpute(alien, model, progress = FALSE), class = "bulkformer_python_error")
    expect_match(conditionMessage(err), "^too few vocabulary genes matched")
    expect_true(err$python_type %in% c("ValueError", "GeneMatchError"))
})

test_that("versioned Ensembl IDs and symbols in rownames reach Python unchanged", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    vocabulary <- bulkformerVocabulary(model)
    plain <- bulkformerImpute(counts, model, predicted = TRUE, progress = FALSE)
    mixed <- counts
    rownames(mixed)[1:50] <- paste0(rownames(mixed)[1:50], ".", 1:50)
    with_symbol <- which(!is.na(vocabulary[rownames(counts), "symbol"]))[51:60]
    rownames(mixed)[with_symbol] <- vocabulary[rownames(counts)[with_symbol], "symbol"]
    out <- bulkformerImpute(mixed, model, progress = FALSE)
    expect_identical(SummarizedExperiment::rowData(out)$measured, SummarizedExperiment::rowData(plain)$measured)
    expect_lte(max_abs_diff(SummarizedExperiment::assay(out, "imputed"), SummarizedExperiment::assay(plain, "imputed")), 1e-6)
    report <- S4Vectors::metadata(out)$mapping_report
    expect_equal(report$n_matched, 200)
    expect_equal(report$id_types$ensembl_versioned, 50)
    # missing genes take the model's prediction
    missing <- !SummarizedExperiment::rowData(plain)$measured
    expect_identical(SummarizedExperiment::assay(plain, "imputed")[missing, ],
                     SummarizedExperiment::assay(plain, "predicted")[missing, ])
})

test_that("Python warnings about implausible input arrive as R warnings", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    logged <- log1p(counts / 7)
    expect_warning(bulkformerImpute(logged, model, input = "counts", progress = FALSE),
                   "log-transformed", class = "bulkformer_python_warning")
    expect_no_warning(bulkformerImpute(counts, model, progress = FALSE))
})

test_that("empty inputs are refused as empty, before any other check", {
    counts <- matrix(1, 3, 2, dimnames = list(c("g1", "g2", "g3"), c("a", "b")))
    se <- function(m) SummarizedExperiment::SummarizedExperiment(list(counts = m))
    # model = NULL: nothing may look at the model (or start Python) before this check
    expect_error(bulkformerImpute(counts[0, ], model = NULL), "^x has no genes \\(0 rows\\)$")
    expect_error(bulkformerImpute(se(counts[0, ]), model = NULL), "^x has no genes \\(0 rows\\)$")
    expect_error(bulkformerImpute(as.data.frame(counts)[0, ], model = NULL), "^x has no genes \\(0 rows\\)$")
    expect_error(bulkformerImpute(counts[, 0], model = NULL), "^x has no samples \\(0 columns\\)$")
    expect_error(bulkformerEmbed(se(counts[, 0]), model = NULL), "^x has no samples \\(0 columns\\)$")
    expect_error(bulkformerEmbed(counts[0, ], model = NULL), "^x has no genes \\(0 rows\\)$")
})

test_that("a data.frame with a non-numeric column gets a plain error, not S4 dispatch text", {
    frame <- data.frame(a = 1:2, b = 3:4, sym = c("x", "y"), row.names = c("g1", "g2"))
    for (f in list(bulkformerImpute, bulkformerEmbed)) {
        err <- expect_error(f(frame, model = NULL), "^x has non-numeric columns \\(sym\\)")
        expect_no_match(conditionMessage(err), "selecting a method")
    }
    err <- expect_error(bulkformerImpute(list(1, 2), model = NULL), "must be numeric")
    expect_no_match(conditionMessage(err), "selecting a method")
})

test_that("unnamed assays are chosen by position, and the error says how", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    unnamed <- SummarizedExperiment::SummarizedExperiment(list(counts))
    err <- expect_error(bulkformerImpute(unnamed, model), "assays of x have no names")
    expect_match(conditionMessage(err), "assay.type = 1", fixed = TRUE)
    expect_match(conditionMessage(err), "assayNames(x) <-", fixed = TRUE)
    expect_error(bulkformerEmbed(unnamed, model), "assays of x have no names")
    expect_error(bulkformerImpute(unnamed, model, assay.type = 2), "position between 1 and 1")
    by_position <- bulkformerImpute(unnamed, model, assay.type = 1, progress = FALSE)
    expect_identical(SummarizedExperiment::assay(by_position, "imputed"),
                     SummarizedExperiment::assay(bulkformerImpute(counts, model, progress = FALSE), "imputed"))
    embedded <- bulkformerEmbed(unnamed, model, assay.type = 1, progress = FALSE)
    expect_identical(dim(bulkformerEmbedding(embedded)), c(2L, 19L))
})

test_that("the layout is fixed in R: Python's orientation arguments are refused", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 3)
    for (argument in c("orientation", "gene_names", "samples")) {
        args <- stats::setNames(list(model, "samples_by_genes"), c("model", argument))
        expect_error(do.call(bulkformerImpute, c(list(counts), args)),
                     paste0("^'", argument, "' cannot be given in R: genes are the rows"))
        expect_error(do.call(bulkformerEmbed, c(list(counts), args)), "transpose .* with t\\(x\\)")
    }
    # the engine's advice on the layout is told in R terms where its error
    # names the argument (test-conditions.R); the message keeps its substance
    err <- expect_error(bulkformerImpute(t(counts), model, progress = FALSE), class = "bulkformer_python_error")
    expect_match(conditionMessage(err), "genes are on the other axis")
    err <- expect_error(bulkformerImpute(counts, model, aggregte = "max", progress = FALSE),
                        class = "bulkformer_argument_error")
    expect_identical(err$argument, "aggregte")
    expect_identical(conditionMessage(err),
                     "unknown argument 'aggregte'; see the function's help page for its arguments")
})

test_that("R arguments are checked in R; Python spellings of them and SummarizedExperiment-only ones are refused", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    se <- SummarizedExperiment::SummarizedExperiment(list(counts = counts))
    expect_error(bulkformerImpute(se, model, batch_size = 4), "^'batch_size' cannot be given in R: use batch.size")
    expect_error(bulkformerImpute(se, model, layer = "counts"), "with assay.type = ")
    expect_error(bulkformerImpute(se, model, which = "all"), "use predicted = TRUE")
    expect_error(bulkformerEmbed(counts, model, gene.column = "gene_id"),
                 "^gene.column applies to SummarizedExperiment input only")
    expect_error(bulkformerImpute(counts, model, assay.type = "counts"), "^assay.type applies to SummarizedExperiment")
    for (bad in list("a", 2.5, 0, NA, c(1, 2))) {
        expect_error(bulkformerImpute(se, model, batch.size = bad), "^batch.size must be a whole number >= 1$")
    }
    expect_error(bulkformerImpute(se, model, progress = "yes"), "^progress must be TRUE or FALSE$")
    expect_error(bulkformerImpute(counts, model, predicted = NA), "^predicted must be TRUE or FALSE$")
    expect_error(bulkformerEmbed(se, model, device = NA), "^device must be NULL")
    expect_identical(SummarizedExperiment::assay(bulkformerImpute(se, model, batch.size = 1, progress = FALSE), "imputed"),
                     SummarizedExperiment::assay(bulkformerImpute(se, model, progress = FALSE), "imputed"))
})

test_that("samples without names are sample1, sample2, ... for a matrix and a SummarizedExperiment", {
    model <- tiny_model()
    counts <- unname(example_counts(model, n_measured = 200, n_samples = 3))
    rownames(counts) <- bulkformerVocabulary(model)$ensembl_id[1:200]
    expected <- paste0("sample", 1:3)
    expect_identical(colnames(bulkformerImpute(counts, model, progress = FALSE)), expected)
    expect_identical(colnames(bulkformerImpute(SummarizedExperiment::SummarizedExperiment(list(counts = counts)),
                                               model, progress = FALSE)), expected)
    expect_identical(rownames(bulkformerEmbed(counts, model, progress = FALSE)), expected)
})

test_that("outputs record the model, and the input's metadata is kept", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    described <- list(name = "tiny-v2", version = "v2", n_genes = 300L, dim = 16L, trained = FALSE)
    se <- SummarizedExperiment::SummarizedExperiment(list(counts = counts), metadata = list(study = "GSE1"))
    out <- bulkformerImpute(se, model, progress = FALSE)
    expect_identical(S4Vectors::metadata(out)$bulkformer_model, described)
    expect_identical(S4Vectors::metadata(out)$study, "GSE1")
    expect_equal(S4Vectors::metadata(out)$mapping_report$n_matched, 200)
    expect_identical(S4Vectors::metadata(bulkformerImpute(counts, model, progress = FALSE))$bulkformer_model,
                     described)
    expect_identical(attr(bulkformerEmbed(counts, model, progress = FALSE), "model"), described)
    embedded <- bulkformerEmbed(se, model, progress = FALSE)
    expect_identical(S4Vectors::metadata(embedded)$bulkformer_embedding$bulkformer$model, described)
    expect_identical(S4Vectors::metadata(embedded)$study, "GSE1")
    expect_null(attr(bulkformerEmbedding(embedded), "model"))
})

test_that("gene.column takes the gene IDs from a rowData column (rownames that are not IDs)", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 240, n_samples = 3)
    ids <- rownames(counts)
    labelled <- counts
    rownames(labelled) <- paste0("feature", seq_len(nrow(counts)))  # e.g. row numbers of a count table
    se <- SummarizedExperiment::SummarizedExperiment(
        list(counts = labelled), rowData = S4Vectors::DataFrame(gene_id = ids, biotype = "protein_coding"))
    by_rownames <- bulkformerImpute(SummarizedExperiment::SummarizedExperiment(list(counts = counts)), model,
                                    progress = FALSE)
    by_column <- bulkformerImpute(se, model, gene.column = "gene_id", progress = FALSE)
    expect_identical(SummarizedExperiment::assay(by_column, "imputed"),
                     SummarizedExperiment::assay(by_rownames, "imputed"))
    expect_identical(S4Vectors::metadata(by_column)$mapping_report$n_matched, 240L)
    embedded <- bulkformerEmbed(se, model, gene.column = "gene_id", progress = FALSE)
    expected <- bulkformerEmbed(counts, model, progress = FALSE)[colnames(counts), , drop = FALSE]  # no attributes
    expect_identical(unname(as.matrix(SummarizedExperiment::colData(embedded)$bulkformer)), unname(expected))

    # the rownames match nothing: the error names the rowData column that does, in R's terms
    expect_error(bulkformerImpute(se, model, progress = FALSE),
                 "column 'gene_id' matches 240 vocabulary genes", class = "bulkformer_python_error")
    expect_error(bulkformerEmbed(se, model, progress = FALSE), "column 'gene_id' matches 240 vocabulary genes")
    expect_error(bulkformerImpute(se, model, gene.column = "ensembl", progress = FALSE),
                 "'ensembl' is not a column of rowData\\(x\\) \\(its columns: c\\(\"gene_id\", \"biotype\"\\)\\)")
    gapped <- se
    SummarizedExperiment::rowData(gapped)$gene_id[5] <- NA
    err <- expect_error(bulkformerImpute(gapped, model, gene.column = "gene_id", progress = FALSE),
                        "'gene_id' of .* has 1 empty or missing gene IDs \\(e.g. row 5, .* 'feature5'\\)",
                        class = "bulkformer_gene_column_error")
    expect_identical(err[c("argument", "value")], list(argument = "gene.column", value = "gene_id"))
    SummarizedExperiment::rowData(se)$length <- 1000
    expect_error(bulkformerImpute(se, model, gene.column = "length", progress = FALSE),
                 "'length' of .* holds float64 values, not gene IDs", class = "bulkformer_gene_column_error")
    SummarizedExperiment::rowData(se)$transcripts <- S4Vectors::Rle("tx")
    expect_error(bulkformerImpute(se, model, gene.column = "transcripts", progress = FALSE),
                 "rowData column 'transcripts' holds Rle values, not gene IDs")
    # other columns that cannot go to Python (an Rle) are left behind, not an error
    by_column <- bulkformerImpute(se, model, gene.column = "gene_id", progress = FALSE)
    expect_identical(SummarizedExperiment::assay(by_column, "imputed"),
                     SummarizedExperiment::assay(by_rownames, "imputed"))

    # symbol rownames matched well enough, so the better IDs beside them went unused without a word
    symbols <- bulkformerVocabulary(model)[ids, "symbol"]
    named <- !is.na(symbols) & !duplicated(symbols)
    by_symbol <- SummarizedExperiment::SummarizedExperiment(
        list(counts = counts[named, ]), rowData = S4Vectors::DataFrame(gene_id = ids[named], gc = 0.4))
    rownames(by_symbol) <- symbols[named]
    expect_warning(bulkformerImpute(by_symbol, model, progress = FALSE),
                   paste0("names are gene symbols \\(", sum(named), " matched as symbols or aliases\\), but its ",
                          ".* column 'gene_id' holds Ensembl IDs"),
                   class = "bulkformer_python_warning")
    by_id <- bulkformerImpute(by_symbol, model, gene.column = "gene_id", progress = FALSE)
    expect_no_warning(bulkformerImpute(by_symbol, model, gene.column = "gene_id", progress = FALSE))
    # results join back to the input's rows: by the IDs read, versions and all
    versioned <- by_symbol
    SummarizedExperiment::rowData(versioned)$gene_id <- paste0(ids[named], ".7")
    joined <- SummarizedExperiment::rowData(bulkformerImpute(versioned, model, gene.column = "gene_id",
                                                             progress = FALSE))$input_id
    expect_identical(joined[!is.na(joined)], paste0(ids[named], ".7")[match(rownames(by_id)[!is.na(joined)], ids[named])])
    # repeated rownames: the engine sums and reports them; anndata's own warning (a Python method) is not relayed
    repeated <- by_symbol[c(seq_len(nrow(by_symbol)), 1:3), ]
    warnings <- character()
    withCallingHandlers(bulkformerImpute(repeated, model, gene.column = "gene_id", progress = FALSE),
                        warning = function(w) { warnings <<- c(warnings, conditionMessage(w)); invokeRestart("muffleWarning") })
    expect_false(any(grepl("names are not unique", warnings)))
    expect_true(any(grepl("merged into vocabulary genes", warnings)))
    expect_error(bulkformerImpute(by_symbol, model, gene.column = "nope", progress = FALSE),
                 "its columns: c\\(\"gene_id\", \"gc\"\\)")  # every rowData column, numbers too
})
