"""Removing known identifiers from text: the notes an exam carries name its files, and some name the patient
(CBIS-DDSM's per-file IDs, "Mass-Test_P_00820_LEFT_CC"). One implementation for the de-identified exam, the
blinded study screen, the reports, the de-identified batch's failures and the DICOM node's messages."""

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


# the header fields that could identify the patient or the study, read where no exam could be made of the files
IDENTIFYING_FIELDS = ("PatientID", "PatientName", "OtherPatientIDs", "IssuerOfPatientID", "PatientBirthDate",
                      "AccessionNumber", "StudyID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                      "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstitutionName",
                      "ReferringPhysicianName")

PERSON_NAME_FIELDS = ("PatientName", "ReferringPhysicianName")
ID_FIELDS = ("PatientID", "OtherPatientIDs", "AccessionNumber")


def header_identifiers(paths: Iterable[Path]) -> set[str]:
    """What the DICOM headers of ``paths`` hold that could identify the patient or the study (each name also
    word by word, each date also as YYYY-MM-DD): the words to remove from a message about files that may not
    have made an exam. A file that is no DICOM adds nothing."""
    from pydicom import dcmread
    from pydicom.multival import MultiValue

    found: set[str] = set()
    for path in paths:
        try:
            header = dcmread(path, stop_before_pixels=True, specific_tags=list(IDENTIFYING_FIELDS))
        except Exception:  # noqa: BLE001 - a damaged or foreign file holds nothing to hide that can be read
            continue
        for keyword in IDENTIFYING_FIELDS:
            value = header.get(keyword)
            for item in value if isinstance(value, (list, tuple, MultiValue)) else [value]:
                text = str(item or "").strip()
                # a StudyID "100" is no word to take out of "(100 pixels)"; a patient ID of digits still is
                if keyword in ID_FIELDS or not (text.isdigit() and len(text) < 5):
                    found.add(text)
                if keyword in PERSON_NAME_FIELDS:  # a name's parts each name the person; an institution's
                    found |= set(text.replace("^", " ").split())  # words ("The Breast Centre") name no one
                if len(text) == 8 and text.isdigit():
                    found.add(f"{text[:4]}-{text[4:6]}-{text[6:]}")
    return {text for text in found if text}

