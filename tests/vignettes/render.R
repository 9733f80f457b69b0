# Render one R Markdown vignette to self-contained HTML (figures inlined as base64).
# Usage: Rscript render.R input.Rmd
# The driver passes a copy inside a scratch directory, so knitting (figure files,
# intermediates) happens there and never next to the sources.
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 1L)
rmarkdown::render(args[[1]], envir = new.env(), quiet = TRUE)
