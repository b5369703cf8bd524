"""Studies: creation, randomisation, the locked sequential design, resume, kill -9, exports, telemetry."""

from __future__ import annotations

import csv
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.study.analysis import orh
from app.study.store import Store
from app.study.cases import CaseEntry, read_case_list
from app.study.design import Design, create_study, reading_order
from app.study.errors import StudyError
from app.study.exchange import export_study, import_study, write_imrmc, write_tidy_csv
from app.study.records import analysis_records, telemetry
from app.study.scores import compute_model_scores
from app.study.sessions import ReadingSession
from tests.helpers import insert_model_scores
from tests.study.ai_results import store_ai_results
from tests.conftest import DATA, require_shared

HERE = Path(__file__).resolve().parent


def cases(n=20, positives=5):
    return [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < positives else "normal",
                      "benign" if i % 3 == 0 else "normal") for i in range(n)]



def read_unaided(store, study, readers, left, right=lambda index: 0.1 + 0.01 * index) -> None:
    """Each reader's unaided read of every case in their order: ``left(reader, index, position)`` for the left
    breast (``index``: the case's number), ``right(index)`` for the right."""
    for reader in readers:
        session = ReadingSession(store, study, reader)
        for position in range(len(session.order)):
            case = session.case_at(position).case_id
            index = int(case[1:])
            session.commit(case, "unaided", {"L": left(reader, index, position), "R": right(index)}).result()


def sequential_study_read(store, name: str) -> int:
    """A sequential study of 12 cases (4 positive) read by A, B and C: unaided, the AI shown, aided."""
    study = create_study(store, name, Design.SEQUENTIAL, ["A", "B", "C"], cases(12, 4), seed=3)
    store_ai_results(store, study)
    for reader, jitter in (("A", 0.00), ("B", 0.05), ("C", 0.11)):
        session = ReadingSession(store, study, reader)
        for position in range(12):
            case = session.case_at(position).case_id
            index = int(case[1:])
            positive = index < 4
            unaided = (0.6 if positive and (index + len(reader)) % 3 else 0.35) + jitter * (index % 4) / 4
            session.commit(case, "unaided", {"L": unaided, "R": 0.2 + 0.03 * (index % 3)}).result()
            session.reveal(case).result()
            session.commit(case, "aided", {"L": unaided + (0.2 if positive else 0.3 if index % 5 == 0 else -0.05),
                                           "R": 0.2}).result()
    return study


def test_case_list_csv(tmp_path):
    (tmp_path / "cases.csv").write_text(
        "case_id,exam,truth_left,truth_right,notes,training\n"
        "a,exam_a,malignant,normal,biopsy 2024,\n"
        "b,/abs/exam_b,normal,benign,,yes\n")
    entries = read_case_list(tmp_path / "cases.csv")
    assert entries[0].exam_path == str(tmp_path / "exam_a") and entries[0].positive and not entries[0].training
    assert entries[1].training and entries[1].exam_path == "/abs/exam_b"
    (tmp_path / "bad.csv").write_text("case_id,exam,truth_left,truth_right\na,x,cancer,normal\n")
    with pytest.raises(StudyError, match="line 2"):
        read_case_list(tmp_path / "bad.csv")


@pytest.mark.parametrize("text, message", [
    ("case_id;exam;truth_left;truth_right\na;x;normal;normal\n", "the header lacks case_id, exam, truth_left, "
     "truth_right; it has case_id;exam;truth_left;truth_right \\(is it separated by semicolons"),
    ("case_id,exam,truth_left,truth_right\na,x,cancer,normal\n", "line 2: truth_left 'cancer' is not one of"),
    ("case_id,exam,truth_left,truth_right\na,x,normal,\n", "line 2: truth_right '' is not one of"),
    ("case_id,exam,truth_left,truth_right\n,x,normal,normal\n", "line 2: give the case_id"),
    ("case_id,exam,truth_left,truth_right\na,x,normal,normal,extra\n", "line 2 has more values than the header"),
    ("case_id,exam,truth_left,truth_right\na,x,normal\n", r"line 2 has 3 value\(s\) for the header's 4 columns"),
    ("case_id,exam,truth_left,truth_right,training\na,x,normal,normal,maybe\n", "line 2: training 'maybe' is neither"),
    ("case_id,exam,truth_left,truth_right\na,x,normal,normal\nb,./x,malignant,normal\n",
     "line 3: case 'b' is the exam of case 'a' with another truth"),
])
def test_a_case_list_that_contradicts_itself_or_is_malformed_is_refused_by_line(tmp_path, text, message):
    (tmp_path / "cases.csv").write_text(text)
    with pytest.raises(StudyError, match=message):
        read_case_list(tmp_path / "cases.csv")


def test_a_trailing_comma_is_no_extra_value(tmp_path):
    """Spreadsheets write one after the last column; an empty field past the header is no value."""
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right\na,x,normal,malignant,\nb,y,normal,"
                                        "normal, \n")
    assert [(c.case_id, c.truth_right) for c in read_case_list(tmp_path / "cases.csv")] == [
        ("a", "malignant"), ("b", "normal")]


def test_order_is_reproducible_stratified_and_per_reader():
    entries = cases(40, positives=8) + [CaseEntry("t1", "/t", "normal", "normal", training=True)]
    a1, a2, b = reading_order(entries, "A", 7), reading_order(entries, "A", 7), reading_order(entries, "B", 7)
    assert a1 == a2 and a1 != b and sorted(a1) == sorted(b)
    assert a1[0] == "t1"  # training first
    positives = {c.case_id for c in entries if c.positive}
    study_part = a1[1:]
    for quarter in range(4):
        chunk = study_part[quarter * 10 : (quarter + 1) * 10]
        assert sum(c in positives for c in chunk) == 2  # 8 positives over 40: two per quarter
    assert reading_order(entries, "A", 8) != a1
    # the positives sit at no fixed positions: they were at the same places for every reader and seed
    places = {tuple(i for i, c in enumerate(reading_order(entries, reader, seed)) if c in positives)
              for reader in ("A", "B", "C") for seed in (1, 2, 99)}
    assert len(places) == 9


def test_sequential_design_locks_the_unaided_read(store):
    study = create_study(store, "seq", Design.SEQUENTIAL, ["A"], cases(4, 1), seed=1)
    store_ai_results(store, study)
    session = ReadingSession(store, study, "A")
    case = session.case_at(0).case_id
    with pytest.raises(sqlite3.IntegrityError, match="aided read needs the AI"):
        session.commit(case, "aided", {"L": 0.1, "R": 0.2}).result()
    with pytest.raises(sqlite3.IntegrityError, match="commit the unaided read"):
        session.reveal(case).result()
    session.commit(case, "unaided", {"L": 0.1, "R": 0.2}).result()
    with pytest.raises(sqlite3.IntegrityError):
        session.commit(case, "unaided", {"L": 0.9, "R": 0.9}).result()  # a second answer is refused
    session.reveal(case).result()
    session.commit(case, "aided", {"L": 0.6, "R": 0.2}).result()
    # not even the store API can change or delete a committed read
    with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
        store.submit(lambda db: db.execute("UPDATE study_reads SET malignant = 0.5")).result()
    with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
        store.submit(lambda db: db.execute("DELETE FROM study_reads")).result()
    # nor replace one (INSERT OR REPLACE deletes without firing the DELETE triggers)
    for modality in ("unaided", "aided"):
        with pytest.raises(sqlite3.IntegrityError, match="cannot be replaced|unaided read is locked"):
            store.submit(lambda db, m=modality: db.execute(
                "INSERT OR REPLACE INTO study_reads VALUES (?, 'A', ?, ?, 'L', 0.95, '', 1, 1)",
                (study, case, m))).result()
    revealed = store.read("SELECT revealed_at FROM reveals WHERE case_id = ?", (case,))
    session.reveal(case).result()  # a reveal given again keeps its first time
    store.submit(lambda db: db.execute("INSERT OR REPLACE INTO reveals VALUES (?, 'A', ?, 0)", (study, case))).result()
    assert store.read("SELECT revealed_at FROM reveals WHERE case_id = ?", (case,)) == revealed
    for statement in ("UPDATE reveals SET revealed_at = 0", "DELETE FROM reveals"):
        with pytest.raises(sqlite3.IntegrityError, match="a reveal cannot be"):
            store.submit(lambda db, sql=statement: db.execute(sql)).result()
    assert session.reads(case) == {"unaided": {"L": 0.1, "R": 0.2}, "aided": {"L": 0.6, "R": 0.2}}


def test_a_committed_mark_cannot_be_replaced(store):
    from app.study.store import ReaderMark  # noqa: PLC0415

    study = create_study(store, "marks", Design.SEQUENTIAL, ["A"], cases(4, 1), seed=1)
    session = ReadingSession(store, study, "A")
    case = session.case_at(0).case_id
    session.commit(case, "unaided", {"L": 0.6, "R": 0.1}, marks=[ReaderMark("L-CC", 40.0, 30.0, "mass", 4)]).result()
    before = store.read("SELECT * FROM study_marks")
    with pytest.raises(sqlite3.IntegrityError, match="mark cannot be replaced"):
        store.submit(lambda db: db.execute("INSERT OR REPLACE INTO study_marks SELECT study_id, reader, case_id, "
                                           "modality, mark_id, view, 1, 1, label, 1 FROM study_marks")).result()
    assert store.read("SELECT * FROM study_marks") == before


def test_commit_validates_values(store):
    study = create_study(store, "v", Design.UNAIDED, ["A"], cases(2, 1))
    session = ReadingSession(store, study, "A")
    with pytest.raises(StudyError, match="both breasts"):
        session.commit("c00", "unaided", {"L": 0.5})
    with pytest.raises(StudyError, match="between 0 and 1"):
        session.commit("c00", "unaided", {"L": 1.5, "R": 0.1})
    with pytest.raises(StudyError, match="not a reader"):
        ReadingSession(store, study, "Z")
    # a coordinator's test of the scripted path: BI-RADS "7" and "X" were stored (left out of the recall table
    # without a word; the study's export could not be imported again), a mistyped case said "FOREIGN KEY
    # constraint failed", and its reveal "commit the unaided read … before the AI is shown"
    for bad in ("7", "X", "4D"):
        with pytest.raises(StudyError, match=rf"breast R: BI-RADS '{bad}' is no assessment category \(0, 1, 2, 3, 4, "
                                             r"4A, 4B, 4C, 5, 6, or none\); nothing was recorded"):
            session.commit("c00", "unaided", {"L": 0.9, "R": 0.1}, {"L": "4A", "R": bad})
    with pytest.raises(StudyError, match="case 'zz99' is not in study 'v'; nothing was recorded"):
        session.commit("zz99", "unaided", {"L": 0.5, "R": 0.5}).result()
    with pytest.raises(StudyError, match="case 'zz99' is not in study 'v'"):
        session.reveal("zz99").result()
    assert not store.read("SELECT * FROM study_reads")
    session.commit("c00", "unaided", {"L": 0.9, "R": 0.1}, {"L": " 4a", "R": "None"}).result()  # 4a is 4A
    assert sorted(store.read("SELECT breast, birads FROM study_reads")) == [("L", "4A"), ("R", "")]


def test_resume_after_restart(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    study = create_study(store, "r", Design.UNAIDED, ["A"], cases(5, 2))
    session = ReadingSession(store, study, "A")
    for position in range(3):
        case = session.case_at(position).case_id
        session.shown(case, "unaided")
        session.commit(case, "unaided", {"L": 0.2, "R": 0.3}).result()
    store.close()
    again = ReadingSession(Store(path), study, "A")
    assert again.next_position() == 3


def test_kill_minus_9_loses_no_committed_read_and_shows_no_half_read(tmp_path):
    path = tmp_path / "kill.sqlite"
    store = Store(path)
    study = create_study(store, "kill", Design.SEQUENTIAL, ["A"], cases(6000, 600), seed=3)
    store_ai_results(store, study)
    store.close()
    rng = random.Random(11)
    saved: set[tuple[str, str]] = set()
    kills = 0
    for _ in range(25):
        process = subprocess.Popen([sys.executable, str(HERE / "kill_writer.py"), str(path), str(study), "A"],
                                   stdout=subprocess.PIPE, text=True)
        # killed after a random number of durable saves (a condition, not a clock): mid-way through the next
        lines, wanted = [], rng.randint(0, 30)
        while len(lines) < wanted:
            line = process.stdout.readline()
            if not line or line.startswith("done"):
                break
            lines.append(line)
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate()
        kills += process.returncode == -signal.SIGKILL
        for line in lines + output.splitlines():
            if line.startswith("saved "):
                _, modality, case = line.split()
                saved.add((modality, case))
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = check.execute(
            "SELECT case_id, modality, COUNT(*) FROM study_reads GROUP BY case_id, modality").fetchall()
        assert all(count == 2 for _, _, count in counts)  # never half a read
        present = {(modality, case) for case, modality, _ in counts}
        assert saved <= present  # every read reported saved is there
        check.close()
    assert kills >= 20 and len(saved) > 10


def test_export_import_round_trip_and_analysis_formats(store, tmp_path):
    study = create_study(store, "exp", Design.SEQUENTIAL, ["A", "B"], cases(12, 4), seed=5)
    insert_model_scores(store, study, {(f"c{i:02d}", b): 0.9 if (i < 4 and b == "L") else 0.2
                                       for i in range(12) for b in ("L", "R")})
    store_ai_results(store, study)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for position in range(12):
            case = session.case_at(position).case_id
            index = int(case[1:])
            truth_l = index < 4
            jitter = 0.01 * ((index * (3 if reader == "A" else 7)) % 5)
            session.commit(case, "unaided", {"L": (0.7 if truth_l and index % 2 else 0.3) + jitter, "R": 0.2}).result()
            session.reveal(case).result()
            session.commit(case, "aided", {"L": 0.8 if truth_l else 0.25, "R": 0.2}).result()
    exported = export_study(store, study)
    new_id = import_study(store, json.loads(json.dumps(exported)), name="exp copy")
    again = export_study(store, new_id)
    for table in ("study_reads", "study_cases", "reading_order", "model_scores", "reveals"):
        strip = lambda rows: sorted(json.dumps({k: v for k, v in r.items() if k != "study_id"}, sort_keys=True) for r in rows)  # noqa: E731
        assert strip(exported[table]) == strip(again[table]), table
    rows = analysis_records(store, study)
    modalities = {r["modality"] for r in rows}
    assert {"unaided", "aided", "hybrid (unaided)", "model (vs unaided)"} <= modalities
    pair = [r for r in rows if r["modality"] in ("unaided", "aided")]
    result = orh(pair, "delong")
    assert result.reader_mean["aided"] > result.reader_mean["unaided"]
    hybrid = [r for r in rows if r["modality"] == "hybrid (unaided)" and r["reader"] == "A" and r["case"] == "c01:L"][0]
    assert hybrid["score"] == pytest.approx((0.7 + 0.03 + 0.9) / 2)
    write_tidy_csv(pair, tmp_path / "tidy.csv")
    write_imrmc(pair, tmp_path / "study.imrmc")
    # breast level: the case each breast is of, its sampling unit (found in review: the export dropped it)
    assert (tmp_path / "tidy.csv").read_text().startswith("reader,modality,case,truth,score,cluster\n")
    with (tmp_path / "tidy.csv").open(newline="") as handle:
        assert all(row["cluster"] == row["case"].split(":")[0] for row in csv.DictReader(handle))
    assert "BEGIN DATA:" in (tmp_path / "study.imrmc").read_text()
    moves = telemetry(store, study)
    assert moves and all(m["toward_ai"] == (m["changed"] and (m["aided"] - m["unaided"]) * (m["ai"] - m["unaided"]) > 0) for m in moves)


def test_results_give_each_modality_s_reader_averaged_auc_with_its_orh_interval(store, tmp_path):
    """The figures a reader study reports first, the reader-averaged AUC of each modality with its random-reader
    random-case CI, were computed and never shown: the screen, the command and the files had each reader's AUC
    and the differences only."""
    from app.study.results import READER_MEAN, study_results, write_results

    study = sequential_study_read(store, "avg")
    results = study_results(store, study, "breast", "jackknife")
    expected = orh([r for r in analysis_records(store, study, "breast") if r["modality"] in ("aided", "unaided")],
                   "jackknife", compare=("aided", "unaided"))
    averages = {row.modality: row for row in results.reader_averages()}
    assert set(averages) >= {"aided", "unaided"} and all(r.reader == READER_MEAN for r in averages.values())
    for modality in ("aided", "unaided"):
        row, single = averages[modality], expected.single[modality]
        assert row.auc == pytest.approx(expected.reader_mean[modality]) == pytest.approx(single.auc)
        assert (row.ci_low, row.ci_high) == pytest.approx((max(0, single.ci[0]), min(1, single.ci[1])))
        assert row.ci_low < row.auc < row.ci_high
        assert (row.n_positive, row.n_negative) == (4, 20)
    assert expected.single["aided"].ci[1] > 1 and averages["aided"].ci_high == 1.0  # clipped as DeLong's are
    assert not any(m.startswith("model") for m in averages)
    written = {p.name: p for p in write_results(results, tmp_path)}
    table = written["reader_averages_breast.csv"].read_text().splitlines()
    assert table[0] == "reader,modality,auc,ci_low,ci_high,n_positive,n_negative,ci_method"
    assert any(line.startswith("reader mean,aided,") and line.endswith("ORH RRRC (jackknife)") for line in table)
    aucs = written["aucs_breast.csv"].read_text().splitlines()  # each reader's interval says how it was made
    assert aucs[0] == "reader,modality,auc,ci_low,ci_high,n_positive,n_negative,ci_method"
    assert all(line.endswith(('"DeLong, clustered by woman (Obuchowski 1997), 95 %, clipped to [0, 1]"', ",no CI"))
               for line in aucs[1:])
    # the fixed-reader and fixed-case p-values were on the results window only (a coordinator's finding)
    from app.study.results import comparison_test

    with written["orh_breast.csv"].open(newline="") as handle:
        rows = {row["comparison"]: row for row in csv.DictReader(handle)}
    compared = results.comparisons["aided vs unaided"]
    assert float(rows["aided vs unaided"]["p_fixed_readers"]) == pytest.approx(compared.fixed_readers.p)
    assert float(rows["aided vs unaided"]["p_fixed_cases"]) == pytest.approx(compared.fixed_cases.p)
    assert f"p (fixed readers) {compared.fixed_readers.p:.4f}, p (fixed cases) {compared.fixed_cases.p:.4f}" in \
        comparison_test(compared)


def test_aided_readers_are_compared_with_the_model_and_their_hybrid_as_unaided_ones_are(store):
    """The aided reads' hybrid was drawn as a reader-average curve without its comparison with the aided readers
    (the unaided reads' was computed): each is an ORH comparison on the same records now."""
    from app.study.results import study_results

    study = create_study(store, "aided-hybrid", Design.SEQUENTIAL, ["A", "B", "C"], cases(12, 4), seed=3)
    insert_model_scores(store, study, {(f"c{i}", b): (0.55 + 0.03 * i if i < 4 else 0.2 + 0.07 * (i % 7))
                                       if b == "L" else 0.1 for i in range(12) for b in "LR"})
    store_ai_results(store, study)
    for reader, jitter in (("A", 0.0), ("B", 0.05), ("C", 0.11)):
        session = ReadingSession(store, study, reader)
        for position in range(12):
            case = session.case_at(position).case_id
            index = int(case[1:])
            unaided = (0.6 if index < 4 and (index + len(reader)) % 3 else 0.35) + jitter * (index % 4) / 4
            session.commit(case, "unaided", {"L": unaided, "R": 0.2}).result()
            session.reveal(case).result()
            session.commit(case, "aided", {"L": unaided + 0.04 * ((index + len(reader) + position) % 3 - 1),
                                           "R": 0.2}).result()
    results = study_results(store, study)
    records = analysis_records(store, study)
    for modality in ("unaided", "aided"):
        for first in (f"hybrid ({modality})", f"model (vs {modality})"):
            compared = results.comparisons[f"{first} vs {modality}"]
            expected = orh([r for r in records if r["modality"] in (first, modality)], "jackknife",
                           compare=(first, modality))
            assert compared.reader_mean == pytest.approx(expected.reader_mean)
            assert (compared.difference, compared.p) == pytest.approx((expected.difference, expected.p))
    assert not any("comparisons are not computed" in note for note in results.notes())


def test_a_study_of_one_modality_gets_its_reader_average_with_the_orh_interval(store):
    """An unaided-only study showed each reader's AUC and no reader mean (it was taken from comparisons only).
    Its interval is the one the two-modality analysis gives each modality (checked against RJafroc there)."""
    from app.study.analysis import single_modality
    from app.study.results import READER_MEAN, study_results

    study = sequential_study_read(store, "alone")
    records = [r for r in analysis_records(store, study, "breast") if r["modality"] in ("aided", "unaided")]
    both = orh(records, "jackknife", compare=("aided", "unaided"))
    alone = single_modality([r for r in records if r["modality"] == "unaided"], "jackknife")
    assert alone.auc == pytest.approx(both.single["unaided"].auc)
    assert alone.ci == pytest.approx(both.single["unaided"].ci) and alone.df == pytest.approx(both.single["unaided"].df)
    unaided_only = create_study(store, "unaided only", Design.UNAIDED, ["A", "B", "C"], cases(12, 4), seed=3)
    read_unaided(store, unaided_only, ("A", "B", "C"), lambda reader, index, _position: next(
        r["score"] for r in records if r["reader"] == reader and r["modality"] == "unaided"
        and r["case"] == f"c{index:02d}:L"), right=lambda index: 0.2 + 0.03 * (index % 3))
    (average,) = study_results(store, unaided_only).reader_averages()
    assert average.reader == READER_MEAN and average.modality == "unaided"
    assert 0 < average.ci_low < average.auc < average.ci_high <= 1


def test_a_reader_who_separates_the_classes_completely_gets_no_point_interval(store):
    """Seen: a reader with AUC 1 was shown "1.000 – 1.000": DeLong's variance is 0 there, a certainty no sample
    gives; now no CI, and the cautions say why."""
    from app.study.results import study_results

    study = create_study(store, "perfect", Design.UNAIDED, ["A", "B"], cases(12, 4), seed=3)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for position in range(12):
            case = session.case_at(position).case_id
            index = int(case[1:])
            left = 0.8 if index < 4 else 0.1 + 0.02 * index  # A: every positive above every negative
            left = left if reader == "A" or index != 5 else 0.85  # B: one negative above the positives
            session.commit(case, "unaided", {"L": left, "R": 0.1 + 0.01 * index}).result()
    rows = {row.reader: row for row in study_results(store, study).aucs}
    assert rows["A"].auc == 1.0 and np.isnan(rows["A"].ci_low) and np.isnan(rows["A"].ci_high)
    assert rows["B"].auc < 1.0 and rows["B"].ci_low < rows["B"].auc <= rows["B"].ci_high
    notes = study_results(store, study).notes()
    assert any("separate every positive from every negative unit" in note for note in notes)
    assert not any("needs at least two positive" in note or "one score for all" in note for note in notes)


def test_a_results_folder_keeps_no_earlier_run_s_files_and_carries_the_cautions(store, tmp_path):
    """A coordinator's second run into one folder left the first run's reader averages there, looking current;
    and the files shared on their own lost the console's "interim" and "too small" notes. A reader who had read
    nothing was not named ("the ORH comparisons need at least two readers", in a study of two)."""
    from app.study.results import MANIFEST, study_results, write_results

    study = create_study(store, "two", Design.UNAIDED, ["A", "B", "C"], cases(12, 4), seed=3)
    read_unaided(store, study, ("A", "B"), lambda reader, index, _position: (0.7 if index < 4 else 0.2)
                 + 0.03 * (index % 5) + (0.05 if reader == "B" else 0.0))
    out = tmp_path / "results"
    out.mkdir()
    (out / "telemetry.csv").write_text("the user's own")  # in a folder no results run wrote to: kept
    (out / "notes_meeting.txt").write_text("agenda")  # a user's notes are no results run's
    first = {path.name for path in write_results(study_results(store, study), out)}
    assert (out / "telemetry.csv").read_text() == "the user's own"
    (out / "telemetry.csv").unlink()
    (out / "notes_meeting.txt").unlink()
    assert "reader_averages_breast.csv" in first

    def files() -> set[str]:
        return {path.name for path in out.iterdir()} - {MANIFEST}

    alone = study_results(store, study, readers=["A"])  # one reader: no reader average
    second = write_results(alone, out)
    assert second.removed == [out / "reader_averages_breast.csv"] and not second.removed[0].exists()
    second = {path.name for path in second}
    assert "reader_averages_breast.csv" not in second
    assert files() == second
    notes = (out / "notes_breast.txt").read_text()
    assert "the multi-reader (ORH) comparisons need at least two readers with reads" in notes
    assert "results are interim" not in notes  # A has finished; B and C are left out on request
    everyone = study_results(store, study)
    assert "left out until they have read: C (no read yet)" in everyone.notes()
    assert any("results are interim" in note for note in everyone.notes())
    # the exam level beside the breast level of the same study: both kept, each file named by its level
    exam_level = {path.name for path in write_results(study_results(store, study, level="exam"), out)}
    assert {"operating_points_exam.json", "excluded_units_exam.csv"} <= exam_level
    assert files() == second | exam_level
    # another study's results into the folder: none of the first study's files stays beside them
    other = create_study(store, "other", Design.UNAIDED, ["A", "B"], cases(12, 4), seed=4)
    read_unaided(store, other, ("A", "B"), lambda _reader, _index, position: 0.2 + 0.05 * position,
                 right=lambda _index: 0.1)
    third = {path.name for path in write_results(study_results(store, other, level="exam"), out)}
    assert files() == third
    assert re.match(r"study: other \(created \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00\)\nlevel: exam\n",
                    (out / "notes_exam.txt").read_text())
    again_breast = {path.name for path in write_results(study_results(store, other), out)}
    assert files() == third | again_breast  # the same study's other level stays
    # a study of the same name in another database is another study: none of the first one's files stays either
    again = Store(tmp_path / "another.sqlite")
    try:
        twin = create_study(again, "other", Design.UNAIDED, ["X", "Y"], cases(12, 4), seed=5)
        read_unaided(again, twin, ("X", "Y"), lambda _reader, index, _position: 0.1 + 0.04 * index)
        fourth = {path.name for path in write_results(study_results(again, twin), out)}
    finally:
        again.close()
    assert files() == fourth and "aucs_exam.csv" not in fourth
    # a coordinator's test: a file no results run wrote, named as one would be, stays when another study's results
    # come (it was deleted by its name alone), and is said
    (out / "aucs_exam.csv").write_text("my SPSS AUCs")
    fifth = write_results(study_results(store, study), out)
    assert (out / "aucs_exam.csv").read_text() == "my SPSS AUCs" and fifth.left == [out / "aucs_exam.csv"]
    assert files() == {p.name for p in fifth} | {"aucs_exam.csv"}
    # so does one a run wrote and the user changed since, which the next run of the study does not write
    assert "reader_averages_breast.csv" in {p.name for p in fifth}
    (out / "reader_averages_breast.csv").write_text("edited by hand")
    sixth = write_results(study_results(store, study, readers=["A"]), out)  # one reader: no reader averages
    assert "reader_averages_breast.csv" not in {p.name for p in sixth} and not sixth.removed
    assert (out / "reader_averages_breast.csv").read_text() == "edited by hand"
    assert sixth.left == [out / "aucs_exam.csv", out / "reader_averages_breast.csv"]
    from app.ui.study.results import export_line

    # a user's file of a name this run writes, in a folder no run recorded it in, is kept aside (it was overwritten)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "aucs_breast.csv").write_text("my SPSS AUCs")
    (fresh / "telemetry.csv").write_text("mine too")  # a name this run does not write: left where it is
    seventh = write_results(study_results(store, study, readers=["A"]), fresh)
    assert seventh.kept_aside == [fresh / "aucs_breast.csv.yours"] and seventh.left == [fresh / "telemetry.csv"]
    assert (fresh / "aucs_breast.csv.yours").read_text() == "my SPSS AUCs" and "AUC" in (
        fresh / "aucs_breast.csv").read_text().upper() and (fresh / "telemetry.csv").read_text() == "mine too"
    assert write_results(study_results(store, study, readers=["A"]), fresh).kept_aside == []  # recorded now
    (fresh / "aucs_breast.csv").write_text("edited since")  # an edit of the run's own file is the user's now
    edited = write_results(study_results(store, study, readers=["A"]), fresh)
    assert edited.kept_aside == [fresh / "aucs_breast.csv.yours-2"]
    assert (fresh / "aucs_breast.csv.yours-2").read_text() == "edited since"
    assert export_line(sixth, str(out)) == (f"exported {len(sixth)} file(s); left as they were, not this run's: "
                                            f"aucs_exam.csv, reader_averages_breast.csv — in {out}")


def test_a_study_of_normal_cases_only_has_results_without_averages(store, tmp_path):
    """A review found the single-modality average raising StopIteration when every unit read was one kind: the
    results command, the window and the export all failed."""
    from app.study.results import study_results, write_results

    study = create_study(store, "normals", Design.UNAIDED, ["A", "B"], cases(6, 0), seed=3)
    read_unaided(store, study, ("A", "B"), lambda _reader, _index, position: 0.1 + 0.05 * position,
                 right=lambda _index: 0.2)
    results = study_results(store, study)
    assert results.reader_averages() == [] and write_results(results, tmp_path / "out")
    assert any(note.startswith("no AUC for reader A unaided")
               and note.endswith("the study's cases hold no positive one") for note in results.notes())


def test_a_reader_average_without_variance_has_no_interval(store):
    """Every reader's AUC 1.0 has no CI each, yet their mean showed "1.000 (1.000 – 1.000)"."""
    from app.study.results import study_results

    study = create_study(store, "perfect2", Design.UNAIDED, ["A", "B"], cases(12, 4), seed=3)
    read_unaided(store, study, ("A", "B"), lambda _reader, index, _position: 0.8 if index < 4 else 0.1 + 0.02 * index)
    averages = study_results(store, study).reader_averages()
    assert averages and all(row.auc == 1.0 and np.isnan(row.ci_low) and np.isnan(row.ci_high) for row in averages)


def test_results_can_leave_out_a_reader_who_is_part_way(store):
    """A reader who had not finished kept every ORH comparison from being computed, with no way to see the
    interim results of those who had."""
    from app.study.results import study_results

    study = create_study(store, "part", Design.SEQUENTIAL, ["A", "B", "C"], cases(12, 4), seed=2)
    store_ai_results(store, study)
    for reader, done in (("A", 12), ("B", 12), ("C", 5)):
        session, noise = ReadingSession(store, study, reader), random.Random(ord(reader))
        for position in range(done):
            case = session.case_at(position).case_id
            positive = int(case[1:]) < 4
            value = min(max((0.6 if positive else 0.4) + noise.gauss(0, 0.15), 0.0), 1.0)
            session.commit(case, "unaided", {"L": value, "R": 0.2}).result()
            session.reveal(case).result()
            aided = value + (0.1 if positive else -0.05) + noise.gauss(0, 0.05)
            session.commit(case, "aided", {"L": min(max(aided, 0.0), 1.0), "R": 0.2}).result()
    everyone = study_results(store, study)
    assert "aided vs unaided" not in everyone.comparisons
    assert any("C 5 of 12" in note for note in everyone.notes())
    finished = study_results(store, study, readers=["A", "B"])
    assert finished.comparisons["aided vs unaided"].readers == ("A", "B")
    assert {row.reader for row in finished.aucs} == {"A", "B", "(model)"}  # the model the readers were shown
    assert finished.notes()[0] == "readers left out on request: C"
    assert finished.telemetry and {m["reader"] for m in finished.telemetry} == {"A", "B"}  # C's moves too left out
    assert not any("not finished" in note for note in finished.notes())
    with pytest.raises(StudyError, match=r"no reader 'D' in this study \(its readers: A, B, C\)"):
        study_results(store, study, readers=["A", "D"])
    with pytest.raises(StudyError, match="name at least one reader"):
        study_results(store, study, readers=[])
    from app.cli.parser import build_parser

    assert build_parser().parse_args(["study", "results", "part", "--readers", "A, B,"]).readers == ["A", "B"]


def test_model_scores_are_computed_once_and_cached(store, seeded_model):
    require_shared()
    entries = [CaseEntry("x", str(DATA / "gmic-exam0"), "normal", "benign"),
               CaseEntry("y", str(DATA / "gmic-exam0"), "normal", "benign")]
    study = create_study(store, "m", Design.UNAIDED, ["A"], entries)
    assert compute_model_scores(store, study, [seeded_model], device="cpu") == 2
    assert compute_model_scores(store, study, [seeded_model], device="cpu") == 0  # resumable: nothing left
    assert len(store.read("SELECT * FROM analysis_results")) == 1  # same images + model: one analysis
    scores = dict(store.read("SELECT case_id || breast, malignant FROM model_scores WHERE study_id=?", (study,)))
    assert scores["xR"] == scores["yR"] and abs(scores["xR"] - 0.0366) < 1e-3


def test_a_breast_without_images_has_no_model_score_and_is_left_out(store, stub_model, tmp_path):
    """A case whose exam lacks the left breast: no model score for it (NULL with the reason), the unit is left
    out of the model's and the hybrid's analyses (never counted as a certain negative), and the results say so."""
    from app.study.results import study_results
    from tests.helpers import synthetic_view, write_png

    entries = []
    for i in range(6):
        folder = tmp_path / f"exam{i}"
        folder.mkdir()
        write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
        if i != 0:  # exam 0 has no left breast images
            write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (600, 300)))
        entries.append(CaseEntry(f"c{i}", str(folder), "malignant" if i in (1, 2) else "normal",
                                 "malignant" if i == 3 else "normal"))
    study = create_study(store, "one-breast", Design.UNAIDED, ["A", "B"], entries, seed=2)
    assert compute_model_scores(store, study, [stub_model], device="cpu") == 6
    row = store.read("SELECT malignant, probabilities_json, missing_reason FROM model_scores WHERE study_id=? AND "
                     "case_id='c0' AND breast='L'", (study,))
    assert row == [(None, None, "no images of this breast")]
    assert store.read("SELECT COUNT(*) FROM model_scores WHERE study_id=? AND malignant IS NOT NULL", (study,)) == [(11,)]
    for k, reader in enumerate(("A", "B")):
        session = ReadingSession(store, study, reader)
        for position in range(6):
            case = session.case_at(position).case_id
            i = int(case[1:])
            session.commit(case, "unaided", {"L": 0.8 if i in (1, 2) else 0.1 + 0.05 * k,
                                             "R": 0.7 if i == 3 else 0.2 + 0.01 * i}).result()
    rows = analysis_records(store, study)
    assert not [r for r in rows if r["case"] == "c0:L" and not r["modality"] == "unaided"]
    assert len([r for r in rows if r["case"] == "c0:L" and r["modality"] == "unaided"]) == 2  # readers keep it
    results = study_results(store, study)
    assert results.excluded == [("c0:L", "no images of this breast")]
    # one reason: no count repeated in front of it ("…: 1 (no images of this breast: c0:L)")
    assert results.exclusion_note() == ("1 breast unit left out of the model and hybrid analyses: no images of this "
                                        "breast: c0:L")
    assert "c0:L" in results.exclusion_note()
    model_row = next(a for a in results.aucs if a.modality == "model")
    assert model_row.n_positive + model_row.n_negative == 11
    assert "model (vs unaided) vs unaided" in results.comparisons  # compared on the 11 units the model scored
    exam_level = study_results(store, study, level="exam")  # the right breast's score is no score for the left
    assert exam_level.excluded == [("c0", "left breast: no images of this breast")]
    assert not [r for r in analysis_records(store, study, level="exam") if r["case"] == "c0" and r["modality"] != "unaided"]
    model_row = next(a for a in exam_level.aucs if a.modality == "model")
    assert model_row.n_positive + model_row.n_negative == 5


def test_a_case_without_a_stored_model_score_is_named_not_dropped_silently(store, tmp_path):
    """Unscored, with the reason: not computed yet, or (its exam not where the study says) study scores could not
    open it; a coordinator was told to run study scores for an exam it had just failed to open."""
    import dataclasses  # noqa: PLC0415

    from app.study.results import study_results  # noqa: PLC0415
    from tests.helpers import insert_model_scores  # noqa: PLC0415

    entries = cases(24, 8)
    for index in range(12, 24):  # there on disk, not scored yet; /exams/3 and the like are nowhere
        (tmp_path / f"e{index}").mkdir()
        entries[index] = dataclasses.replace(entries[index], exam_path=str(tmp_path / f"e{index}"))
    entries[23] = dataclasses.replace(entries[23], exam_path="/exams/moved/23")
    study = create_study(store, "half-scored", Design.UNAIDED, ["A", "B"], entries, seed=1)
    rnd = random.Random(0)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for case in entries:
            session.commit(case.case_id, "unaided", {"L": rnd.random(), "R": rnd.random()}).result()
    insert_model_scores(store, study, {(c.case_id, b): rnd.random() for c in entries[:12] for b in "LR"})
    results = study_results(store, study)
    unscored = {f"{c.case_id}:{b}" for c in entries[12:] for b in "LR"}
    assert {unit for unit, _ in results.excluded} == unscored
    reasons = dict(results.excluded)
    assert {reasons[f"c{i:02d}:L"] for i in range(12, 23)} == {"no score computed yet (run study scores)"}
    assert reasons["c23:L"] == "the exam is not at /exams/moved/23 (study scores could not open it)"
    assert "24 breast units left out" in results.exclusion_note()
    assert {unit for unit, _ in study_results(store, study, level="exam").excluded} == {c.case_id for c in entries[12:]}


def test_a_breast_the_model_did_not_read_has_that_reason_not_another(store, tmp_path):
    """A 16-bit left view under a detector that declares 12-bit input: the left breast's missing score says
    so (it said "the model's output was not finite", true only of the other cause of no result)."""
    import numpy as np

    from inference.weights import load_model
    from tests.conftest import SHARED
    from tests.helpers import synthetic_view, write_png

    seeded = SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt"
    require_shared(seeded.parent)
    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    scan = synthetic_view("L-CC", (600, 300)).astype(np.float64)
    write_png(folder / "0_L-CC.png", (scan / scan.max() * 65535).astype(np.uint16))
    study = create_study(store, "sixteen-bit", Design.UNAIDED, ["A"], [CaseEntry("c0", str(folder), "normal",
                                                                                  "normal")], seed=2)
    assert compute_model_scores(store, study, [load_model(seeded)], device="cpu") == 1
    rows = dict(store.read("SELECT breast, missing_reason FROM model_scores WHERE study_id=?", (study,)))
    assert rows["L"].startswith("no result on this breast (L-CC: the model did not read it: its pixel values "
                                "use 16 bits, above the input maximum the model declares (4095")
    assert rows["R"] == ""


def test_schema_3_zero_scores_of_missing_breasts_become_null_through_every_migration(tmp_path):
    """Migration 4 recognises the 0.0 that schema 3 stored for a breast without images from the cached
    result (which has no entry for that breast) and replaces it by NULL with the reason."""
    path = tmp_path / "v3.sqlite"
    db = sqlite3.connect(path)
    from app.study.store import MIGRATIONS, _statements

    for version in (1, 2, 3):
        for statement in _statements(MIGRATIONS[version]):
            db.execute(statement)
    db.execute("INSERT INTO studies VALUES (1, 's', 'unaided', 0, 0, 0)")
    db.execute("INSERT INTO study_cases VALUES (1, 'c', '/x', 'normal', 'normal', '', 0)")
    db.execute("INSERT INTO model_cache VALUES ('k', ?, 0)", (json.dumps({"breasts": {"R": {"probabilities": {
        "benign": 0.2, "malignant": 0.3}}}}),))
    db.execute("INSERT INTO model_scores VALUES (1, 'c', 'R', 0.3, 0.2, 'k')")
    db.execute("INSERT INTO model_scores VALUES (1, 'c', 'L', 0.0, 0.0, 'k')")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = Store(path)
    try:
        rows = store.read("SELECT breast, malignant, missing_reason FROM model_scores ORDER BY breast")
        assert rows == [("L", None, "no images of this breast"), ("R", 0.3, "")]
    finally:
        store.close()


def test_the_model_alone_is_measured_on_every_unit_read_not_only_the_first_reader_s(store):
    from app.study.results import study_results  # noqa: PLC0415
    from tests.helpers import insert_model_scores  # noqa: PLC0415

    entries = cases(24, 8)
    study = create_study(store, "interim", Design.UNAIDED, ["A", "B"], entries, seed=1)
    rnd = random.Random(0)
    insert_model_scores(store, study, {(c.case_id, b): rnd.random() for c in entries for b in "LR"})
    for reader, read in (("A", 6), ("B", 24)):  # A has read 6 cases so far, B all
        session = ReadingSession(store, study, reader)
        for case in entries[:read]:
            session.commit(case.case_id, "unaided", {"L": rnd.random(), "R": rnd.random()}).result()
    results = study_results(store, study)
    model = next(a for a in results.aucs if a.modality == "model")
    assert (model.n_positive, model.n_negative) == (8, 40)


def test_a_case_that_cannot_be_opened_is_named_and_the_others_are_scored(store, stub_model, tmp_path):
    from tests.helpers import synthetic_view, write_png  # noqa: PLC0415

    entries = []
    for i in range(3):
        folder = tmp_path / f"exam{i}"
        folder.mkdir()
        if i == 1:
            (folder / "0_R-CC.png").write_bytes(b"\x89PNG broken")
        else:
            write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
            write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (600, 300)))
        entries.append(CaseEntry(f"c{i}", str(folder), "normal", "normal"))
    study = create_study(store, "one-bad", Design.UNAIDED, ["A"], entries, seed=2)
    with pytest.raises(StudyError, match=r"model scores computed for 2 case\(s\); 1 case\(s\) could not be opened .*"
                                         r"case c1: .*0_R-CC.png"):
        compute_model_scores(store, study, [stub_model], device="cpu")
    assert sorted(store.read("SELECT DISTINCT case_id FROM model_scores WHERE study_id=?", (study,))) == [
        ("c0",), ("c2",)]  # c1 has no row: the next run tries it again


def test_the_youden_optimum_is_a_threshold_a_score_can_reach_and_none_where_no_threshold_beats_chance():
    """A model worse than chance: every finite threshold has tpr - fpr <= 0; the optimum was the infinite one,
    printed as 1.0 but computed as calling nobody, then one calling everyone (sensitivity 1, specificity 0: Youden
    index 0, a coordinator's finding). Such a model has no optimum; one that separates has a reachable one."""
    import numpy as np  # noqa: PLC0415

    from app.study.results import model_operating_points  # noqa: PLC0415

    scores, truth = np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0])
    assert [p.name for p in model_operating_points(scores, truth)] == ["threshold 0.5"]
    scores, truth = np.array([0.1, 0.3, 0.35, 0.6, 0.7, 0.9]), np.array([0, 1, 0, 0, 1, 1])
    youden = next(p for p in model_operating_points(scores, truth) if p.name == "Youden optimum")
    assert np.isfinite(youden.threshold) and youden.threshold in scores
    called = scores >= youden.threshold
    assert youden.sensitivity == called[truth == 1].mean() and youden.specificity == (~called[truth == 0]).mean()
    assert youden.sensitivity - (1 - youden.specificity) > 0


def test_progress_counts_a_reading_begun_and_not_finished(store):
    from app.study.sessions import reader_progress  # noqa: PLC0415

    study = create_study(store, "begun", Design.SEQUENTIAL, ["A"], cases(4, 1), seed=1)
    store_ai_results(store, study)
    session = ReadingSession(store, study, "A")
    case = session.case_at(0).case_id
    session.commit(case, "unaided", {"L": 0.1, "R": 0.2}).result()  # waiting for Show AI: begun, not read
    assert [(r["done"], r["started"]) for r in reader_progress(store, study)] == [(0, 1)]
    session.reveal(case).result()
    session.commit(case, "aided", {"L": 0.1, "R": 0.3}).result()
    assert [(r["done"], r["started"]) for r in reader_progress(store, study)] == [(1, 0)]


def test_a_breast_that_is_not_there_does_not_take_the_exam_out(store):
    """Truth "none" (no breast, e.g. after a mastectomy): the exam's score is the other breast's; a breast that
    is there without a score still takes its exam out."""
    from app.study.records import model_exclusions  # noqa: PLC0415
    from tests.helpers import insert_model_scores  # noqa: PLC0415

    entries = [CaseEntry("c0", "/e/0", "none", "malignant"), CaseEntry("c1", "/e/1", "normal", "malignant"),
               *cases(4, 1)[2:]]
    study = create_study(store, "mastectomy", Design.UNAIDED, ["A", "B"], entries, seed=1)
    scores = {(c.case_id, b): 0.3 for c in entries for b in "LR"}
    del scores[("c0", "L")], scores[("c1", "L")]
    insert_model_scores(store, study, scores)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for case in entries:
            session.commit(case.case_id, "unaided", {"L": 0.1, "R": 0.6}).result()
    assert [unit for unit, _ in model_exclusions(store, study, level="exam")] == ["c1"]
    rows = analysis_records(store, study, level="exam")
    assert {r["case"] for r in rows if r["modality"] == "model (vs unaided)"} == {"c0", "c02", "c03"}


def test_results_say_why_a_reader_has_no_auc_yet(store):
    """Seen hands-on: a reader who had read only negative units got an empty AUC table and no word of why."""
    from app.study.results import study_results  # noqa: PLC0415

    entries = cases(12, 4)
    study = create_study(store, "early", Design.UNAIDED, ["A", "B"], entries, seed=1)
    session = ReadingSession(store, study, "A")
    for case in entries[6:8]:  # two normal cases: four negative breast units, no positive
        session.commit(case.case_id, "unaided", {"L": 0.2, "R": 0.1}).result()
    results = study_results(store, study)
    assert not results.aucs
    assert any(note.startswith("no AUC yet for reader A unaided (0 positives, 4 negatives): an AUC needs at least "
                               "one positive and one negative unit read") for note in results.notes()), results.notes()


def test_an_import_refuses_what_is_no_export_it_can_read_naming_the_part(store):
    """Seen hands-on: tracebacks for a list or a text table, a newer version imported silently, and bad rows
    blamed on the database ("this file cannot be used as a study database"). Column names come from the
    file: only the table's own reach the SQL."""
    study = create_study(store, "src", Design.UNAIDED, ["A"], cases(4, 2), seed=5)
    ReadingSession(store, study, "A").commit("c00", "unaided", {"L": 0.5, "R": 0.1}).result()
    good = json.loads(json.dumps(export_study(store, study)))

    def changed(change):
        data = json.loads(json.dumps(good))
        change(data)
        return data

    def bad_score(data):
        data["study_reads"][0]["malignant"] = 5

    def odd_column(data):
        data["study_cases"][0]["truth_left) VALUES (1); --"] = 1

    for data, says in (
            ([], "not a Mammo Reader study export"),
            (changed(lambda d: d.update(version=99)), "written by a newer Mammo Reader \\(version 99"),
            (changed(lambda d: d.update(study_cases="oops")), "'study_cases' is not a list of rows"),
            (changed(bad_score), "study_reads row 1 \\(counted from 1 in the file: reader 'A', case 'c00', "
                                 "modality unaided, breast L\\): the probability malignant 5 is not a number"),
            (changed(odd_column), "study_cases row 1 \\(counted from 1 in the file: case 'c00'\\) has unknown "
                                  "columns: truth_left\\) VALUES"),
            (good, "a study called 'src' is already in this database")):
        with pytest.raises(StudyError, match=says):
            import_study(store, data, name=None if data is good else "imported")
    def bad_outline(data):
        data["study_reads"][0]["birads"] = {"base64": "%%% not base64"}

    with pytest.raises(StudyError, match="study_reads row 1 \\(counted from 1 in the file: .*\\) is refused"):
        import_study(store, changed(bad_outline), name="imported")
    assert [name for (name,) in store.read("SELECT name FROM studies")] == ["src"]  # nothing half-imported
    assert import_study(store, good, name="copy") > study


def test_a_version_1_export_still_imports(store):
    """Version 1 had one model's scores without its identity (they become the scores of a model 'model')."""
    study = create_study(store, "old", Design.UNAIDED, ["A"], cases(4, 2), seed=5)
    insert_model_scores(store, study, {(f"c{i:02d}", b): 0.25 for i in range(4) for b in ("L", "R")})
    ReadingSession(store, study, "A").commit("c00", "unaided", {"L": 0.5, "R": 0.1}).result()
    data = json.loads(json.dumps(export_study(store, study)))
    data["version"] = 1
    data.pop("study_models")
    data["model_scores"] = [{"study_id": row["study_id"], "case_id": row["case_id"], "breast": row["breast"],
                             "malignant": row["malignant"], "benign": 0.5, "cache_key": "",
                             "missing_reason": row["missing_reason"]} for row in data["model_scores"]]
    copy = import_study(store, data, name="old copy")
    scores = store.read("SELECT model_id, malignant FROM model_scores WHERE study_id=?", (copy,))
    assert len(scores) == 8 and {(m, v) for m, v in scores} == {("model", 0.25)}
    assert store.read("SELECT malignant FROM study_reads WHERE study_id=? AND breast='L'", (copy,)) == [(0.5,)]


def test_a_study_name_that_differs_from_another_only_in_capitals_is_refused(store):
    """"Pilot" was accepted beside "pilot" (reader names that differ so are refused)."""
    create_study(store, "pilot", Design.UNAIDED, ["A"], cases(4, 1), seed=1)
    with pytest.raises(StudyError, match="a study named 'pilot' exists, and 'Pilot' differs from it only in capitals"):
        create_study(store, "Pilot", Design.UNAIDED, ["A"], cases(4, 1), seed=1)
    assert [name for (name,) in store.read("SELECT name FROM studies")] == ["pilot"]


def test_readers_named_twice_or_not_at_all_are_said(store):
    composed, decomposed = "Chlo\u00e9", "Chloe\u0301"  # one name, two Unicode forms (a coordinator's test)
    for readers, says in ((["A", "B", "A"], "given twice: A"), (["A", " "], "an empty one was given"),
                          ([], "give at least one reader"), ([composed, decomposed], f"given twice: {composed}"),
                          (["A;B;C"], "'A;B;C' has spaces at its ends, a ';', a tab, a line break or an invisible"),
                          (["A\tB"], "a tab, a line break"), ([" A"], "spaces at its ends"),
                          (["Ann", "Ann\u200b"], "an invisible character"),  # look-alikes (a second review)
                          (["\ufeffAnn"], "an invisible character"), (["\u202eennA"], "an invisible character"),
                          (["\u200c"], "an invisible character"),
                          (["anna", "Anna"], "these differ only in capitals or in the width of their letters: "
                                             "Anna, anna"),  # a coordinator's test
                          (["\uff21nna", "Anna"], "differ only in capitals or in the width of their letters")):
        with pytest.raises(StudyError, match=says):
            create_study(store, "r", Design.UNAIDED, readers, cases(4, 2), seed=1)
    study = create_study(store, "r", Design.UNAIDED, [decomposed], cases(4, 2), seed=1)
    assert store.read("SELECT reader FROM study_readers WHERE study_id=?", (study,)) == [(composed,)]
    for typed in (composed, decomposed):  # found whichever form the keyboard gives
        assert ReadingSession(store, study, typed).reader == composed
    with pytest.raises(StudyError, match=r"'Chloe' is not a reader of study 'r' \(its readers: Chlo\u00e9\)"):
        ReadingSession(store, study, "Chloe")
    # a Persian name's zero-width non-joiner is part of it (a review); and results find a name however typed
    persian = "\u062d\u0633\u06cc\u0646\u200c\u0632\u0627\u062f\u0647"
    other = create_study(store, "fa", Design.UNAIDED, [persian, composed], cases(4, 2), seed=1)
    assert {r for (r,) in store.read("SELECT reader FROM study_readers WHERE study_id=?", (other,))} == {
        persian, composed}
    from app.study.results import study_results  # noqa: PLC0415

    with pytest.raises(StudyError, match="no committed reads yet"):  # found, not "no reader 'Chloé'"
        study_results(store, other, readers=[decomposed])


def test_results_measure_the_operating_points_a_model_card_declares(store):
    """The card's operating point (measured elsewhere) on this study's units, beside 0.5 and Youden's."""
    from app.study.results import study_results  # noqa: PLC0415

    entries = cases(12, 4)
    study = create_study(store, "points", Design.UNAIDED, ["A"], entries, seed=1)
    insert_model_scores(store, study, {(c.case_id, b): (0.8 if c.truth_left == "malignant" and b == "L" else 0.3)
                                       for c in entries for b in "LR"})
    card = {"method": "temperature", "temperature": 1.2, "operating_points": [
        {"name": "90 % specificity", "threshold": 0.9}, {"name": "bad", "threshold": "x"}]}
    store.submit(lambda db: db.execute(
        "INSERT INTO study_model_calibrations (study_id, model_id, kind, calibration_json, recorded_at) "
        "VALUES (?, 'model', 'card', ?, 0)", (study, json.dumps(card)))).result()
    session = ReadingSession(store, study, "A")
    for case in entries:
        session.commit(case.case_id, "unaided", {"L": 0.5, "R": 0.2}).result()
    points = {p.name: p for p in study_results(store, study).model_points}
    declared = points["declared: 90 % specificity"]
    # measured at its own threshold: above every score here, nobody is called
    assert declared.threshold == 0.9 and declared.sensitivity == 0.0 and declared.specificity == 1.0
    assert points["threshold 0.5"].sensitivity == 1.0
    assert "declared: bad" not in points and {"threshold 0.5", "Youden optimum"} <= set(points)


def test_an_aided_reading_needs_every_case_s_ai_result_and_scores_computes_the_missing_ones(store, stub_model,
                                                                                         tmp_path):
    """An imported study (its export carries scores, not results) or scores from a batch's table gave the
    reading screen nothing to show: "Show AI" still locked the unaided read and the next read counted as aided,
    and 'study scores' computed nothing ("0 case(s)"). The reading is refused until the results are there, and
    'scores' computes them."""
    import dataclasses

    import torch

    from app.study.errors import StudyError
    from app.study.exchange import export_study, import_study
    from app.study.reading_screen import open_reading
    from app.study.scores import cases_without_result, stored_result_key
    from tests.helpers import synthetic_view, write_png

    entries = []
    for i in range(3):
        folder = tmp_path / f"exam{i}"
        folder.mkdir()
        write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (600, 500)))
        write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (700, 250)))
        entries.append(CaseEntry(f"c{i}", str(folder), "normal", "malignant" if i == 1 else "normal"))
    study = create_study(store, "seq", Design.SEQUENTIAL, ["A"], entries, seed=2)
    with pytest.raises(StudyError, match=r"3 case\(s\) have no stored AI result, .* study scores seq --models") as no:
        open_reading(store, study, "A")  # no scores at all yet
    assert "c0" not in str(no.value)  # said to a reader: no case ID (one may be an accession number)
    assert compute_model_scores(store, study, [stub_model], device="cpu") == 3
    assert cases_without_result(store, study) == [] and open_reading(store, study, "A").state is not None
    session = ReadingSession(store, study, "A")  # the first case read with the AI shown
    first = session.case_at(0).case_id
    session.commit(first, "unaided", {"L": 0.3, "R": 0.2}).result()
    session.reveal(first).result()
    session.commit(first, "aided", {"L": 0.4, "R": 0.2}).result()

    other = Store(tmp_path / "other.sqlite")
    try:
        moved = import_study(other, json.loads(json.dumps(export_study(store, study))), name="seq")
        assert len(cases_without_result(other, moved)) == 3
        with pytest.raises(StudyError, match="a sequential reading would record aided reads with no AI shown"):
            open_reading(other, moved, "A")
        shown = other.read("SELECT breast, malignant FROM model_scores WHERE case_id = ? ORDER BY 1", (first,))
        # an analysis here that gives other scores than the reader was shown (weights changed under the same
        # identity: the stub's): the shown ones stay, and it is said (the store's first triggers refused the run)
        torch.manual_seed(1)
        elsewhere = dataclasses.replace(stub_model, model=type(stub_model.model)(stub_model.model.config).eval())
        with pytest.raises(StudyError, match=r"2 score\(s\) that readers were shown differ from this analysis"):
            compute_model_scores(other, moved, [elsewhere], device="cpu")
        assert other.read("SELECT breast, malignant FROM model_scores WHERE case_id = ? ORDER BY 1", (first,)) == shown
        assert sorted(cases_without_result(other, moved)) == []  # the others' results stored
        assert other.load_result(stored_result_key(other, moved, "c0")) is not None
        assert open_reading(other, moved, "A").session.reader == "A"
    finally:
        other.close()
    unaided = create_study(store, "plain", Design.UNAIDED, ["A"], entries, seed=2)
    assert open_reading(store, unaided, "A").state is not None  # nothing to show: nothing needed

    # a case whose exam cannot be opened has no result and never will: the screen goes past it, and it does
    # not hold up the study
    import shutil

    broken = create_study(store, "one broken", Design.SEQUENTIAL, ["A"], entries, seed=2)
    shutil.rmtree(tmp_path / "exam2")
    with pytest.raises(StudyError):  # c2's scores cannot be computed, the others are
        compute_model_scores(store, broken, [stub_model], device="cpu")
    assert cases_without_result(store, broken) == ["c2"]
    assert open_reading(store, broken, "A").session.reader == "A"


def test_a_breast_that_is_not_there_is_no_unit_at_either_level(store):
    """Truth "none" (no such breast: a mastectomy) counted as a normal breast at breast level (n- 9 for 5), and
    the exam level took the reader's value for the absent breast into the exam's score."""
    entries = [CaseEntry("a", "/x/a", "malignant", "none"), CaseEntry("b", "/x/b", "normal", "none"),
               CaseEntry("c", "/x/c", "none", "benign"), CaseEntry("d", "/x/d", "normal", "malignant"),
               CaseEntry("e", "/x/e", "normal", "normal"), CaseEntry("f", "/x/f", "none", "normal")]
    study = create_study(store, "absent", Design.UNAIDED, ["A"], entries, seed=1)
    session = ReadingSession(store, study, "A")
    for entry in entries:
        session.commit(entry.case_id, "unaided", {"L": 0.3, "R": 0.9 if entry.case_id == "b" else 0.2}).result()
    breast = analysis_records(store, study, "breast")
    units = {r["case"]: r["truth"] for r in breast}
    assert sorted(units) == ["a:L", "b:L", "c:R", "d:L", "d:R", "e:L", "e:R", "f:R"]
    assert sum(units.values()) == 2 and len(units) - sum(units.values()) == 6
    exam = {r["case"]: r["score"] for r in analysis_records(store, study, "exam")}
    assert exam["b"] == 0.3  # its right breast, which is not there, was read 0.9
    from app.study.records import model_exclusions

    insert_model_scores(store, study, {})  # a model, no score yet: every unit that is there is left out
    left_out = {unit for unit, _ in model_exclusions(store, study, "breast")}
    assert left_out == set(units)  # not the absent breasts, which are no units


def test_the_imrmc_file_keeps_readers_and_cases_apart_whose_names_differ_in_punctuation(tmp_path):
    rows = [{"reader": reader, "modality": "unaided", "case": case, "truth": truth, "score": score}
            for reader in ("Dr. A", "Dr A") for case, truth, score in (("c-1", 1, 0.9), ("c_1", 0, 0.2))]
    write_imrmc(rows, tmp_path / "s.imrmc")
    data = (tmp_path / "s.imrmc").read_text().split("BEGIN DATA:\n")[1].splitlines()
    assert data[:2] == ["-1,c_1,0,1", "-1,c_1_2,0,0"]
    assert data[2:] == ["Dr_A,c_1,unaided,0.9", "Dr_A,c_1_2,unaided,0.2", "Dr_A_2,c_1,unaided,0.9",
                        "Dr_A_2,c_1_2,unaided,0.2"]


def test_the_check_for_a_study_held_already_never_breaks_the_import_s_own_message(store):
    """It ran before the import's checks: a damaged export raised KeyError or sqlite3's error instead of
    'not a Mammo Reader study export'."""
    from app.study.exchange import studies_like

    for damaged in ({"studies": {"a": 1}}, {"format": "mammo-reader/study", "version": 2,
                                            "studies": [{"created_at": [1], "design": "x", "seed": 1}]}, []):
        assert studies_like(store, damaged) == []
    with pytest.raises(StudyError, match="not a Mammo Reader study export"):
        import_study(store, {"studies": {"a": 1}})


def test_a_comparison_s_tiny_p_values_are_not_printed_as_zero():
    """"p (fixed readers) 0.0000" (a coordinator's review): every p-value of a comparison line says "< 0.0001"."""
    from types import SimpleNamespace  # noqa: PLC0415

    from app.study.results import comparison_test  # noqa: PLC0415

    tiny = SimpleNamespace(p=1e-7, estimable=True)
    result = SimpleNamespace(F=121.0, ddf=2.0, p=3e-6, ci=(-0.64, -0.28), fixed_readers=tiny, fixed_cases=tiny)
    assert comparison_test(result) == ("F 121.000  ddf 2.00  p < 0.0001  95 % CI -0.6400 – -0.2800;  p (fixed readers) "
                                       "< 0.0001, p (fixed cases) < 0.0001")


def test_a_comparison_resting_on_an_arm_without_case_variance_says_so():
    """"p 0.0082" beside a model listed "0.500 (no CI)" (every score tied; a coordinator's review): a caution."""
    from types import SimpleNamespace  # noqa: PLC0415

    from app.study.results import comparison_caution  # noqa: PLC0415

    def result(*ses, ci=(-0.2, 0.1)):
        return SimpleNamespace(single={name: SimpleNamespace(se=se) for name, se in zip(("model", "unaided"), ses)},
                               ci=ci, ddf=15.3)

    assert comparison_caution(result(0.0, 0.05)).startswith("model has no case variance")
    assert comparison_caution(result(0.02, 0.05)) == ""
    # a coordinator's finding: "95 % CI −1.2013 – −0.3115" for a difference of AUCs, unexplained
    assert comparison_caution(result(0.02, 0.05, ci=(-1.2013, -0.3115))).startswith("its interval passes ±1")
    assert "passes ±1" in comparison_caution(result(0.0, 0.05, ci=(0.3, 1.4)))


def test_telemetry_leaves_out_the_practice_cases_as_every_analysis_does(store):
    """A coordinator's finding: "aided reads (per breast): 84" of 40 cases and 2 training cases; the AUCs and the
    BI-RADS table counted 80."""
    entries = cases(6, 2) + [CaseEntry("t1", "/t", "malignant", "normal", training=True)]
    study = create_study(store, "practice", Design.SEQUENTIAL, ["A"], entries, seed=1)
    store_ai_results(store, study)
    session = ReadingSession(store, study, "A")
    for position in range(len(session.order)):
        case = session.case_at(position).case_id
        session.commit(case, "unaided", {"L": 0.3, "R": 0.2}).result()
        session.reveal(case).result()
        session.commit(case, "aided", {"L": 0.6, "R": 0.2}).result()
    assert "t1" in session.order
    moves = telemetry(store, study)
    assert len(moves) == 12 and "t1" not in {m["case"] for m in moves}
