"""What a study is created from is checked before it is made: the case list's exams (kept as absolute paths),
the batch's score table given with --scores, and the lesions' places on their views."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.archive.study_scores import read_batch_scores
from app.archive.table import SCHEMA
from app.study.cases import CaseEntry, read_case_list
from app.study.errors import StudyError
from app.study.lesions import check_lesion_places, read_lesion_list
from app.study.store import Store
from tests.helpers import run_main



def test_relative_exams_are_kept_absolute_whatever_folder_the_study_is_created_from(tmp_path, monkeypatch):
    (tmp_path / "exams" / "e1").mkdir(parents=True)
    (tmp_path / "exams" / "e1" / "1.dcm").write_bytes(b"x")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "cases.csv").write_text("case_id,exam,truth_left,truth_right\nc1,../exams/e1,normal,normal\n")
    monkeypatch.chdir(tmp_path)  # the list named by a relative path: its exams were stored relative to here
    case = read_case_list(Path("lists") / "cases.csv", check_exams=True)[0]
    assert case.exam_path == str(tmp_path / "exams" / "e1")


def test_an_empty_exam_folder_is_refused_when_the_study_is_created(tmp_path):
    (tmp_path / "e1").mkdir()
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right\nc1,e1,normal,normal\n")
    with pytest.raises(StudyError, match=r"cases.csv: 1 exam\(s\) of the case list are folders without a DICOM or "
                                         r"PNG file: c1 \("):
        read_case_list(tmp_path / "cases.csv", check_exams=True)
    assert read_case_list(tmp_path / "cases.csv")  # only creating a study opens the exams' folders
    (tmp_path / "e1" / "notes.txt").write_text("a folder of documents is no exam either (it failed only at scores)")
    with pytest.raises(StudyError, match="folders without a DICOM or PNG file: c1"):
        read_case_list(tmp_path / "cases.csv", check_exams=True)
    # a missing exam and an empty one are said together (a reviewer fixed the first, then was told the second)
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right\nc1,e1,normal,normal\n"
                                        "c2,gone,normal,normal\n")
    with pytest.raises(StudyError, match=r"1 exam\(s\) of the case list do not exist: c2 .*; 1 exam\(s\) of the "
                                         r"case list are folders without a DICOM or PNG file: c1"):
        read_case_list(tmp_path / "cases.csv", check_exams=True)


def _table(tmp_path: Path, exam: Path, *, probability=0.3, extra=(), drop=()) -> Path:
    base = {name: None for name in SCHEMA.names}
    base.update(exam_id="c1", location=str(exam), model_id="m", model_label="m", family="gmic", model_key="k",
                mode="exact", numerics="fp32", device="cpu", seconds=1.0, analysed_at="2026", counted=True)
    rows = [{**base, "level": "breast", "breast": breast, "view": "", "kind": "malignancy", "class": "malignant",
             "probability": probability if breast == "L" else 0.1} for breast in ("L", "R")]
    rows += [{**base, **row} for row in extra]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    table = table.drop_columns(list(drop))
    path = tmp_path / "batch" / "scores.parquet"
    path.parent.mkdir(exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("probability, shown", [(math.nan, "nan"), (None, "NaN \\(stored as null\\)"), (1.5, "1.5"),
                                                (-0.5, "-0.5"), (math.inf, "inf")])
def test_a_score_table_with_a_probability_that_is_no_number_in_0_1_is_refused(tmp_path, probability, shown):
    exam = tmp_path / "e1"
    table = _table(tmp_path, exam, probability=probability)
    with pytest.raises(StudyError, match=f"scores.parquet: case c1 L, model m, malignancy malignant: the "
                                         f"probability {shown} is not a number in \\[0, 1\\]"):
        read_batch_scores(table, {"c1": CaseEntry("c1", str(exam), "normal", "normal")})


def test_a_score_table_giving_a_breast_two_probabilities_or_lacking_a_column_is_refused(tmp_path):
    exam = tmp_path / "e1"
    cases = {"c1": CaseEntry("c1", str(exam), "normal", "normal")}
    twice = [{"level": "breast", "breast": "L", "view": "", "kind": "malignancy", "class": "malignant",
              "probability": 0.99}]
    with pytest.raises(StudyError, match=r"case c1 L, model m, malignancy malignant: the table gives two different "
                                         r"probabilities \(0.3 and 0.99\)"):
        read_batch_scores(_table(tmp_path, exam, extra=twice), cases)
    with pytest.raises(StudyError, match="this is not a batch's score table: it lacks the column\\(s\\) location"):
        read_batch_scores(_table(tmp_path, exam, drop=["location"]), cases)
    other = [{"exam_id": "zz99", "level": "breast", "breast": "L", "view": "", "kind": "malignancy",
              "class": "malignant", "probability": 0.5}]
    scores = read_batch_scores(_table(tmp_path, exam, extra=other).parent, cases)  # the batch's folder named
    assert len(scores.cases) == 1 and scores.missing == 0 and scores.foreign == ("zz99",)


def test_study_create_with_a_refused_score_table_leaves_no_study(tmp_path):
    exam = tmp_path / "e1"
    exam.mkdir()
    (exam / "1.dcm").write_bytes(b"x")
    (tmp_path / "cases.csv").write_text(f"case_id,exam,truth_left,truth_right\nc1,{exam},normal,normal\n")
    db = tmp_path / "s.sqlite"
    create = ["study", "--db", str(db), "create", "s", "--cases", str(tmp_path / "cases.csv"), "--readers", "A",
              "--scores"]
    done = run_main([*create, str(_table(tmp_path, exam, probability=7.0))])
    assert done.returncode == 2, done.stderr
    assert "the probability 7.0 is not a number in [0, 1]" in done.stderr and "created" not in done.stdout
    done = run_main([*create, str(_table(tmp_path, exam))])  # not refused as "a study named 's' already exists"
    assert done.returncode == 0, done.stderr
    assert "created study 's'" in done.stdout and "model scores of 1 case(s)" in done.stdout
    store = Store(db)
    try:
        assert store.read("SELECT breast, malignant FROM model_scores ORDER BY breast") == [("L", 0.3), ("R", 0.1)]
    finally:
        store.close()


@pytest.mark.parametrize("row, message", [
    ("c1,L,CC,,99999,100", r"case c1: lesion '1': its centre \(row 99999, col 100\) is outside the L-CC image "
                           r"\(800 rows × 500 columns\)"),
    ("c1,L,CC,,-1,100", r"its centre \(row -1, col 100\) is outside"),
    ("c1,L,CC,small.png,,", r"case c1: lesion '1': its mask is 10 × 10 pixels, the L-CC image 800 × 500: give a "
                            r"mask drawn on that image"),
    ("c1,L,MLO,,100,100", r"case c1: lesion '1' is on L-MLO, but the case's exam has no L-MLO image"),
])
def test_a_lesion_no_mark_could_localise_is_refused(tmp_path, row, message):
    small = np.zeros((10, 10), np.uint8)
    small[2:5, 2:5] = 255
    import cv2

    cv2.imwrite(str(tmp_path / "small.png"), small)
    (tmp_path / "lesions.csv").write_text(f"case_id,breast,view,mask,row,col\n{row}\n")
    cases = [CaseEntry("c1", "/exams/1", "malignant", "normal")]
    lesions = read_lesion_list(tmp_path / "lesions.csv")
    shapes = {"/exams/1": {"L-CC": (800, 500), "R-CC": (800, 500), "R-MLO": (800, 500)}}
    with pytest.raises(StudyError, match=message):
        check_lesion_places(lesions, cases, shapes_of=shapes.__getitem__, source="lesions.csv")


def test_a_lesion_inside_its_view_passes(tmp_path):
    mask = np.zeros((800, 500), np.uint8)
    mask[100:120, 200:230] = 255
    import cv2

    cv2.imwrite(str(tmp_path / "m.png"), mask)
    (tmp_path / "lesions.csv").write_text("case_id,breast,view,mask,row,col\nc1,L,CC,m.png,,\nc1,L,MLO,,799,499.5\n")
    lesions = read_lesion_list(tmp_path / "lesions.csv")
    assert lesions[0].mask_shape == (800, 500) and lesions[1].mask_shape is None
    check_lesion_places(lesions, [CaseEntry("c1", os.sep + "e", "malignant", "normal")],
                        shapes_of=lambda exam: {"L-CC": (800, 500), "L-MLO": (800, 500)})


def test_a_figure_of_merit_interval_is_reported_within_0_1():
    """A small FROC study printed "aided 0.8333 (RRRC 95 % CI 0.3215 – 1.3452)"."""
    from app.study.froc_results import fom_interval

    assert fom_interval((0.3215, 1.3452)) == (0.3215, 1.0)
    assert fom_interval((-0.2, 0.4)) == (0.0, 0.4)
    low, high = fom_interval((math.nan, math.nan))  # not estimable stays so
    assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("name", ["pilot ", " pilot", "line1\nline2", "a\tb"])
def test_a_study_name_with_spaces_at_its_ends_or_unprintable_characters_is_refused(tmp_path, name):
    from app.study.design import Design, create_study

    store = Store(tmp_path / "s.sqlite")
    try:
        with pytest.raises(StudyError, match="has spaces at its ends or control characters"):
            create_study(store, name, Design.UNAIDED, ["A"], [CaseEntry("c1", "/e", "normal", "normal")])
        assert store.read("SELECT COUNT(*) FROM studies") == [(0,)]
        # a no-break space inside a name (pasted from a spreadsheet, French typography before ':') is a space
        create_study(store, "Étude\u202f: pilote\xa02024", Design.UNAIDED, ["A"],
                     [CaseEntry("c1", "/e", "normal", "normal")])
    finally:
        store.close()


def test_a_line_after_a_blank_line_is_named_by_its_line_in_the_file(tmp_path):
    """The rows were counted from 2 as read; the CSV reader skips blank lines, so the line was misnamed."""
    (tmp_path / "e1").mkdir()
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right\nc1,e1,normal,normal\n\n"
                                        "c2,e1,sick,normal\n")
    with pytest.raises(StudyError, match=r"cases.csv: line 4: truth_left 'sick' is not one of"):
        read_case_list(tmp_path / "cases.csv")


def test_the_other_lists_name_the_line_in_the_file_too(tmp_path):
    from app.archive.sources import _from_csv
    from app.validation.errors import ValidationInputError
    from app.validation.outcomes import read_site_csv
    from inference.errors import MammoError

    (tmp_path / "list.csv").write_text("case_id,exam\nc1,e1\n\nc2,\n")
    with pytest.raises(MammoError, match="line 4 has no 'exam'"):
        _from_csv(tmp_path / "list.csv")
    (tmp_path / "outcomes.csv").write_text("exam_id,breast,cancer\ne1,L,0\n\ne1,X,0\n")
    with pytest.raises(ValidationInputError, match="line 4: breast 'X' is neither L nor R"):
        read_site_csv(tmp_path / "outcomes.csv")


@pytest.mark.parametrize("truths, says", [
    ([("normal", "normal"), ("benign", "none")], "no malignant breast among its 2 study case(s)"),
    ([("malignant", "none"), ("none", "malignant")], "no breast without cancer among its 2 study case(s)"),
    ([("malignant", "normal"), ("benign", "malignant")], "breast-level results only"),
    ([("malignant", "normal"), ("normal", "benign")], ""),
    ([("malignant", "normal"), ("normal", "benign"), ("normal", "normal", "/e/1/")],
     "1 exam(s) are listed under several case IDs (c1 and c2): each is read and analysed as independent cases"),
])
def test_the_case_mix_a_study_can_never_give_an_auc_with_is_named(tmp_path, truths, says):
    """Seen: an all-normal case list made a study without a word; the coordinator learnt that it gives no AUC
    after the readers had read every case. Training cases do not count: they are never analysed."""
    from app.study.cases import case_mix_note

    cases = [CaseEntry(f"c{i}", (exam or [f"/e/{i}"])[0], left, right) for i, (left, right, *exam) in enumerate(truths)]
    cases.append(CaseEntry("t", "/e/t", "normal", "normal", training=True))
    cases.append(CaseEntry("u", "/e/u", "malignant", "benign", training=True))
    assert (says in case_mix_note(cases)) if says else case_mix_note(cases) == ""
    if "no malignant" not in says:
        return
    (tmp_path / "e1").mkdir()
    (tmp_path / "e1" / "1.png").write_bytes(b"x")
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right\nc1,e1,normal,normal\n")
    done = run_main(["study", "--db", str(tmp_path / "s.sqlite"), "create", "pilot", "--readers", "A", "--cases",
                     str(tmp_path / "cases.csv")])
    assert done.returncode == 0, done.stderr
    assert "note: the case list has no malignant breast among its 1 study case(s)" in done.stdout


def test_a_case_list_header_in_capitals_is_read(tmp_path):
    """"Case_ID,Exam,Truth_Left,Truth_Right" (a spreadsheet's export) was refused as lacking every column."""
    (tmp_path / "e1").mkdir()
    (tmp_path / "cases.csv").write_text("Case_ID,Exam,Truth_Left,Truth_Right,Notes\nc1,e1,Malignant,normal,prior\n")
    case = read_case_list(tmp_path / "cases.csv")[0]
    assert (case.case_id, case.truth_left, case.truth_right, case.notes) == ("c1", "malignant", "normal", "prior")


def test_a_case_list_column_the_study_does_not_read_is_named_when_the_study_is_made(tmp_path):
    """A misspelt optional column ("Note" for "notes") and a site's own column were dropped without a word: the
    coordinator learnt it when the notes were missing from the study."""
    (tmp_path / "e1").mkdir()
    (tmp_path / "e1" / "1.png").write_bytes(b"x")
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right,Note,site,training\n"
                                        "c1,e1,malignant,normal,prior at 2 y,north,no\n")
    done = run_main(["study", "--db", str(tmp_path / "s.sqlite"), "create", "pilot", "--readers", "A", "--cases",
                     str(tmp_path / "cases.csv")])
    assert done.returncode == 0, done.stderr
    assert ("note: the case list's columns Note, site are not read (a study reads case_id, exam, truth_left, "
            "truth_right, notes, training)") in done.stdout
    (tmp_path / "plain.csv").write_text("Case_ID,Exam,Truth_Left,Truth_Right,Notes\nc1,e1,malignant,normal,x\n")
    done = run_main(["study", "--db", str(tmp_path / "t.sqlite"), "create", "pilot", "--readers", "A", "--cases",
                     str(tmp_path / "plain.csv")])
    assert done.returncode == 0 and "not read" not in done.stdout, done.stdout + done.stderr
