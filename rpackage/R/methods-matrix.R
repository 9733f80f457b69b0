#' @include generics.R convert.R
NULL

# Impute a genes x samples matrix; returns the SummarizedExperiment described in
# ?bulkformerImpute with colData `col.data` (or the sample names) and the entries of
# `metadata` (the input's) next to its own.
.impute_matrix <- function(mat, model, input, lengths, predicted, batch.size, device, progress,
                           python.args, col.data = NULL, metadata = list(), annotations = NULL) {
    .check_flag(predicted, "predicted")
    execution <- .execution_arguments(batch.size, device, progress, python.args)
    model <- .as_model(model)
    inference <- .py_module("bulkformer.inference")
    result <- .bf_call(do.call(inference$run_imputation, c(
        .data_arguments(mat, input, lengths, annotations), list(model), execution
    )))
    samples <- .py_strings(result$sample_ids)
    gene_ids <- .py_strings(result$gene_ids)
    as_genes_by_samples <- function(values) {
        values <- t(.py_numeric(values))
        dimnames(values) <- list(gene_ids, samples)
        values
    }
    assays <- list(logtpm = as_genes_by_samples(result$observed),
                   imputed = as_genes_by_samples(result$imputed))
    if (predicted) {
        assays$predicted <- as_genes_by_samples(result$predicted)
    }
    genes <- bulkformerVocabulary(model)[gene_ids, , drop = FALSE]
    genes$measured <- as.logical(reticulate::py_to_r(result$measured))
    # the input row(s) behind each measured gene, to join results back to x (NA: unmeasured)
    input.ids <- reticulate::py_to_r(result$input_ids)
    genes$input_id <- vapply(input.ids, function(id) if (is.null(id)) NA_character_ else id, character(1))
    if (is.null(col.data)) {
        col.data <- S4Vectors::DataFrame(row.names = samples)
    }
    rownames(col.data) <- samples
    metadata[c("mapping_report", "bulkformer_model")] <- list(
        .py_dict(result$report$to_dict()), .py_dict(result$model)
    )
    SummarizedExperiment::SummarizedExperiment(
        assays = assays, rowData = genes, colData = col.data, metadata = metadata
    )
}

# Sample embeddings (samples x features matrix, attributes "mapping_report" and
# "model") or, at gene level, the path of the on-disk store.
.embed_matrix <- function(mat, model, level, aggregate, genes, out, dtype, input, lengths,
                          batch.size, device, progress, python.args, annotations = NULL) {
    execution <- .execution_arguments(batch.size, device, progress, python.args)
    model <- .as_model(model)
    bf <- .py_module()
    # level / out combinations are checked by the engine (its message is put in R terms by .r_advice)
    if (!is.null(out)) out <- path.expand(out)
    embedded <- .bf_call(do.call(bf$embed, c(
        .data_arguments(mat, input, lengths, annotations), list(model),
        list(level = level, aggregate = aggregate, genes = .py_list(genes), out = out, dtype = dtype),
        execution
    )))
    if (level == "gene") {
        return(as.character(reticulate::py_str(embedded)))
    }
    if (!is.null(annotations)) {
        # an AnnData in (genes x samples), an AnnData out: the embedding is its varm entry
        stored <- embedded$uns$get("bulkformer")
        embedding <- .py_numeric(embedded$varm$get("X_bulkformer"))
        dimnames(embedding) <- list(colnames(mat), paste0("bf_", seq_len(ncol(embedding)) - 1L))
        attr(embedding, "mapping_report") <- .py_dict(stored$get("mapping_report"))
        attr(embedding, "model") <- .py_dict(stored$get("model"))
        return(embedding)
    }
    embedding <- .py_numeric(embedded$to_numpy())
    dimnames(embedding) <- list(.py_strings(embedded$index$astype("str")$tolist()),
                                .py_strings(embedded$columns$astype("str")$tolist()))
    attr(embedding, "mapping_report") <- .py_dict(embedded$attrs$get("mapping_report"))
    attr(embedding, "model") <- .py_dict(embedded$attrs$get("model"))
    embedding
}

#' @rdname bulkformerImpute
#' @export
setMethod("bulkformerImpute", "matrix", function(x, model, input = c("counts", "tpm", "logtpm"),
                                                 lengths = NULL, predicted = FALSE, batch.size = 16L,
                                                 device = NULL, progress = interactive(), ...) {
    mat <- .expression_matrix(x)  # the data's errors come before the model is loaded
    .impute_matrix(mat, model, match.arg(input), lengths, predicted, batch.size, device, progress, list(...))
})

#' @rdname bulkformerImpute
#' @export
setMethod("bulkformerImpute", "data.frame", function(x, model, ...) {
    # converted before the call: as its argument, an error would come wrapped in S4 dispatch text
    mat <- .expression_matrix(x)
    bulkformerImpute(mat, model, ...)
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "matrix", function(x, model, level = c("sample", "gene"),
                                                aggregate = c("max", "mean", "median", "all"),
                                                genes = NULL, out = NULL, dtype = c("float32", "float16"),
                                                input = c("counts", "tpm", "logtpm"), lengths = NULL,
                                                batch.size = 16L, device = NULL,
                                                progress = interactive(), ...) {
    mat <- .expression_matrix(x)  # the data's errors come before the model is loaded
    .embed_matrix(mat, model, match.arg(level), match.arg(aggregate), genes, out,
                  match.arg(dtype), match.arg(input), lengths, batch.size, device, progress, list(...))
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "data.frame", function(x, model, ...) {
    # converted before the call: as its argument, an error would come wrapped in S4 dispatch text
    mat <- .expression_matrix(x)
    bulkformerEmbed(mat, model, ...)
})

#' @rdname bulkformerImpute
#' @details Other matrix-like objects (sparse `Matrix`, `DelayedArray`) are
#'   converted with `as.matrix()`.
#' @export
setMethod("bulkformerImpute", "ANY", function(x, model, ...) {
    # converted before the call: as its argument, an error would come wrapped in S4 dispatch text
    mat <- .expression_matrix(x)
    bulkformerImpute(mat, model, ...)
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "ANY", function(x, model, ...) {
    # converted before the call: as its argument, an error would come wrapped in S4 dispatch text
    mat <- .expression_matrix(x)
    bulkformerEmbed(mat, model, ...)
})
