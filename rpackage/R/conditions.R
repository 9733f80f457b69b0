# Calls into Python, and Python's errors and warnings as R conditions.
#
# reticulate 1.28 keeps only the text of a Python exception, so calls go
# through bulkformer.errors.call, which hands back the exception's fields
# (bulkformer.errors.describe): its classes, the argument at fault, the value
# it was given, what to do. Nothing here reads the message text.

# Call the Python function `fn` with R arguments (converted by
# .python_arguments; `.lists` names those that must be Python lists). Returns
# the Python result unconverted; a Python exception becomes an R error of the
# package's classes (see .python_condition), Python UserWarnings R warnings.
.py_invoke <- function(fn, ..., .lists = character(), .call = NULL) {
    args <- .python_arguments(list(...), .lists)
    errors <- reticulate::import("bulkformer.errors", convert = FALSE)
    py_warnings <- reticulate::import("warnings", convert = FALSE)
    recorder <- py_warnings$catch_warnings(record = TRUE)
    caught <- recorder$`__enter__`()
    on.exit({
        recorder$`__exit__`(NULL, NULL, NULL)
        .relay_python_warnings(caught, errors, .call)
    }, add = TRUE)
    outcome <- do.call(errors$call, c(list(fn), args))
    if (reticulate::py_to_r(reticulate::py_get_item(outcome, 0L))) {
        return(reticulate::py_get_item(outcome, 1L))
    }
    described <- reticulate::py_to_r(reticulate::py_get_item(outcome, 1L))
    condition <- .python_condition(described, "error", .call)
    stop(condition)
}

# An R condition from bulkformer.errors.describe(): classes
# bulkformer_<python class>_<kind> for the package's Python classes (e.g.
# bulkformer_gene_column_error, bulkformer_argument_error), then
# bulkformer_python_<kind>; fields `argument` (R's name for it), `value`,
# `fix`, `python_type` (the Python class) and `python_traceback`.
.python_condition <- function(described, kind = c("error", "warning"),
    call = NULL) {
    kind <- match.arg(kind)
    classes <- unlist(described$classes)
    # the package's own Python classes come before its base classes
    base <- match(c("BulkformerError", "BulkformerWarning"), classes)
    base <- if (all(is.na(base))) 1L else min(base, na.rm = TRUE)
    own <- classes[seq_len(base - 1L)]
    fix <- .r_fix(described)
    message <- described$message
    if (!identical(fix, described$fix)) {
        message <- paste0(described$problem, described$joiner, fix)
    }
    layout <- !is.null(described$argument) &&
        described$argument %in% c("orientation", "samples")
    .condition(message, kind, call,
        class = c(
            if (length(own)) paste0("bulkformer_", .snake_case(own)),
            paste0("bulkformer_python_", kind),
            if (kind == "error") "bulkformer_error"
        ),
        argument = .r_argument(described$argument),
        value = if (!layout) .simplify(described$value),
        fix = fix, python_type = classes[1],
        python_traceback = described$traceback)
}

# A condition of kind "error", "warning" or "message" with the classes
# `class` before it, and further fields in `...`.
.condition <- function(message, kind, call = NULL, class = character(),
    ...) {
    structure(class = c(class, kind, "condition"),
        list(message = message, call = call, ...))
}

# The fix in R's terms: R's own advice where the Python argument is one that R
# fixes (the layout), a suggested value in R syntax, else Python's words.
.r_fix <- function(described) {
    argument <- described$argument
    if (!is.null(argument) && argument %in% c("orientation", "samples")) {
        return(.r_owned_arguments[[argument]])
    }
    suggestion <- described$suggestion
    if (length(suggestion)) {
        values <- vapply(suggestion, function(value) {
            paste(deparse(.simplify(value)), collapse = "")
        }, character(1))
        return(paste0("pass ", paste(
            vapply(names(suggestion), .r_argument, character(1)), "=", values,
            collapse = ", "
        )))
    }
    described$fix
}

# ArgumentError -> argument_error; GeneColumnError -> gene_column_error
.snake_case <- function(names) {
    tolower(gsub("([a-z0-9])([A-Z])", "\\1_\\2", names))
}

# A Python list of scalars arrives as an R list; as a vector it prints well.
.simplify <- function(value) {
    if (is.list(value) && length(value) &&
        all(vapply(value, function(v) is.atomic(v) && length(v) == 1L,
            logical(1)))) {
        return(unlist(value, use.names = FALSE))
    }
    value
}

.relay_python_warnings <- function(caught, errors, call) {
    builtins <- reticulate::import_builtins(convert = FALSE)
    for (index in seq_len(reticulate::py_len(caught)) - 1L) {
        record <- reticulate::py_get_item(caught, index)
        user <- builtins$issubclass(record$category, builtins$UserWarning)
        if (!reticulate::py_to_r(user)) next
        described <- reticulate::py_to_r(errors$describe(record$message))
        # anndata's, on the AnnData made from x: repeated genes are summed and
        # reported by the engine, repeated samples are an error of its own
        if (any(startsWith(described$message, c(
            "Observation names are not unique",
            "Variable names are not unique"
        )))) {
            next
        }
        condition <- .python_condition(described, "warning", call)
        warning(condition)
    }
}
