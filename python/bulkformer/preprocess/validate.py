"""Input checks whose errors say what is wrong, where, and how to fix it."""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from bulkformer.errors import InputError

LOG1P_TPM_MAX = float(np.log1p(1e6))  # a single gene holding every transcript
_BLOCK_ROWS = 256  # rows per check block: bounded temporaries on large inputs
# no sequencing run gives a gene 1e15 reads; far larger values (1.7e308) overflow the
# per-sample sums of normalisation into inf, and the results into NaN
VALUE_MAX = 1e15
# TPM sum to 1e6 per sample (less over a subset of genes); beyond this tolerance they
# are another unit (RSEM's upper-quartile "normalized" values sum to tens of millions)
TPM_SUM_MAX = 1.1e6


def _examples(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(str(n)) for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit:,} more" if len(names) > limit else "")


def check_not_empty(n_samples: int, n_genes: int) -> None:
    if n_samples == 0 or n_genes == 0:
        raise InputError(
            f"empty input: {n_samples} samples x {n_genes} genes", joiner=". ",
            fix="Pass a matrix with at least one sample and one gene (check the file's separator, the orientation= "
                "argument, or a filter that removed everything).")


def check_unique_samples(sample_ids: Sequence[str], seen: set[str] | None = None) -> None:
    """Sample names must be unique; ``seen`` carries the names of earlier blocks (and is updated)."""
    seen = set() if seen is None else seen
    duplicated = [s for s in sample_ids if s in seen or seen.add(s)]
    if duplicated:
        raise InputError(
            f"duplicated sample names: {_examples(sorted(set(duplicated)))} occur more than once", joiner=". ",
            fix="Give every sample a unique name (e.g. append a replicate suffix) or drop the repeated samples.")


def check_lengths_1d(lengths_bp: np.ndarray, gene_ids: Sequence[str]) -> None:
    bad = ~(np.isfinite(lengths_bp) & (lengths_bp > 0))
    if bad.any():
        raise InputError(
            f"invalid gene lengths: {int(bad.sum()):,} genes have a length that is not a positive number "
            f"(e.g. {_examples([gene_ids[j] for j in np.flatnonzero(bad)])})", argument="lengths", joiner=". ",
            fix="Pass lengths in base pairs > 0, or leave those genes out of lengths= to use the shipped annotation.")


def check_values(matrix: np.ndarray, sample_ids: Sequence[str], gene_ids: Sequence[str], input: str,
                 row_offset: int = 0, *, nan_is_unmeasured: bool = False) -> None:
    """NaN, inf, negative values and all-zero samples, block by block. With
    ``nan_is_unmeasured`` (the model's input conventions say so) NaN entries are allowed."""
    is_float = matrix.dtype.kind == "f"
    for start in range(0, matrix.shape[0], _BLOCK_ROWS):
        block = matrix[start:start + _BLOCK_ROWS]
        if is_float:
            for problem, test, fix in (
                ("NaN (missing) values", np.isnan,
                 "Fill unmeasured values (0 for a gene with no reads) or drop those genes/samples; do not leave NaN."),
                ("infinite values", np.isinf,
                 "Check the upstream computation (a division by zero or log of 0); replace or drop those entries."),
            ):
                if test is np.isnan and nan_is_unmeasured:
                    continue
                _raise_on(test(block), problem, fix, sample_ids, gene_ids, start)
        if block.dtype.kind in "fi":
            negative = block < 0
            if negative.any() and np.all(block[negative] == -10):
                _raise_on(negative, "values of exactly -10 (the mask token for unmeasured genes)",
                          ("This looks like already prepared model input: pass the PreparedInput itself to "
                           "impute/embed (to pretrain on it: input='aligned'), or drop the -10 (unmeasured) genes before "
                           "preparing again."),
                          sample_ids, gene_ids, start)
            _raise_on(negative, "negative values",
                      ("Counts, TPM and log1p TPM cannot be negative. If these are log2 ratios or z-scores, "
                       "pass raw counts (input='counts'), TPM (input='tpm') or natural log1p TPM (input='logtpm')."),
                      sample_ids, gene_ids, start)
        if block.dtype.kind in "fiu":
            _check_scale(block, input, sample_ids, gene_ids, start)
        zero_rows = ~(block != 0).any(axis=1)
        if zero_rows.any():
            names = [sample_ids[start + i] for i in np.flatnonzero(zero_rows)]
            raise InputError(
                f"all-zero samples: {_examples(names)} have no expression in any gene (of {len(gene_ids):,})",
                joiner=". ",
                fix="Drop these samples (failed libraries) before preparing the data; TPM is undefined for them.")


def _check_scale(block: np.ndarray, input: str, sample_ids, gene_ids, start: int) -> None:
    """Values beyond what their declared kind can hold are errors, never a silent NaN or
    a wrong scale: see the README's Reliability section for the limits chosen."""
    if input == "logtpm":
        _raise_on(block > LOG1P_TPM_MAX + 0.5, f"values above log1p(1e6) = {LOG1P_TPM_MAX:.2f} with "
                  "input='logtpm' (TPM cannot exceed 1e6)",
                  "These look like counts or TPM (or log2 values): pass input='counts' or input='tpm', or natural "
                  "log1p TPM.", sample_ids, gene_ids, start)
        return
    _raise_on(block > VALUE_MAX, f"values above {VALUE_MAX:.0e}",
              "No sequencing run gives such numbers, and normalising them overflows to NaN: check how the file was "
              "written (units, a parse error), or drop those genes.", sample_ids, gene_ids, start)
    if input == "tpm":
        sums = np.nansum(block, axis=1, dtype=np.float64)
        over = sums > TPM_SUM_MAX
        if over.any():
            names = [sample_ids[start + i] for i in np.flatnonzero(over)]
            raise InputError(
                f"input='tpm' but samples sum to up to {float(sums.max()):.3g} (e.g. {_examples(names)}), and TPM "
                "sum to 1e6 per sample: these are another unit (RSEM's normalized values sum to tens of millions)",
                argument="input", value=input, joiner=". ",
                fix="Pass raw counts with input='counts' (TCGA: the raw_counts files), or TPM (RSEM: "
                    "scaled_estimate x 1e6), or rescale each sample to sum to 1e6 if it is a per-million unit.")


def _raise_on(bad: np.ndarray, problem: str, fix: str, sample_ids, gene_ids, start: int) -> None:
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    where = [f"{sample_ids[start + r]}/{gene_ids[c]}" for r, c in zip(rows[:5], cols[:5])]
    raise InputError(f"{problem} in the input at {int(bad.sum()):,} entries of the first affected samples "
                     f"(sample/gene: {', '.join(where)})", fix=fix, joiner=". ")


def check_sample_lengths(lengths_bp: np.ndarray, matrix: np.ndarray, sample_ids, gene_ids) -> np.ndarray:
    """Per-sample (tximport) lengths: must be > 0 where a gene has reads; elsewhere unused.

    Returns lengths safe to divide by (float64, unusable entries set to 1,000 bp where
    the count is 0, where they cannot change TPM)."""
    lengths_bp = np.array(lengths_bp, dtype=np.float64)
    bad = ~(np.isfinite(lengths_bp) & (lengths_bp > 0))
    if bad.any():
        needed = bad & (np.asarray(matrix) != 0)
        if needed.any():
            rows, cols = np.nonzero(needed)
            where = [f"{sample_ids[r]}/{gene_ids[c]}" for r, c in zip(rows[:5], cols[:5])]
            raise InputError(
                f"invalid per-sample lengths: {int(needed.sum()):,} entries with reads have a length that is not a "
                f"positive number (sample/gene: {', '.join(where)})", argument="lengths", joiner=". ",
                fix="tximport's avgTxLength should be > 0 where counts are; replace those lengths (e.g. by the "
                    "gene's mean length over samples).")
        lengths_bp[bad] = 1000.0
    return lengths_bp


def plausibility_warnings(matrix: np.ndarray, input: str, max_values: int = 1_000_000) -> list[str]:
    """Warn when the declared kind does not fit the numbers (judged on the first
    samples, up to ``max_values`` values: a heuristic, not a check)."""
    n_rows = max(1, min(matrix.shape[0], max_values // max(matrix.shape[1], 1)))
    sample = np.asarray(matrix[:n_rows])
    nonzero = sample[sample != 0]
    if nonzero.size == 0:
        return []
    maximum = float(nonzero.max())
    fractional = float(np.mean(nonzero != np.round(nonzero))) if nonzero.dtype.kind == "f" else 0.0
    messages = []
    if input in ("counts", "tpm") and maximum <= 2 * LOG1P_TPM_MAX and fractional > 0.5:
        messages.append(
            f"input={input!r} but the values look already log-transformed (largest {maximum:.3g}, "
            f"{fractional:.0%} non-integer): pass input='logtpm' if they are natural log1p TPM, "
            "or give untransformed values.")
    if input == "counts" and fractional > 0.5 and np.all(np.abs(sample.sum(axis=1, dtype=np.float64) - 1e6) <= 1e4):
        # counts are not normalised per sample; counts per million are, and are fine as counts
        messages.append(
            "input='counts' but every sample sums to 1e6, as TPM do: pass input='tpm' if these are TPM "
            "(counted again as reads they would be divided by gene length twice).")
    if input == "tpm" and fractional == 0 and maximum > 2 * LOG1P_TPM_MAX:
        messages.append(
            "input='tpm' but every value is a whole number: these look like raw counts; pass input='counts' "
            "so that they are length-normalised.")
    # logtpm above log1p(1e6) is an error of check_values, not a warning
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=3)
    return messages
