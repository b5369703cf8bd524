"""Case lists: the cases of a study with their ground truth per breast (never shown to readers)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.study.errors import StudyError
from app.text_lists import ListLineError, header_problem, numbered_rows, read_list_text, unread_columns
from app.study.store import Store

TRUTHS = ("malignant", "benign", "normal", "none")
REQUIRED = ("case_id", "exam", "truth_left", "truth_right")
OPTIONAL = ("notes", "training")
TRAINING_YES, TRAINING_NO = ("1", "yes", "true", "y"), ("", "0", "no", "false", "n")


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


def case_mix_note(cases: Sequence[CaseEntry]) -> str:
    """What a study of ``cases`` can never give, or "": without a malignant breast, or without a breast free of
    cancer, among the cases read for the study (training cases aside), no reading gives an AUC; without an exam
    free of cancer, no exam-level AUC. Also an exam listed under several case IDs: it is read and analysed as
    independent cases. Said when the study is made, not after the readers have read it."""
    notes = [note for note in (_auc_note(cases), _repeated_exam_note(cases)) if note]
    return "; ".join(notes)


def unread_columns_note(path: str | Path, known: Sequence[str] = REQUIRED + OPTIONAL,
                        what: str = "the case list") -> str:
    """The columns of a study's list (the case list; the lesion list with its ``known`` columns) that a study
    does not read, said when the study is made ("" when none)."""
    rows = study_csv_rows(Path(path), what)
    unread = unread_columns(list(rows[0][1]) if rows else [], known)
    if not unread:
        return ""
    return (f"{what}'s column{'s' if len(unread) > 1 else ''} {', '.join(unread)} "
            f"{'are' if len(unread) > 1 else 'is'} not read (a study reads {', '.join(known)})")


def refuse_misshapen_row(path: Path, number: int, row: dict, columns: int) -> None:
    """Refuse a CSV line with more values than the header has columns, or fewer (a value would be dropped or
    taken for another column's without a word); a trailing comma is no value."""
    if any((v or "").strip() for v in row.get(None) or ()):
        raise StudyError(f"{path}: line {number} has more values than the header has columns")
    if any(k is not None and v is None for k, v in row.items()):  # csv fills a short line's columns with None
        given = sum(k is not None and v is not None for k, v in row.items())
        raise StudyError(f"{path}: line {number} has {given} value(s) for the header's {columns} columns")


def _exam_key(exam_path: str) -> str:
    """One spelling of an exam's place: 'exams/c01/' and 'exams/c01' are one folder (a PACS address as it is)."""
    if "://" in exam_path:
        return exam_path.rstrip("/")
    return os.path.normcase(os.path.abspath(exam_path))


def _repeated_exam_note(cases: Sequence[CaseEntry]) -> str:
    by_exam: dict[str, list[str]] = {}
    for case in cases:
        if not case.training:
            by_exam.setdefault(_exam_key(case.exam_path), []).append(case.case_id)
    repeated = [ids for ids in by_exam.values() if len(ids) > 1]
    if not repeated:
        return ""
    named = "; ".join(" and ".join(ids) for ids in repeated[:3]) + (" …" if len(repeated) > 3 else "")
    return (f"{len(repeated)} exam(s) are listed under several case IDs ({named}): each is read and analysed as "
            "independent cases, which a reader study's statistics assume they are not")


def _auc_note(cases: Sequence[CaseEntry]) -> str:
    read = [case for case in cases if not case.training]
    truths = [truth for case in read for truth in (case.truth_left, case.truth_right) if truth != "none"]
    if "malignant" not in truths:
        missing = "no malignant breast"
    elif all(truth == "malignant" for truth in truths):
        missing = "no breast without cancer"
    elif all(case.positive for case in read):
        return (f"every one of the {len(read)} study case(s) has a malignant breast: the study will have "
                "breast-level results only (an exam-level AUC needs exams without cancer)")
    else:
        return ""
    return (f"the case list has {missing} among its {len(read)} study case(s) (training cases aside): the study "
            "will have no AUC (it needs cancers and non-cancers)")


def study_csv_rows(path: Path, what: str) -> list[tuple[int, dict[str, str]]]:
    """The rows of a study's CSV (a case list, a lesion list), each with its line in the file, after the text
    check that names a NUL byte or a non-UTF-8 line; ``what`` names the list in the message."""
    try:
        return numbered_rows(csv.DictReader(io.StringIO(read_list_text(path), newline="")))
    except ListLineError as error:
        raise StudyError(str(error)) from error
    except (OSError, csv.Error) as error:
        raise StudyError(f"{path}: {what} cannot be read ({error})") from error


def read_case_list(path: str | Path, *, check_exams: bool = False) -> list[CaseEntry]:
    """CSV with columns ``case_id, exam, truth_left, truth_right`` and optional ``notes``, ``training``.

    Relative exam paths are taken relative to the CSV's folder and kept absolute, so that the study opens its
    exams from whatever folder it is later scored, read or exported from. With ``check_exams`` (creating a
    study), every exam must exist and a folder must hold a file: a study is never created with a case that no
    reader could open.
    """
    path = Path(path)
    rows = study_csv_rows(path, "the case list")
    # the header's names in any case ("Case_ID,Exam,…" from a spreadsheet was refused)
    columns = [c.strip().lower() for c in rows[0][1] if c is not None] if rows else []
    if rows and (problem := header_problem(columns, REQUIRED)):
        raise StudyError(f"{path}: {problem}")
    cases, seen, exams = [], set(), {}
    for number, row in rows:
        refuse_misshapen_row(path, number, row, len(columns))
        values = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        case_id, exam = values["case_id"], values["exam"]
        if not case_id or not exam:
            raise StudyError(f"{path}: line {number}: give the {'case_id' if not case_id else 'exam'}")
        for column in ("truth_left", "truth_right"):
            if values[column].lower() not in TRUTHS:
                raise StudyError(f"{path}: line {number}: {column} {values[column]!r} is not one of {', '.join(TRUTHS)}")
        left, right = values["truth_left"].lower(), values["truth_right"].lower()
        if case_id in seen:
            raise StudyError(f"{path}: line {number}: case {case_id!r} appears twice")
        seen.add(case_id)
        exam_path = Path(os.path.abspath(path.parent / exam))  # abspath: '..' removed, symbolic links kept
        earlier = exams.get(str(exam_path.resolve()))
        if earlier is not None and (earlier.truth_left, earlier.truth_right) != (left, right):
            raise StudyError(f"{path}: line {number}: case {case_id!r} is the exam of case {earlier.case_id!r} with "
                             "another truth; one exam has one truth")
        training_text = values.get("training", "").lower()
        if training_text not in TRAINING_YES + TRAINING_NO:
            raise StudyError(f"{path}: line {number}: training {values['training']!r} is neither yes nor no "
                             f"({', '.join(TRAINING_YES)} / {', '.join(t for t in TRAINING_NO if t)} or empty)")
        case = CaseEntry(case_id, str(exam_path), left, right, values.get("notes", ""), training_text in TRAINING_YES)
        exams.setdefault(str(exam_path.resolve()), case)
        cases.append(case)
    if not cases:
        raise StudyError(f"{path}: the case list is empty")
    if check_exams:
        _check_exams_exist(path, cases)
    return cases


def _check_exams_exist(path: Path, cases: list[CaseEntry]) -> None:
    """Every exam of the list exists and, when a folder, holds a DICOM or PNG file of its own (whether they are
    mammograms is learned when the exam is opened: ``study scores`` names each exam that cannot be). A folder of
    documents was taken for an exam, and failed only at ``study scores``."""
    from inference.intake.exam import exam_files  # noqa: PLC0415

    said = []  # every kind of problem at once: a list fixed for the first was refused again for the next
    for problem, bad in (("do not exist", [c for c in cases if not Path(c.exam_path).exists()]),
                         ("are folders without a DICOM or PNG file", [
                             c for c in cases if Path(c.exam_path).is_dir() and not exam_files(c.exam_path)])):
        if bad:
            names = ", ".join(f"{c.case_id} ({c.exam_path})" for c in bad[:5])
            said.append(f"{len(bad)} exam(s) of the case list {problem}: {names}" + (" …" if len(bad) > 5 else ""))
    if said:
        raise StudyError(f"{path}: {'; '.join(said)}")


def study_cases(store: Store, study_id: int) -> dict[str, CaseEntry]:
    rows = store.read(
        "SELECT case_id, exam_path, truth_left, truth_right, notes, training FROM study_cases WHERE study_id=?",
        (study_id,),
    )
    return {r[0]: CaseEntry(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}
