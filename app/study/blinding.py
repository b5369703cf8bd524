"""What a study reader may see of a case: nothing that identifies the patient, the study or its date.

A reader who sees an accession number, a name, a date or a folder named after the patient can look up the
outcome, and the study then measures recall, not reading. :func:`blind_exam` removes every identifier from
an exam (patient, accession, study date and UIDs, file and folder names, ground-truth labels) and
:func:`scrub` removes them from any text shown beside it (notes, error messages).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path

from app.dates import dicom_date
from inference.intake.exam import Exam
from inference.intake.identifiers import REMOVED, names_a_view_only, path_words, remove_identifiers
from inference.intake.image import PatientInfo, ViewImage

_PATH = re.compile(  # POSIX paths, drive-letter and UNC Windows paths (not DICOM multi-values such as P\L)
    r"[^\s:;,()'\"]*/[^\s:;,()'\"]*|\b[A-Za-z]:\\[^\s:;,()'\"]*|\\\\[^\s:;,()'\"]+")
# a whole file name, but not one that only names a view ("L-CC.dcm", "0_R-MLO.png", "R-CC_retake.dcm" name no one,
# and a reason lost its file: ``names_a_view_only``)
_FILE = re.compile(r"(?<![^\s:;,()'\"])[^\s:;,()'\"]+\.(?:dcm|dicom|ima|png|tiff?|jpe?g|json|csv|zip)\b", re.IGNORECASE)
_DATE = re.compile(
    r"(?<!\d)(?:(?:19|20)\d{2}[-.]?(?:0[1-9]|1[0-2])[-.]?(?:0[1-9]|[12]\d|3[01])"  # 20240101, 2024-01-01
    r"|(?:0?[1-9]|[12]\d|3[01])[-.](?:0?[1-9]|1[0-2])[-.](?:19|20)\d{2})(?!\d)"  # 01.01.2024
)
_UID = re.compile(r"(?<![\w.])\d+(?:\.\d+){3,}(?![\w.])")  # DICOM UIDs


def exam_identifiers(exam: Exam, extra: Iterable[str] = ()) -> set[str]:
    """Every string of ``exam`` (and ``extra``: case IDs, the case's path) that could identify the patient,
    the study or its date."""
    found: set[str] = set(extra)
    found |= {exam.accession, exam.exam_id, exam.study_date}
    patients = [exam.patient, *(image.patient for image in _images(exam))]
    for patient in patients:
        found |= {patient.patient_id, patient.birth_date, patient.name}
        found |= set(re.split(r"[\^\s,]+", patient.name))
    for path in [exam.source, *(image.source for image in _images(exam))]:
        if path is not None:
            found |= path_words(path)
    for image in _images(exam):
        found |= {str(v) for v in image.study.values() if isinstance(v, (str, int))}
        found.add(image.acquisition)
    for date in [d for d in found if re.fullmatch(r"\d{8}", d or "")]:
        found.add(dicom_date(date))
    return {s.strip() for s in found if s and len(s.strip()) >= 3}


def scrub(text: str, identifiers: Iterable[str]) -> str:
    """``text`` with every identifier (:func:`remove_identifiers`) and any path, file name, date and UID
    replaced by "…"."""
    text = remove_identifiers(text, identifiers)
    text = _PATH.sub(REMOVED, text)
    text = _FILE.sub(lambda found: found[0] if names_a_view_only(found[0]) else REMOVED, text)
    for pattern in (_DATE, _UID):
        text = pattern.sub(REMOVED, text)
    return text


def blind_exam(exam: Exam, extra_identifiers: Iterable[str] = ()) -> Exam:
    """A copy of ``exam`` for a blinded reader: no patient, accession, study date, UIDs, labels (they can hold
    the ground truth), source folder or file names; notes kept with identifiers removed."""
    identifiers = exam_identifiers(exam, extra_identifiers)
    exam = exam.deidentify()

    def blind(image: ViewImage, index: int) -> ViewImage:
        slot = image.view.value if image.view is not None else f"extra image {index + 1}"
        return dataclasses.replace(
            image, source=Path(f"the {slot} image"), study={}, acquisition="", patient=PatientInfo(),
            warnings=tuple(scrub(w, identifiers) for w in image.warnings))

    views = {view: blind(image, 0) for view, image in exam.views.items()}
    aside = tuple(blind(image, i) for i, image in enumerate(exam.aside))
    changes = {}
    if "unreadable" in {f.name for f in dataclasses.fields(exam)}:  # "file: reason" of each unreadable slot
        changes["unreadable"] = {view: scrub(text, identifiers) for view, text in exam.unreadable.items()}
    return dataclasses.replace(
        exam, views=views, aside=aside, exam_id="", study_date="", accession="", labels={}, source=None,
        warnings=tuple(scrub(w, identifiers) for w in exam.warnings),
        refused=tuple((REMOVED, scrub(reason, identifiers)) for _, reason in exam.refused), **changes)


def _images(exam: Exam) -> list[ViewImage]:
    return [*exam.views.values(), *exam.aside]
