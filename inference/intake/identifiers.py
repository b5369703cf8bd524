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


# words of file names that name no one ("image.dcm", "exam"): a generic name, or one with a view's (below)
GENERIC_NAMES = frozenset({"image", "img", "file", "dicom", "dcm", "mammo", "mammogram", "view", "exam", "study"})
_PROJECTIONS = {"cc", "mlo", "ml", "lm", "xccl", "xccm", "lcc", "rcc", "lmlo", "rmlo", "lml", "rml"}
_VIEW_WORDS = _PROJECTIONS | GENERIC_NAMES | {"l", "r", "left", "right", "retake", "png", "copy", "mg"}


def names_a_view_only(word: str) -> bool:
    """True for a word made of a view's name and nothing that could identify anyone ("R-MLO", "0_L-CC",
    "R-CC_retake.dcm", "LCC"): a file named so is no identifier, and taking it for one blanked the view's name out
    of every note of a de-identified export ("POSSIBLE LATERALITY ERROR: … is labelled …"; a deployer's re-test).
    A word of digits alone, a number longer than an index ("4711235_L-CC.dcm": an accession beside the view), or
    any other word, may identify: not this."""
    tokens = [token for token in re.split(r"[-_ .]+", word.lower()) if token]
    return any(t in _PROJECTIONS for t in tokens) and all(
        t in _VIEW_WORDS or (t.isdigit() and len(t) <= 2) for t in tokens)


def remove_identifiers(text: str, identifiers: Iterable[str]) -> str:
    """``text`` with every identifier (a path also by its file and folder names) replaced by "…", as a whole
    word: not inside a longer run of letters and digits, but wherever "_" or punctuation sets it apart (the AI
    node printed "ACCSECRET99_sr.dcm" whole: "_" is a word character to a regular expression; a deployer's test).
    Identifiers shorter than three characters are left: they would hit any word; so are file names that only name
    a view (:func:`names_a_view_only`)."""
    words = set()
    for identifier in identifiers:
        words.add(identifier)
        if "/" in identifier or "\\" in identifier:
            words |= path_words(Path(identifier))
    words = {w.strip() for w in words if w and len(w.strip()) >= 3 and not names_a_view_only(w.strip())}
    for identifier in sorted(words, key=len, reverse=True):  # the longest first: a folder before its parts
        text = re.sub(rf"(?<![^\W_]){re.escape(identifier)}(?![^\W_])", REMOVED, text, flags=re.IGNORECASE)
    return text


# the header fields that could identify the patient or the study, read where no exam could be made of the files
IDENTIFYING_FIELDS = ("PatientID", "PatientName", "OtherPatientIDs", "IssuerOfPatientID", "PatientBirthDate",
                      "AccessionNumber", "StudyID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                      "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstitutionName",
                      "ReferringPhysicianName")

PERSON_NAME_FIELDS = ("PatientName", "ReferringPhysicianName")
ID_FIELDS = ("PatientID", "OtherPatientIDs", "AccessionNumber")


# CBIS-DDSM's per-image patient IDs ("Mass-Test_P_00820_LEFT_CC") hold the patient's key, which the intake names
CBIS_DDSM_PATIENT = re.compile(r"(?:Mass|Calc)-(?:Training|Test)_(P_\d{5})_")
DATASET_NAMES = frozenset({"DDSM", "CBIS-DDSM"})  # a public data set's name in StudyID names no one ("CBIS-…")


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
                if keyword in ID_FIELDS and (patient := CBIS_DDSM_PATIENT.match(text)):
                    found.add(patient[1])  # the exam's own messages name the patient "P_00173" (a re-test)
    return {text for text in found if text and text not in DATASET_NAMES}

