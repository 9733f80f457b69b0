"""The mapping report every data-preparation call returns."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class MappingReport:
    """How the input genes met the model vocabulary.

    ``n_matched`` input genes landed on ``n_vocabulary - n_missing`` vocabulary genes;
    ``n_collapsed`` of them were merged into another input gene with the same target
    (summed for counts/TPM, averaged for log values), i.e. n_matched minus the number
    of distinct targets. ``n_unmatched`` = n_input_genes - n_matched; it includes genes
    reached only indirectly (alias, another Ensembl ID of the same Entrez gene) whose
    target another input gene already measures directly (route "superseded" in
    :func:`map_genes`). ``match_routes`` counts the matched genes by route and adds up
    to ``n_matched`` (``ensembl_par_y``: a GENCODE ``_PAR_Y`` row merged into its X copy).
    ``mask_prob`` is the share of vocabulary genes the data lacks (fed to v2 models).
    ``id_types`` counts the input identifiers by recognised kind (ensembl,
    ensembl_versioned, ensembl_par_y, ensembl_transcript, ensembl_nonhuman, entrez,
    symbol|entrez, symbol, empty); ``length_sources`` counts where each input gene's
    length came from (user, vocabulary, annotation, default_1000bp; per_sample when
    per-sample lengths such as tximport's were given). Ensembl IDs are matched without
    their version suffix (``ensembl_versioned`` counts those that had one).
    ``conventions``: the model's input conventions applied (TPM denominator, NaN);
    ``n_missing_entries``: NaN entries taken as "not measured" (the mask value) where the
    conventions say so. ``n_outside_vocabulary``: unmatched input genes that are genes
    the vocabulary does not hold (non-coding and other genes; GENCODE tables have ~40,000).
    """

    n_input_genes: int
    n_matched: int
    n_unmatched: int
    unmatched_examples: list[str]
    n_collapsed: int
    n_vocabulary: int
    n_missing: int
    mask_prob: float
    id_types: dict[str, int]
    # additions beyond the contract
    collapsed_examples: list[str] = field(default_factory=list)
    match_routes: dict[str, int] = field(default_factory=dict)
    length_sources: dict[str, int] = field(default_factory=dict)
    n_samples: int = 0
    input: str = "counts"
    warnings: list[str] = field(default_factory=list)
    conventions: str = ""
    n_missing_entries: int = 0
    n_outside_vocabulary: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (plain ints, floats, strings, lists and dicts)."""
        data = asdict(self)
        data["mask_prob"] = float(self.mask_prob)
        for key in ("id_types", "match_routes", "length_sources"):
            data[key] = {str(k): int(v) for k, v in data[key].items()}
        for key, value in list(data.items()):
            if isinstance(value, bool) or not hasattr(value, "item"):
                continue
            data[key] = value.item()  # NumPy scalars
        return data

    def outside_vocabulary_note(self) -> str | None:
        return outside_vocabulary_note(self.to_dict())

    def summary(self) -> str:
        """One human-readable line."""
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(self.id_types.items(), key=lambda kv: -kv[1]) if v)
        line = (f"{self.n_matched:,} of {self.n_input_genes:,} input genes matched the vocabulary "
                f"({self.n_vocabulary - self.n_missing:,} of {self.n_vocabulary:,} vocabulary genes measured, "
                f"mask_prob {self.mask_prob:.4g}); {self.n_unmatched:,} unmatched")
        if self.unmatched_examples:
            line += f" (e.g. {', '.join(self.unmatched_examples[:3])})"
        note = self.outside_vocabulary_note()
        if note:
            line += f"; {note}"
        if self.n_collapsed:
            line += f"; {self.n_collapsed:,} merged into duplicates"
        if kinds:
            line += f"; IDs: {kinds}"
        if self.id_types.get("ensembl_versioned"):
            line += " (version suffixes dropped for matching)"
        if self.n_missing_entries:
            line += f"; {self.n_missing_entries:,} NaN entries taken as not measured"
        return line


def outside_vocabulary_note(report: dict[str, Any]) -> str | None:
    """Why most unmatched genes are unmatched, when it is that they are genes the model
    does not cover (a GENCODE table's non-coding two-thirds): said on success, or they
    look lost. ``report``: a MappingReport's fields (stores and frames keep the dict)."""
    n = int(report.get("n_outside_vocabulary") or 0)
    if not n or 2 * n <= int(report.get("n_unmatched") or 0):
        return None
    return (f"{n:,} input genes are not in the vocabulary (non-coding and other genes the model does not "
            f"cover; its vocabulary holds {int(report.get('n_vocabulary') or 0):,} genes)")
