"""Warnings about the input's gene IDs that a person should hear: rows without a name,
symbols a spreadsheet turned into dates, mouse-style symbols matched by case alone."""
from __future__ import annotations

import re

from bulkformer.preprocess.ids import GeneMapping

# What a spreadsheet makes of symbols such as SEPTIN2 / MARCHF1 (formerly SEPT2 / MARCH1).
_SPREADSHEET_DATE = re.compile(r"^(?:\d{1,2}-(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
                               r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)-\d{1,2})$", re.IGNORECASE)
_MISSING_NAMES = frozenset({"", "na", "nan", "none", "null", "<na>"})
_RODENT_STYLE = re.compile(r"^[A-Z][a-z][a-z0-9]*$")  # Tspan6, Actb: how mouse and rat symbols are written


def id_warnings(mapping: GeneMapping) -> list[str]:
    """Input genes left out or matched for a reason the user should hear about: rows
    without a name, symbols a spreadsheet turned into dates, and symbols written the
    mouse/rat way that match human genes only when upper-cased."""
    ids, column_index = mapping.normalized_ids, mapping.column_index
    unmatched = [g for g, c in zip(ids, column_index) if c < 0]
    messages = []
    unnamed = [g for g in unmatched if g.lower() in _MISSING_NAMES]
    if unnamed:
        messages.append(f"{len(unnamed):,} input genes have no ID (empty or NA names) and are left out: "
                        "name every row by its gene")
    dates = [g for g in unmatched if _SPREADSHEET_DATE.match(g)]
    if dates:
        messages.append(f"{len(dates):,} input gene IDs look like dates a spreadsheet made of gene symbols (e.g. "
                        f"{', '.join(dates[:3])}; SEPT2 and MARCH1 become 2-Sep and 1-Mar) and are left out: "
                        "re-export the table without opening it in a spreadsheet")
    if mapping.lookup is not None:
        case_only = [g for g, r, c in zip(ids, mapping.lookup.routes, column_index) if c >= 0 and r == "symbol_case"]
        rodent = [g for g in case_only if _RODENT_STYLE.match(g)]
        if len(rodent) >= 10 and len(rodent) > 0.5 * mapping.n_matched:
            messages.append(f"{len(rodent):,} of the {mapping.n_matched:,} matched genes are symbols written the mouse/rat "
                            f"way (e.g. {', '.join(rodent[:3])}) that match human genes only when upper-cased: "
                            "BulkFormer is a model of human genes; if the data are not human, map them to human "
                            "orthologues first")
    return messages
