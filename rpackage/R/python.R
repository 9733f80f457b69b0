#' Python environment for bulkformer
#'
#' The R package is a thin shell over the Python package `bulkformer`, reached
#' through \pkg{reticulate}. These functions create, select and probe the Python
#' environment. Nothing is downloaded when the package is loaded, and conda is never
#' used.
#'
#' Which Python is used, in order of precedence (reticulate's rules):
#' 1. the `RETICULATE_PYTHON` environment variable;
#' 2. an explicit `use_bulkformer_python()` call made before Python starts;
#' 3. a virtualenv named by `getOption("bulkformer.envname", "r-bulkformer")`, as
#'    created by `install_bulkformer()`.
#'
#' `install_bulkformer()` creates a virtualenv with the Python standard library's
#' `venv` (no conda, no Miniconda) and pip-installs the Python package from a local
#' source directory or wheel together with `numpy<2` (reticulate 1.28 cannot read
#' NumPy 2 arrays). Give `find_links`, a directory of wheels (torch, numpy,
#' pandas, ...), to install without network access.
#'
#' Why not basilisk: basilisk 1.10 provisions its environments by downloading
#' Miniconda and conda packages on first use, so it cannot serve an offline
#' machine; a plain virtualenv built from local wheels can.
#'
#' @param package Path(s) to the Python package: a source directory (the root of the
#'   bulkformer repository) or a wheel file.
#' @param envname Name of the virtualenv (created under reticulate's virtualenv root,
#'   `~/.virtualenvs` by default) or a path to it (any value containing `/`).
#' @param python Base Python interpreter (>= 3.10) used to create the virtualenv;
#'   `NULL` lets reticulate pick `python3`.
#' @param find_links Optional directory of wheels. When given, pip runs with
#'   `--no-index --find-links`, i.e. fully offline.
#' @param system_site_packages Let the virtualenv see the base interpreter's site
#'   packages (e.g. a system-wide torch).
#' @param pip_options Further options for `pip install`.
#' @param force Remove an existing virtualenv of that name first.
#' @return `install_bulkformer()`: the path of the virtualenv's Python, invisibly.
#' @examples
#' bulkformer_envname()
#' \dontrun{
#' # from a checkout of the bulkformer repository, offline with a wheelhouse:
#' install_bulkformer("path/to/bulkformer", find_links = "path/to/wheels")
#' # then, in a fresh R session:
#' use_bulkformer_python(envname = "r-bulkformer")
#' }
#' if (bulkformer_available()) reticulate::py_config()$python
#' @name bulkformer-python
NULL

#' @rdname bulkformer-python
#' @export
install_bulkformer <- function(package, envname = bulkformer_envname(), python = NULL,
                               find_links = NULL, system_site_packages = FALSE,
                               pip_options = character(), force = FALSE) {
    # every check before the virtualenv is touched: a failed call leaves nothing behind
    missing_paths <- package[!file.exists(package)]
    if (length(missing_paths)) {
        stop("install_bulkformer(): ", paste(missing_paths, collapse = ", "), " does not exist; ",
             "give the path of the bulkformer source directory or of a wheel", call. = FALSE)
    }
    options <- pip_options
    if (!is.null(find_links)) {
        if (!dir.exists(find_links)) {
            stop("install_bulkformer(): find_links directory ", find_links, " does not exist", call. = FALSE)
        }
        options <- c("--no-index", paste0("--find-links=", normalizePath(find_links)), options)
    }
    if (force && reticulate::virtualenv_exists(envname)) {
        reticulate::virtualenv_remove(envname, confirm = FALSE)
    }
    # packages = FALSE: no pip/setuptools upgrade from the network while creating it
    reticulate::virtualenv_create(envname, python = python, packages = FALSE,
                                  system_site_packages = system_site_packages)
    reticulate::virtualenv_install(envname, packages = c(normalizePath(package), "numpy<2"),
                                   pip_options = options)
    invisible(reticulate::virtualenv_python(envname))
}

#' @rdname bulkformer-python
#' @param required Fail when the requested Python cannot be used.
#' @return `use_bulkformer_python()`: the Python interpreter path, invisibly.
#' @details `use_bulkformer_python()` must be called before Python starts in the R
#'   session; when Python is already running with a different interpreter it fails
#'   with a clear message instead of silently using the wrong one.
#' @export
use_bulkformer_python <- function(python = NULL, envname = bulkformer_envname(), required = TRUE) {
    if (is.null(python)) {
        if (!reticulate::virtualenv_exists(envname)) {
            stop("no virtualenv '", envname, "'; create it with install_bulkformer() ",
                 "or give the interpreter with use_bulkformer_python(python = ...)", call. = FALSE)
        }
        python <- reticulate::virtualenv_python(envname)
    }
    if (!file.exists(python)) {
        stop("Python interpreter ", python, " does not exist", call. = FALSE)
    }
    if (reticulate::py_available(initialize = FALSE)) {
        current <- reticulate::py_config()$python
        if (normalizePath(current) != normalizePath(python)) {
            stop("Python is already running in this R session (", current, "); restart R and ",
                 "call use_bulkformer_python() before anything else uses Python", call. = FALSE)
        }
    }
    reticulate::use_python(python, required = required)
    invisible(python)
}

#' @rdname bulkformer-python
#' @return `bulkformer_available()`: `TRUE` when Python and its `bulkformer`
#'   package (with the inference API) can be imported. It starts Python.
#' @export
bulkformer_available <- function() {
    .import_torch_with_own_blas()
    tryCatch({
        inference <- reticulate::import("bulkformer.inference", convert = FALSE)
        all(vapply(c("run_imputation", "read_gene_embeddings"), reticulate::py_has_attr,
                   logical(1), x = inference)) &&
            reticulate::py_has_attr(reticulate::import("bulkformer", convert = FALSE), "embed")
    }, error = function(e) FALSE)
}

#' @rdname bulkformer-python
#' @return `bulkformer_envname()`: the default virtualenv name,
#'   `getOption("bulkformer.envname", "r-bulkformer")`.
#' @export
bulkformer_envname <- function() {
    getOption("bulkformer.envname", "r-bulkformer")
}

# The lazily imported top-level module, or a submodule such as "bulkformer.inference".
.py_module <- function(name = "bulkformer") {
    requested <- Sys.getenv("RETICULATE_PYTHON")
    if (nzchar(requested) && !file.exists(requested)) {
        stop("RETICULATE_PYTHON is set to ", requested, ", which does not exist: point it at the Python that has ",
             "the bulkformer package (e.g. path/to/.venv/bin/python), or unset it", call. = FALSE)
    }
    .import_torch_with_own_blas()
    if (!reticulate::py_module_available("bulkformer")) {
        python <- tryCatch(reticulate::py_config()$python, error = function(e) "none found")
        stop("the Python package 'bulkformer' is not available in Python ", python, "; install it with ",
             "install_bulkformer() or set RETICULATE_PYTHON to a Python that has it", call. = FALSE)
    }
    if (identical(name, "bulkformer")) {
        return(.bulkformer_state$module)
    }
    .bf_call(reticulate::import(name, convert = FALSE))
}

# Run Python code; a Python exception becomes an R error of class
# "bulkformer_python_error" whose message is the Python one told for R users (see
# .as_r_advice; the exception class is in its field python_type), and Python
# UserWarnings (e.g. "values look log-transformed") become R warnings instead of
# text on stderr.
.bf_call <- function(expr, call = NULL) {
    py_warnings <- reticulate::import("warnings", convert = FALSE)
    recorder <- py_warnings$catch_warnings(record = TRUE)
    caught <- recorder$`__enter__`()
    on.exit({
        recorder$`__exit__`(NULL, NULL, NULL)
        .relay_python_warnings(caught, call)
    }, add = TRUE)
    tryCatch(expr, error = function(e) {
        if (inherits(e, "bulkformer_error")) stop(e)
        python_error <- reticulate::py_last_error()
        message <- sub("\n+$", "", conditionMessage(e))
        if (is.null(python_error) || !grepl(python_error$value, message, fixed = TRUE)) stop(e)
        # "ValueError: ..." -> "...": the class is kept in python_type
        message <- sub(paste0("^([[:alnum:]_]+\\.)*", python_error$type, ": "), "", message)
        stop(structure(
            class = c("bulkformer_python_error", "bulkformer_error", "error", "condition"),
            list(message = .as_r_advice(message), call = call, python_type = python_error$type,
                 python_traceback = python_error$traceback)
        ))
    })
}

# Python messages give advice in Python terms (orientation=, keyword arguments); in
# R the layout is fixed (genes are rows) and arguments are R's. Like the CLI's
# as_cli_advice: pattern -> replacement, applied in order.
.r_advice <- c(
    # embed's level / out checks
    "level='gene' writes an on-disk store: pass out='embeddings.zarr'" =
        "bulkformerEmbed(level = \"gene\") writes an on-disk store: give its path as 'out'",
    "^out= applies to" = "out applies to",
    "sample embeddings are returned: save the DataFrame yourself \\(e\\.g\\. emb\\.to_parquet\\(\\.\\.\\.\\)\\), or use `bulkformer embed -o FILE`" =
        "sample embeddings are returned (in colData for a SummarizedExperiment): save them yourself, e.g. with saveRDS()",
    "Pass orientation='genes_by_samples' if rows are genes \\(or 'samples_by_genes' if rows are samples\\)\\." =
        "In R, genes must be the rows: transpose it with t(x).",
    # the R package always passes orientation='genes_by_samples', so this is the usual one
    "Rows are samples: leave out orientation='genes_by_samples' \\(the default is 'samples_by_genes'\\)\\." =
        "In R, genes must be the rows: transpose it with t(x).",
    "\\(orientation=\\)" = "(rownames in R)",
    # a SummarizedExperiment goes as a genes x samples AnnData whose obs are its rowData
    "genes='([^']*)' \\(gene_names='[^']*' in [^)]*\\)" = "gene.column='\\1'",
    "[Tt]he AnnData's obs names are" = "The rownames are",
    "but its obs column" = "but the rowData column",
    "[Tt]he AnnData's obs column" = "The rowData column",
    "the AnnData's obs" = "rowData(x)",
    "the obs column" = "the rowData column",
    "or leave it out to use the obs names" = "or leave gene.column out to use the rownames",
    "obs name '" = "rowname '",
    "^([[:alnum:]_.]+\\(\\) )?got an unexpected keyword argument '([^']+)'" =
        "unknown argument '\\2'; see the function's help page for its arguments",
    # what is left is argument syntax: input='counts' -> input = "counts", True -> TRUE;
    # batch_size is batch.size in R (the other arguments keep their names)
    "\\bbatch_size\\b" = "batch.size",
    "\\b([[:alpha:]][[:alnum:]_.]*)='([^']*)'" = "\\1 = \"\\2\"",
    "\\b([[:alpha:]][[:alnum:]_.]*)=True\\b" = "\\1 = TRUE",
    "\\b([[:alpha:]][[:alnum:]_.]*)=False\\b" = "\\1 = FALSE",
    "\\b([[:alpha:]][[:alnum:]_.]*)=None\\b" = "\\1 = NULL",
    "\\b([[:alpha:]][[:alnum:]_.]*)=(-?[0-9][0-9.eE+-]*)" = "\\1 = \\2",
    "\\bor None\\b" = "or NULL",
    "holds (float|int)[0-9]* values" = "holds numeric values", "holds bool values" = "holds logical values",
    "NaN \\(missing\\) values" = "NA (missing) values", "do not leave NaN" = "do not leave NA"
)

.as_r_advice <- function(message) {
    for (pattern in names(.r_advice)) {
        message <- gsub(pattern, .r_advice[[pattern]], message)
    }
    # Python lists of names, ['a', 'b'] -> c("a", "b")
    lists <- gregexpr("\\['[^]]*'\\]", message)
    regmatches(message, lists) <- lapply(regmatches(message, lists), function(found) {
        inner <- gsub("'", "\"", substr(found, 2L, nchar(found) - 1L))
        paste0("c(", inner, ")")
    })
    message
}

.relay_python_warnings <- function(caught, call) {
    builtins <- reticulate::import_builtins(convert = FALSE)
    for (index in seq_len(reticulate::py_len(caught)) - 1L) {
        record <- reticulate::py_get_item(caught, index)
        if (!reticulate::py_to_r(builtins$issubclass(record$category, builtins$UserWarning))) next
        message <- reticulate::py_to_r(builtins$str(record$message))
        # anndata's, on the AnnData made from x: repeated genes are summed and reported by the
        # engine, repeated samples are an error of its own, and the advice is a Python method
        if (grepl("^(Observation|Variable) names are not unique", message)) next
        warning(structure(
            class = c("bulkformer_python_warning", "warning", "condition"),
            list(message = .as_r_advice(message), call = call)
        ))
    }
}
