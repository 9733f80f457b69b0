library(testthat)
library(bulkformer)

test_check("bulkformer")
