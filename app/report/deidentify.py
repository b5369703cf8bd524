"""De-identification of the DICOM a de-identified export writes, by DICOM PS3.15 Annex E: the Basic Application
Level Confidentiality Profile as the ``dicom-anonymizer`` package tabulates it from the standard (Table E.1-1),
with two options declared in ``DeidentificationMethodCodeSequence`` (CID 7050):

- Retain Longitudinal Temporal Information with Modified Dates (113107): every date and date-time is shifted
  back by one offset per patient (whole days, so times of day are kept), instead of being removed;
- Retain Patient Characteristics (113108): age, sex, size and weight are kept, an age over 89 is written as
  090Y (the HIPAA Safe Harbor ceiling).

Every UID that identifies an instance (study, series, SOP instance, frame of reference, references to them)
is replaced by a keyed hash ``2.25.<128-bit integer>`` of the original, so the same original UID gets the same
new UID in the source images, the SR, the SEG and the Encapsulated PDF of an export (and in later exports
made on this computer). The key is a random secret kept in the app folder, never in an output: without it
nobody can recompute a pseudonym from a guessed identifier.
"""

from __future__ import annotations

import copy
import datetime
import functools
import logging
import hashlib
import hmac
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes

from inference.errors import MammoError

logger = logging.getLogger(__name__)
KEY_FILE = "deidentify.key"
PROFILE_TABLE = "dicomfields_2026c"  # dicom-anonymizer's copy of PS3.15 Table E.1-1, DICOM 2026c
RETAINED_CHARACTERISTICS = ("PatientAge", "PatientSex", "PatientSize", "PatientWeight")
OLDEST_AGE = 89  # older ages are written as 090Y
METHOD_CODES = (codes.DCM.BasicApplicationConfidentialityProfile,
                codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,
                codes.DCM.RetainPatientCharacteristicsOption)
METHOD_TEXT = ("PS3.15 Basic Profile (dicom-anonymizer, table 2026c)",
               "dates shifted per patient; age over 89 as 090Y")
# text the table does not list is removed (the Basic Profile keeps what it does not name: a birth date in another
# calendar, an HL7 instance identifier, a device ID and procedure comments passed into the copies); these are kept
# at the top level, being what an image needs and naming no one: the equipment's make, window and LUT names
TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "AE", "UR", "UN"})
NEEDED_TEXT = frozenset({"Manufacturer", "ManufacturerModelName", "SoftwareVersions", "WindowCenterWidthExplanation",
                         "RescaleType", "DeidentificationMethod", "PatientID", "PatientName", "ConversionType"})
# the sequences an image needs (its view, anatomy and grey-level transforms); every other sequence is emptied: the
# table acts on the top level only, and identifiers it lists sat inside sequences it does not (the institution,
# station and operator of ContributingEquipmentSequence, the accession of ReferencedRequestSequence)
NEEDED_SEQUENCES = frozenset({"ViewCodeSequence", "ViewModifierCodeSequence", "AnatomicRegionSequence",
                              "AnatomicRegionModifierSequence", "PrimaryAnatomicStructureSequence",
                              "PrimaryAnatomicStructureModifierSequence", "VOILUTSequence", "ModalityLUTSequence",
                              "DeidentificationMethodCodeSequence"})
# what an item of those may hold as text: a coded concept's parts and a LUT's name
ITEM_TEXT = frozenset({"CodeValue", "LongCodeValue", "URNCodeValue", "CodingSchemeDesignator", "CodingSchemeVersion",
                       "CodeMeaning", "ContextIdentifier", "ContextGroupVersion", "MappingResource",
                       "MappingResourceName", "LUTExplanation"})
# no text VR, yet a name or a place: the calendar of a birth date removed, an embedded colour profile's text
REMOVED = frozenset({"PatientAlternativeCalendar", "ICCProfile", "PatientBirthTime"})
FILE_META_KEPT = ("FileMetaInformationVersion", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                  "TransferSyntaxUID")  # pydicom writes its own implementation UID and name
_AGE = re.compile(r"^(\d{3})([DWMY])$")
_DAYS_PER_UNIT = {"D": 1, "W": 7, "M": 30.4375, "Y": 365.25}


class DeidentificationError(MammoError):
    """A file that cannot be de-identified as the profile asks."""


SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # BurnedInAnnotation is optional there (Type 3)


def _text_of(value: object) -> str:
    values = list(value) if isinstance(value, pydicom.multival.MultiValue) else [value] if value else []
    return "\\".join(str(v).strip() for v in values).upper()


def burned_in_problem(value: str, sop_class: str) -> str:
    """What BurnedInAnnotation (its values joined by backslashes, upper case) says against a de-identified export
    ("" when it says NO): text in the pixels may name the patient, and every format shows the pixels. Unsaid in a
    mammogram, where it is required, is not NO (a mammogram without it, the name burned in, was exported);
    a Secondary Capture need not say (CBIS-DDSM's scanned films do not)."""
    values = [v for v in value.split("\\") if v]
    if "YES" in values:
        return "has burned-in annotation (text in the pixels that may name the patient)"
    if values and values != ["NO"]:
        return f"gives BurnedInAnnotation as {value!r}, not NO"
    if not values and not sop_class.startswith(SECONDARY_CAPTURE):
        return "does not say whether it has burned-in annotation (BurnedInAnnotation, required of a mammogram)"
    return ""


def keep_valid_characteristics(ds: Dataset) -> None:
    """The retained patient characteristics kept only as the values they are: a sex other than M, F or O, or a
    size or weight that is no decimal number, is emptied. Free text there ("female Testperson") passed into the
    de-identified copies, and highdicom refused the sex ("'W' is not a valid PatientSexValues"), failing the
    whole export."""
    if "PatientSex" in ds and str(ds.PatientSex or "").strip().upper() not in ("M", "F", "O", ""):
        ds.PatientSex = ""
    elif "PatientSex" in ds:
        ds.PatientSex = str(ds.PatientSex or "").strip().upper()
    for keyword in ("PatientSize", "PatientWeight"):
        if keyword not in ds:
            continue
        try:
            value = float(str(ds.data_element(keyword).value or "0"))
        except Exception:  # noqa: BLE001 - pydicom raises several kinds for a value that is no number
            value = float("nan")
        if not (math.isfinite(value) and value >= 0):
            delattr(ds, keyword)


def site_key(folder: Path | None = None) -> bytes:
    """This computer's de-identification secret (32 random bytes, created 0600 in the app folder on first use):
    the same key gives the same pseudonyms, UIDs and date offsets in every export, so that a study exported
    twice or a patient's two exams stay linked without any original identifier."""
    from app.settings import config_dir, private_folder  # noqa: PLC0415

    path = private_folder(Path(folder) if folder is not None else config_dir()) / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) >= 32:
        return key
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it in the meantime, or a damaged one is there
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        raise DeidentificationError("the de-identification key is damaged (remove it to make a new one; "
                                    "pseudonyms made with the old one will not match new ones)", path) from None
    key = os.urandom(32)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """``anon-`` and 12 hex digits of a keyed hash of ``value``: a stable name that reveals nothing of it."""
    return "anon-" + hmac.new(key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:12]


def age_in_years(value: str) -> float | None:
    """A PatientAge (AS, ``nnnD|W|M|Y``) in years; None when it is not an age."""
    match = _AGE.match(str(value).strip())
    return None if match is None else int(match.group(1)) * _DAYS_PER_UNIT[match.group(2)] / 365.25


def capped_age(value: str) -> str | None:
    """A PatientAge (AS, ``nnnD|W|M|Y``) with ages over 89 written as 090Y; None when it is not an age."""
    years = age_in_years(value)
    if years is None:
        return None
    return "090Y" if years > OLDEST_AGE else str(value).strip()


class Deidentifier:
    """One key's de-identification: the same original gives the same replacement every time."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key if key is not None else site_key()

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.key, f"{kind}\0{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The replacement of an instance UID: ``2.25.`` and a 128-bit keyed hash (PS3.5 B.2), 44 digits at most."""
        return "2.25." + str(int.from_bytes(self._digest("uid", str(original))[:16], "big"))

    def patient(self, patient_id: str) -> str:
        return pseudonym(self.key, "patient", patient_id)

    def date_offset(self, patient_id: str) -> datetime.timedelta:
        """One offset per patient: between one and ten years back, whole days."""
        days = int.from_bytes(self._digest("date", patient_id)[:4], "big") % (9 * 365) + 365
        return datetime.timedelta(days=-days)

    def dataset(self, source: Dataset, patient_id: str | None = None) -> Dataset:
        """A de-identified copy of ``source`` (pixels and file meta included), the profile and options declared.
        ``patient_id``: the exam's patient (the intake's, one for all its views), whose pseudonym and date offset
        every file of the export gets; default the file's own (CBIS-DDSM names one patient differently in each
        view's file: four pseudonyms and four date shifts for one patient).

        Raises:
            DeidentificationError: the pixels carry burned-in annotation (text that may name the patient),
                which this profile does not clean.
        """
        problem = burned_in_problem(_text_of(source.get("BurnedInAnnotation")), str(source.get("SOPClassUID", "")))
        if problem:
            raise DeidentificationError(f"the image {problem}; it cannot be exported de-identified")
        from dicomanonymizer.simpledicomanonymizer import anonymize_dataset  # noqa: PLC0415

        ds = copy.deepcopy(source)
        patient_id = patient_id or str(ds.get("PatientID", "") or "")
        offset = self.date_offset(patient_id)
        anonymize_dataset(ds, self._rules(), delete_private_tags=True, base_rules_gen=_profile_rules)
        ds.walk(lambda dataset, element: self._replace(element, offset))
        if "PatientAge" in ds:
            age = capped_age(ds.PatientAge)
            if age is None:
                del ds.PatientAge
            else:
                ds.PatientAge = age
        keep_valid_characteristics(ds)
        _remove_unlisted_text(ds, _listed_tags())
        ds.PatientID = ds.PatientName = self.patient(patient_id)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:  # the sender's AE title and private information go; what reads the file stays
            for element in list(meta):
                if element.keyword not in FILE_META_KEPT:
                    del meta[element.tag]
            if "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in ds:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        declare(ds)
        return ds

    def _rules(self) -> dict:
        """The table's actions changed where the options say: dates, times, UIDs and the retained patient
        characteristics are kept by the table pass (and then shifted, capped or replaced by ``_replace``)."""
        keep = _action("keep")
        remove = _action("delete")
        table = _profile_rules()
        rules = {}
        for tag, action in table.items():
            if len(tag) != 2:
                continue
            keyword = keyword_for_tag(tag)
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            if keyword in RETAINED_CHARACTERISTICS or (vr in ("DA", "DT", "TM")
                                                        and keyword not in ("PatientBirthDate", "PatientBirthTime")):
                rules[tag] = keep
            elif vr == "UI":
                rules[tag] = keep  # replaced consistently by _replace
            elif vr == "SQ" and action.__name__ == "delete_or_empty_or_replace_UID":
                rules[tag] = remove  # references to other instances (type 3 in the images we read)
        return rules

    def _replace(self, element: pydicom.DataElement, offset: datetime.timedelta) -> None:
        """Dates shifted and instance UIDs replaced, wherever they are (sequences included)."""
        if not element.value:
            return
        values = list(element.value) if isinstance(element.value, pydicom.multival.MultiValue) else [element.value]
        if element.VR == "UI" and not _is_defined_uid(element):
            new = [self.uid(v) if v else v for v in values]
        elif element.VR == "DA":
            new = [_shift(str(v), offset, 8) for v in values]
        elif element.VR == "DT":
            new = [_shift(str(v), offset, 8) for v in values]
        else:
            return
        element.value = new if len(new) > 1 else new[0]


def deidentified_uid(uid: str) -> str:
    """The UID a de-identified export gives ``uid`` (the same as its de-identified images and DICOM results carry),
    or "" for none."""
    return Deidentifier().uid(uid) if uid else ""


def _is_defined_uid(element: pydicom.DataElement) -> bool:
    """Class UIDs, transfer syntaxes, coding schemes and every UID the standard itself defines name no instance."""
    keyword = keyword_for_tag(element.tag) or ""
    values = element.value if isinstance(element.value, pydicom.multival.MultiValue) else [element.value]
    return (keyword.endswith(("ClassUID", "TransferSyntaxUID", "CodingSchemeUID"))
            or all(str(v).startswith("1.2.840.10008.") for v in values))


def _shift(value: str, offset: datetime.timedelta, digits: int) -> str:
    """A DA or the date of a DT shifted by ``offset`` (the rest of a DT kept); "" for a partial or odd date and
    for the table's dummy date (0001-01-01, what dicom-anonymizer writes for an emptied date)."""
    value = value.strip()
    try:
        date = datetime.datetime.strptime(value[:digits], "%Y%m%d").date()
        return "" if date.year < 1800 else (date + offset).strftime("%Y%m%d") + value[digits:]
    except (ValueError, OverflowError):
        return ""


def _action(name: str) -> Callable:
    from dicomanonymizer.simpledicomanonymizer import ActionsMapNameFunctions  # noqa: PLC0415

    return ActionsMapNameFunctions[name].value.function


def _profile_rules() -> dict:
    """PS3.15 Table E.1-1 as tag -> action (remove, empty, dummy value, new UID)."""
    from dicomanonymizer.simpledicomanonymizer import initialize_actions  # noqa: PLC0415

    global _RULES  # noqa: PLW0603 - the table is read once; each call hands out a copy
    if _RULES is None:
        _RULES = initialize_actions(PROFILE_TABLE)
    return dict(_RULES)


_RULES: dict | None = None


def _listed_tags() -> frozenset[int]:
    """The tags the profile's table gives an action (it removed, emptied or replaced them already)."""
    return frozenset(Tag(*tag) for tag in _profile_rules() if len(tag) == 2)


def _remove_unlisted_text(ds: Dataset, listed: frozenset[int]) -> None:
    """Remove, at the top level, the text attributes the table does not list and an image does not need
    (``NEEDED_TEXT``), the overlays (60xx: their text and bitmaps may name the patient) and ``REMOVED``; remove
    the sequences an image does not need, and keep in those it needs only coded concepts, LUT names, numbers
    and references (:func:`_clean_item`). What the object's IOD makes Type 2 is emptied, not removed (a removed
    Position Reference Indicator made the copy of a valid image invalid), and an optional sequence is removed,
    not emptied (an empty Performed Protocol Code Sequence is invalid: one item or more when present)."""
    type2 = iod_type2(str(ds.get("SOPClassUID", "")))
    for element in list(ds):
        if element.tag.group & 0xFF00 == 0x6000 or element.keyword in REMOVED:
            del ds[element.tag]
        elif element.VR == "SQ":
            if element.keyword in NEEDED_SEQUENCES or type2 is None or element.keyword in type2:
                _clean_sequence(element)
            else:
                del ds[element.tag]
        elif element.VR in TEXT_VRS and element.tag not in listed and element.keyword not in NEEDED_TEXT:
            if type2 is not None and element.keyword in type2:
                element.value = ""
            else:
                del ds[element.tag]


@functools.cache
def iod_type2(sop_class_uid: str) -> frozenset[str] | None:
    """The top-level attributes the SOP class's IOD makes Type 2 (present, maybe empty), from highdicom's tables
    of the standard (a well-kept copy of PS3.3's modules); None for a SOP class they do not hold."""
    try:
        # a private module of highdicom (pinned >= 0.28, where it is): the only packaged, maintained copy of PS3.3's
        # module tables at hand; pydicom has none, and copying the tables here would be a second copy to keep
        from highdicom._standard_utils import (  # noqa: PLC0415
            get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map)

        iod = get_sop_class_iod_map().get(sop_class_uid)
        if iod is None:
            return None
        modules = get_iod_module_map()[iod]
        return frozenset(a["keyword"] for m in modules for a in get_module_attribute_map()[m["key"]]
                         if a["type"] == "2" and not a["path"])
    except (ImportError, AttributeError, KeyError, TypeError) as error:  # the tables moved or changed shape
        logger.warning("highdicom's tables of the standard could not be read (%s): de-identified copies keep the "
                       "old handling of Type 2 attributes and may not validate", type(error).__name__)
        return None


def _clean_sequence(element: pydicom.DataElement) -> None:
    """A sequence an image needs keeps its items, cleaned (:func:`_clean_item`); any other is emptied."""
    if element.keyword in NEEDED_SEQUENCES:
        for item in element.value or []:
            _clean_item(item)
    else:
        element.value = []


def _clean_item(item: Dataset) -> None:
    """An item of a needed sequence: its coded concepts, LUT names, numbers and references; no other text, no
    date or time (the table never reaches inside sequences)."""
    for element in list(item):
        if element.VR == "SQ":
            _clean_sequence(element)
        elif (element.VR in TEXT_VRS and element.keyword not in ITEM_TEXT) or element.VR in ("DA", "DT", "TM") \
                or element.tag.is_private or element.keyword in REMOVED:
            del item[element.tag]


def declare(ds: Dataset) -> None:
    """Say in ``ds`` what was done (PS3.15 E.1.1 and X.3): identity removed, by which profile and options."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(METHOD_TEXT)
    items = []
    for code in METHOD_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme_designator, code.meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


def exam_patient_key(exam) -> str:
    """The patient whose pseudonym and date offset an export of ``exam`` gets: the intake's patient ID, else (an
    exam already stripped of it) the first DICOM image's own, as :meth:`Deidentifier.dataset` takes it."""
    if exam.patient.patient_id:
        return exam.patient.patient_id
    for image in exam.views.values():
        if image.sop_instance_uid:
            try:
                return str(pydicom.dcmread(image.source, stop_before_pixels=True,
                                           specific_tags=["PatientID"]).get("PatientID", "") or "")
            except (OSError, InvalidDicomError):
                continue
    return ""


def write_deidentified_images(content, folder: str | Path) -> list[Path]:
    """The exam's source images, de-identified with the same key as the SR, SEG and Encapsulated PDF, as
    ``<exam>_<VIEW>_image.dcm``: the export's references resolve within it.

    Raises:
        DeidentificationError: an image with burned-in annotation.
    """
    from app.report.dicom_common import require_distinct_instances  # noqa: PLC0415
    from inference.files import atomic_path  # noqa: PLC0415

    require_distinct_instances(content.exam)  # two views under one UID: two images under one de-identified UID
    deidentifier = Deidentifier()
    written = []
    for view, image in content.exam.views.items():
        if not image.sop_instance_uid:
            continue  # a PNG exam: no DICOM export references it
        try:
            source = pydicom.dcmread(image.source)
        except (OSError, InvalidDicomError) as error:
            raise DeidentificationError("the source image cannot be read again to write its de-identified copy",
                                        image.source) from error
        try:
            clean = deidentifier.dataset(source, content.exam.patient.patient_id)
        except DeidentificationError as error:
            raise DeidentificationError(error.message, image.source) from None
        path = Path(folder) / f"{content.file_name}_{view.value}_image.dcm"
        with atomic_path(path) as temporary:
            clean.save_as(temporary, enforce_file_format=True)
        written.append(path)
    return written
