"""The readers' screening decisions from their BI-RADS categories (a coordinator's finding: the study stored every
read's category and no result said a word of it): recall rate, sensitivity, specificity and PPV per reader and
modality, counted by hand here."""

from __future__ import annotations

import csv
import json
import math

import pytest

from app.reading import BIRADS_CATEGORIES
from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.recall import NEGATIVE_CATEGORIES, POOLED, RECALL_CATEGORIES, recall_rows, wilson
from app.study.results import study_results, write_results
from app.study.sessions import ReadingSession

# c00–c03: a cancer on the left; the right is benign for c00, c03, c06, c09; c07 has no right breast
ENTRIES = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 4 else "normal",
                     "none" if i == 7 else "benign" if i % 3 == 0 else "normal") for i in range(10)]
# reader A: 4 on three of the four cancers, 2 on c03's; 0 on c05's left, 3 on c06's right; 1 everywhere else
A_CATEGORIES = {f"c{i:02d}": {"L": "4" if i < 3 else "2" if i == 3 else "0" if i == 5 else "1",
                              "R": "3" if i == 6 else "1"} for i in range(10)}


def _read(store, with_b_categories: bool = True) -> int:
    study = create_study(store, "recall", Design.UNAIDED, ["A", "B"], ENTRIES, seed=2)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for position in range(len(session.order)):
            case = session.case_at(position).case_id
            index = int(case[1:])
            if reader == "A":
                categories = A_CATEGORIES[case]
            else:  # B: 1 on everything but c09, which B gave no category
                categories = {"L": "1", "R": "1"} if with_b_categories and case != "c09" else {}
            session.commit(case, "unaided", {"L": 0.9 if index < 4 else 0.1, "R": 0.1}, categories).result()
    return study


def test_the_categories_split_into_recall_and_no_recall():
    assert sorted(RECALL_CATEGORIES + NEGATIVE_CATEGORIES) == sorted(BIRADS_CATEGORIES)
    assert not set(RECALL_CATEGORIES) & set(NEGATIVE_CATEGORIES)


def test_wilson_intervals_match_the_published_values():
    # Newcombe (1998), Table I, and the usual textbook values
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_each_reader_s_decisions_are_counted_per_breast_and_per_exam(store):
    study = _read(store)
    rows = {row.reader: row for row in recall_rows(store, study, "breast")}
    a = rows["A"]
    # 19 breasts (c07 has no right breast): recalled c00–c02 L, c05 L, c06 R; cancers c00–c03 L
    assert (a.units, a.without_category, a.recalled, a.positives, a.true_positives, a.negatives,
            a.false_positives) == (19, 0, 5, 4, 3, 15, 2)
    assert (a.sensitivity, a.specificity, a.ppv, a.recall_rate) == pytest.approx((0.75, 13 / 15, 0.6, 5 / 19))
    assert a.intervals()["sensitivity"] == pytest.approx(wilson(3, 4))
    b = rows["B"]
    assert (b.units, b.without_category, b.recalled, b.true_positives, b.false_positives) == (17, 2, 0, 0, 0)
    assert b.ppv != b.ppv  # nothing recalled: no PPV, never 0
    pooled = rows[POOLED]
    assert (pooled.units, pooled.recalled, pooled.positives, pooled.true_positives) == (36, 5, 8, 3)
    assert all(math.isnan(low) for low, _ in pooled.intervals().values())  # the same cases read twice
    exams = {row.reader: row for row in recall_rows(store, study, "exam")}
    # exams recalled: c00, c01, c02 (cancers), c05, c06; c03's cancer missed
    assert (exams["A"].units, exams["A"].recalled, exams["A"].positives, exams["A"].true_positives,
            exams["A"].negatives, exams["A"].false_positives) == (10, 5, 4, 3, 6, 2)
    assert (exams["B"].units, exams["B"].without_category) == (9, 1)
    assert [row.reader for row in recall_rows(store, study, "breast", readers={"B"})] == ["B"]


def test_results_carry_the_table_to_the_files_and_the_command_line(store, tmp_path, capsys):
    study = _read(store)
    results = study_results(store, study)
    written = {path.name for path in write_results(results, tmp_path)}
    assert "recalls_breast.csv" in written
    with (tmp_path / "recalls_breast.csv").open(encoding="utf-8") as handle:
        rows = {row["reader"]: row for row in csv.DictReader(handle)}
    assert rows["A"]["sensitivity"] == "0.75" and float(rows["A"]["sensitivity_ci_low"]) == pytest.approx(
        wilson(3, 4)[0])
    assert rows["B"]["ppv"] == "" and rows[POOLED]["sensitivity_ci_low"] == ""  # empty cells, never "nan"
    assert rows["A"]["true_negatives"] == "13"
    notes = (tmp_path / "notes_breast.txt").read_text(encoding="utf-8")
    assert "BI-RADS 0, 3, 4 (4A–4C), 5 and 6 recall; 1 and 2 do not" in notes
    assert "2 read breasts without a category not counted" in notes

    from main import main

    assert main(["study", "--db", str(store.path), "results", "recall", "--level", "exam"]) == 0
    out = capsys.readouterr().out
    assert "Screening decisions from the BI-RADS categories (exam level):" in out
    assert "an exam is recalled when either breast is" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("A ") and "recall rate" in line)
    assert "recall rate 5/10 50 %" in line and "sensitivity 3/4 75 % (30 – 95)" in line
    second = out.splitlines()[out.splitlines().index(line) + 1]
    assert " ".join(second.split()) == "specificity 4/6 67 % (30 – 90) PPV 3/5 60 % (23 – 88)"


def test_a_study_without_categories_has_no_table_and_an_earlier_one_goes(store, tmp_path):
    study = create_study(store, "none", Design.UNAIDED, ["A"], ENTRIES, seed=2)
    session = ReadingSession(store, study, "A")
    for position in range(len(session.order)):
        session.commit(session.case_at(position).case_id, "unaided", {"L": 0.2, "R": 0.1}).result()
    results = study_results(store, study)
    earlier_run(tmp_path, results, "recalls_breast.csv")
    assert results.recalls == [] and results.recall_notes() == []
    written = {path.name for path in write_results(results, tmp_path)}
    assert "recalls_breast.csv" not in written and not (tmp_path / "recalls_breast.csv").exists()


def earlier_run(folder, results, name: str) -> None:
    """``name`` in ``folder`` as an earlier results run of the same study wrote it (its manifest says so)."""
    import hashlib

    from app.study.results import MANIFEST

    (folder / name).write_bytes(b"an earlier run's")
    (folder / MANIFEST).write_text(json.dumps({results.level: {
        "study": results.identity(), "files": {name: hashlib.sha256(b"an earlier run's").hexdigest()}}}))


def test_the_results_screen_shows_the_table_with_its_rule(qtbot, store):
    from PySide6.QtWidgets import QLabel, QTableWidget, QTabWidget

    from app.ui.study.results import StudyResultsWindow

    window = StudyResultsWindow(study_results(store, _read(store)))
    qtbot.addWidget(window)
    table = window.findChild(QTableWidget, "recallTable")
    shown = {table.item(i, 0).text(): [table.item(i, j).text() for j in range(table.columnCount())]
             for i in range(table.rowCount())}
    assert shown["A"][2:] == ["5/19 26 % (12 – 49)", "3/4 75 % (30 – 95)", "13/15 87 % (62 – 96)",
                              "3/5 60 % (23 – 88)", "0"]
    assert shown[POOLED][3] == "3/8 38 %"  # 3 of 8 cancers, no interval
    tabs = window.findChild(QTabWidget)
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("BI-RADS recall"))
    window.resize(1500, 800)  # the window's own size: every column in view
    window.show()
    qtbot.waitUntil(lambda: table.isVisible())
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert "1 and 2 do not" in window.findChild(QLabel, "recallRule").text()


def test_an_exam_counts_only_where_each_breast_has_a_category(store):
    """A coordinator's finding: an exam whose one categorised breast recalled was counted, one whose categorised
    breast was a 1 was not ("recalled 7/7, specificity 0 %" beside 58 % at breast level)."""
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "normal", "normal") for i in range(4)]
    study = create_study(store, "one side", Design.UNAIDED, ["A"], entries, seed=2)
    session = ReadingSession(store, study, "A")
    given = {"c00": {"L": "3"}, "c01": {"L": "1"}, "c02": {"L": "1", "R": "4"}, "c03": {"L": "1", "R": "2"}}
    for position in range(len(session.order)):
        case = session.case_at(position).case_id
        session.commit(case, "unaided", {"L": 0.1, "R": 0.1}, given[case]).result()
    (row,) = recall_rows(store, study, "exam")
    assert (row.units, row.without_category, row.recalled, row.negatives, row.false_positives) == (2, 2, 1, 2, 1)
    (breasts,) = recall_rows(store, study, "breast")
    assert (breasts.units, breasts.without_category, breasts.recalled) == (6, 2, 2)


def test_percentages_round_halves_up():
    from app.study.recall import percent

    assert [percent(v) for v in (0.625, 0.475, 0.875, 0.005)] == ["63 %", "48 %", "88 %", "1 %"]


def test_a_modality_read_by_one_reader_has_no_pooled_row(store):
    """A review's finding: in an interim study only A had read aided, and an aided "readers pooled" row repeated
    A's row without its intervals."""
    study = create_study(store, "interim", Design.UNAIDED, ["A", "B"], ENTRIES, seed=2)
    session = ReadingSession(store, study, "A")
    for position in range(len(session.order)):
        case = session.case_at(position).case_id
        session.commit(case, "unaided", {"L": 0.1, "R": 0.1}, A_CATEGORIES[case]).result()
    assert [row.reader for row in recall_rows(store, study, "breast")] == ["A"]
