"""How a model's release expects its input prepared. Each layout declares one of
these; ``prepare`` reads it off the bundle it prepares for (REFERENCE.md, "Input")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class InputConventions:
    """``tpm_denominator``: "all_genes" (v1/v2: every input gene of a sample counts in
    its TPM sum) or "vocabulary_genes" (bulkformer-latest: only the genes the vocabulary
    matches). ``nan_is_unmeasured``: a NaN entry means "not measured" and becomes the
    mask value for that sample and gene (else NaN is an error). Gene lengths always
    come first from the bundle's own vocabulary (the release's, where it ships them)."""

    tpm_denominator: Literal["all_genes", "vocabulary_genes"] = "all_genes"
    nan_is_unmeasured: bool = False

    @property
    def vocabulary_denominator(self) -> bool:
        return self.tpm_denominator == "vocabulary_genes"

    def describe(self) -> str:
        over = "vocabulary-matched genes" if self.vocabulary_denominator else "all input genes"
        nan = "NaN = not measured" if self.nan_is_unmeasured else "NaN is an error"
        return f"TPM over {over}; {nan}"


ORIGINAL_CONVENTIONS = InputConventions()


def conventions_of(vocabulary: Any) -> InputConventions:
    """The conventions of what ``prepare`` prepares for: a bundle's layout's, else the
    original layouts' (a plain vocabulary table names no model)."""
    return getattr(vocabulary, "input_conventions", None) or ORIGINAL_CONVENTIONS
