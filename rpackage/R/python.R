#' Python environment for bulkformer
#'
#' The R package is a thin shell over the Python package `bulkformer`,
#' reached through \pkg{reticulate}. These functions create, select and probe
#' the Python environment. Nothing is downloaded when the package is loaded, and
#' conda is never used.
#'
#' Which Python is used, in order of precedence (reticulate's rules):
#' 1. the `RETICULATE_PYTHON` environment variable;
#' 2. an explicit `use_bulkformer_python()` call made before Python starts;
#' 3. a virtualenv named by
#'   `getOption("bulkformer.envname", "r-bulkformer")`, as created by
#'   `install_bulkformer()`.
#'
#' `install_bulkformer()` creates a virtualenv with the Python standard
#' library's `venv` (no conda, no Miniconda) and pip-installs the Python
#' package from a local source directory or wheel together with `numpy<2`
#' (reticulate 1.28 cannot read NumPy 2 arrays). Give `find_links`, a
#' directory of wheels (torch, numpy, pandas, ...), to install without network
#' access.
#'
#' Why not basilisk: basilisk 1.10 provisions its environments by downloading
#' Miniconda and conda packages on first use, so it cannot serve an offline
#' machine; a plain virtualenv built from local wheels can.
#'
#' @param package Path(s) to the Python package: a source directory (the root of
#'   the bulkformer repository) or a wheel file.
#' @param envname Name of the virtualenv (created under reticulate's virtualenv
#'   root, `~/.virtualenvs` by default) or a path to it (any value containing
#'   `/`).
#' @param python Base Python interpreter (>= 3.10) used to create the
#'   virtualenv; `NULL` lets reticulate pick `python3`.
#' @param find_links Optional directory of wheels. When given, pip runs with
#'   `--no-index --find-links`, i.e. fully offline.
#' @param system_site_packages Let the virtualenv see the base interpreter's
#'   site packages (e.g. a system-wide torch).
#' @param pip_options Further options for `pip install`.
#' @param force Remove an existing virtualenv of that name first.
#' @return `install_bulkformer()`: the path of the virtualenv's Python,
#'   invisibly.
#' @examples
#' bulkformer_envname()
#' # Offline, from a checkout of the bulkformer repository and a directory of
#' # wheels; runs where BULKFORMER_SOURCE names such a checkout.
#' source <- Sys.getenv("BULKFORMER_SOURCE")
#' if (nzchar(source) && dir.exists(file.path(source, "wheels"))) {
#'     envname <- file.path(tempdir(), "r-bulkformer")
#'     install_bulkformer(source, envname = envname,
#'         find_links = file.path(source, "wheels"))
#'     # then, in a fresh R session:
#'     # use_bulkformer_python(envname = envname)
#' }
#' if (bulkformer_available()) reticulate::py_config()$python
#' @name bulkformer-python
NULL

#' @rdname bulkformer-python
#' @export
install_bulkformer <- function(package, envname = bulkformer_envname(),
    python = NULL, find_links = NULL, system_site_packages = FALSE,
    pip_options = character(), force = FALSE) {
    # every check before the virtualenv is touched: a failed call leaves
    # nothing behind
    missing_paths <- package[!file.exists(package)]
    if (length(missing_paths)) {
        stop("install_bulkformer(): ", paste(missing_paths, collapse = ", "),
            " does not exist; give the path of the bulkformer source ",
            "directory or of a wheel", call. = FALSE)
    }
    options <- pip_options
    if (!is.null(find_links)) {
        if (!dir.exists(find_links)) {
            stop("install_bulkformer(): find_links directory ", find_links,
                " does not exist", call. = FALSE)
        }
        options <- c("--no-index",
            paste0("--find-links=", normalizePath(find_links)), options)
    }
    if (force && reticulate::virtualenv_exists(envname)) {
        reticulate::virtualenv_remove(envname, confirm = FALSE)
    }
    # packages = FALSE: no pip/setuptools upgrade from the network
    reticulate::virtualenv_create(envname, python = python, packages = FALSE,
        system_site_packages = system_site_packages)
    reticulate::virtualenv_install(envname,
        packages = c(normalizePath(package), "numpy<2"),
        pip_options = options)
    invisible(reticulate::virtualenv_python(envname))
}

#' @rdname bulkformer-python
#' @param required Fail when the requested Python cannot be used.
#' @return `use_bulkformer_python()`: the Python interpreter path, invisibly.
#' @details `use_bulkformer_python()` must be called before Python starts in the
#'   R session; when Python is already running with a different interpreter it
#'   fails with a clear message instead of silently using the wrong one.
#' @export
use_bulkformer_python <- function(python = NULL,
    envname = bulkformer_envname(), required = TRUE) {
    if (is.null(python)) {
        if (!reticulate::virtualenv_exists(envname)) {
            stop("no virtualenv '", envname, "'; create it with ",
                "install_bulkformer() or give the interpreter with ",
                "use_bulkformer_python(python = ...)", call. = FALSE)
        }
        python <- reticulate::virtualenv_python(envname)
    }
    if (!file.exists(python)) {
        stop("Python interpreter ", python, " does not exist", call. = FALSE)
    }
    if (reticulate::py_available(initialize = FALSE)) {
        current <- reticulate::py_config()$python
        if (normalizePath(current) != normalizePath(python)) {
            stop("Python is already running in this R session (", current,
                "); restart R and call use_bulkformer_python() before ",
                "anything else uses Python", call. = FALSE)
        }
    }
    reticulate::use_python(python, required = required)
    invisible(python)
}

#' @rdname bulkformer-python
#' @param quietly When `FALSE` (default), say with a message why Python
#'   bulkformer is not available.
#' @return `bulkformer_available()`: `TRUE` when Python and its
#'   `bulkformer` package (with the inference API) can be imported. It starts
#'   Python. Examples and vignettes run their Python parts only when it is
#'   `TRUE`.
#' @export
bulkformer_available <- function(quietly = FALSE) {
    .import_torch_with_own_blas()
    reason <- tryCatch({
        inference <- reticulate::import("bulkformer.inference",
            convert = FALSE)
        errors <- reticulate::import("bulkformer.errors", convert = FALSE)
        api <- c(
            vapply(c("run_imputation", "read_gene_embeddings"),
                reticulate::py_has_attr, logical(1), x = inference),
            reticulate::py_has_attr(.bulkformer_state$module, "embed"),
            reticulate::py_has_attr(errors, "call")
        )
        if (all(api)) NULL else "it lacks the inference API"
    }, error = function(e) conditionMessage(e))
    if (!is.null(reason) && !quietly) {
        message("Python bulkformer is not available (", reason, "); see ",
            "?install_bulkformer. Skipping what needs it.")
    }
    is.null(reason)
}

#' @rdname bulkformer-python
#' @return `bulkformer_envname()`: the default virtualenv name,
#'   `getOption("bulkformer.envname", "r-bulkformer")`.
#' @export
bulkformer_envname <- function() {
    getOption("bulkformer.envname", "r-bulkformer")
}

# The lazily imported top-level module, or a submodule such as
# "bulkformer.inference".
.py_module <- function(name = "bulkformer") {
    requested <- Sys.getenv("RETICULATE_PYTHON")
    if (nzchar(requested) && !file.exists(requested)) {
        stop("RETICULATE_PYTHON is set to ", requested, ", which does not ",
            "exist: point it at the Python that has the bulkformer package ",
            "(e.g. path/to/.venv/bin/python), or unset it", call. = FALSE)
    }
    .import_torch_with_own_blas()
    if (!reticulate::py_module_available("bulkformer")) {
        python <- tryCatch(reticulate::py_config()$python,
            error = function(e) "none found")
        stop("the Python package 'bulkformer' is not available in Python ",
            python, "; install it with install_bulkformer() or set ",
            "RETICULATE_PYTHON to a Python that has it", call. = FALSE)
    }
    if (identical(name, "bulkformer")) {
        return(.bulkformer_state$module)
    }
    reticulate::import(name, convert = FALSE)
}
