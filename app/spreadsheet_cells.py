"""Text cells of the CSV files people open in a spreadsheet, kept as text: a cell beginning with "=", "+", "-",
"@", a tab or a carriage return is a formula to Excel or LibreOffice, and a folder named ``=cmd|' /C calc'!A0``
reached ``failures.csv`` as one. Such a cell is written after an apostrophe (the spreadsheets' own mark for
text); the app's own readers take it off again. Numbers are written as they are."""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: Any) -> Any:
    """``value`` as a spreadsheet reads it as text: a string that would start a formula gets a leading
    apostrophe; anything else (numbers, None) is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def read_text_cell(value: str) -> str:
    """A cell :func:`text_cell` wrote, as it was before."""
    if value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value
