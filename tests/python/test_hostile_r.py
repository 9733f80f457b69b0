"""Hostile inputs through the R package (issue 31): one Rscript session runs every case
and reports each error's classes and message as JSON; each case is one test."""
from __future__ import annotations

import json

import pytest

import bulkformer

R_CASES = {
    # case -> (R expression run with `bundle` and `counts` defined, regex the message must match)
    "nan_weights": ("load_bulkformer_model(nan_bundle)", "NaN or infinite"),
    "config_width": ("load_bulkformer_model(wide_bundle)", "config.json.*model.dim 32"),
    # a tximport list is read as one (test-tximport.R); what it decides itself is refused
    "tximport_list": ("bulkformerImpute(list(abundance = counts, counts = counts, length = counts, "
                      "countsFromAbundance = 'no'), bundle, lengths = counts)",
                      r"tximport result, which sets lengths itself: leave lengths out"),
    "other_list": ("bulkformerImpute(list(counts = counts), bundle)",
                   r"x is a list: pass a genes x samples matrix, a SummarizedExperiment, or a tximport result"),
    "huge_counts": ("{m <- counts; m[1, 1] <- 1.7e308; bulkformerImpute(m, bundle)}", r"above 1e\+15"),
    # not an error: the mapping message, turned into one here, says why genes went unmatched
    "non_coding_said": ("{m <- rbind(counts, matrix(50, 3, ncol(counts), dimnames = list(c('ENSG00000251562', "
                        "'ENSG00000245532', 'ENSG00000229807'), colnames(counts)))); "
                        "withCallingHandlers(bulkformerImpute(m, bundle, progress = FALSE), "
                        "bulkformer_mapping_message = function(c) stop(conditionMessage(c)))}",
                        "; 3 input genes are not in the vocabulary \\(non-coding"),
}

SCRIPT = r"""
suppressPackageStartupMessages(library(bulkformer))
args <- commandArgs(trailingOnly = TRUE)
bundle <- args[1]; nan_bundle <- args[2]; wide_bundle <- args[3]
counts <- as.matrix(read.csv(args[4], row.names = 1, check.names = FALSE))
counts <- t(counts)
cases <- jsonlite::fromJSON(args[5])
results <- list()
for (name in names(cases)) {
    results[[name]] <- tryCatch({
        eval(parse(text = cases[[name]]))
        list(classes = "none", message = "")
    }, error = function(e) list(classes = class(e), message = conditionMessage(e)))
}
writeLines(jsonlite::toJSON(results, auto_unbox = TRUE), args[6])
"""


@pytest.fixture(scope="module")
def r_results(installed_r_library, tmp_path_factory):
    import shutil

    from safetensors.torch import load_file, save_file

    from tests.r_helpers import run_rscript

    root = tmp_path_factory.mktemp("hostile_r")
    model = bulkformer.tiny_bundle(root / "model", n_genes=80)
    for name in ("nan", "wide"):
        shutil.copytree(root / "model", root / name)
        (root / name / "checksums.json").unlink(missing_ok=True)
    graph = load_file(str(root / "nan" / "graph.safetensors"))
    graph["edge_weight"][0] = float("nan")
    save_file(graph, str(root / "nan" / "graph.safetensors"))
    doc = json.loads((root / "wide" / "config.json").read_text())
    doc["model"]["dim"] = 32
    (root / "wide" / "config.json").write_text(json.dumps(doc))
    sim = bulkformer.simulate_cohort(n_samples=3, vocabulary=model.genes, n_genes=None, seed=1, missing_fraction=0.0)
    sim.counts.to_csv(root / "counts.csv")
    (root / "script.R").write_text(SCRIPT)
    run_rscript([str(root / "script.R"), str(root / "model"), str(root / "nan"), str(root / "wide"),
                 str(root / "counts.csv"), json.dumps({k: v[0] for k, v in R_CASES.items()}), str(root / "out.json")],
                library=installed_r_library, cwd=root, timeout=600)
    return json.loads((root / "out.json").read_text())


@pytest.mark.parametrize("case", sorted(R_CASES))
def test_hostile_r(case, r_results):
    import re

    result = r_results[case]
    assert "error" in result["classes"], result
    assert re.search(R_CASES[case][1], result["message"]), result["message"]
    assert "Traceback" not in result["message"] and "Rcpp" not in result["message"]
