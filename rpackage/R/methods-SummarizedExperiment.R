#' @include generics.R methods-matrix.R
NULL

# The assay as a numeric genes x samples matrix named by the rownames (rows
# numbered where there are none and gene.column names the rowData column with
# the IDs).
.se_matrix <- function(x, assay.type, gene.column = NULL) {
    .check_not_empty(x)
    .check_assay(x, assay.type, "assay.type")
    mat <- SummarizedExperiment::assay(x, assay.type, withDimnames = TRUE)
    if (!is.null(gene.column)) {
        if (!is.character(gene.column) || length(gene.column) != 1L ||
            is.na(gene.column)) {
            stop("gene.column must be the name of one rowData column",
                call. = FALSE)
        }
        # named like assay.type, in R's terms (the engine would speak of the
        # obs of the AnnData this package builds)
        columns <- colnames(SummarizedExperiment::rowData(x))
        if (!gene.column %in% columns) {
            stop("gene.column '", gene.column, "' is not a column of ",
                "rowData(x) (its columns: ",
                paste(deparse(columns), collapse = ""), ")", call. = FALSE)
        }
        if (is.null(rownames(mat))) {
            rownames(mat) <- as.character(seq_len(nrow(mat)))
        }
    } else if (is.null(rownames(x))) {
        stop("the SummarizedExperiment has no rownames: set them to gene IDs ",
            "(Ensembl IDs or symbols), or name the rowData column holding ",
            "them with gene.column = ...", call. = FALSE)
    }
    .expression_matrix(mat, what = paste0("assay '", assay.type, "'"))
}

# What the engine reads the gene IDs from (and searches for them when the
# rownames match badly): the rowData columns and the one gene.column names.
.se_annotations <- function(x, gene.column) {
    list(row.data = SummarizedExperiment::rowData(x), column = gene.column)
}

# An assay chosen by name or position; unnamed assays
# (SummarizedExperiment(list(m))) can only be chosen by position, which the
# error says.
.check_assay <- function(x, which, argument) {
    n <- length(SummarizedExperiment::assays(x))
    if (is.numeric(which) && length(which) == 1L && !is.na(which) &&
        which >= 1 && which <= n && which == round(which)) {
        return(invisible(which))
    }
    available <- SummarizedExperiment::assayNames(x)
    if (!is.character(which) || length(which) != 1L) {
        stop(argument, " must be an assay name or a position between 1 and ",
            n, call. = FALSE)
    }
    if (!length(available) || all(!nzchar(available))) {
        stop("the assays of x have no names, so there is no assay '", which,
            "': choose one by position (", argument, " = 1) or name them ",
            "(assayNames(x) <- \"counts\")", call. = FALSE)
    }
    if (!which %in% available) {
        stop("no assay '", which, "' in x; its assays are: ",
            paste(available, collapse = ", "), " (choose one with ", argument,
            " = ...)", call. = FALSE)
    }
    invisible(which)
}

.se_lengths <- function(x, lengths, length.assay, input) {
    if (!is.null(lengths) || input != "counts" ||
        identical(length.assay, NA)) {
        return(lengths)
    }
    if (is.null(length.assay)) {
        length.assay <- intersect(c("avgTxLength", "length"),
            SummarizedExperiment::assayNames(x))
        if (!length(length.assay)) {
            return(NULL)
        }
        length.assay <- length.assay[1]
    } else {
        .check_assay(x, length.assay, "length.assay")
    }
    SummarizedExperiment::assay(x, length.assay, withDimnames = TRUE)
}

#' @rdname bulkformerImpute
#' @export
setMethod("bulkformerImpute", "SummarizedExperiment", function(x, model,
    assay.type = "counts", input = c("counts", "tpm", "logtpm"),
    gene.column = NULL, lengths = NULL, length.assay = NULL,
    predicted = FALSE, batch.size = 16L, device = NULL,
    progress = interactive(), ...) {
    input <- match.arg(input)
    .check_counts_from_abundance(x, assay.type, input, lengths)
    mat <- .se_matrix(x, assay.type, gene.column)
    .impute_matrix(mat, model, input,
        .se_lengths(x, lengths, length.assay, input), predicted, batch.size,
        device, progress, list(...),
        col.data = SummarizedExperiment::colData(x),
        metadata = S4Vectors::metadata(x),
        annotations = .se_annotations(x, gene.column))
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "SummarizedExperiment", function(x, model,
    level = c("sample", "gene"),
    aggregate = c("default", "max", "mean", "median", "all", "observed_mean"),
    genes = NULL, out = NULL, dtype = c("float32", "float16"),
    assay.type = "counts", input = c("counts", "tpm", "logtpm"),
    gene.column = NULL, lengths = NULL, length.assay = NULL,
    name = "bulkformer", batch.size = 16L, device = NULL,
    progress = interactive(), ...) {
    level <- match.arg(level)
    aggregate <- match.arg(aggregate)
    input <- match.arg(input)
    .check_counts_from_abundance(x, assay.type, input, lengths)
    if (level == "sample") .check_embedding_name(x, name)
    mat <- .se_matrix(x, assay.type, gene.column)
    embedded <- .embed_matrix(mat, model, level, .pooling(aggregate), genes,
        out,
        match.arg(dtype), input, .se_lengths(x, lengths, length.assay, input),
        batch.size, device, progress, list(...),
        annotations = .se_annotations(x, gene.column))
    if (level == "gene") {
        return(embedded)
    }
    # subsetting also drops the attributes that go to metadata() below
    embedding <- embedded[colnames(mat), , drop = FALSE]
    rownames(embedding) <- colnames(x)
    SummarizedExperiment::colData(x)[[name]] <- embedding
    # one entry per embedding column, so that a second embedding keeps the
    # first one's record
    S4Vectors::metadata(x)$bulkformer_embedding[[name]] <- list(
        aggregate = attr(embedded, "aggregate"), genes = genes,
        mapping_report = attr(embedded, "mapping_report"),
        model = attr(embedded, "model")
    )
    x
})

# The colData column an embedding goes to: a new one, or one that holds an
# earlier embedding of this package (recorded in metadata); never a column of
# the user's (a DESeqDataSet's design variable would be lost).
.check_embedding_name <- function(x, name) {
    if (!is.character(name) || length(name) != 1L || is.na(name) ||
        !nzchar(name)) {
        stop("name must be one non-empty string: the colData column that ",
            "receives the embedding", call. = FALSE)
    }
    earlier <- names(S4Vectors::metadata(x)$bulkformer_embedding)
    if (name %in% colnames(SummarizedExperiment::colData(x)) &&
        !name %in% earlier) {
        stop("colData(x) already has a column '", name, "' that is not a ",
            "bulkformer embedding; choose another column for the embedding ",
            "with name = \"...\"", call. = FALSE)
    }
    invisible(name)
}
