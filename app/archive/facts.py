"""The facts of an exam that the validation groups by (density, manufacturer, age, study date), read from the
DICOM headers for the batch table, and made safe to write in a de-identified batch.

In a de-identified batch the study date is shifted by the patient's keyed offset, the one the de-identified
DICOM exports use (``app.report.deidentify.Deidentifier.date_offset``), so months and intervals stay true
and the exports and the table agree; an age over 89 is written as 90 (PS3.15's Retain Patient
Characteristics option with the HIPAA Safe Harbor ceiling, as the exports do). Breast density is in no
standard attribute of a mammogram's header: the column is null unless the header gives it, and the
validation takes it from the outcomes.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.intake.exam import Exam

FACTS = ("density", "manufacturer", "age", "study_date")


def _date(text: str) -> datetime.date | None:
    try:
        return datetime.datetime.strptime(text.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _age(birth: datetime.date | None, study: datetime.date | None) -> float | None:
    """Whole years between the birth date and the study date (None when either is unknown or odd)."""
    if birth is None or study is None or study < birth:
        return None
    return float(study.year - birth.year - ((study.month, study.day) < (birth.month, birth.day)))


def exam_facts(exam: Exam, deidentify: bool = False, key: bytes | None = None) -> dict:
    """``density`` (a-d or None), ``manufacturer`` (None when no view names one), ``age`` (years) and
    ``study_date`` (ISO 8601) of an exam that still holds its identifiers (before ``Exam.deidentify``), and
    ``date_shift``, what every date written of it is moved by (0 unless de-identified).

    Args:
        exam: the exam as loaded.
        deidentify: shift the study date by the patient's offset and cap the age at 90.
        key: the de-identification key (default: this computer's, as the exports use).
    """
    from app.report.deidentify import OLDEST_AGE, age_in_years  # noqa: PLC0415

    makers = Counter(image.study.get("manufacturer", "").strip() for image in exam.views.values())
    makers.pop("", None)
    study = _date(exam.study_date)
    age = _age(_date(exam.patient.birth_date), study)
    if age is None:  # no birth date (often dropped by an archive's de-identification): the header's PatientAge
        ages = [age_in_years(image.study.get("age", "")) for image in exam.views.values()]
        age = next((float(int(years)) for years in ages if years is not None), None)
    date, shift = study, datetime.timedelta(0)
    if deidentify:
        from app.report.deidentify import Deidentifier  # noqa: PLC0415

        if age is not None and age > OLDEST_AGE:
            age = float(OLDEST_AGE + 1)
        shift = Deidentifier(key).date_offset(exam.patient.patient_id)
        if study is not None:
            try:
                date = study + shift
            except OverflowError:
                date = None
    return {"density": None, "manufacturer": makers.most_common(1)[0][0] if makers else None, "age": age,
            "study_date": date.isoformat() if date is not None else None, "date_shift": shift}
