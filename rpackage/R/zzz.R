# Package state and load hook. Nothing here starts Python: the module is imported
# lazily, on first use, from whichever Python reticulate settles on (RETICULATE_PYTHON,
# use_bulkformer_python(), or a virtualenv called "r-bulkformer").

.bulkformer_state <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
    .bulkformer_state$module <- reticulate::import(
        "bulkformer",
        convert = FALSE,
        delay_load = list(environment = bulkformer_envname(), priority = 10)
    )
    invisible(NULL)
}
