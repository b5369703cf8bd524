"""What the DICOM exports (SR, SEG) share: reading a source image's header, and de-identifying a header."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from inference.errors import MammoError
from inference.intake.exam import ViewImage

# type-2 attributes that highdicom copies from the source images; real files sometimes omit them
_COPIED_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "AccessionNumber", "StudyID")


class ReportError(MammoError):
    """A report that cannot be made as asked."""


def require_distinct_instances(exam) -> None:  # noqa: ANN001 - an Exam (its views' images)
    """Refuse a DICOM result for an exam two of whose views carry one SOP Instance UID: the result refers to
    its images by UID, and a PACS would lay both views' findings (the right breast's map and regions too) on the
    one image it holds under it (a site lead's test)."""
    seen: dict[str, tuple[str, str]] = {}
    for view, image in exam.views.items():
        uid = image.sop_instance_uid
        if uid and uid in seen:
            first, name = seen[uid]
            raise ReportError(f"{first} ({name}) and {view.value} ({image.source.name}) carry one SOP Instance UID "
                              f"({uid}): a DICOM result refers to images by their UID and would lay both views' "
                              "findings on one image; correct the archive (the other formats are written)",
                              image.source)
        seen[uid] = (view.value, image.source.name)


def read_source(image: ViewImage, deidentify: bool = False, patient_id: str = "") -> pydicom.Dataset:
    """The source image's header (no pixels), with the type-2 attributes highdicom copies present; with
    ``deidentify``, as the de-identified source images of the export have it (PS3.15 Basic Profile: the SR,
    SEG and Encapsulated PDF made from it carry only de-identified patient, study and UIDs)."""
    if not image.sop_instance_uid:
        raise ReportError("the exam is PNG; a DICOM export needs the DICOM study", image.source)
    try:
        source = pydicom.dcmread(image.source, stop_before_pixels=True)
    except InvalidDicomError as error:  # pydicom's own words advise force=True: not for a radiologist
        raise ReportError("the source image is not a DICOM file (it may have been moved or replaced)",
                          image.source) from error
    if deidentify:
        from app.report.deidentify import DeidentificationError, Deidentifier  # noqa: PLC0415

        try:
            source = Deidentifier().dataset(source, patient_id or None)  # the exam's patient, one for all views
        except DeidentificationError as error:
            raise ReportError(error.message, image.source) from None
    else:  # a sex highdicom refuses ("W") failed the whole export: the copy keeps only valid characteristics
        from app.report.deidentify import keep_valid_characteristics  # noqa: PLC0415

        keep_valid_characteristics(source)
    for keyword, kind in (("PatientBirthDate", pydicom.valuerep.DA), ("StudyDate", pydicom.valuerep.DA),
                          ("StudyTime", pydicom.valuerep.TM)):
        try:  # a date as some modalities write it ("17.03.51") failed the export in highdicom, quoting it
            if keyword in source and str(source.data_element(keyword).value or ""):
                kind(str(source.data_element(keyword).value))
        except Exception:  # noqa: BLE001 - pydicom raises several kinds for a value that is no date or time
            setattr(source, keyword, "")
    for keyword in _COPIED_TYPE2:
        if keyword not in source:
            setattr(source, keyword, "")
    _name_default_repertoire(source)
    _declare_undeclared_latin_1(source)
    return source


@dataclass(frozen=True)
class Version:
    """Which version of a DICOM result an export writes: 1, or the one after the result it replaces at the same
    path (ours, of the same study), whose header is ``earlier``."""

    number: int = 1
    earlier: pydicom.Dataset | None = None

    def described(self, description: str) -> str:
        """The series description, " v2" and on after the first (a PACS lists every version it was sent: the
        reader tells the latest by it)."""
        suffix = f" v{self.number}" if self.number > 1 else ""
        return description[:64 - len(suffix)] + suffix


def next_version(path: str | Path, study_uid: str) -> Version:
    """The version an export to ``path`` writes: the result there before, when it is ours and of this study, is
    replaced by the next version (a study analysed again; the same exam exported again)."""
    path = Path(path)
    if not path.is_file():
        return Version()
    try:
        earlier = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - whatever lies there, unreadable: no earlier version of ours
        return Version()
    if str(earlier.get("StudyInstanceUID", "")) != study_uid or str(earlier.get("Manufacturer", "")) != "Mammo Reader":
        return Version()
    said = re.search(r" v(\d+)$", str(earlier.get("SeriesDescription", "")))
    return Version((int(said.group(1)) if said else 1) + 1, earlier)


_TEXT_VRS = ("PN", "LO", "SH", "ST", "LT", "UT", "UC")


def _declare_undeclared_latin_1(source: pydicom.Dataset) -> None:
    """A header that declares no character set and holds bytes past ASCII (a "Müller" some modalities write in
    Latin-1 undeclared) is read as Latin-1 (pydicom's reading, and what the workstation shows); the SR, SEG and
    Encapsulated PDF copied those bytes still undeclared (dciodvfy: "character invalid for repertoire"). The
    copy declares ISO_IR 100, the set the names were read in."""
    if str(source.get("SpecificCharacterSet") or "").strip():
        return
    if any(element.VR in _TEXT_VRS and not str(element.value or "").isascii() for element in source.iterall()):
        source.SpecificCharacterSet = "ISO_IR 100"


def _name_default_repertoire(source: pydicom.Dataset) -> None:
    """A multi-valued Specific Character Set whose first value is empty ("\\ISO 2022 IR 87", as Japanese
    modalities write it) means the default repertoire first; highdicom refused the empty value, and the SR and SEG
    of such a study failed. The same set, said as PS3.3 C.12.1.1.2 names it: "ISO 2022 IR 6"."""
    values = source.get("SpecificCharacterSet")
    if isinstance(values, pydicom.multival.MultiValue) and len(values) > 1 and not str(values[0]).strip():
        source.SpecificCharacterSet = ["ISO 2022 IR 6", *values[1:]]


def export_character_set(source: pydicom.Dataset) -> str | list[str]:
    """UTF-8 (ISO_IR 192) where the source declares no set or ASCII, so that an export's own text (a model's name
    in any script, in the SR and the SEG) is whole: it was written as "?"; a source's own set (Latin-1, ISO 2022 for
    Japanese) is kept, the names being in it."""
    declared = source.get("SpecificCharacterSet") or ""
    values = [str(v) for v in declared] if isinstance(declared, pydicom.multival.MultiValue) else [str(declared)]
    return "ISO_IR 192" if all(v.strip() in ("", "ISO_IR 6") for v in values) else declared


def stamp_report_time(ds: pydicom.Dataset, when) -> None:
    """The dates and times the export's own object carries (its content, its creation, its series, the software's
    contribution), set to the report's time (``ReportContent.report_time``: shifted with the patient's dates
    when de-identified)."""
    for date, time in (("ContentDate", "ContentTime"), ("InstanceCreationDate", "InstanceCreationTime"),
                       ("SeriesDate", "SeriesTime")):
        if date in ds:
            setattr(ds, date, when.strftime("%Y%m%d"))
        if time in ds:
            setattr(ds, time, when.strftime("%H%M%S"))
    if "AcquisitionDateTime" in ds:
        ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    for equipment in ds.get("ContributingEquipmentSequence", []):  # highdicom's "made by this software, now";
        described = str(equipment.get("ContributionDescription", ""))  # the source images' acquisition item
        if "ContributionDateTime" in equipment and described.startswith("Software library"):  # keeps its own
            equipment.ContributionDateTime = when.strftime("%Y%m%d%H%M%S")


def deidentify_header(ds: pydicom.Dataset) -> None:
    """Declare in an export made from de-identified sources (:func:`read_source` with ``deidentify``) the
    profile and options applied (``DeidentificationMethodCodeSequence``, CID 7050)."""
    from app.report.deidentify import declare  # noqa: PLC0415

    declare(ds)


@contextlib.contextmanager
def no_identifiers_in_warnings() -> Iterator[None]:
    """highdicom warns about odd person names by quoting them; a warning reaches the console and the logs,
    where no patient identifier may go."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*unlikely to represent the intended person name.*")
        yield
