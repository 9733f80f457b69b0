"""Plain records that inference results carry (h5ad and JSON take no objects or None)."""
from __future__ import annotations

from typing import Any


def without_none(record: dict | None) -> dict:
    """``record`` without its None values (h5ad cannot store None)."""
    return {k: v for k, v in (record or {}).items() if v is not None}


def report_dict(report: Any) -> dict:
    """A mapping report (or a dict of one) as a plain dict."""
    return report.to_dict() if hasattr(report, "to_dict") else dict(report or {})
