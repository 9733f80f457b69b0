#' @include zzz.R
NULL

#' Impute missing genes with BulkFormer
#'
#' Maps the genes of `x` onto the model vocabulary, converts them to natural
#' log1p TPM, and fills in the vocabulary genes the data lacks with the model's
#' predictions. All computation happens in the Python package
#' (`bulkformer.inference.run_imputation`); this function converts objects.
#' Each call says in one message how the genes were matched (see
#' [bulkformerMappingReport()]; silence it
#' with [suppressMessages()]).
#'
#' Rows are genes (Ensembl IDs, versioned or not, or gene symbols), columns are
#' samples. For a SummarizedExperiment (a DESeqDataSet included) the assay
#' `assay.type` is used; for a DESeqDataSet that is the raw
#' `counts(dds)`. When an `avgTxLength` assay (tximport,
#' `DESeqDataSetFromTximport`) or a `length` assay (tximeta) is present
#' and `lengths` is not given, it gives the per-sample gene lengths for the
#' TPM conversion. Otherwise each input gene's length comes from, in order:
#' `lengths`; the model's vocabulary
#' (`bulkformerVocabulary(model)$length`); the shipped gene annotation (input
#' genes outside the vocabulary count too, since TPM is computed over all of
#' them); 1000 bp, with a warning when that is more than 5% of the input genes.
#' The mapping report's `length_sources` counts the genes per source
#' (`user`, `vocabulary`, `annotation`, `default_1000bp`, or
#' `per_sample`). Lengths apply to `input = "counts"` only: with
#' `"tpm"` or `"logtpm"` they are an error. `rowData(.)$length` of
#' the result is the vocabulary's length, whatever the conversion used.
#'
#' A tximport result (the list `tximport::tximport()` returns) can be `x`
#' as it is: with `countsFromAbundance = "no"` its counts are used with
#' `lengths = x$length`; with `"scaledTPM"`, `"lengthScaledTPM"` or
#' `"dtuScaledTPM"` its counts were made from the abundances (dividing them by
#' gene length would scale them a second time), so its abundances are used as
#' TPM (`input = "tpm"`), with a message. A SummarizedExperiment whose
#' `metadata(x)$countsFromAbundance` (tximeta) names such a setting is refused
#' as counts. A DESeqDataSet built by `DESeqDataSetFromTximport()` from such
#' counts keeps no record of it: pass the tximport list itself, or its
#' abundances with `input = "tpm"`.
#'
#' Errors raised in Python arrive as R conditions of the package's classes, e.g.
#' `bulkformer_argument_error`, `bulkformer_gene_column_error`,
#' `bulkformer_input_error` (all of class `bulkformer_python_error` and
#' `bulkformer_error`), with fields `argument` (the R argument at
#' fault), `value` (what it was given), `fix` (what to do) and
#' `python_type`; Python warnings arrive as
#' `bulkformer_python_warning`s.
#'
#' @param x A SummarizedExperiment (or DESeqDataSet), or a numeric matrix /
#'   data.frame with genes as rows and samples as columns.
#' @param model A model from
#'   [load_bulkformer_model()] or the path of a
#'   bundle.
#' @param assay.type Name or position of the assay holding the expression
#'   values; assays without names (`SummarizedExperiment(list(m))`) are chosen
#'   by position, e.g. `assay.type = 1`.
#' @param input What the values are: raw `"counts"`, `"tpm"`, or
#'   `"logtpm"` (natural log1p TPM).
#' @param gene.column For SummarizedExperiment input: the `rowData` column
#'   holding the gene IDs, e.g. `"gene_id"` when the rownames are symbols or
#'   other labels; `NULL` (default) uses the rownames, and when they match the
#'   vocabulary badly the error names a rowData column that matches well.
#'   Missing or empty IDs in the column are an error, as is a column of numbers
#'   or logicals.
#' @param lengths Gene lengths for the count -> TPM conversion: `NULL`
#'   (automatic), a named numeric vector (gene ID -> bp, named by the gene IDs
#'   of `x`, i.e. those of `gene.column` when given, or by the
#'   vocabulary's Ensembl IDs), or a genes x samples matrix aligned with the
#'   data.
#' @param length.assay For SummarizedExperiment input: the assay with per-sample
#'   lengths; by default `avgTxLength` or `length` when present. `NA`
#'   to ignore them.
#' @param predicted Also return the `predicted` assay: the model output for
#'   every vocabulary gene (denoised values for measured genes too).
#' @param batch.size Samples per forward pass.
#' @param device Torch device, e.g. `"cpu"` or `"cuda"`; `NULL`
#'   picks the best available (CUDA, then Apple MPS, then CPU) and moves the
#'   model there.
#' @param progress Show a progress bar.
#' @param ... For the generic, arguments of the methods. For the methods,
#'   further arguments passed on to the Python function (e.g.
#'   `precision = "bf16"`, or `min_matched_fraction = 0.1` for a targeted
#'   gene panel). The Python arguments that describe the data's layout
#'   (`orientation`, `gene_names`, `samples`) are refused: in R,
#'   genes are the rows (rownames: gene IDs, or `gene.column`) and samples the
#'   columns; transpose a samples x genes matrix with `t(x)`.
#' @return A SummarizedExperiment with one row per vocabulary gene (model order)
#'   and one column per sample:
#'   - assay `logtpm`: the observed log1p TPM, `NA` where the data
#'     lacks the gene;
#'   - assay `imputed`: observed values where measured, predictions
#'     elsewhere;
#'   - assay `predicted` (with `predicted = TRUE`): predictions for all
#'     genes;
#'   - `rowData`: `ensembl_id`, `symbol`, `length`,
#'     `measured` (logical) and `input_id`, the row name (or
#'     `gene.column` ID) of `x` that measured each gene (several joined by
#'     `;` where they were merged; `NA` where unmeasured), to join results
#'     back to `x`, e.g. to DESeq2 results. `measured` describes one call's
#'     data: before `cbind()` of results from batches that measured different
#'     genes, drop it (`rowData(x)$measured <- NULL`; per sample it is
#'     `!is.na(assay(x, "logtpm"))`), and `input_id` alike;
#'   - `colData`: that of `x` (sample names for a matrix;
#'     `sample1`, `sample2`, ... when `x` has no colnames);
#'   - `metadata(.)`: that of `x` (for a SummarizedExperiment) plus
#'     `mapping_report`, how the input genes were matched (see
#'     [bulkformerMappingReport()]), and
#'     `bulkformer_model`, which model produced the values (a list: `name`,
#'     `version`, `n_genes`, `dim`, `trained`, `FALSE` for
#'     random-weight demo models).
#' @seealso [bulkformerEmbed()],
#'   [load_bulkformer_model()],
#'   [bulkformerMappingReport()]
#' @examples
#' if (bulkformer_available()) {
#'     model <- bulkformer_tiny_model(n_genes = 100)
#'     genes <- bulkformerVocabulary(model)$ensembl_id
#'     set.seed(1)
#'     counts <- matrix(rpois(80 * 3, 50), nrow = 80,
#'         dimnames = list(genes[1:80], paste0("sample", 1:3)))
#'     se <- SummarizedExperiment::SummarizedExperiment(
#'         list(counts = counts))
#'     out <- bulkformerImpute(se, model)
#'     print(out)
#'     print(table(SummarizedExperiment::rowData(out)$measured))
#'     print(bulkformerMappingReport(out))
#'     str(S4Vectors::metadata(out)$bulkformer_model)
#' }
#' @export
setGeneric("bulkformerImpute",
    function(x, ...) standardGeneric("bulkformerImpute"))

#' Sample or gene embeddings from BulkFormer
#'
#' Runs the model on `x` and returns its representations: one vector per
#' sample (gene states aggregated with `aggregate`, optionally over a subset
#' of genes), or, with `level = "gene"`, one vector per sample and gene
#' written to an on-disk store (read it with
#' [readBulkformerGeneEmbeddings()]).
#' All computation happens in the Python package (`bulkformer.embed`). Input
#' conventions, messages and conditions are those of
#' [bulkformerImpute()].
#'
#' @inheritParams bulkformerImpute
#' @param level `"sample"` or `"gene"`.
#' @param aggregate How gene states are pooled into a sample vector:
#'   `"default"`, the model's own way (`"max"` for v1/v2 models,
#'   `"observed_mean"` for bulkformer-latest, as each release
#'   extracts them); `"max"`, `"mean"` or `"median"` over
#'   genes; `"all"`, the elementwise sum of the max, mean and median
#'   vectors (as many features as each of them, not three times as
#'   many); or `"observed_mean"`, each sample's mean over the genes it
#'   measured.
#' @param genes Optional vocabulary genes to pool over (sample level), to write
#'   (gene level) or to read back (`readBulkformerGeneEmbeddings()`), as
#'   Ensembl IDs (versioned or not) or gene symbols; `NULL` for all. Results
#'   name genes by their unversioned Ensembl IDs.
#' @param out For `level = "gene"`: path of the store to write.
#' @param name For SummarizedExperiment input: the colData column that receives
#'   the embedding. It may be new or hold an earlier embedding (which is
#'   replaced); a column of your own (a design variable, say) is never
#'   overwritten: that is an error. Several embeddings (e.g. one per
#'   `aggregate`) live side by side under different names.
#' @param dtype Storage type of gene-level embeddings, `"float32"` or
#'   `"float16"`.
#' @return
#' - sample level, SummarizedExperiment input: `x` with the samples x
#'   features embedding matrix as the colData column `name` (read it back with
#'   [bulkformerEmbedding()]) and the mapping
#'   report and model description (see
#'   [bulkformerImpute()]) in
#'   `metadata(x)$bulkformer_embedding[[name]]` (`aggregate`, the pooling
#'   used, `genes`, `mapping_report`, `model`);
#' - sample level, matrix or data.frame input: a samples x features matrix with
#'   the mapping report, the model description and the pooling used as
#'   attributes `"mapping_report"`, `"model"` and `"aggregate"`;
#' - gene level: the path of the on-disk store (read it with
#'   [readBulkformerGeneEmbeddings()]).
#' @examples
#' if (bulkformer_available()) {
#'     model <- bulkformer_tiny_model(n_genes = 100)
#'     genes <- bulkformerVocabulary(model)$ensembl_id
#'     set.seed(1)
#'     counts <- matrix(rpois(80 * 3, 50), nrow = 80,
#'         dimnames = list(genes[1:80], paste0("sample", 1:3)))
#'     se <- SummarizedExperiment::SummarizedExperiment(
#'         list(counts = counts))
#'     se <- bulkformerEmbed(se, model, aggregate = "mean")
#'     print(dim(bulkformerEmbedding(se)))
#'     # a matrix in gives a matrix out
#'     print(dim(bulkformerEmbed(counts, model)))
#'     # gene level: one vector per sample and gene, in an on-disk store
#'     store <- bulkformerEmbed(counts, model, level = "gene",
#'         out = tempfile(fileext = ".zarr"))
#'     symbols <- head(stats::na.omit(bulkformerVocabulary(model)$symbol), 2)
#'     stored <- readBulkformerGeneEmbeddings(store, genes = symbols)
#'     print(dimnames(stored)[1:2])  # samples, genes (Ensembl IDs)
#'     print(dim(stored))            # samples x genes x features
#' }
#' @export
setGeneric("bulkformerEmbed",
    function(x, ...) standardGeneric("bulkformerEmbed"))

#' Read embeddings stored by bulkformerEmbed()
#'
#' @param x A SummarizedExperiment processed by
#'   [bulkformerEmbed()].
#' @param name The colData column holding the embedding.
#' @return A samples x features numeric matrix (rownames: sample names).
#' @seealso [bulkformerEmbed()]
#' @examples
#' se <- SummarizedExperiment::SummarizedExperiment(list(
#'     counts = matrix(1:4, 2, dimnames = list(c("g1", "g2"), c("a", "b")))))
#' SummarizedExperiment::colData(se)$bulkformer <- matrix(0, 2, 3)
#' bulkformerEmbedding(se)
#' @export
bulkformerEmbedding <- function(x, name = "bulkformer") {
    if (!methods::is(x, "SummarizedExperiment")) {
        stop("bulkformerEmbedding() reads the colData of a ",
            "SummarizedExperiment, not a ", class(x)[1], "; bulkformerEmbed() ",
            "of a matrix returns the embedding matrix itself", call. = FALSE)
    }
    embedding <- SummarizedExperiment::colData(x)[[name]]
    if (is.null(embedding)) {
        stored <- names(S4Vectors::metadata(x)$bulkformer_embedding)
        stop("no embedding '", name, "' in colData(x); ", if (length(stored)) {
            paste0("its embeddings are: ", paste(stored, collapse = ", "),
                " (choose one with name = ...)")
        } else {
            "run bulkformerEmbed(x, model) first"
        }, call. = FALSE)
    }
    embedding <- as.matrix(embedding)
    rownames(embedding) <- colnames(x)
    embedding
}

#' @rdname bulkformerEmbed
#' @param path Path returned by `bulkformerEmbed(..., level = "gene")`.
#' @param samples Optional sample names to read.
#' @return `readBulkformerGeneEmbeddings()`: a samples x genes x features array
#'   (dimnames: sample names, Ensembl IDs; in the order of `samples` and
#'   `genes` when given) with the store's metadata as attribute
#'   `"metadata"`.
#' @export
readBulkformerGeneEmbeddings <- function(path, samples = NULL, genes = NULL) {
    inference <- .py_module("bulkformer.inference")
    stored <- .py_invoke(inference$read_gene_embeddings, path.expand(path),
        samples = samples, genes = genes, .lists = .list_arguments)
    .py_gene_embeddings(stored)
}
