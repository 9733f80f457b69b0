# Package state and load hook. Nothing here starts Python: the module is
# imported lazily, on first use, from whichever Python reticulate settles on
# (RETICULATE_PYTHON, use_bulkformer_python(), or a virtualenv called
# "r-bulkformer").

.bulkformer_state <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
    .bulkformer_state$module <- reticulate::import(
        "bulkformer",
        convert = FALSE,
        delay_load = list(environment = bulkformer_envname(), priority = 10,
            before_load = .import_torch_with_own_blas)
    )
    invisible(NULL)
}

# R puts its BLAS (Debian: reference BLAS) into the global symbol scope, and
# libtorch_cpu.so exports MKL's sgemm_ & co. with default visibility, so
# torch imported into an R process binds its matrix products to R's BLAS:
# ~15x slower and ~1e-6 off the numbers python gives. RTLD_DEEPBIND makes
# torch use its own symbols.
.import_torch_with_own_blas <- function() {
    if (isTRUE(.bulkformer_state$torch_imported)) {
        return(invisible(NULL))
    }
    .bulkformer_state$torch_imported <- TRUE
    # torch imported before (a python chunk, reticulate::import("torch")) is
    # bound already
    if (reticulate::py_available(initialize = FALSE) && isTRUE(tryCatch(
        reticulate::py_eval("'torch' in __import__('sys').modules"),
        error = function(e) FALSE))) {
        warning("torch was imported into this R session before bulkformer, ",
            "so its matrix products use R's BLAS: about 15x slower, and ",
            "about 1e-6 off the numbers Python gives. Restart R and call ",
            "bulkformer_available() before anything else imports torch (in ",
            "R Markdown: in the first R chunk, before any python chunk)",
            call. = FALSE)
        return(invisible(NULL))
    }
    # Called before this package's first Python use; a missing torch is
    # reported later, where the bulkformer import fails with its own message.
    try(reticulate::py_run_string(paste(
        "import os, sys",
        "_bulkformer_flags = sys.getdlopenflags()",
        "sys.setdlopenflags(_bulkformer_flags | os.RTLD_DEEPBIND)",
        "try:",
        "    import torch",
        "finally:",
        "    sys.setdlopenflags(_bulkformer_flags)",
        "del _bulkformer_flags",
        sep = "\n"), local = TRUE), silent = TRUE)
    invisible(NULL)
}
