"""Case lists: the cases of a study with their ground truth per breast (never shown to readers)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from app.study.errors import StudyError
from app.text_lists import ListLineError, read_list_text
from app.study.store import Store

TRUTHS = ("malignant", "benign", "normal", "none")


@dataclass(frozen=True)
class CaseEntry:
    """One case of a study: an exam and its ground truth per breast (never shown to readers)."""

    case_id: str
    exam_path: str
    truth_left: str
    truth_right: str
    notes: str = ""
    training: bool = False

    @property
    def positive(self) -> bool:
        return "malignant" in (self.truth_left, self.truth_right)


def study_csv_rows(path: Path, what: str) -> list[dict[str, str]]:
    """The rows of a study's CSV (a case list, a lesion list) after the text check that names a NUL byte or a
    non-UTF-8 line; ``what`` names the list in the message."""
    try:
        return list(csv.DictReader(io.StringIO(read_list_text(path), newline="")))
    except ListLineError as error:
        raise StudyError(str(error)) from error
    except (OSError, csv.Error) as error:
        raise StudyError(f"{path}: {what} cannot be read ({error})") from error


def read_case_list(path: str | Path, *, check_exams: bool = False) -> list[CaseEntry]:
    """CSV with columns ``case_id, exam, truth_left, truth_right`` and optional ``notes``, ``training``.

    Relative exam paths are taken relative to the CSV's folder. With ``check_exams`` (creating a study), every
    exam must exist: a study is never created with a case that no reader could open.
    """
    path = Path(path)
    rows = study_csv_rows(path, "the case list")
    cases, seen = [], set()
    for number, row in enumerate(rows, start=2):
        try:
            case_id = row["case_id"].strip()
            exam = row["exam"].strip()
            left, right = row["truth_left"].strip().lower(), row["truth_right"].strip().lower()
        except (KeyError, AttributeError) as error:
            raise StudyError(f"{path}: line {number} lacks case_id, exam, truth_left or truth_right") from error
        if left not in TRUTHS or right not in TRUTHS:
            raise StudyError(f"{path}: line {number}: truth must be one of {', '.join(TRUTHS)}")
        if case_id in seen:
            raise StudyError(f"{path}: line {number}: case {case_id!r} appears twice")
        seen.add(case_id)
        exam_path = Path(exam) if Path(exam).is_absolute() else (path.parent / exam)
        training = str(row.get("training", "") or "").strip().lower() in ("1", "yes", "true", "y")
        cases.append(CaseEntry(case_id, str(exam_path), left, right, (row.get("notes") or "").strip(), training))
    if not cases:
        raise StudyError(f"{path}: the case list is empty")
    if check_exams:
        missing = [c for c in cases if not Path(c.exam_path).exists()]
        if missing:
            names = ", ".join(f"{c.case_id} ({c.exam_path})" for c in missing[:5])
            raise StudyError(f"{path}: {len(missing)} exam(s) of the case list do not exist: {names}"
                             + (" …" if len(missing) > 5 else ""))
    return cases


def study_cases(store: Store, study_id: int) -> dict[str, CaseEntry]:
    rows = store.read(
        "SELECT case_id, exam_path, truth_left, truth_right, notes, training FROM study_cases WHERE study_id=?",
        (study_id,),
    )
    return {r[0]: CaseEntry(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}
