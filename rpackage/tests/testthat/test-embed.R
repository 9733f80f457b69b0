test_that("sample embeddings of a SummarizedExperiment match the Python API and land in colData", {
    model <- load_bulkformer_model(fixture_bundle())
    counts <- example_counts(model, n_measured = 250, n_samples = 3)
    se <- SummarizedExperiment::SummarizedExperiment(
        list(counts = counts),
        colData = S4Vectors::DataFrame(condition = c("a", "b", "a"), row.names = colnames(counts)))
    # the fixture's synthetic genes have no known length: said once per call
    no_length <- "have no known length and count as 1,000 bp"
    for (aggregate in c("max", "mean")) {
        expect_warning(embedded <- bulkformerEmbed(se, model, aggregate = aggregate, progress = FALSE), no_length)
        expected <- python_sample_embedding(counts, model, aggregate = aggregate)
        embedding <- bulkformerEmbedding(embedded)
        expect_identical(dim(embedding), c(3L, 35L))  # feature_dim = dim + 3 for v2
        expect_identical(rownames(embedding), colnames(se))
        expect_lte(max_abs_diff(embedding, expected[colnames(se), ]), 1e-6)
        expect_identical(embedded$condition, se$condition)
        expect_identical(SummarizedExperiment::assay(embedded), counts)
        expect_equal(S4Vectors::metadata(embedded)$bulkformer_embedding$bulkformer$mapping_report$n_matched, 250)
    }
    expect_warning(by_max <- bulkformerEmbed(se, model, aggregate = "max", progress = FALSE), no_length)
    expect_warning(by_mean <- bulkformerEmbed(se, model, aggregate = "mean", progress = FALSE), no_length)
    expect_gt(max_abs_diff(bulkformerEmbedding(by_max), bulkformerEmbedding(by_mean)), 1e-3)
})

test_that("embeddings never overwrite a colData column of the user's; each keeps its own record", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 4)
    se <- SummarizedExperiment::SummarizedExperiment(
        list(counts = counts),
        colData = S4Vectors::DataFrame(group = factor(c(1, 1, 2, 2)), row.names = colnames(counts)))
    expect_error(bulkformerEmbed(se, model, name = "group", progress = FALSE),
                 "already has a column 'group' that is not a bulkformer embedding")
    expect_error(bulkformerEmbed(se, model, name = NA_character_, progress = FALSE), "name must be one")
    # the engine checks level / out (its words until its errors carry fields)
    expect_error(bulkformerEmbed(se, model, out = tempfile(), progress = FALSE),
                 "^out= applies to level='gene'", class = "bulkformer_python_error")
    expect_error(bulkformerEmbed(se, model, level = "gene", progress = FALSE),
                 "^level='gene' writes an on-disk store", class = "bulkformer_python_error")
    expect_error(bulkformerEmbedding(counts), "reads the colData of a SummarizedExperiment, not a matrix")
    both <- bulkformerEmbed(se, model, aggregate = "max", name = "bf_max", progress = FALSE)
    both <- bulkformerEmbed(both, model, aggregate = "mean", name = "bf_mean", progress = FALSE)
    records <- S4Vectors::metadata(both)$bulkformer_embedding
    expect_identical(names(records), c("bf_max", "bf_mean"))
    expect_identical(c(records$bf_max$aggregate, records$bf_mean$aggregate), c("max", "mean"))
    expect_identical(both$group, se$group)
    # an earlier embedding may be replaced, and its record with it
    expect_error(bulkformerEmbedding(both), "no embedding 'bulkformer' in colData\\(x\\); its embeddings are: bf_max, bf_mean")
    again <- bulkformerEmbed(both, model, aggregate = "median", name = "bf_max", progress = FALSE)
    expect_identical(S4Vectors::metadata(again)$bulkformer_embedding$bf_max$aggregate, "median")
    expect_gt(max_abs_diff(bulkformerEmbedding(again, "bf_max"), bulkformerEmbedding(both, "bf_max")), 1e-4)
})

test_that("a matrix gives a samples x features matrix; gene subsets and names are honoured", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 3)
    embedding <- bulkformerEmbed(counts, model, aggregate = "mean", progress = FALSE)
    expect_true(is.matrix(embedding))
    expect_identical(rownames(embedding), colnames(counts))
    expect_equal(attr(embedding, "mapping_report")$n_matched, 200)
    se <- bulkformerEmbed(SummarizedExperiment::SummarizedExperiment(list(counts = counts)), model,
                          aggregate = "mean", name = "bf_mean", progress = FALSE)
    plain <- embedding
    attr(plain, "mapping_report") <- attr(plain, "model") <- NULL
    expect_identical(attr(plain, "aggregate"), "mean")  # the pooling used, recorded
    attr(plain, "aggregate") <- NULL
    expect_identical(bulkformerEmbedding(se, "bf_mean"), plain)
    subset <- bulkformerVocabulary(model)$ensembl_id[1:20]
    on_subset <- bulkformerEmbed(counts, model, aggregate = "mean", genes = subset, progress = FALSE)
    expect_identical(dim(on_subset), dim(embedding))
    expect_gt(max_abs_diff(on_subset, embedding), 1e-4)
    expect_error(bulkformerEmbedding(se), "its embeddings are: bf_mean \\(choose one with name = ...\\)")
    expect_error(bulkformerEmbedding(SummarizedExperiment::SummarizedExperiment(list(counts = counts))),
                 "run bulkformerEmbed\\(x, model\\) first")
})

test_that("gene-level embeddings are written to disk and read back", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    genes <- bulkformerVocabulary(model)$ensembl_id[c(5, 250, 17)]
    store <- file.path(tempdir(), "gene-embeddings")
    path <- bulkformerEmbed(counts, model, level = "gene", genes = genes, out = store, progress = FALSE)
    expect_true(file.exists(path))
    stored <- readBulkformerGeneEmbeddings(path)
    expect_identical(dim(stored)[1:2], c(2L, 3L))
    expect_identical(dimnames(stored)[[1]], colnames(counts))
    expect_identical(dimnames(stored)[[2]], genes)
    one <- readBulkformerGeneEmbeddings(path, samples = "S2", genes = genes[2])
    expect_equal(one[1, 1, ], stored["S2", genes[2], ])
    expect_error(bulkformerEmbed(counts, model, level = "gene", progress = FALSE), "out")
})

test_that("the default pooling is each layout's own: max for v2, the observed-gene mean for bulkformer-latest", {
    skip_if_no_bulkformer(TRUE)
    latest <- bulkformer_tiny_model(n_genes = 60, version = "latest")
    counts <- example_counts(latest, n_measured = 50, n_samples = 3)
    pooled <- bulkformerEmbed(counts, latest, progress = FALSE)
    expect_identical(attr(pooled, "aggregate"), "observed_mean")
    expect_identical(ncol(pooled), 16L)  # the tiny latest model's width: no appended summary features
    explicit <- bulkformerEmbed(counts, latest, aggregate = "observed_mean", progress = FALSE)
    expect_identical(unclass(pooled)[, ], unclass(explicit)[, ])
    expect_gt(max_abs_diff(pooled, bulkformerEmbed(counts, latest, aggregate = "max", progress = FALSE)), 1e-3)
    v2 <- bulkformerEmbed(example_counts(tiny_model(), n_measured = 250, n_samples = 3), tiny_model(),
                          progress = FALSE)
    expect_identical(attr(v2, "aggregate"), "max")
})
