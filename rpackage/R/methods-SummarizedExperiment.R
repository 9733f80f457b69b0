#' @include generics.R methods-matrix.R
NULL

# The assay as a numeric genes x samples matrix, and the per-sample lengths to use.
.se_matrix <- function(x, assay.type) {
    .check_not_empty(x)
    if (is.null(rownames(x))) {
        stop("the SummarizedExperiment has no rownames: set them to gene IDs (Ensembl IDs or symbols)", call. = FALSE)
    }
    .check_assay(x, assay.type, "assay.type")
    .expression_matrix(SummarizedExperiment::assay(x, assay.type, withDimnames = TRUE),
                       what = paste0("assay '", assay.type, "'"))
}

# An assay chosen by name or position; unnamed assays (SummarizedExperiment(list(m)))
# can only be chosen by position, which the error says.
.check_assay <- function(x, which, argument) {
    n <- length(SummarizedExperiment::assays(x))
    if (is.numeric(which) && length(which) == 1L && !is.na(which) && which >= 1 && which <= n &&
        which == round(which)) {
        return(invisible(which))
    }
    available <- SummarizedExperiment::assayNames(x)
    if (!is.character(which) || length(which) != 1L) {
        stop(argument, " must be an assay name or a position between 1 and ", n, call. = FALSE)
    }
    if (!length(available) || all(!nzchar(available))) {
        stop("the assays of x have no names, so there is no assay '", which, "': choose one by position (",
             argument, " = 1) or name them (assayNames(x) <- \"counts\")", call. = FALSE)
    }
    if (!which %in% available) {
        stop("no assay '", which, "' in x; its assays are: ", paste(available, collapse = ", "),
             " (choose one with ", argument, " = ...)", call. = FALSE)
    }
    invisible(which)
}

.se_lengths <- function(x, lengths, length.assay, input) {
    if (!is.null(lengths) || input != "counts" || identical(length.assay, NA)) {
        return(lengths)
    }
    if (is.null(length.assay)) {
        length.assay <- intersect(c("avgTxLength", "length"), SummarizedExperiment::assayNames(x))
        if (!length(length.assay)) return(NULL)
        length.assay <- length.assay[1]
    } else {
        .check_assay(x, length.assay, "length.assay")
    }
    SummarizedExperiment::assay(x, length.assay, withDimnames = TRUE)
}

#' @rdname bulkformerImpute
#' @export
setMethod("bulkformerImpute", "SummarizedExperiment", function(x, model, assay.type = "counts",
                                                               input = c("counts", "tpm", "logtpm"),
                                                               lengths = NULL, length.assay = NULL,
                                                               predicted = FALSE, batch.size = 16L,
                                                               device = NULL, progress = interactive(), ...) {
    input <- match.arg(input)
    mat <- .se_matrix(x, assay.type)
    .impute_matrix(mat, model, input, .se_lengths(x, lengths, length.assay, input), predicted,
                   batch.size, device, progress, list(...), col.data = SummarizedExperiment::colData(x),
                   metadata = S4Vectors::metadata(x))
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "SummarizedExperiment", function(x, model, level = c("sample", "gene"),
                                                              aggregate = c("max", "mean", "median", "all"),
                                                              genes = NULL, out = NULL,
                                                              dtype = c("float32", "float16"),
                                                              assay.type = "counts",
                                                              input = c("counts", "tpm", "logtpm"),
                                                              lengths = NULL, length.assay = NULL,
                                                              name = "bulkformer", batch.size = 16L,
                                                              device = NULL, progress = interactive(), ...) {
    level <- match.arg(level)
    aggregate <- match.arg(aggregate)
    input <- match.arg(input)
    mat <- .se_matrix(x, assay.type)
    embedded <- .embed_matrix(mat, model, level, aggregate, genes, out, match.arg(dtype), input,
                              .se_lengths(x, lengths, length.assay, input), batch.size, device,
                              progress, list(...))
    if (level == "gene") {
        return(embedded)
    }
    # subsetting also drops the attributes that go to metadata() below
    embedding <- embedded[colnames(mat), , drop = FALSE]
    rownames(embedding) <- colnames(x)
    SummarizedExperiment::colData(x)[[name]] <- embedding
    S4Vectors::metadata(x)$bulkformer_embedding <- list(
        name = name, aggregate = aggregate, genes = genes,
        mapping_report = attr(embedded, "mapping_report"), model = attr(embedded, "model")
    )
    x
})
