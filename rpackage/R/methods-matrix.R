#' @include generics.R convert.R
NULL

# Impute a genes x samples matrix; returns the SummarizedExperiment described
# in ?bulkformerImpute with colData `col.data` (or the sample names) and the
# entries of `metadata` (the input's) next to its own.
.impute_matrix <- function(mat, model, input, lengths, predicted, batch.size,
    device, progress, python.args, col.data = NULL, metadata = list(),
    annotations = NULL) {
    .check_flag(predicted, "predicted")
    execution <- .execution_arguments(batch.size, device, progress,
        python.args)
    model <- .as_model(model)
    inference <- .py_module("bulkformer.inference")
    result <- do.call(.py_invoke, c(
        list(inference$run_imputation),
        .data_arguments(mat, input, lengths, annotations), list(model),
        execution))
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
    # the input row(s) behind each measured gene, to join results back to x
    # (NA: unmeasured)
    input.ids <- reticulate::py_to_r(result$input_ids)
    genes$input_id <- vapply(input.ids, function(id) {
        if (is.null(id)) NA_character_ else id
    }, character(1))
    if (is.null(col.data)) {
        col.data <- S4Vectors::DataFrame(row.names = samples)
    }
    rownames(col.data) <- samples
    report <- .mapping_report(.py_dict(result$report$to_dict()))
    metadata[c("mapping_report", "bulkformer_model")] <- list(
        report, .py_dict(result$model))
    .announce_mapping(report)
    SummarizedExperiment::SummarizedExperiment(assays = assays,
        rowData = genes, colData = col.data, metadata = metadata)
}

# "default" pooling leaves the choice to the model's layout (NULL reaches
# Python as None).
.pooling <- function(aggregate) if (identical(aggregate, "default")) NULL else
    aggregate

# Sample embeddings (samples x features matrix, attributes "mapping_report",
# "model" and "aggregate") or, at gene level, the path of the on-disk store.
.embed_matrix <- function(mat, model, level, aggregate, genes, out, dtype,
    input, lengths, batch.size, device, progress, python.args,
    annotations = NULL) {
    execution <- .execution_arguments(batch.size, device, progress,
        python.args)
    model <- .as_model(model)
    bf <- .py_module()
    # level / out combinations are checked by the engine
    if (!is.null(out)) out <- path.expand(out)
    embedded <- do.call(.py_invoke, c(
        list(bf$embed), .data_arguments(mat, input, lengths, annotations),
        list(model),
        list(level = level, aggregate = aggregate, genes = genes, out = out,
            dtype = dtype),
        execution, list(.lists = .list_arguments)))
    if (level == "gene") {
        return(as.character(reticulate::py_str(embedded)))
    }
    if (!is.null(annotations)) {
        # an AnnData in (genes x samples), an AnnData out: the embedding is
        # its varm entry
        stored <- embedded$uns$get("bulkformer")
        embedding <- .py_numeric(embedded$varm$get("X_bulkformer"))
        dimnames(embedding) <- list(colnames(mat),
            paste0("bf_", seq_len(ncol(embedding)) - 1L))
        report <- stored$get("mapping_report")
        model.record <- stored$get("model")
        pooling <- stored$get("aggregate")
    } else {
        embedding <- .py_numeric(embedded$to_numpy())
        dimnames(embedding) <- list(
            .py_strings(embedded$index$astype("str")$tolist()),
            .py_strings(embedded$columns$astype("str")$tolist()))
        report <- embedded$attrs$get("mapping_report")
        model.record <- embedded$attrs$get("model")
        pooling <- embedded$attrs$get("aggregate")
    }
    attr(embedding, "mapping_report") <- .mapping_report(.py_dict(report))
    attr(embedding, "model") <- .py_dict(model.record)
    attr(embedding, "aggregate") <- as.character(pooling)
    .announce_mapping(attr(embedding, "mapping_report"))
    embedding
}

#' @rdname bulkformerImpute
#' @export
setMethod("bulkformerImpute", "matrix", function(x, model,
    input = c("counts", "tpm", "logtpm"), lengths = NULL, predicted = FALSE,
    batch.size = 16L, device = NULL, progress = interactive(), ...) {
    # the data's errors come before the model is loaded
    mat <- .expression_matrix(x)
    .impute_matrix(mat, model, match.arg(input), lengths, predicted,
        batch.size, device, progress, list(...))
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "matrix", function(x, model,
    level = c("sample", "gene"),
    aggregate = c("default", "max", "mean", "median", "all", "observed_mean"),
    genes = NULL, out = NULL, dtype = c("float32", "float16"),
    input = c("counts", "tpm", "logtpm"), lengths = NULL, batch.size = 16L,
    device = NULL, progress = interactive(), ...) {
    # the data's errors come before the model is loaded
    mat <- .expression_matrix(x)
    .embed_matrix(mat, model, match.arg(level),
        .pooling(match.arg(aggregate)), genes, out, match.arg(dtype),
        match.arg(input), lengths, batch.size, device, progress, list(...))
})

# data.frame and other matrix-like objects (sparse Matrix, DelayedArray) are
# converted before the call, into a variable: as the call's argument, an
# error would come wrapped in S4 dispatch text.

#' @rdname bulkformerImpute
#' @export
setMethod("bulkformerImpute", "data.frame", function(x, model, ...) {
    mat <- .expression_matrix(x)
    bulkformerImpute(mat, model, ...)
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "data.frame", function(x, model, ...) {
    mat <- .expression_matrix(x)
    bulkformerEmbed(mat, model, ...)
})

#' @rdname bulkformerImpute
#' @details Other matrix-like objects (sparse `Matrix`, `DelayedArray`) are
#'   converted with `as.matrix()`.
#' @export
setMethod("bulkformerImpute", "ANY", function(x, model, ...) {
    mat <- .expression_matrix(x)
    bulkformerImpute(mat, model, ...)
})

#' @rdname bulkformerEmbed
#' @export
setMethod("bulkformerEmbed", "ANY", function(x, model, ...) {
    mat <- .expression_matrix(x)
    bulkformerEmbed(mat, model, ...)
})
