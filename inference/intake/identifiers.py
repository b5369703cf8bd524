"""Removing known identifiers from text: the notes an exam carries name its files, and some name the patient
(CBIS-DDSM's per-file IDs, "Mass-Test_P_00820_LEFT_CC"). One implementation for the de-identified exam, the
blinded study screen, the reports and the DICOM node's messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

REMOVED = "…"


def path_words(path: Path) -> set[str]:
    """The file, its stem and the two folders above it: where a patient's name or accession usually is."""
    return {path.name, path.stem, path.parent.name, path.parent.parent.name}


def remove_identifiers(text: str, identifiers: Iterable[str]) -> str:
    """``text`` with every identifier (a path also by its file and folder names) replaced by "…", as a whole
    word. Identifiers shorter than three characters are left: they would hit any word."""
    words = set()
    for identifier in identifiers:
        words.add(identifier)
        if "/" in identifier or "\\" in identifier:
            words |= path_words(Path(identifier))
    words = {w.strip() for w in words if w and len(w.strip()) >= 3}
    for identifier in sorted(words, key=len, reverse=True):  # the longest first: a folder before its parts
        text = re.sub(rf"(?<!\w){re.escape(identifier)}(?!\w)", REMOVED, text, flags=re.IGNORECASE)
    return text
