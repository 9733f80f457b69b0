# Python errors and warnings as R conditions of the package's classes, read
# from the exception's fields (bulkformer.errors), never from its text.

# Raise `expression` (bulkformer.errors imported as errors) in a Python call.
raise_in_python <- function(expression) {
    reticulate::py_run_string(paste0(
        "import bulkformer.errors as errors\n",
        "def _bulkformer_raise():\n    raise ", expression), convert = FALSE)
    bulkformer:::.py_invoke(
        reticulate::py_eval("_bulkformer_raise", convert = FALSE))
}

test_that("an argument error carries R's argument name, the value and the fix", {
    skip_if_no_bulkformer(api = FALSE)
    err <- expect_error(bulkformer_tiny_model(n_genes = 1),
        class = "bulkformer_argument_error")
    expect_s3_class(err, "bulkformer_python_error")
    expect_identical(err$argument, "n_genes")
    expect_identical(err$value, 1L)
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    err <- expect_error(bulkformerEmbed(counts, model,
        genes = c("NOT_A_GENE", "ALSO_NOT"), progress = FALSE),
        class = "bulkformer_argument_error")
    expect_identical(err$argument, "genes")
    expect_identical(err$value, c("NOT_A_GENE", "ALSO_NOT"))
    expect_identical(err$fix, "give Ensembl IDs or symbols of genes it holds")
})

test_that("Python argument names become R's, and R's advice replaces Python's", {
    skip_if_no_bulkformer(api = FALSE)
    err <- expect_error(raise_in_python(paste0(
        "errors.ArgumentError('batch_size must be >= 1', argument='batch_size', ",
        "value=0, fix='use a positive batch_size')")),
        class = "bulkformer_argument_error")
    expect_identical(err$argument, "batch.size")
    expect_identical(err$value, 0L)
    # the layout is R's: a Python hint about orientation= becomes t(x)
    err <- expect_error(raise_in_python(paste0(
        "errors.GeneMatchError('genes are on the other axis', ",
        "argument='orientation', value='genes_by_samples', ",
        "fix=\"leave out orientation='genes_by_samples'\", joiner='. ')")),
        class = "bulkformer_gene_match_error")
    expect_s3_class(err, "bulkformer_input_error")
    expect_identical(err$argument, "x")
    expect_match(conditionMessage(err),
        "^genes are on the other axis\\. genes are the rows of x .* t\\(x\\)$")
    expect_no_match(conditionMessage(err), "orientation")
    # a suggested value in R syntax
    err <- expect_error(raise_in_python(paste0(
        "errors.GeneColumnError('the rownames match 3 genes', ",
        "argument='gene_names', suggestion={'gene_names': 'gene_id'}, ",
        "fix=\"pass gene_names='gene_id'\")")),
        class = "bulkformer_gene_column_error")
    expect_identical(conditionMessage(err),
        "the rownames match 3 genes: pass gene.column = \"gene_id\"")
    expect_identical(err$argument, "gene.column")
})

test_that("data errors and plain Python errors keep their message", {
    model <- tiny_model()
    counts <- example_counts(model, n_measured = 200, n_samples = 2)
    counts[1, 1] <- NA
    err <- expect_error(bulkformerImpute(counts, model, progress = FALSE),
        class = "bulkformer_input_error")
    expect_null(err$argument)
    expect_match(err$fix, "^Fill unmeasured values")
    expect_identical(err$python_type, "InputError")
    err <- expect_error(raise_in_python("ValueError('plain')"),
        class = "bulkformer_python_error")
    expect_identical(conditionMessage(err), "plain")
    expect_identical(err$python_type, "ValueError")
    expect_false(inherits(err, "bulkformer_argument_error"))
})

test_that("Python warnings with fields arrive with them", {
    skip_if_no_bulkformer(api = FALSE)
    warn <- reticulate::py_eval(paste0(
        "lambda: __import__('warnings').warn(__import__('bulkformer.errors', ",
        "fromlist=['x']).BulkformerWarning('few genes', argument='layer', ",
        "fix='check it'))"), convert = FALSE)
    w <- expect_warning(bulkformer:::.py_invoke(warn),
        class = "bulkformer_python_warning")
    expect_identical(w$argument, "assay.type")
    expect_identical(conditionMessage(w), "few genes: check it")
})
