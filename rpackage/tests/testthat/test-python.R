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
    err <- expect_error(bulkformer_tiny_model(n_genes = -3), class = "bulkformer_python_error")
    expect_identical(err$python_type, "ValueError")
    expect_match(conditionMessage(err), "^ValueError: n_genes")
    expect_s3_class(err, "error")
    expect_error(load_bulkformer_model(file.path(tempdir(), "missing-bundle")), "import-checkpoint")
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
