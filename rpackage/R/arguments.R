# R values -> Python arguments, in this one place. reticulate's own conversion
# sends as.integer(NULL) as [] and 300 as 300.0, factors as their codes, NA as
# True and drops names; every call into Python goes through .python_arguments()
# so that each R value arrives as what the Python signature expects.

# One value: NULL and NA -> None; factors -> text; whole doubles -> int;
# named vectors -> pandas Series indexed by the names; other vectors -> list
# (length 1 -> scalar unless `as.list`); matrices, lists and Python objects
# as reticulate converts them.
.to_python <- function(x, as.list = FALSE) {
    if (is.null(x) || inherits(x, "python.builtin.object")) {
        return(x)
    }
    if (is.factor(x)) {
        x <- stats::setNames(as.character(x), names(x))
    }
    if (!is.atomic(x) || !is.null(dim(x))) {
        return(reticulate::r_to_py(x))
    }
    if (length(x) == 1L && is.na(x) && !as.list) {
        return(reticulate::py_none())
    }
    if (.whole_numbers(x)) {
        x <- stats::setNames(as.integer(x), names(x))
    }
    if (!is.null(names(x)) && !as.list) {
        pandas <- reticulate::import("pandas", convert = FALSE)
        return(pandas$Series(as.list(unname(x)), index = as.list(names(x))))
    }
    if (as.list || length(x) != 1L) {
        return(reticulate::r_to_py(as.list(unname(x))))
    }
    reticulate::r_to_py(unname(x))
}

.whole_numbers <- function(x) {
    is.double(x) && length(x) > 0L && all(is.finite(x)) &&
        all(x == round(x)) && all(abs(x) <= .Machine$integer.max)
}

# A named list of R arguments -> Python objects; the names in `lists` always
# become Python lists (gene and sample names, even a single one).
.python_arguments <- function(args, lists = character()) {
    converted <- lapply(seq_along(args), function(i) {
        name <- names(args)[i]
        .to_python(args[[i]], as.list = !is.null(name) && name %in% lists)
    })
    names(converted) <- names(args)
    converted
}

# Character vector -> Python list of str, for values built inside the package.
.py_list <- function(x) {
    if (is.null(x)) {
        return(NULL)
    }
    .to_python(as.character(x), as.list = TRUE)
}

# Python names of the arguments that R spells otherwise. Errors name the R
# argument (`argument` field) by this table; Python arguments with no R
# counterpart keep their names (they are passed through `...`).
.r_argument_names <- c(
    batch_size = "batch.size", gene_names = "gene.column",
    layer = "assay.type", which = "predicted",
    orientation = "x", samples = "x"
)

.r_argument <- function(python.name) {
    if (is.null(python.name)) {
        return(NULL)
    }
    known <- .r_argument_names[python.name]
    if (is.na(known)) python.name else unname(known)
}

# What to do instead, where R takes a Python argument under another name or
# fixes it (genes are rows): passed through `...` they would clash or mislead,
# and a Python error's advice about them is replaced by this.
.layout_advice <- paste(
    "genes are the rows of x (rownames: gene IDs, or for a",
    "SummarizedExperiment the rowData column named by gene.column) and",
    "samples its columns; transpose a samples x genes matrix with t(x)"
)
.r_owned_arguments <- c(
    orientation = .layout_advice, gene_names = .layout_advice,
    samples = .layout_advice,
    batch_size = "use batch.size = ...",
    layer = "choose the assay of a SummarizedExperiment with assay.type = ...",
    which = "use predicted = TRUE for predictions at every gene"
)
