"""Case lists and exam lists as text: a file that is not UTF-8 or holds a NUL byte is refused naming the line,
before the CSV reader or the file system sees it (a NUL in a path makes Python raise, not a message)."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from pathlib import Path

from inference.errors import MammoError


class ListLineError(MammoError):
    """A list file with a problem on one line: ``str()`` reads "FILE, line N: problem"."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(problem, path)
        self.line = line
        self.args = (f"{path}, line {line}: {problem}",)


def numbered_rows(reader: csv.DictReader) -> list[tuple[int, dict]]:
    """Each row of ``reader`` with its line in the file (the reader skips blank lines: counting the rows as read
    named the wrong line after one)."""
    return [(reader.line_num, row) for row in reader]


def header_problem(columns: Sequence[str | None], required: Sequence[str]) -> str:
    """What a CSV's header lacks of ``required`` ("" when nothing), said with what it has, and with a hint when
    the header is one column holding a ';' (a spreadsheet's export in some locales)."""
    columns = [c.strip() for c in columns if c is not None]
    lacking = [c for c in required if c not in columns]
    if not lacking:
        return ""
    hint = " (is it separated by semicolons? write it with commas)" if len(columns) == 1 and ";" in columns[0] else ""
    return f"the header lacks {', '.join(lacking)}; it has {', '.join(columns) or 'nothing'}{hint}"


def unread_columns(columns: Sequence[str | None], known: Sequence[str]) -> list[str]:
    """The header's columns (any case) that are not among ``known``: a misspelt optional column ("note" for
    "notes") would otherwise be dropped without a word."""
    return [c.strip() for c in columns if c is not None and c.strip() and c.strip().lower() not in known]


def read_list_text(path: Path) -> str:
    """The text of ``path`` (UTF-8, a byte-order mark allowed).

    Raises:
        ListLineError: bytes that are not UTF-8, or a NUL byte, with the line they are on.
        OSError: the file cannot be read (the caller says what the file was for).
    """
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ListLineError(Path(path), line, f"not UTF-8 text (byte 0x{data[error.start]:02x}); save the list "
                                              "as UTF-8 (CSV UTF-8 in a spreadsheet)") from error
    nul = text.find("\0")
    if nul >= 0:
        raise ListLineError(Path(path), text.count("\n", 0, nul) + 1,
                            "a NUL byte: the file is damaged or not a text list")
    return text
