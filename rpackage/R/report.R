#' How the input genes met the model vocabulary
#'
#' Every [bulkformerImpute()] and
#' [bulkformerEmbed()] call records how the genes of
#' `x` were matched to the model's vocabulary, and says so in one message
#' (silence it with [suppressMessages()]). It warns
#' when more than 5% of the input genes have no known length and count as 1,000
#' bp in the counts -> TPM conversion: give tximport's `avgTxLength` assay or
#' `lengths =` then.
#'
#' The report is a list of class `bulkformer_mapping_report` with the fields
#' of the Python `MappingReport`: `n_input_genes`, `n_matched`,
#' `n_unmatched` (with `unmatched_examples`), `n_collapsed` (input
#' genes merged into another with the same target), `n_vocabulary`,
#' `n_missing` (vocabulary genes the data lack: the imputed ones),
#' `mask_prob`, `id_types`, `match_routes`, `length_sources`
#' (`user`, `vocabulary`, `annotation`, `default_1000bp`, or
#' `per_sample`), `n_samples`, `input` and `warnings`.
#'
#' @param x For `bulkformerMappingReport()`: a result of
#'   [bulkformerImpute()] or
#'   [bulkformerEmbed()] (a SummarizedExperiment or a
#'   matrix). For the methods: a mapping report.
#' @param name For an embedded SummarizedExperiment: the embedding whose report
#'   to return (the colData column given to
#'   [bulkformerEmbed()]).
#' @param object A mapping report.
#' @param ... Ignored.
#' @return `bulkformerMappingReport()`: the report. `summary()`: a data.frame
#'   with one row per quantity (input genes, matched, unmatched, merged,
#'   vocabulary genes measured and imputed, default length) and columns `count`
#'   and `share` (of the input genes, or of the vocabulary for the vocabulary
#'   rows).
#' @seealso [bulkformerImpute()],
#'   [bulkformerEmbed()]
#' @examples
#' if (bulkformer_available()) {
#'     model <- bulkformer_tiny_model(n_genes = 100)
#'     counts <- matrix(rpois(80 * 3, 50), nrow = 80, dimnames = list(
#'         bulkformerVocabulary(model)$ensembl_id[1:80], paste0("s", 1:3)))
#'     imputed <- bulkformerImpute(counts, model)
#'     report <- bulkformerMappingReport(imputed)
#'     report
#'     summary(report)
#' }
#' @export
bulkformerMappingReport <- function(x, name = "bulkformer") {
    report <- if (methods::is(x, "SummarizedExperiment")) {
        metadata <- S4Vectors::metadata(x)
        if (!is.null(metadata$mapping_report)) {
            metadata$mapping_report
        } else {
            metadata$bulkformer_embedding[[name]]$mapping_report
        }
    } else {
        attr(x, "mapping_report")
    }
    if (is.null(report)) {
        stop("x carries no mapping report: give a result of ",
            "bulkformerImpute() or bulkformerEmbed()", call. = FALSE)
    }
    report
}

# The report of one Python call, as the classed R list.
.mapping_report <- function(report) {
    if (is.null(report)) {
        return(NULL)
    }
    structure(report, class = c("bulkformer_mapping_report", "list"))
}

# The one-line message of every impute/embed call, and the warning when many
# genes got the default length.
.announce_mapping <- function(report) {
    if (is.null(report)) {
        return(invisible(NULL))
    }
    condition <- .condition(paste0(.mapping_line(report), "\n"), "message",
        class = "bulkformer_mapping_message")
    message(condition)
    defaulted <- .n(report$length_sources$default_1000bp)
    share <- defaulted / max(.n(report$n_input_genes), 1)
    if (share > 0.05) {
        text <- paste0(.count(defaulted), " of ",
            .count(report$n_input_genes), " input genes (", .percent(share),
            ") have no known length and count as 1,000 bp in the counts -> ",
            "TPM conversion; give per-sample lengths as an avgTxLength assay ",
            "(tximport) or gene lengths with lengths = c(gene_id = bp, ...)")
        condition <- .condition(text, "warning",
            class = "bulkformer_length_warning")
        warning(condition)
    }
    invisible(report)
}

.mapping_line <- function(report) {
    measured <- .n(report$n_vocabulary) - .n(report$n_missing)
    line <- paste0("bulkformer: ", .count(report$n_matched), " of ",
        .count(report$n_input_genes), " genes matched ", .count(measured),
        " of ", .count(report$n_vocabulary), " vocabulary genes (",
        .count(report$n_missing), " imputed)")
    defaulted <- .n(report$length_sources$default_1000bp)
    if (defaulted > 0) {
        line <- paste0(line, "; ", .count(defaulted), " genes without a ",
            "known length counted as 1,000 bp")
    }
    # most unmatched genes being non-coding is expected: say so, or they
    # look lost (the engine's wording)
    outside <- .n(report$n_outside_vocabulary)
    if (outside > 0 && 2 * outside > .n(report$n_unmatched)) {
        line <- paste0(line, "; ", .count(outside), " input genes are not ",
            "in the vocabulary (non-coding and other genes the model does ",
            "not cover)")
    }
    line
}

#' @rdname bulkformerMappingReport
#' @export
format.bulkformer_mapping_report <- function(x, ...) {
    measured <- .n(x$n_vocabulary) - .n(x$n_missing)
    c(
        paste0("<bulkformer mapping report: ", x$input, ", ",
            .count(x$n_samples), " samples>"),
        paste0("input genes: ", .count(x$n_input_genes),
            .counts_in_brackets(x$id_types)),
        paste0("matched:     ", .count(x$n_matched), " -> ", .count(measured),
            " of ", .count(x$n_vocabulary), " vocabulary genes"),
        paste0("unmatched:   ", .count(x$n_unmatched),
            if (length(x$unmatched_examples)) paste0(" (e.g. ", paste(
                utils::head(unlist(x$unmatched_examples), 3),
                collapse = ", "), ")")),
        paste0("merged:      ", .count(x$n_collapsed),
            " (repeated genes, summed)"),
        paste0("imputed:     ", .count(x$n_missing),
            " vocabulary genes (mask_prob ", signif(.n(x$mask_prob), 3), ")"),
        paste0("lengths:     ", .counts_listed(x$length_sources)),
        if (length(x$warnings)) {
            paste0("warnings:    ", length(x$warnings))
        }
    )
}

#' @rdname bulkformerMappingReport
#' @export
print.bulkformer_mapping_report <- function(x, ...) {
    cat(format(x), sep = "\n")
    invisible(x)
}

#' @rdname bulkformerMappingReport
#' @export
summary.bulkformer_mapping_report <- function(object, ...) {
    input <- .n(object$n_input_genes)
    vocabulary <- .n(object$n_vocabulary)
    count <- c(input_genes = input, matched = .n(object$n_matched),
        unmatched = .n(object$n_unmatched),
        merged = .n(object$n_collapsed),
        vocabulary_measured = vocabulary - .n(object$n_missing),
        vocabulary_imputed = .n(object$n_missing),
        default_length = .n(object$length_sources$default_1000bp))
    per <- c(rep(input, 4), rep(vocabulary, 2), input)
    data.frame(count = count, share = round(count / pmax(per, 1), 4))
}

# NULL (a count Python left out of an empty dict) -> 0
.n <- function(value) {
    if (is.null(value)) 0 else as.numeric(value)
}

.count <- function(value) {
    format(.n(value), big.mark = ",", scientific = FALSE, trim = TRUE)
}

.percent <- function(share) {
    paste0(format(round(100 * share, 1), nsmall = 1), "%")
}

.counts_listed <- function(counts) {
    if (!length(counts)) {
        return("none")
    }
    paste(names(counts), vapply(counts, .count, character(1)),
        collapse = ", ")
}

.counts_in_brackets <- function(counts) {
    if (!length(counts)) "" else paste0(" (", .counts_listed(counts), ")")
}
