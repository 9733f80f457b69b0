test_that("the Python environment helpers behave without touching the running Python", {
    withr::local_options(bulkformer.envname = "my-env")
    expect_identical(bulkformer_envname(), "my-env")
    expect_error(install_bulkformer(file.path(tempdir(), "no-such-wheel.whl")), "does not exist")
    expect_error(use_bulkformer_python(envname = file.path(tempdir(), "no-such-venv")), "install_bulkformer")
})

test_that("use_bulkformer_python refuses to switch a running Python", {
    skip_if_no_bulkformer(api = FALSE)
    other <- Sys.which("sh")  # any existing file that is not the running interpreter
    expect_error(use_bulkformer_python(python = other), "already running")
})

test_that("Python errors surface as R conditions with the original message", {
    skip_if_no_bulkformer(api = FALSE)
    err <- expect_error(bulkformer_tiny_model(n_genes = -3),
        class = "bulkformer_python_error")
    expect_identical(err$python_type, "ArgumentError")
    # the class is in python_type, not the message
    expect_match(conditionMessage(err), "^n_genes")
    expect_s3_class(err, "error")
    expect_error(load_bulkformer_model(file.path(tempdir(), "missing-bundle")),
        "import-checkpoint")
})

test_that("the tiny model prints a summary and exposes its vocabulary", {
    model <- tiny_model(api = FALSE)
    expect_output(print(model), "<bulkformer model: v2, 300 genes")
    vocabulary <- bulkformerVocabulary(model)
    expect_identical(nrow(vocabulary), 300L)
    expect_true(all(grepl("^ENSG[0-9]{11}$", vocabulary$ensembl_id)))
    expect_false(is.unsorted(vocabulary$ensembl_id))
    expect_true(all(vocabulary$length > 0, na.rm = TRUE))
})

test_that("a model created by Python code (auto-converting reticulate object) is accepted", {
    model <- tiny_model(api = FALSE)
    bf <- reticulate::import("bulkformer")  # convert = TRUE, as an analyst would import it
    from_python <- bf$load(file.path(tempdir(), "tiny-bundle"))
    expect_identical(bulkformerVocabulary(from_python), bulkformerVocabulary(model))
    expect_output(print(bulkformerVocabulary(from_python)), "ENSG")
})

test_that("install_bulkformer checks find_links before it creates anything", {
    envname <- file.path(tempdir(), "venv-never-created")
    expect_error(install_bulkformer(tempdir(), envname = envname, find_links = file.path(tempdir(), "no-wheels")),
                 "find_links directory .* does not exist")
    expect_false(dir.exists(envname))
})

# a fresh R session, as a user starts one: the calls under test depend on what ran before
run_in_fresh_r <- function(code, env = character()) {
    script <- tempfile(fileext = ".R")
    writeLines(c(sprintf(".libPaths(%s)", paste(deparse(.libPaths()), collapse = "")), code), script)
    output <- suppressWarnings(system2(file.path(R.home("bin"), "Rscript"), script, stdout = TRUE, stderr = TRUE,
                                       env = env))
    paste(output, collapse = "\n")
}

test_that("torch imported before bulkformer (a python chunk first) is warned about", {
    skip_if_no_bulkformer(api = FALSE)
    python <- reticulate::py_config()$python
    output <- run_in_fresh_r(c(
        "reticulate::py_run_string('import torch')  # what a python chunk before the first R chunk does",
        "library(bulkformer)",
        "withCallingHandlers(bulkformer_available(), warning = function(w) {",
        "    cat('WARNING:', conditionMessage(w), '\\n'); invokeRestart('muffleWarning') })"
    ), env = c(paste0("RETICULATE_PYTHON=", python), "OMP_NUM_THREADS=1"))
    expect_match(output, "WARNING: torch was imported into this R session before bulkformer, so its matrix products use R's BLAS")
    output <- run_in_fresh_r(c("library(bulkformer)", "bulkformer_available()",
                               "reticulate::py_run_string('import torch')", "cat('no warning\\n')"),
                             env = c(paste0("RETICULATE_PYTHON=", python), "OMP_NUM_THREADS=1"))
    expect_match(output, "no warning")
    expect_no_match(output, "R's BLAS")
})

test_that("a RETICULATE_PYTHON that does not exist is named as such", {
    output <- run_in_fresh_r(c("library(bulkformer)",
                               "tryCatch(bulkformer_tiny_model(n_genes = 5), error = function(e) cat(conditionMessage(e)))"),
                             env = "RETICULATE_PYTHON=/nonexistent/python")
    expect_match(output, "RETICULATE_PYTHON is set to /nonexistent/python, which does not exist")
})
