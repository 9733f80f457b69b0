#' @include generics.R methods-matrix.R methods-SummarizedExperiment.R
NULL

# tximport's countsFromAbundance settings whose counts were made from the
# abundances (TPM x library size, x average transcript length for
# lengthScaledTPM) rather than read from the quantifier.
.scaled_from_abundance <- c("scaledTPM", "lengthScaledTPM", "dtuScaledTPM")

# A tximport result -> the matrix and input kind to use. Raw counts
# (countsFromAbundance = "no") go with their per-sample average transcript
# lengths; counts made from the abundances would be divided by a gene length
# as if they were raw counts, so the abundances themselves (TPM) are used.
.tximport_parts <- function(txi, dots) {
    if (!all(c("abundance", "counts", "length") %in% names(txi))) {
        stop("x is a list: pass a genes x samples matrix, a ",
            "SummarizedExperiment, or a tximport result (a list with ",
            "abundance, counts and length); the values must be numeric ",
            "(genes x samples)", call. = FALSE)
    }
    set <- intersect(c("input", "lengths"), names(dots))
    if (length(set)) {
        stop("x is a tximport result, which sets ", paste(set, collapse = " and "),
            " itself: leave ", paste(set, collapse = " and "), " out (or pass ",
            "x$counts or x$abundance as a matrix)", call. = FALSE)
    }
    how <- txi$countsFromAbundance
    if (is.null(how)) how <- "no"
    if (how %in% .scaled_from_abundance) {
        message("tximport counts made with countsFromAbundance = \"", how,
            "\": using its abundances (TPM) instead (input = \"tpm\")")
        return(list(x = txi$abundance, input = "tpm", lengths = NULL))
    }
    list(x = txi$counts, input = "counts", lengths = txi$length)
}

# tximeta records countsFromAbundance in metadata(); DESeq2's
# DESeqDataSetFromTximport keeps no record (see ?bulkformerEmbed).
.check_counts_from_abundance <- function(x, assay.type, input, lengths) {
    how <- S4Vectors::metadata(x)$countsFromAbundance
    if (!identical(input, "counts") || !is.null(lengths) ||
        !is.character(how) || length(how) != 1L ||
        !how %in% .scaled_from_abundance) {
        return(invisible(NULL))
    }
    fix <- if ("abundance" %in% SummarizedExperiment::assayNames(x)) {
        "use assay.type = \"abundance\", input = \"tpm\""
    } else {
        "pass the TPM abundances with input = \"tpm\""
    }
    stop("assay '", assay.type, "' of x holds counts made from abundances ",
        "(metadata(x)$countsFromAbundance = \"", how, "\"): as raw counts they ",
        "would be divided by gene length a second time; ", fix, call. = FALSE)
}

# The generic called on the matrix and input kind a tximport result stands for.
.call_on_tximport <- function(generic, x, model, dots) {
    parts <- .tximport_parts(x, dots)
    mat <- .expression_matrix(parts$x)
    do.call(generic, c(list(mat, model, input = parts$input,
        lengths = parts$lengths), dots))
}

#' @rdname bulkformerImpute
#' @export
setMethod("bulkformerImpute", "list", function(x, model, ...) {
    .call_on_tximport(bulkformerImpute, x, model, list(...))
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "list", function(x, model, ...) {
    .call_on_tximport(bulkformerEmbed, x, model, list(...))
})
