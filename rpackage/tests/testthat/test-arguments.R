# R values reach Python through one conversion (.to_python).

test_that("NULL, whole doubles, factors, NA and named vectors convert", {
    skip_if_no_bulkformer(api = FALSE)
    builtins <- reticulate::import_builtins(convert = FALSE)
    type_of <- function(x) {
        reticulate::py_to_r(builtins$type(bulkformer:::.to_python(x))$`__name__`)
    }
    expect_identical(type_of(NULL), "NoneType")
    expect_identical(type_of(NA), "NoneType")
    expect_identical(type_of(300), "int")
    expect_identical(type_of(0.5), "float")
    expect_identical(type_of(factor("a")), "str")
    expect_identical(type_of(c(1, 2)), "list")
    expect_identical(type_of(c(a = 1000, b = 2000)), "Series")
    series <- bulkformer:::.to_python(c(a = 1000, b = 2000))
    expect_identical(unlist(reticulate::py_to_r(series$index$tolist())),
        c("a", "b"))
    # one gene is still a list where Python wants a list
    expect_identical(reticulate::py_to_r(builtins$type(
        bulkformer:::.to_python("GAPDH", as.list = TRUE))$`__name__`), "list")
})

test_that("bulkformer_tiny_model(n_genes = NULL) covers the whole vocabulary", {
    skip_if_no_bulkformer(api = FALSE)
    model <- bulkformer_tiny_model(n_genes = NULL)
    vocabulary <- reticulate::import("bulkformer.annotation")$default_vocabulary()
    expect_identical(nrow(bulkformerVocabulary(model)), nrow(vocabulary))
    expect_gt(nrow(bulkformerVocabulary(model)), 19000)
})

test_that("factors and doubles reach Python as text and integers", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    genes <- bulkformerVocabulary(model)$ensembl_id[1:3]
    by_text <- suppressMessages(bulkformerEmbed(counts, model,
        genes = genes, progress = FALSE))
    by_factor <- suppressMessages(bulkformerEmbed(counts, model,
        genes = factor(genes), progress = FALSE))
    expect_identical(unclass(by_factor)[, ], unclass(by_text)[, ])
    # a single gene as a factor, and batch.size as a double
    one <- suppressMessages(bulkformerEmbed(counts, model,
        genes = factor(genes[1]), batch.size = 1, progress = FALSE))
    expect_identical(dim(one), dim(by_text))
    # a named double vector of lengths is a gene -> bp table
    lengths <- stats::setNames(rep(2000, nrow(counts)), rownames(counts))
    imputed <- suppressMessages(bulkformerImpute(counts, model,
        lengths = lengths, progress = FALSE))
    expect_identical(bulkformerMappingReport(imputed)$length_sources$user,
        200L)
})
