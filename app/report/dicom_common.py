"""What the DICOM exports (SR, SEG) share: reading a source image's header, and de-identifying a header."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pydicom
from pydicom.errors import InvalidDicomError

from inference.errors import MammoError
from inference.exam import ViewImage

# type-2 attributes that highdicom copies from the source images; real files sometimes omit them
_COPIED_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "AccessionNumber", "StudyID")


class ReportError(MammoError):
    """A report that cannot be made as asked."""


def read_source(image: ViewImage) -> pydicom.Dataset:
    """The source image's header (no pixels), with the type-2 attributes highdicom copies present."""
    if not image.sop_instance_uid:
        raise ReportError("the exam is PNG; a DICOM export needs the DICOM study", image.source)
    try:
        source = pydicom.dcmread(image.source, stop_before_pixels=True)
    except InvalidDicomError as error:  # pydicom's own words advise force=True: not for a radiologist
        raise ReportError("the source image is not a DICOM file (it may have been moved or replaced)",
                          image.source) from error
    for keyword in _COPIED_TYPE2:
        if keyword not in source:
            setattr(source, keyword, "")
    return source


def deidentify_header(ds: pydicom.Dataset, label: str) -> None:
    """Replace the patient identifiers that highdicom copied from the source images (in place) and say so;
    ``label`` is the report's de-identified exam name."""
    ds.PatientName = "Anonymous^"
    ds.PatientID = label
    for keyword in ("PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        if keyword in ds:
            setattr(ds, keyword, "")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [  # LO: 64 characters a value
        "Mammo Reader de-identified export",
        "patient name, ID and birth date removed",
        "accession number, referring physician, study ID removed",
        "UIDs and dates kept to reference the source images",
    ]


@contextlib.contextmanager
def no_identifiers_in_warnings() -> Iterator[None]:
    """highdicom warns about odd person names by quoting them; a warning reaches the console and the logs,
    where no patient identifier may go."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*unlikely to represent the intended person name.*")
        yield
