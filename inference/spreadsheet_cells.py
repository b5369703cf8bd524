"""Text cells of the CSV files people open in a spreadsheet, kept as text: a cell beginning with "=", "+", "-",
"@", a tab or a carriage return is a formula to Excel or LibreOffice, and a folder named ``=cmd|' /C calc'!A0``
reached ``failures.csv`` as one. Such a cell is written after an apostrophe (the spreadsheets' own mark for
text); the app's own readers take it off again. Numbers are written as they are, also as text ("-0.250000").

Every CSV the app writes for people goes through :func:`text_writer` or :func:`text_dict_writer`."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def text_cell(value: Any) -> Any:
    """``value`` as a spreadsheet reads it as text: a string that would start a formula gets a leading
    apostrophe; anything else (numbers, a number written as text, None) is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def read_text_cell(value: str) -> str:
    """A cell :func:`text_cell` wrote, as it was before."""
    if value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


class _TextWriter:
    """``csv.writer`` whose every cell goes through :func:`text_cell`."""

    def __init__(self, handle: TextIO, **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([text_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class _TextDictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose every value goes through :func:`text_cell`."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: text_cell(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)


def text_writer(handle: TextIO, **options: Any) -> _TextWriter:
    """A ``csv.writer`` on ``handle`` (same options) that keeps text cells text."""
    return _TextWriter(handle, **options)


def text_dict_writer(handle: TextIO, fieldnames: list[str], **options: Any) -> csv.DictWriter:
    """A ``csv.DictWriter`` on ``handle`` (same options) that keeps text cells text."""
    return _TextDictWriter(handle, fieldnames, **options)
