# Python bulkformer is optional for users, so tests skip without it; the project's
# test driver (tests/rpackage/test_r_package.py) sets BULKFORMER_REQUIRE_PYTHON=true
# so that a missing Python fails instead of silently skipping everything.
# api = FALSE: only the Python package itself (bundles, tiny models) is needed.
skip_if_no_bulkformer <- function(api = TRUE) {
    available <- if (api) bulkformer_available() else reticulate::py_module_available("bulkformer")
    if (available) return(invisible(TRUE))
    if (identical(Sys.getenv("BULKFORMER_REQUIRE_PYTHON"), "true")) {
        stop("Python bulkformer is required (BULKFORMER_REQUIRE_PYTHON=true) but not available ",
             "from RETICULATE_PYTHON=", Sys.getenv("RETICULATE_PYTHON"))
    }
    skip("Python package bulkformer (with its inference API) is not available")
}

.test_cache <- new.env(parent = emptyenv())

# A 300-gene random-weight bundle over real Ensembl IDs, built once per test run.
tiny_model <- function(api = TRUE) {
    skip_if_no_bulkformer(api)
    if (is.null(.test_cache$tiny)) {
        .test_cache$tiny <- bulkformer_tiny_model(file.path(tempdir(), "tiny-bundle"), n_genes = 300)
    }
    .test_cache$tiny
}

# The engine-core reference fixture (v2_tiny) imported into a bundle by the pytest
# driver through bulkformer.convert.import_checkpoint.
fixture_bundle <- function() {
    skip_if_no_bulkformer()
    path <- Sys.getenv("BULKFORMER_TEST_BUNDLE")
    if (!nzchar(path)) {
        skip("BULKFORMER_TEST_BUNDLE (the v2_tiny fixture bundle, from ../shared) is not set")
    }
    if (!dir.exists(path)) {
        stop("BULKFORMER_TEST_BUNDLE=", path, " is not a directory")
    }
    path
}

# Poisson counts for the first n_measured genes of a model, genes x samples.
example_counts <- function(model, n_measured, n_samples = 4, seed = 1) {
    genes <- bulkformerVocabulary(model)$ensembl_id
    set.seed(seed)
    rates <- rgamma(n_measured, shape = 0.7, scale = 200)
    counts <- matrix(rpois(n_measured * n_samples, rep(rates, n_samples)), nrow = n_measured,
                     dimnames = list(genes[seq_len(n_measured)], paste0("S", seq_len(n_samples))))
    counts
}

# The Python API called on its own terms: a pandas DataFrame samples x genes.
python_imputation <- function(counts, model, ...) {
    pandas <- reticulate::import("pandas", convert = FALSE)
    inference <- reticulate::import("bulkformer.inference", convert = FALSE)
    frame <- pandas$DataFrame(reticulate::r_to_py(unname(t(counts))),
                              index = as.list(colnames(counts)), columns = as.list(rownames(counts)))
    result <- inference$run_imputation(frame, model, input = "counts", progress = FALSE, ...)
    genes_by_samples <- function(values) {
        values <- t(reticulate::py_to_r(values))
        values[is.nan(values)] <- NA_real_
        dimnames(values) <- list(unlist(reticulate::py_to_r(result$gene_ids)),
                                 unlist(reticulate::py_to_r(result$sample_ids)))
        values
    }
    list(observed = genes_by_samples(result$observed), imputed = genes_by_samples(result$imputed),
         predicted = genes_by_samples(result$predicted),
         measured = as.logical(reticulate::py_to_r(result$measured)),
         report = reticulate::py_to_r(result$report$to_dict()))
}

python_sample_embedding <- function(counts, model, ...) {
    pandas <- reticulate::import("pandas", convert = FALSE)
    bf <- reticulate::import("bulkformer", convert = FALSE)
    frame <- pandas$DataFrame(reticulate::r_to_py(unname(t(counts))),
                              index = as.list(colnames(counts)), columns = as.list(rownames(counts)))
    embedded <- bf$embed(frame, model, level = "sample", progress = FALSE, ...)
    values <- reticulate::py_to_r(embedded$to_numpy())
    rownames(values) <- unlist(reticulate::py_to_r(embedded$index$astype("str")$tolist()))
    values
}

max_abs_diff <- function(a, b) max(abs(a - b), na.rm = TRUE)
