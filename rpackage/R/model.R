#' Load a BulkFormer model bundle
#'
#' A bundle is a directory written by the Python package (`Bundle.save`, the
#' `bulkformer import-checkpoint` command or `bulkformer_tiny_model()`):
#' weights, the gene vocabulary, the gene graph, and the checksums every
#' file is checked against when it is loaded. An official bulkformer-latest
#' release folder (its six files as downloaded, see
#' [bulkformer_download()])
#' is accepted as it is, after its files are checked against its manifest.
#' Load it once and pass the result to
#' [bulkformerImpute()] and
#' [bulkformerEmbed()]; they also accept the path
#' itself.
#'
#' @param path Path of the bundle directory or release folder.
#' @param device Torch device, e.g. `"cpu"` or `"cuda"`.
#' @return The Python `bulkformer.bundle.Bundle` object (a reticulate object
#'   with the extra S3 class `bulkformer_model`), usable from R and from Python
#'   code.
#' @seealso [bulkformerVocabulary()],
#'   [bulkformer_tiny_model()]
#' @examples
#' if (bulkformer_available()) {
#'     path <- tempfile("bundle-")
#'     bulkformer_tiny_model(path, n_genes = 50)
#'     model <- load_bulkformer_model(path)
#'     print(model)
#'     head(bulkformerVocabulary(model))
#' }
#' @export
load_bulkformer_model <- function(path, device = "cpu") {
    if (!is.character(path) || length(path) != 1L || !dir.exists(path)) {
        stop("load_bulkformer_model(): no model bundle directory at ",
            format(path), "; convert an official checkpoint with ",
            "`bulkformer import-checkpoint` first", call. = FALSE)
    }
    bf <- .py_module()
    .as_model(.py_invoke(bf$load, normalizePath(path), device = device))
}

#' A random-weight model for examples, tests and trying things out
#'
#' Writes a deterministic bundle (`bulkformer.datasets.tiny_bundle` in
#' Python) over the first `n_genes` genes of the shipped vocabulary, or over
#' all of them with `n_genes = NULL`: that is the one to try real data with,
#' since real data match only few of the first 300 genes. Its weights are
#' random, so its numbers carry no biology; it exists so that examples, tests
#' and vignettes run offline in seconds (300 genes) or about 15 seconds (the
#' full vocabulary).
#'
#' @param path Directory to write the bundle to.
#' @param n_genes Number of vocabulary genes; `NULL` for the whole shipped
#'   vocabulary.
#' @param seed Random seed of the weights.
#' @param version Model layout, `"v2"`, `"v1"` or `"latest"`.
#' @return The loaded model (see
#'   [load_bulkformer_model()]); the bundle
#'   stays at `path`.
#' @examples
#' if (bulkformer_available()) {
#'     model <- bulkformer_tiny_model(n_genes = 50)
#'     nrow(bulkformerVocabulary(model))
#' }
#' @export
bulkformer_tiny_model <- function(path = tempfile("bulkformer-tiny-"),
    n_genes = 300L, seed = 0L, version = c("v2", "v1", "latest")) {
    version <- match.arg(version)
    datasets <- .py_module("bulkformer.datasets")
    .as_model(.py_invoke(datasets$tiny_bundle, path = path.expand(path),
        n_genes = n_genes, seed = seed, version = version))
}

#' The gene vocabulary of a model
#'
#' @param model A model from
#'   [load_bulkformer_model()] or a bundle path.
#' @return A S4Vectors `DataFrame` with one row per vocabulary gene in model
#'   order (rownames: Ensembl IDs) and columns `ensembl_id`, `symbol`,
#'   `length` (bp, `NA` when unknown).
#' @examples
#' if (bulkformer_available()) {
#'     bulkformerVocabulary(bulkformer_tiny_model(n_genes = 20))
#' }
#' @export
bulkformerVocabulary <- function(model) {
    genes <- .as_model(model)$genes
    ids <- .py_strings(genes[["ensembl_id"]]$astype("str")$tolist())
    symbol <- .py_strings(genes[["symbol"]]$fillna("")$astype("str")$tolist())
    symbol[symbol == ""] <- NA_character_
    length <- as.numeric(reticulate::py_to_r(
        genes[["length"]]$astype("float64")$to_numpy()))
    length[is.nan(length)] <- NA_real_
    S4Vectors::DataFrame(ensembl_id = ids, symbol = symbol, length = length,
        row.names = ids)
}

#' @export
format.bulkformer_model <- function(x, ...) {
    # the wording is the Python Bundle's
    builtins <- reticulate::import_builtins(convert = FALSE)
    reticulate::py_to_r(builtins$repr(x))
}

#' @export
print.bulkformer_model <- function(x, ...) {
    cat(format(x), "\n", sep = "")
    invisible(x)
}

# A Bundle from a path or a loaded model, tagged with the S3 class used for
# printing.
.as_model <- function(model) {
    if (is.character(model)) {
        return(load_bulkformer_model(model))
    }
    if (!inherits(model, "python.builtin.object") ||
        !reticulate::py_has_attr(model, "model") ||
        !reticulate::py_has_attr(model, "genes")) {
        stop("'model' must be a bundle path or a model from ",
            "load_bulkformer_model(), not ",
            paste(class(model), collapse = "/"), call. = FALSE)
    }
    # a model handed over from Python code may auto-convert; this package
    # reads it raw
    model <- reticulate::py_call(
        reticulate::py_eval("lambda bundle: bundle", convert = FALSE), model)
    class(model) <- unique(c("bulkformer_model", class(model)))
    model
}

#' Download an official BulkFormer release, verified
#'
#' Fetches the six files of bulkformer-latest from where its authors publish
#' them (or a mirror), resumes a partial file, checks every file's size and
#' SHA256 against the authors' download manifest and loads the folder once.
#' The folder is then a model for
#' [load_bulkformer_model()],
#' [bulkformerImpute()] and
#' [bulkformerEmbed()].
#' It calls the Python package's `bulkformer.download.download_release`;
#' without a network it stops at once and says where to put files downloaded
#' by hand.
#'
#' @param path Folder for the release's files.
#' @param release The release; `"latest"` (bulkformer-latest).
#' @param base.url A mirror serving the files by name, or `NULL` for the
#'   authors' locations.
#' @param progress Whether to show progress bars.
#' @return `path`, invisibly.
#' @examples
#' if (bulkformer_available()) {
#'     # needs the network (about 420 MB); offline it says what to do
#'     folder <- tryCatch(bulkformer_download(tempfile("bulkformer-latest-")),
#'         error = function(e) conditionMessage(e))
#' }
#' @export
bulkformer_download <- function(path = "bulkformer-latest",
    release = "latest", base.url = NULL, progress = interactive()) {
    download <- .py_module("bulkformer.download")
    .py_invoke(download$download_release, release, path.expand(path),
        base_url = base.url, progress = progress)
    invisible(path)
}
