"""Gene survival: per-gene hazard ratios of high vs low (median split) expression with
Kaplan-Meier curves (:func:`bulkformer.tasks.prognosis.gene_hazard_ratios`), run end to
end on a data set: genes asked for by any ID, survival matched by sample ID."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..arguments import check_at_least
from ..dataspec import DataSpec
from .prognosis import gene_hazard_ratios, survival_for
from .provenance import with_provenance
from .result import TaskResult
from .samples import cut_rows, samples_of


def run(data: Any, model: Any, survival: pd.DataFrame, genes: Sequence[str], *, time_col: str = "OS.time",
        event_col: str = "OS", id_length: int | None = None, n_plot: int = 4) -> TaskResult:
    """Hazard ratios of ``genes`` (Ensembl IDs, symbols or Entrez IDs of the model's
    vocabulary) on the data's log1p TPM (raw or a DataSpec), each gene tested on the
    samples that measure it; ``survival`` indexed by sample ID (matched on the first
    ``id_length`` characters when given). The result's rows are vocabulary genes, with
    ``requested_as`` saying how each was asked for."""
    from ..preprocess.vocabulary import vocabulary_positions
    from .features import logtpm_matrix, model_bundle

    spec = DataSpec.of(data)
    check_at_least(n_plot, 1, "n_plot")
    bundle = model_bundle(model)
    requested = list(genes)
    wanted = [bundle.gene_ids[p] for p in vocabulary_positions(requested, bundle, what="genes")]
    table = cut_rows(survival, id_length, first=False)
    checked = survival_for(table, samples_of(spec, id_length), time_col=time_col, event_col=event_col)
    expression = logtpm_matrix(spec, bundle)
    unmeasured = [name for name, gene in zip(requested, wanted) if gene not in expression.columns]
    if unmeasured:
        raise ValueError(f"{len(unmeasured)} of the genes asked for are vocabulary genes that no sample of the data "
                         f"measures (e.g. {unmeasured[:5]}); pick measured genes")
    expression = cut_rows(expression[wanted], id_length).loc[checked.index]
    result = gene_hazard_ratios(expression, table.loc[checked.index], time_col=time_col, event_col=event_col,
                                n_plot=n_plot)
    # rows are vocabulary (Ensembl) genes; say how each was asked for (a symbol, say)
    result.metrics.insert(result.metrics.columns.get_loc("gene") + 1, "requested_as",
                          result.metrics["gene"].map(dict(zip(wanted, requested))))
    return with_provenance(result, spec, bundle)


def figure(result: TaskResult):
    """Kaplan-Meier curves of the plotted genes' high and low groups."""
    from ..plotting import finish, grid, plot_kaplan_meier

    pred = result.predictions
    genes = result.details["plotted_genes"]
    fig, axes = grid(len(genes))
    for ax, gene in zip(axes, genes):
        rows = pred[pred["gene"] == gene]
        row = result.metrics.set_index("gene").loc[gene]
        plot_kaplan_meier(ax, rows["time"], rows["event"], rows["group"],
                          f"{gene}: HR {row['hazard_ratio']:.2f}, log-rank p {row['logrank_p']:.2g}")
    return finish(fig, result.task)
