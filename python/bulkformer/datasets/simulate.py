"""A realistic bulk RNA-seq cohort simulator with known ground truth.

Generative model (all draws from one ``numpy.random.Generator(seed)``):

1. Gene baseline: log-normal gene means, ``log TPM_g ~ N(mean_log_expression, sd_log_expression)``.
2. Co-expression modules: each gene belongs to one of ``n_modules`` modules (or none,
   ``background_fraction``) with a loading; per-sample module activities are standard
   normal latent factors.
3. Tissue and disease programs: each tissue and each non-healthy disease shifts the
   module activities (``tissue_effects``, ``disease_effects``), and each tissue has
   marker genes with an extra log-fold change.
4. Batches: a per-batch per-gene log offset (technical batch effect) and a set of genes
   the batch's assay did not measure (``missing_fraction``).
5. Counts: relative abundance ``TPM_g * length_g``, scaled to a log-normal library size
   per sample, then negative-binomial noise (gamma-Poisson, per-gene dispersion).

Labels driven by the latent module activities (so every downstream task has a signal
an expression model can find): survival (Cox-type proportional hazards, exponential
times, independent censoring), drug response (linear in module activities), gene
essentiality (dependency on a gene grows with the activity of its module).
"""
from __future__ import annotations

import json
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_directory
from ..preprocess import vocabulary_table

DEFAULT_LENGTH_BP = 1000


@dataclass
class SimulatedCohort:
    """A simulated cohort and the truth behind it.

    Observed data
      counts: samples x genes int64 raw counts (Ensembl IDs as columns), complete: the
        genes a batch did not measure are still present here (see ``measured``); use
        :meth:`batch_counts` / :meth:`observed_counts` for what a lab would really hold.
      lengths: gene -> effective length in bp (used to simulate the counts; pass it as
        ``lengths=`` to ``bulkformer.preprocess.prepare`` / ``impute`` / ``embed``).
      measured: samples x genes bool, False where the sample's batch lacks the gene.
      obs: per sample ``tissue``, ``disease``, ``batch``, ``library_size``,
        ``survival_time`` (days), ``event`` (1 = death observed, 0 = censored) and the
        true linear predictor ``risk_score`` (log hazard ratio).
      drug_response: samples x drugs, a continuous response (ln IC50-like; lower = more
        sensitive).
      essentiality: samples x target genes, a DepMap-like gene effect score (more
        negative = the sample depends more on the gene).

    Ground truth
      log_tpm: samples x genes natural log1p TPM before counting noise (what imputation
        should recover, including at unmeasured genes).
      gene_info: per gene ``module`` (-1 = none), ``loading``, ``base_log_tpm``,
        ``dispersion``, ``marker_of`` (tissue name or "").
      module_activity: samples x modules, the latent activities (tissue and disease
        programs included).
      missing_genes: batch -> list of genes its assay lacks.
      survival_coefficients: module -> log hazard ratio per unit activity.
      drug_weights: drugs x modules, the true linear weights of ``drug_response``.
      essentiality_truth: per target gene ``module``, ``common_essential`` (bool),
        ``base_effect``, ``slope`` (effect per unit module activity).
      params: the simulator's arguments.
    """

    counts: pd.DataFrame
    lengths: pd.Series
    measured: pd.DataFrame
    obs: pd.DataFrame
    drug_response: pd.DataFrame
    essentiality: pd.DataFrame
    log_tpm: pd.DataFrame
    gene_info: pd.DataFrame
    module_activity: pd.DataFrame
    missing_genes: dict[str, list[str]]
    survival_coefficients: pd.Series
    drug_weights: pd.DataFrame
    essentiality_truth: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_ids(self) -> list[str]:
        return self.counts.index.tolist()

    @property
    def gene_ids(self) -> list[str]:
        return self.counts.columns.tolist()

    def batch_counts(self, batch: str) -> pd.DataFrame:
        """The counts of one batch, restricted to the genes that batch measured."""
        if batch not in self.missing_genes:
            raise ValueError(f"unknown batch {batch!r}; the cohort has {sorted(self.missing_genes)}")
        rows = self.obs.index[self.obs["batch"] == batch]
        keep = self.counts.columns.difference(pd.Index(self.missing_genes[batch]), sort=False)
        return self.counts.loc[rows, keep]

    def observed_counts(self) -> pd.DataFrame:
        """Counts as float with NaN where the sample's batch did not measure the gene."""
        return self.counts.astype(np.float64).where(self.measured)

    def drug_response_long(self) -> pd.DataFrame:
        """``drug_response`` as the long table the drug-response task reads: one row per
        (``cell_line``, ``drug``) with its ``response``."""
        long = self.drug_response.stack().rename("response").reset_index()
        return long.set_axis(["cell_line", "drug", "response"], axis=1)

    def drug_descriptors(self) -> pd.DataFrame:
        """One indicator column per drug: the simulator has no chemistry, so drugs are told
        apart by identity alone (the true mechanisms, ``drug_weights``, stay hidden)."""
        drugs = self.drug_response.columns
        return pd.DataFrame(np.eye(len(drugs)), index=pd.Index(drugs, name="drug"),
                            columns=[f"is_{drug}" for drug in drugs])

    def save(self, path: str | Path, shards: int = 1) -> Path:
        """Write the cohort to a directory (atomically): ``counts.parquet`` (every gene of every
        sample; ``measured.parquet`` says which genes each sample's batch measured) and, with
        ``shards`` > 1, about that many ``shards/part-NNNN.parquet`` (e.g. for ``bulkformer
        pretrain``), each from one batch and holding only the genes that batch measured,
        ``lengths.tsv``, ``obs.tsv``, ``measured.parquet``, the label tables (drug responses
        also long, ``drug_responses_long.tsv``, with ``drug_descriptors.tsv``: the inputs of
        ``bulkformer evaluate drug-response``) and the truth
        (``log_tpm.parquet``, ``gene_info.tsv``, ``module_activity.tsv``, ``drug_weights.tsv``,
        ``essentiality_truth.tsv``, ``survival_coefficients.tsv``, ``missing_genes.json``,
        ``params.json``)."""
        path = Path(path)
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        with atomic_directory(path, marker="params.json", what="a simulated cohort") as staging:
            self.counts.to_parquet(staging / "counts.parquet")
            if shards > 1:
                (staging / "shards").mkdir()
                for i, part in enumerate(self._shard_blocks(shards)):
                    part.to_parquet(staging / "shards" / f"part-{i:04d}.parquet")
            self.lengths.to_frame().to_csv(staging / "lengths.tsv", sep="\t")
            self.obs.to_csv(staging / "obs.tsv", sep="\t")
            self.measured.to_parquet(staging / "measured.parquet")
            self.log_tpm.to_parquet(staging / "log_tpm.parquet")
            for name in ("drug_response", "essentiality", "gene_info", "module_activity", "drug_weights",
                         "essentiality_truth"):
                getattr(self, name).to_csv(staging / f"{name}.tsv", sep="\t")
            self.drug_response_long().to_csv(staging / "drug_responses_long.tsv", sep="\t", index=False)
            self.drug_descriptors().to_csv(staging / "drug_descriptors.tsv", sep="\t")
            self.survival_coefficients.to_frame().to_csv(staging / "survival_coefficients.tsv", sep="\t")
            (staging / "missing_genes.json").write_text(json.dumps(self.missing_genes) + "\n")
            (staging / "params.json").write_text(json.dumps(self.params, indent=2) + "\n")
        return path

    def _shard_blocks(self, shards: int) -> list[pd.DataFrame]:
        """About ``shards`` blocks of samples, each from one batch and holding only the genes
        that batch measured: as a lab's files are, so that a corpus read from the shards lacks
        genes the way the in-memory cohort does."""
        blocks = []
        for batch in sorted(self.missing_genes):
            counts = self.batch_counts(batch)
            n_parts = max(1, round(shards * len(counts) / len(self.counts)))
            blocks += [counts.iloc[rows] for rows in np.array_split(np.arange(len(counts)), n_parts) if len(rows)]
        return blocks

    def observed_log_tpm(self) -> pd.DataFrame:
        """log1p TPM computed from the noisy counts, NaN where not measured."""
        per_kb = self.counts.to_numpy(np.float64) / (self.lengths.to_numpy(np.float64) / 1000.0)
        tpm = per_kb / per_kb.sum(axis=1, keepdims=True) * 1e6
        return pd.DataFrame(np.log1p(tpm), index=self.counts.index, columns=self.counts.columns).where(self.measured)


@dataclass(frozen=True)
class CohortDesign:
    """The generative model's knobs (see the module docstring and :func:`simulate_cohort`)."""

    n_tissues: int = 4
    n_diseases: int = 2
    n_batches: int = 3
    n_modules: int = 20
    background_fraction: float = 0.3
    tissue_marker_fraction: float = 0.02
    mean_log_expression: float = 1.0
    sd_log_expression: float = 1.5
    module_strength: float = 0.8
    noise_sd: float = 0.25
    batch_effect_sd: float = 0.1
    missing_fraction: float = 0.1
    library_size: float = 2e7
    library_size_sd: float = 0.4
    dispersion: float = 0.05
    n_drugs: int = 5
    n_essential_genes: int = 50
    median_survival_days: float = 1500.0
    censoring_fraction: float = 0.3


def simulate_cohort(
    n_samples: int = 300,
    vocabulary: Any = None,
    seed: int = 0,
    *,
    n_genes: int | None = 2000,
    design: CohortDesign | None = None,
    **knobs: Any,
) -> SimulatedCohort:
    """Simulate a bulk RNA-seq cohort with known ground truth (see :class:`SimulatedCohort`).

    ``vocabulary``: None (the shipped ``bulkformer.annotation.default_vocabulary()``),
    a Bundle, or a DataFrame with ``ensembl_id`` (and optionally ``length``). The cohort
    covers the first ``n_genes`` vocabulary genes (None: all of them). Deterministic
    given ``seed``.

    ``design`` (a :class:`CohortDesign`) holds the generative model's knobs; ``knobs`` are
    its fields as keywords, laid over it (see the module docstring):
    ``n_tissues``, ``n_diseases`` (including "healthy"), ``n_batches``; ``n_modules``
    co-expression modules, ``background_fraction`` of the genes in none, loadings scaled by
    ``module_strength``, ``tissue_marker_fraction`` of the genes markers of each tissue;
    gene baselines ``log TPM ~ N(mean_log_expression, sd_log_expression)``, per-sample
    noise ``noise_sd`` and batch offsets ``batch_effect_sd`` (log scale);
    ``missing_fraction`` of the genes unmeasured per batch; library sizes log-normal around
    ``library_size`` (``library_size_sd``); negative-binomial ``dispersion``; ``n_drugs``
    drug responses, ``n_essential_genes`` essentiality targets; survival with baseline
    median ``median_survival_days`` and about ``censoring_fraction`` censored.

    Example::

        cohort = bulkformer.simulate_cohort(n_samples=200, n_genes=1000, seed=1)
        cohort.counts.shape, cohort.obs["tissue"].value_counts()
    """
    unknown = sorted(set(knobs) - set(CohortDesign.__dataclass_fields__))
    if unknown:
        raise TypeError(f"simulate_cohort() got an unexpected keyword argument {unknown[0]!r}")
    chosen = replace(design or CohortDesign(), **knobs)
    (n_tissues, n_diseases, n_batches, n_modules, background_fraction, tissue_marker_fraction, mean_log_expression,
     sd_log_expression, module_strength, noise_sd, batch_effect_sd, missing_fraction, library_size, library_size_sd,
     dispersion, n_drugs, n_essential_genes, median_survival_days, censoring_fraction) = astuple(chosen)
    _check_arguments(n_samples, n_tissues, n_diseases, n_batches, n_modules, background_fraction,
                     missing_fraction, dispersion, censoring_fraction)
    genes = vocabulary_table(vocabulary, n_genes)
    rng = np.random.default_rng(seed)
    n = n_samples
    gene_ids = genes["ensembl_id"].tolist()
    g = len(gene_ids)
    sample_ids = [f"SIM{i + 1:05d}" for i in range(n)]

    lengths = genes["length"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    drawn = np.exp(rng.normal(np.log(2500.0), 0.6, size=g)).round()
    lengths = np.where(np.isnan(lengths) | (lengths <= 0), drawn, lengths)

    # genes: baseline, modules, loadings, dispersion
    base = rng.normal(mean_log_expression, sd_log_expression, size=g)
    module = rng.integers(0, n_modules, size=g)
    module[rng.random(g) < background_fraction] = -1
    loading = rng.choice([-1.0, 1.0], size=g, p=[0.25, 0.75]) * rng.uniform(0.5, 1.5, size=g) * module_strength
    loading[module < 0] = 0.0
    gene_dispersion = dispersion * np.exp(rng.normal(0.0, 0.5, size=g))

    # samples: tissue, disease, batch, module activities with tissue/disease programs
    tissues = [f"tissue_{chr(ord('A') + i)}" for i in range(n_tissues)]
    diseases = ["healthy"] + [f"disease_{i + 1}" for i in range(n_diseases - 1)]
    batches = [f"batch_{i + 1}" for i in range(n_batches)]
    tissue = rng.integers(0, n_tissues, size=n)
    disease = rng.integers(0, n_diseases, size=n)
    batch = rng.integers(0, n_batches, size=n)
    tissue_effects = rng.normal(0.0, 1.5, size=(n_tissues, n_modules))
    disease_effects = np.zeros((n_diseases, n_modules))
    for d in range(1, n_diseases):
        hit = rng.choice(n_modules, size=max(1, n_modules // 5), replace=False)
        disease_effects[d, hit] = rng.choice([-1.0, 1.0], size=hit.size) * rng.uniform(1.0, 2.0, size=hit.size)
    activity = rng.normal(0.0, 1.0, size=(n, n_modules)) + tissue_effects[tissue] + disease_effects[disease]

    markers = np.full(g, -1)
    n_markers = max(1, int(round(tissue_marker_fraction * g))) if tissue_marker_fraction > 0 else 0
    for t in range(n_tissues if n_markers else 0):
        chosen = rng.choice(g, size=min(n_markers, g), replace=False)
        markers[chosen] = t
    marker_shift = np.where(markers[None, :] == tissue[:, None], 2.0, 0.0)

    batch_offsets = rng.normal(0.0, batch_effect_sd, size=(n_batches, g))
    module_term = np.where(module >= 0, activity[:, np.clip(module, 0, None)], 0.0) * loading
    log_expr = base + module_term + marker_shift + batch_offsets[batch] + rng.normal(0.0, noise_sd, size=(n, g))

    # true TPM and counts
    expr = np.exp(log_expr)
    tpm = expr / expr.sum(axis=1, keepdims=True) * 1e6
    abundance = tpm * lengths
    libsize = library_size * np.exp(rng.normal(0.0, library_size_sd, size=n))
    mean_counts = abundance / abundance.sum(axis=1, keepdims=True) * libsize[:, None]
    shape = 1.0 / gene_dispersion
    counts = rng.poisson(rng.gamma(shape, mean_counts / shape)).astype(np.int64)

    # genes each batch's assay lacks
    missing: dict[str, list[str]] = {}
    measured = np.ones((n, g), dtype=bool)
    for b, name in enumerate(batches):
        lost = np.sort(rng.choice(g, size=int(round(missing_fraction * g)), replace=False))
        missing[name] = [gene_ids[i] for i in lost]
        measured[np.ix_(batch == b, lost)] = False

    # survival: proportional hazards on a few modules and the disease
    surv_modules = rng.choice(n_modules, size=min(3, n_modules), replace=False)
    surv_beta = np.zeros(n_modules)
    surv_beta[surv_modules] = rng.choice([-1.0, 1.0], size=surv_modules.size) * rng.uniform(0.4, 0.8, size=surv_modules.size)
    risk = activity @ surv_beta + 0.5 * (disease > 0)
    baseline_rate = np.log(2.0) / median_survival_days
    event_time = rng.exponential(1.0 / (baseline_rate * np.exp(risk)))
    if censoring_fraction > 0:
        censor_rate = baseline_rate * censoring_fraction / (1.0 - censoring_fraction)
        censor_time = rng.exponential(1.0 / censor_rate, size=n)
    else:
        censor_time = np.full(n, np.inf)
    event = (event_time <= censor_time).astype(np.int64)
    survival_time = np.maximum(np.minimum(event_time, censor_time), 1.0).round(1)

    # drug response: linear in a few module activities
    drugs = [f"drug_{i + 1}" for i in range(n_drugs)]
    drug_weights = np.zeros((n_drugs, n_modules))
    for d in range(n_drugs):
        hit = rng.choice(n_modules, size=min(3, n_modules), replace=False)
        drug_weights[d, hit] = rng.normal(0.0, 1.0, size=hit.size)
    drug_base = rng.normal(2.0, 1.0, size=n_drugs)
    response = drug_base + activity @ drug_weights.T + rng.normal(0.0, 0.3, size=(n, n_drugs))

    # essentiality: dependency grows with the activity of the target's module
    in_module = np.flatnonzero(module >= 0)
    pool = in_module if in_module.size >= n_essential_genes else np.arange(g)
    targets = np.sort(rng.choice(pool, size=min(n_essential_genes, pool.size), replace=False))
    common = rng.random(targets.size) < 0.2
    base_effect = np.where(common, -1.0, rng.normal(-0.1, 0.1, size=targets.size))
    slope = np.where(common, 0.0, -rng.uniform(0.2, 0.5, size=targets.size))
    target_activity = activity[:, np.clip(module[targets], 0, None)] * (module[targets] >= 0)
    gene_effect = base_effect + slope * target_activity + rng.normal(0.0, 0.1, size=(n, targets.size))

    modules = [f"module_{k + 1}" for k in range(n_modules)]
    target_ids = [gene_ids[i] for i in targets]
    obs = pd.DataFrame({
        "tissue": pd.Categorical([tissues[i] for i in tissue], categories=tissues),
        "disease": pd.Categorical([diseases[i] for i in disease], categories=diseases),
        "batch": pd.Categorical([batches[i] for i in batch], categories=batches),
        "library_size": counts.sum(axis=1),
        "survival_time": survival_time,
        "event": event,
        "risk_score": risk,
    }, index=pd.Index(sample_ids, name="sample_id"))
    gene_index = pd.Index(gene_ids, name="ensembl_id")
    sample_index = obs.index
    params = dict(n_samples=n_samples, n_genes=g, seed=seed, n_tissues=n_tissues, n_diseases=n_diseases,
                  n_batches=n_batches, n_modules=n_modules, background_fraction=background_fraction,
                  tissue_marker_fraction=tissue_marker_fraction, mean_log_expression=mean_log_expression,
                  sd_log_expression=sd_log_expression, module_strength=module_strength, noise_sd=noise_sd,
                  batch_effect_sd=batch_effect_sd, missing_fraction=missing_fraction, library_size=library_size,
                  library_size_sd=library_size_sd, dispersion=dispersion, n_drugs=n_drugs,
                  n_essential_genes=n_essential_genes, median_survival_days=median_survival_days,
                  censoring_fraction=censoring_fraction)
    return SimulatedCohort(
        counts=pd.DataFrame(counts, index=sample_index, columns=gene_index),
        lengths=pd.Series(lengths.astype(np.int64), index=gene_index, name="length"),
        measured=pd.DataFrame(measured, index=sample_index, columns=gene_index),
        obs=obs,
        drug_response=pd.DataFrame(response, index=sample_index, columns=pd.Index(drugs, name="drug")),
        essentiality=pd.DataFrame(gene_effect, index=sample_index, columns=pd.Index(target_ids, name="ensembl_id")),
        log_tpm=pd.DataFrame(np.log1p(tpm), index=sample_index, columns=gene_index),
        gene_info=pd.DataFrame({
            "symbol": genes["symbol"].to_numpy(),
            "module": module,
            "loading": loading,
            "base_log_tpm": base,
            "dispersion": gene_dispersion,
            "marker_of": [tissues[m] if m >= 0 else "" for m in markers],
        }, index=gene_index),
        module_activity=pd.DataFrame(activity, index=sample_index, columns=pd.Index(modules, name="module")),
        missing_genes=missing,
        survival_coefficients=pd.Series(surv_beta, index=pd.Index(modules, name="module"), name="log_hazard_ratio"),
        drug_weights=pd.DataFrame(drug_weights, index=pd.Index(drugs, name="drug"), columns=pd.Index(modules, name="module")),
        essentiality_truth=pd.DataFrame({
            "module": module[targets],
            "common_essential": common,
            "base_effect": base_effect,
            "slope": slope,
        }, index=pd.Index(target_ids, name="ensembl_id")),
        params=params,
    )


def _check_arguments(n_samples: int, n_tissues: int, n_diseases: int, n_batches: int, n_modules: int,
                     background_fraction: float, missing_fraction: float, dispersion: float,
                     censoring_fraction: float) -> None:
    for name, value in (("n_samples", n_samples), ("n_tissues", n_tissues), ("n_diseases", n_diseases),
                        ("n_batches", n_batches), ("n_modules", n_modules)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    for name, value in (("background_fraction", background_fraction), ("missing_fraction", missing_fraction),
                        ("censoring_fraction", censoring_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if dispersion <= 0:
        raise ValueError(f"dispersion must be > 0 (negative-binomial noise), got {dispersion}")
