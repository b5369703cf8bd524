"""A localisation study as an RJafroc data file (the JAFROC Excel layout), so a coordinator can re-run it in R.

Sheets ``Truth`` (CaseID, LesionID, Weight, ReaderID, ModalityID, Paradigm: one row per normal case with
LesionID 0 and Weight 0, one row per lesion of an abnormal case; ReaderID and ModalityID list every reader and
modality, as the factorial design has them all read every case; Paradigm ``FROC`` / ``FCTRL``), ``NL``
(ReaderID, ModalityID, CaseID, NL_Rating: one row per non-lesion localisation) and ``LL`` (ReaderID,
ModalityID, CaseID, LesionID, LL_Rating: one row per lesion localisation). RJafroc wants whole-number case and
lesion IDs: normal cases are numbered 1 … K1 and abnormal ones K1+1 … K (RJafroc's convention), lesions 1 … n
within their case; a ``Key`` sheet gives the study's own case and lesion names for each number (RJafroc reads
the three sheets by name and ignores it). Read it in R with ``DfReadDataFile("file.xlsx")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.study.errors import StudyError

TRUTH_HEADER = ["CaseID", "LesionID", "Weight", "ReaderID", "ModalityID", "Paradigm"]
NL_HEADER = ["ReaderID", "ModalityID", "CaseID", "NL_Rating"]
LL_HEADER = ["ReaderID", "ModalityID", "CaseID", "LesionID", "LL_Rating"]
KEY_HEADER = ["CaseID", "case", "LesionID", "lesion"]


def rjafroc_tables(form: Mapping[str, Any]) -> dict[str, list[list[Any]]]:
    """The sheets (header row first) of the study given in the localisation JSON form."""
    cases = list(form["cases"])
    readers = [str(r) for r in form["readers"]]
    modalities = [str(m) for m in form["modalities"]]
    ordered = [c for c in cases if not c.get("abnormal")] + [c for c in cases if c.get("abnormal")]
    case_number = {c["id"]: n for n, c in enumerate(ordered, start=1)}
    lesion_number = {(c["id"], lesion["id"]): n for c in ordered
                     for n, lesion in enumerate(c.get("lesions") or [], start=1)}
    reader_list, modality_list = ", ".join(readers), ", ".join(modalities)
    truth, key = [TRUTH_HEADER], [KEY_HEADER]
    for case in ordered:
        number = case_number[case["id"]]
        lesions = case.get("lesions") or []
        if not case.get("abnormal"):
            truth.append([number, 0, 0.0, reader_list, modality_list])
            key.append([number, str(case["id"]), 0, ""])
            continue
        for lesion in lesions:
            weight = lesion.get("weight")
            weight = float(weight) if weight is not None else 1.0 / len(lesions)
            truth.append([number, lesion_number[(case["id"], lesion["id"])], weight, reader_list, modality_list])
            key.append([number, str(case["id"]), lesion_number[(case["id"], lesion["id"])], str(lesion["id"])])
    if len(truth) < 3:  # the paradigm column holds two cells ("FROC", "FCTRL"), one per row of truth
        raise StudyError(f"RJafroc's data file needs at least two rows of truth (a normal case, or a lesion, a row); "
                         f"this study gives {len(truth) - 1}")
    truth[1].append("FROC")
    truth[2].append("FCTRL")
    nl, ll = [NL_HEADER], [LL_HEADER]
    for mark in form["marks"]:
        case_id = mark["case"]
        if case_id not in case_number:
            raise StudyError(f"a mark names case {case_id!r}, which is not in the study")
        row = [str(mark["reader"]), str(mark["modality"]), case_number[case_id]]
        if mark.get("lesion") is None:
            nl.append(row + [float(mark["rating"])])
        else:
            ll.append(row + [lesion_number[(case_id, mark["lesion"])], float(mark["rating"])])
    return {"Truth": truth, "NL": nl, "LL": ll, "Key": key}


def write_rjafroc_xlsx(form: Mapping[str, Any], path: str | Path) -> Path:
    """Write the study (localisation JSON form) as an RJafroc Excel data file; returns the path.

    openpyxl writes the workbook: a well-kept library for the Office Open XML package rather than our own
    zip of spreadsheet XML.
    """
    from openpyxl import Workbook  # noqa: PLC0415

    path = Path(path)
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in rjafroc_tables(form).items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
            for cell in sheet[sheet.max_row]:  # a reader named "=HYPERLINK(…)" was stored as a formula that
                if cell.data_type == "f":  # Excel ran and R read as nothing: every text is text
                    cell.data_type = "s"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        workbook.save(partial)
        partial.replace(path)
    except OSError as error:
        raise StudyError(f"{path}: the RJafroc data file cannot be written ({error})") from error
    return path
