"""Dates as the application shows them (Qt-free: the reports and the command line use them too)."""

from __future__ import annotations


def dicom_date(text: str) -> str:
    """YYYYMMDD as YYYY-MM-DD (anything else as it is)."""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text
