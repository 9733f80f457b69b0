# R data -> the data arguments of the Python API, and Python results -> R.
# No expression logic lives here: matrices (a SummarizedExperiment as an
# AnnData with its rowData) go to Python as genes x samples with
# orientation = "genes_by_samples", and results come back as they are.

.py_strings <- function(x) {
    as.character(unlist(reticulate::py_to_r(x), use.names = FALSE))
}

# numpy float array (any shape) -> R array with NA (not NaN) where Python has
# NaN.
.py_numeric <- function(x) {
    values <- reticulate::py_to_r(x)
    values[is.nan(values)] <- NA_real_
    values
}

.py_dict <- function(x) {
    if (is.null(x) || inherits(x, "python.builtin.NoneType")) {
        return(NULL)
    }
    reticulate::py_to_r(x)
}

# Empty inputs stop here, before any other check could misname the problem.
.check_not_empty <- function(x, what = "x") {
    dims <- dim(x)
    if (length(dims) != 2L) {
        return(invisible(x))
    }
    if (dims[1] == 0L) stop(what, " has no genes (0 rows)", call. = FALSE)
    if (dims[2] == 0L) stop(what, " has no samples (0 columns)", call. = FALSE)
    invisible(x)
}

# A numeric genes x samples matrix with gene IDs as rownames and sample names
# as colnames (sample1, sample2, ... when it has none, as for a
# SummarizedExperiment).
.expression_matrix <- function(x, what = "x") {
    .check_not_empty(x, what)
    if (is.data.frame(x)) {
        numeric <- vapply(x, is.numeric, logical(1))
        if (!all(numeric)) {
            stop(what, " has non-numeric columns (",
                paste(names(x)[!numeric], collapse = ", "), "); give genes ",
                "as rownames and one numeric column per sample", call. = FALSE)
        }
    }
    mat <- as.matrix(x)
    if (!is.numeric(mat)) {
        stop(what, " must be numeric (genes x samples), not ", typeof(mat),
            call. = FALSE)
    }
    if (is.null(rownames(mat))) {
        stop(what, " has no rownames: give gene IDs (Ensembl IDs or symbols) ",
            "as rownames", call. = FALSE)
    }
    if (is.null(colnames(mat))) {
        colnames(mat) <- paste0("sample", seq_len(ncol(mat)))
    }
    # double, so that NA reaches Python as NaN (an integer NA would be -2^31)
    storage.mode(mat) <- "double"
    mat
}

# lengths argument for prepare(): NULL, a named vector (gene -> bp; converted
# by .to_python) or a genes x samples matrix aligned with the data (tximport
# avgTxLength).
.py_lengths <- function(lengths, mat) {
    if (is.null(lengths)) {
        return(NULL)
    }
    if (is.matrix(lengths) || methods::is(lengths, "Matrix") ||
        is.data.frame(lengths)) {
        lengths <- as.matrix(lengths)
        if (!identical(dim(lengths), dim(mat))) {
            stop("lengths must have the same genes x samples dimensions as ",
                "the data (", paste(dim(mat), collapse = " x "), "), got ",
                paste(dim(lengths), collapse = " x "), call. = FALSE)
        }
        storage.mode(lengths) <- "double"
        return(lengths)
    }
    if (is.numeric(lengths) && !is.null(names(lengths))) {
        return(stats::setNames(as.numeric(lengths), names(lengths)))
    }
    stop("lengths must be NULL, a named numeric vector (gene ID -> length in ",
        "bp) or a genes x samples matrix of lengths like tximport's ",
        "avgTxLength", call. = FALSE)
}

# The data description shared by run_imputation() and embed(): a Python
# bulkformer.DataSpec built from R's arguments (the one object every Python
# function reads data through), as a one-element argument list. With
# `annotations` (a SummarizedExperiment's list(row.data =, column =)) the
# source is an AnnData whose obs are the genes, so that the engine reads the
# IDs from the rowData column `column` or, when the rownames match badly,
# names the column that matches well.
.data_arguments <- function(mat, input, lengths, annotations = NULL) {
    described <- if (is.null(annotations)) {
        list(unname(mat), genes = .py_list(rownames(mat)),
            samples = .py_list(colnames(mat)))
    } else {
        list(.py_annotated(mat, annotations$row.data, annotations$column),
            genes = annotations$column)
    }
    dataspec <- .py_module("bulkformer.dataspec")
    spec <- do.call(.py_invoke, c(list(dataspec$DataSpec), described,
        list(input = input, orientation = "genes_by_samples",
            lengths = .py_lengths(lengths, mat))))
    list(spec)
}

# Arguments that are lists in Python even when R gives one value.
.list_arguments <- c("genes", "samples")

# A genes x samples AnnData: X the matrix, obs the genes (rownames, and the
# plain rowData columns, so that the engine can check gene.column and name
# its choices), var the samples. anndata's "names are not unique" warning is
# silenced: repeated gene IDs are the engine's to report.
.py_annotated <- function(mat, row.data, gene.column) {
    anndata <- reticulate::import("anndata", convert = FALSE)
    pandas <- reticulate::import("pandas", convert = FALSE)
    genes <- pandas$DataFrame(index = .py_list(rownames(mat)))
    for (name in colnames(row.data)) {
        converted <- .py_annotation(row.data[[name]])
        if (is.null(converted) && identical(name, gene.column)) {
            stop("rowData column '", name, "' holds ",
                class(row.data[[name]])[1], " values, not gene IDs (text)",
                call. = FALSE)
        }
        # lists, Rle: never IDs
        if (!is.null(converted)) reticulate::py_set_item(genes, name, converted)
    }
    samples <- pandas$DataFrame(index = .py_list(colnames(mat)))
    reticulate::py_suppress_warnings(anndata$AnnData(
        X = reticulate::r_to_py(unname(mat)), obs = genes, var = samples))
}

# An atomic rowData column as a 1-d numpy array with its gaps kept as gaps
# (reticulate turns NA text into the string "NA", an NA integer into -2^31
# and an NA logical into True): NA text -> "", integers with NA -> text,
# logicals with NA -> numbers; NULL for columns that are not plain vectors
# (lists, Rle, nested tables).
.py_annotation <- function(column) {
    if (is.factor(column)) column <- as.character(column)
    if (!is.atomic(column) || !is.null(dim(column)) || is.complex(column) ||
        is.raw(column)) {
        return(NULL)
    }
    if (anyNA(column) && (is.integer(column) || is.character(column))) {
        column <- as.character(column)
        column[is.na(column)] <- ""
    } else if (anyNA(column) && is.logical(column)) {
        column <- as.numeric(column)
    }
    reticulate::np_array(column)
}

# Arguments of the SummarizedExperiment methods that a matrix method would
# pass on to Python.
.se_only_arguments <- c("gene.column", "assay.type", "length.assay", "name")

.execution_arguments <- function(batch.size, device, progress, python.args) {
    owned <- intersect(names(python.args), names(.r_owned_arguments))
    if (length(owned)) {
        stop("'", owned[1], "' cannot be given in R: ",
            .r_owned_arguments[[owned[1]]], call. = FALSE)
    }
    se.only <- intersect(names(python.args), .se_only_arguments)
    if (length(se.only)) {
        stop(se.only[1], " applies to SummarizedExperiment input only; for a ",
            "matrix, the rownames are the gene IDs and every column is a ",
            "sample", call. = FALSE)
    }
    .check_count(batch.size, "batch.size")
    .check_flag(progress, "progress")
    if (!is.null(device) &&
        !(is.character(device) && length(device) == 1L && !is.na(device))) {
        stop("device must be NULL (the best available) or one string such ",
            "as \"cpu\" or \"cuda\"", call. = FALSE)
    }
    c(list(batch_size = batch.size, device = device, progress = progress),
        python.args)
}

.check_flag <- function(value, argument) {
    if (!is.logical(value) || length(value) != 1L || is.na(value)) {
        stop(argument, " must be TRUE or FALSE", call. = FALSE)
    }
    invisible(value)
}

.check_count <- function(value, argument) {
    if (!is.numeric(value) || length(value) != 1L || is.na(value) ||
        value < 1 || value != round(value)) {
        stop(argument, " must be a whole number >= 1", call. = FALSE)
    }
    invisible(value)
}

# bulkformer.inference.GeneEmbeddings -> samples x genes x features array.
.py_gene_embeddings <- function(stored) {
    values <- .py_numeric(stored$values$astype("float64"))
    dimnames(values) <- list(.py_strings(stored$sample_ids),
        .py_strings(stored$gene_ids), NULL)
    attr(values, "metadata") <- .py_dict(stored$metadata)
    values
}
