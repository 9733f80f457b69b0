#' @include generics.R methods-matrix.R
NULL

# The assay as a numeric genes x samples matrix, and the per-sample lengths to use.
.se_matrix <- function(x, assay.type) {
    if (is.null(rownames(x))) {
        stop("the SummarizedExperiment has no rownames: set them to gene IDs (Ensembl IDs or symbols)", call. = FALSE)
    }
    available <- SummarizedExperiment::assayNames(x)
    if (is.character(assay.type) && !assay.type %in% available) {
        stop("no assay '", assay.type, "' in x; its assays are: ", paste(available, collapse = ", "),
             " (choose one with assay.type = ...)", call. = FALSE)
    }
    mat <- .expression_matrix(SummarizedExperiment::assay(x, assay.type, withDimnames = TRUE),
                              what = paste0("assay '", assay.type, "'"))
    if (is.null(colnames(mat))) {
        colnames(mat) <- paste0("sample", seq_len(ncol(mat)))
    }
    mat
}

.se_lengths <- function(x, lengths, length.assay, input) {
    if (!is.null(lengths) || input != "counts" || identical(length.assay, NA)) {
        return(lengths)
    }
    available <- SummarizedExperiment::assayNames(x)
    if (is.null(length.assay)) {
        length.assay <- intersect(c("avgTxLength", "length"), available)[1]
        if (is.na(length.assay)) return(NULL)
    } else if (!length.assay %in% available) {
        stop("no assay '", length.assay, "' with gene lengths in x", call. = FALSE)
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
                   batch.size, device, progress, list(...), col.data = SummarizedExperiment::colData(x))
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
    report <- attr(embedded, "mapping_report")
    attr(embedded, "mapping_report") <- NULL
    embedding <- embedded[colnames(mat), , drop = FALSE]
    rownames(embedding) <- colnames(x)
    SummarizedExperiment::colData(x)[[name]] <- embedding
    S4Vectors::metadata(x)$bulkformer_embedding <- list(
        name = name, aggregate = aggregate, genes = genes, mapping_report = report
    )
    x
})
