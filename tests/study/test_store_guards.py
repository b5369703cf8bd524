"""The store keeps to the study's design: only the design's modalities, in the order it prescribes, by its readers;
an aided reading needs the AI result it shows; an import names the row of the file it refuses and never brings a
reading plan the design does not make. Found hands-on by the study coordinator."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.errors import StudyError
from app.study.exchange import export_study, import_study
from app.study.sessions import DAY_S, ReadingSession
from app.study.store import MIGRATIONS, SCHEMA_VERSION, ReaderMark, Store, _statements
from tests.study.ai_results import store_ai_results
from tests.study.test_crossover import insert_read
from tests.study.test_study import cases


def reads(store, study) -> list[tuple]:
    return store.read("SELECT reader, case_id, modality, breast FROM study_reads WHERE study_id=? ORDER BY 1, 2, 3, 4",
                      (study,))


# -- the design's modalities and order -------------------------------------------------------------------------


@pytest.mark.parametrize("design, modality, says", [
    (Design.SEQUENTIAL, "concurrent", "a sequential study records an unaided read, then an aided one"),
    (Design.UNAIDED, "concurrent", "an unaided study records unaided reads only"),
    (Design.CONCURRENT, "unaided", "a concurrent study records concurrent reads only"),
])
def test_a_read_of_a_modality_the_design_has_not_is_refused(store, design, modality, says):
    """Seen: commit('c00', 'concurrent', …) in a sequential study was stored before the case's unaided read, and the
    results showed 'A concurrent' and hybrid (concurrent) rows."""
    study = create_study(store, "s", design, ["A"], cases(4, 1), seed=1)
    store_ai_results(store, study)
    with pytest.raises(sqlite3.IntegrityError, match=says):
        ReadingSession(store, study, "A").commit("c00", modality, {"L": 0.5, "R": 0.5}).result()
    assert reads(store, study) == []


@pytest.mark.parametrize("design", [Design.UNAIDED, Design.CONCURRENT, Design.CROSSOVER])
def test_the_ai_is_revealed_in_the_sequential_design_only(store, design):
    """A reveal elsewhere opened the way to aided reads the design has not."""
    study = create_study(store, "s", design, ["A"], cases(4, 1), seed=1, washout_days=28 * (design == "crossover"))
    store_ai_results(store, study)
    with pytest.raises(sqlite3.IntegrityError, match="in the sequential design only"):
        ReadingSession(store, study, "A").reveal("c00").result()
    assert store.read("SELECT * FROM reveals") == []


def test_a_read_by_someone_who_is_not_a_reader_or_a_mark_without_its_read_is_refused(store):
    study = create_study(store, "s", Design.UNAIDED, ["A"], cases(4, 1), seed=1)
    with pytest.raises(sqlite3.IntegrityError, match="not a reader of this study"):
        store.submit(lambda db: db.execute(
            "INSERT INTO study_reads VALUES (?, 'Mallory', 'c00', 'unaided', 'L', 0.5, '', 1, 1)", (study,))).result()
    with pytest.raises(sqlite3.IntegrityError, match="a mark is committed with its read"):
        store.submit(lambda db: db.execute(
            "INSERT INTO study_marks VALUES (?, 'A', 'c00', 'unaided', 1, 'L-CC', 1, 1, 'mass', 3)", (study,))).result()
    session = ReadingSession(store, study, "A")
    session.commit("c00", "unaided", {"L": 0.5, "R": 0.1}, marks=[ReaderMark("L-CC", 1, 1, "mass", 3)]).result()
    assert len(reads(store, study)) == 2 and len(store.read("SELECT * FROM study_marks")) == 1


def crossover_study(store, cases_n=6):
    study = create_study(store, "x", Design.CROSSOVER, ["A"], cases(cases_n, 2), seed=1, washout_days=28)
    store_ai_results(store, study)
    return study, ReadingSession(store, study, "A")


def test_a_crossover_s_session_two_waits_for_the_whole_of_session_one(store):
    """Session 2 opens when the reader has finished session 1: the store refused a case's second reading only
    inside that case's own washout, so a case read first a month ago could be read again with session 1 unfinished."""
    study, session = crossover_study(store)
    month_ago = time.time() - 30 * DAY_S
    first = session.case_at(0)
    insert_read(store, study, "A", first.case_id, first.modality, {"L": 0.3, "R": 0.1}, month_ago)
    second = "concurrent" if first.modality == "unaided" else "unaided"
    with pytest.raises(sqlite3.IntegrityError, match="opens when the reader has finished session 1"):
        session.commit(first.case_id, second, {"L": 0.4, "R": 0.1}).result()
    for position in range(1, session.session_length):
        case = session.case_at(position)
        insert_read(store, study, "A", case.case_id, case.modality, {"L": 0.3, "R": 0.1}, month_ago)
    session.commit(first.case_id, second, {"L": 0.4, "R": 0.1}).result()  # now it may
    assert len(reads(store, study)) == 2 * (session.session_length + 1)


def test_a_crossover_s_session_two_waits_for_the_washout_after_the_last_session_one_reading(store):
    study, session = crossover_study(store)
    month_ago = time.time() - 30 * DAY_S
    for position in range(session.session_length):
        case = session.case_at(position)
        at = time.time() if position == session.session_length - 1 else month_ago  # the last one today
        insert_read(store, study, "A", case.case_id, case.modality, {"L": 0.3, "R": 0.1}, at)
    first = session.case_at(0)  # its own washout has passed; the session's has not
    second = "concurrent" if first.modality == "unaided" else "unaided"
    with pytest.raises(sqlite3.IntegrityError, match="washout after the reader's last session-1 reading"):
        session.commit(first.case_id, second, {"L": 0.4, "R": 0.1}).result()


def test_a_crossover_read_of_a_case_without_its_place_in_the_plan_or_an_aided_read_is_refused(store):
    study, session = crossover_study(store)
    store.submit(lambda db: db.execute("DELETE FROM crossover_arms WHERE case_id = 'c00'")).result()
    with pytest.raises(sqlite3.IntegrityError, match="no place in the reader's crossover plan"):
        insert_read(store, study, "A", "c00", "unaided", {"L": 0.3, "R": 0.1}, time.time())
    with pytest.raises(sqlite3.IntegrityError, match="crossover study records unaided and concurrent reads only"):
        insert_read(store, study, "A", "c01", "aided", {"L": 0.3, "R": 0.1}, time.time())
    assert reads(store, study) == []


# -- the AI result an aided reading shows ----------------------------------------------------------------------


def test_no_reveal_and_no_aided_or_concurrent_read_without_the_case_s_stored_ai_result(store):
    """Seen: in a study whose 'study scores' had never run, reveal() and the aided read were stored: an aided read
    with no AI shown."""
    study = create_study(store, "seq pilot", Design.SEQUENTIAL, ["A"], cases(4, 1), seed=1)
    session = ReadingSession(store, study, "A")
    session.commit("c00", "unaided", {"L": 0.2, "R": 0.1}).result()
    with pytest.raises(StudyError, match="no stored AI result to show.*nothing was recorded.*"
                                         "python main.py study scores 'seq pilot' --models"):
        session.reveal("c00").result()
    assert store.read("SELECT * FROM reveals") == [] and not session.is_revealed("c00")
    store_ai_results(store, study)
    session.reveal("c00").result()
    # the result gone (a store from before, a cache emptied): the aided read is refused too, and nothing is kept
    store.submit(lambda db: db.execute("DELETE FROM analysis_results")).result()
    with pytest.raises(StudyError, match="no stored AI result"):
        session.commit("c00", "aided", {"L": 0.6, "R": 0.1}).result()
    assert session.reads("c00") == {"unaided": {"L": 0.2, "R": 0.1}}

    concurrent = create_study(store, "conc", Design.CONCURRENT, ["A"], cases(4, 1), seed=1)
    with pytest.raises(StudyError, match="no stored AI result"):
        ReadingSession(store, concurrent, "A").commit("c00", "concurrent", {"L": 0.6, "R": 0.1},
                                                      marks=[ReaderMark("L-CC", 1, 1, "mass", 3)]).result()
    assert reads(store, concurrent) == [] and store.read("SELECT * FROM study_marks") == []


def test_the_reading_screen_says_why_the_ai_cannot_be_shown(qtbot, store, stub_model, tmp_path):
    """The GUI's reveal goes through the same write path: a message in the window, no traceback, nothing stored."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.study.reading_screen import open_reading
    from app.study.scores import compute_model_scores
    from app.ui.study.window import StudyReadingWindow
    from tests.helpers import synthetic_view, write_png

    entries = []
    for i in range(2):
        folder = tmp_path / f"exam{i}"
        folder.mkdir()
        write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (600, 500)))
        write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (700, 250)))
        entries.append(CaseEntry(f"c{i}", str(folder), "normal", "malignant" if i else "normal"))
    study = create_study(store, "gui", Design.SEQUENTIAL, ["A"], entries, seed=2)
    compute_model_scores(store, study, [stub_model], device="cpu")
    window = StudyReadingWindow(open_reading(store, study, "A"))
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.exam is not None and window.status_label.text() == "", timeout=30_000)
        window.reader_panel.inputs["R"].spin.setValue(20)
        window.reader_panel.inputs["L"].spin.setValue(10)
        with qtbot.waitSignal(window.committed, timeout=10_000):
            window.commit()
        store.submit(lambda db: db.execute("DELETE FROM analysis_results")).result()  # the result gone since
        window.reveal()
        qtbot.waitUntil(lambda: "NOT saved" in window.status_label.text(), timeout=10_000)
        assert "no stored AI result to show" in window.status_label.text()
        boxes = [w for w in window.findChildren(QMessageBox) if w.objectName() == "errorDialog"]
        assert boxes and "no stored AI result to show" in boxes[0].text() and "c0" not in boxes[0].text()
        assert store.read("SELECT * FROM reveals") == [] and not window.ai_box.isVisible()
    finally:
        for widget in QApplication.topLevelWidgets():
            widget.close()


# -- existing stores -------------------------------------------------------------------------------------------


def test_a_schema_9_store_keeps_every_read_it_holds_even_one_the_design_now_refuses(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for version in range(1, 10):
        for statement in _statements(MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version=9")
    db.execute("INSERT INTO studies VALUES (1, 'old', 'sequential', 4, 0, 0)")
    db.execute("INSERT INTO study_readers VALUES (1, 'A')")
    for case in ("c1", "c2"):
        db.execute(f"INSERT INTO study_cases VALUES (1, '{case}', '/e', 'malignant', 'normal', '', 0)")
    db.execute("INSERT INTO reading_order VALUES (1, 'A', 0, 'c1'), (1, 'A', 1, 'c2')")
    for breast in ("L", "R"):
        db.execute(f"INSERT INTO study_reads VALUES (1, 'A', 'c1', 'unaided', '{breast}', 0.4, '', 3, 1)")
    db.execute("INSERT INTO reveals VALUES (1, 'A', 'c1', 2)")
    for breast in ("L", "R"):
        db.execute(f"INSERT INTO study_reads VALUES (1, 'A', 'c1', 'aided', '{breast}', 0.6, '', 3, 3)")
        # what the store accepted before: a concurrent read in a sequential study
        db.execute(f"INSERT INTO study_reads VALUES (1, 'A', 'c2', 'concurrent', '{breast}', 0.7, '', 3, 4)")
    before = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()  # noqa: S608
              for table in ("studies", "study_reads", "reveals", "reading_order")}
    db.close()

    store = Store(path)
    try:
        assert store.read("PRAGMA user_version") == [(SCHEMA_VERSION,)] and SCHEMA_VERSION >= 10
        for table, rows in before.items():
            assert store.read(f"SELECT * FROM {table} ORDER BY 1, 2, 3") == rows, table  # noqa: S608
        with pytest.raises(sqlite3.IntegrityError, match="a sequential study records"):
            store.submit(lambda db: db.execute(
                "INSERT INTO study_reads VALUES (1, 'A', 'c2', 'concurrent', 'L', 0.7, '', 3, 5)")).result()
    finally:
        store.close()


# -- a read keeps its study, case and reader ----------------------------------------------------------------


def outside_connection(store):
    """What the sqlite3 shell opens: foreign keys off (SQLite's default), so only the triggers guard."""
    db = sqlite3.connect(store.path, isolation_level=None)
    assert db.execute("PRAGMA foreign_keys").fetchone() == (0,)
    return db


@pytest.mark.parametrize("statement, says", [
    ("DELETE FROM study_cases WHERE case_id = 'c00'", "a case with committed reads cannot be removed"),
    ("UPDATE study_cases SET exam_path = '/other/exam' WHERE case_id = 'c00'", "keeps its name, its exam"),
    ("UPDATE study_cases SET case_id = 'c99' WHERE case_id = 'c00'", "keeps its name, its exam"),
    ("UPDATE study_cases SET training = 1 WHERE case_id = 'c00'", "its place in the study"),
    ("INSERT OR REPLACE INTO study_cases SELECT study_id, case_id, '/other/exam', truth_left, truth_right, notes, "
     "training FROM study_cases WHERE case_id = 'c00'", "a case with committed reads cannot be replaced"),
    ("DELETE FROM study_readers WHERE reader = 'A'", "a reader with committed reads cannot be removed"),
    ("UPDATE study_readers SET reader = 'Z' WHERE reader = 'A'", "keeps their name"),
    ("DELETE FROM studies", "a study with committed reads cannot be removed"),
    ("UPDATE studies SET design = 'concurrent'", "keeps its number and its design"),
    ("INSERT OR REPLACE INTO studies SELECT study_id, name, 'concurrent', seed, washout_days, created_at "
     "FROM studies", "a study with committed reads cannot be replaced"),
])
def test_a_read_case_reader_or_study_cannot_be_removed_renamed_or_replaced_from_outside(store, statement, says):
    """Seen by reading: with foreign keys off (the sqlite3 shell), deleting a read case left its reads orphaned
    and the analysis left them out; pointing the case at other images made its reads count against that exam."""
    study = create_study(store, "s", Design.UNAIDED, ["A", "B"], cases(4, 1), seed=1)
    ReadingSession(store, study, "A").commit("c00", "unaided", {"L": 0.5, "R": 0.1}).result()
    tables = ("studies", "study_cases", "study_readers", "study_reads")
    before = {t: store.read(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}  # noqa: S608
    db = outside_connection(store)
    try:
        with pytest.raises(sqlite3.IntegrityError, match=says):
            db.execute(statement)
    finally:
        db.close()
    assert {t: store.read(f"SELECT * FROM {t} ORDER BY 1, 2") for t in before} == before  # noqa: S608


def a_case_with_the_ai_shown(store) -> str:
    """A sequential study whose first case reader A has read unaided and been shown the AI of; that case's ID."""
    study = create_study(store, "s", Design.SEQUENTIAL, ["A", "B"], cases(4, 1), seed=1)
    store_ai_results(store, study)
    session = ReadingSession(store, study, "A")
    case = session.case_at(0).case_id
    session.commit(case, "unaided", {"L": 0.5, "R": 0.1}).result()
    session.reveal(case).result()
    return case


@pytest.mark.parametrize("statement, says", [
    ("UPDATE model_scores SET malignant = 0.01 WHERE case_id = 'c00'", "cannot be changed"),
    ("DELETE FROM model_scores", "cannot be removed"),
    ("INSERT OR REPLACE INTO model_scores SELECT study_id, case_id, breast, model_id, 0.01, probabilities_json, "
     "result_key, missing_reason FROM model_scores WHERE case_id = 'c00'", "cannot be replaced"),
])
def test_the_ai_scores_a_reader_was_shown_cannot_be_changed_from_outside(store, statement, says):
    """A coordinator changed a score from the sqlite3 shell after the aided reads: the model's AUC and the
    telemetry changed silently."""
    case = a_case_with_the_ai_shown(store)
    statement = statement.replace("'c00'", f"'{case}'")
    before = store.read("SELECT * FROM model_scores ORDER BY 1, 2, 3, 4")
    db = outside_connection(store)
    try:
        with pytest.raises(sqlite3.IntegrityError, match=says):
            db.execute(statement)
        other = next(c for (c,) in store.read("SELECT DISTINCT case_id FROM model_scores") if c != case)
        db.execute("UPDATE model_scores SET malignant = 0.02 WHERE case_id = ?", (other,))  # nobody saw it yet
    finally:
        db.close()
    after = store.read("SELECT * FROM model_scores WHERE case_id = ? ORDER BY 1, 2, 3, 4", (case,))
    assert after == [row for row in before if row[1] == case]


def test_a_store_made_with_the_first_schema_14_triggers_gets_the_shown_score_s_result_key_through(tmp_path):
    """Schema 14 was first written with an update trigger that refused a shown score's new result key: a store
    made then (a re-test's) failed 'study scores' after an import. Migration 15 gives it the triggers of now."""
    path = tmp_path / "s.sqlite"
    store = Store(path)
    case = a_case_with_the_ai_shown(store)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER shown_model_scores_stay_update")
    db.execute("CREATE TRIGGER shown_model_scores_stay_update BEFORE UPDATE ON model_scores WHEN EXISTS (SELECT 1 "
               "FROM reveals WHERE study_id = OLD.study_id AND case_id = OLD.case_id) BEGIN SELECT RAISE(ABORT, "
               "'a model score a reader was shown cannot be changed'); END")
    db.execute("PRAGMA user_version = 14")
    db.close()
    store = Store(path)
    try:
        assert store.read("PRAGMA user_version") == [(SCHEMA_VERSION,)] and SCHEMA_VERSION >= 15
        store.submit(lambda db: db.execute("UPDATE model_scores SET result_key = 'renewed' WHERE case_id = ?",
                                           (case,))).result()
        with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
            store.submit(lambda db: db.execute("UPDATE model_scores SET malignant = 0.9 WHERE case_id = ?",
                                               (case,))).result()
    finally:
        store.close()


def test_what_no_read_rests_on_can_still_be_changed_from_outside(store):
    study = create_study(store, "s", Design.UNAIDED, ["A", "B"], cases(4, 1), seed=1)
    ReadingSession(store, study, "A").commit("c00", "unaided", {"L": 0.5, "R": 0.1}).result()
    db = outside_connection(store)
    try:
        db.execute("UPDATE study_cases SET notes = 'checked' WHERE case_id = 'c00'")
        db.execute("UPDATE study_cases SET truth_left = 'benign' WHERE case_id = 'c00'")  # a truth corrected later
        db.execute("UPDATE study_cases SET exam_path = '/moved/exam' WHERE case_id = 'c01'")
        db.execute("DELETE FROM reading_order WHERE reader = 'B'")
        db.execute("DELETE FROM study_readers WHERE reader = 'B'")
        db.execute("UPDATE studies SET name = 'renamed'")
    finally:
        db.close()
    assert store.read("SELECT reader FROM study_readers") == [("A",)]
    assert store.read("SELECT name FROM studies") == [("renamed",)]


# -- import ----------------------------------------------------------------------------------------------------


@pytest.fixture
def exported(store):
    """A sequential study of two readers, every case read (unaided, AI shown, aided), as exported."""
    study = create_study(store, "pilot", Design.SEQUENTIAL, ["A", "B"], cases(6, 2), seed=1)
    store_ai_results(store, study)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for position in range(6):
            case = session.case_at(position).case_id
            session.commit(case, "unaided", {"L": 0.3, "R": 0.2}).result()
            session.reveal(case).result()
            session.commit(case, "aided", {"L": 0.4, "R": 0.2}).result()
    return json.loads(json.dumps(export_study(store, study)))


def refused(store, data, says: str) -> None:
    with pytest.raises(StudyError, match=says):
        import_study(store, data, name="copy")
    assert [name for (name,) in store.read("SELECT name FROM studies")] == ["pilot"]  # nothing half-imported


def test_an_import_names_the_refused_row_by_its_number_in_the_file(store, exported):
    """Seen: the export's study_reads[0] edited to 1.7 was reported as 'study_reads row 15' (the rows were sorted
    by commit time before they were counted)."""
    row = exported["study_reads"][0]
    assert (row["modality"], row["breast"]) == ("aided", "L")  # inserted after every unaided read
    row["malignant"] = 1.7
    refused(store, exported, rf"the export's study_reads row 1 \(counted from 1 in the file: reader 'A', case "
                             rf"'{row['case_id']}', modality aided, breast L\): the probability malignant 1.7 is not "
                             r"a number in \[0, 1\]")


@pytest.mark.parametrize("column, value, says", [
    ("case_id", "zz99", "case 'zz99' is not in the study"),
    ("reader", "Mallory", "'Mallory' is not a reader of the study"),
])
def test_an_import_says_which_case_or_reader_is_not_in_the_study(store, exported, column, value, says):
    """Seen: both were refused with 'an aided read needs the AI to have been shown first'."""
    count = len(exported["study_reads"])
    exported["study_reads"].append({**exported["study_reads"][0], column: value})
    refused(store, exported, rf"the export's study_reads row {count + 1} \(counted from 1 in the file: .*\): {says}$")


@pytest.mark.parametrize("column, value, says", [
    ("birads", "7", "BI-RADS '7' is no assessment category"),
    ("duration_s", -5, "the reading time -5 is not a number of seconds of 0 or more"),
    ("duration_s", "soon", "the reading time 'soon' is no number of seconds"),
    ("committed_at", "yesterday", r"committed_at 'yesterday' is no time \(seconds since 1970-01-01 UTC"),
    ("committed_at", None, "committed_at None is no time"),
    ("malignant", float("nan"), r"the probability malignant nan is not a number in \[0, 1\]"),
])
def test_an_import_refuses_what_the_reading_screen_never_writes(store, exported, column, value, says):
    """A BI-RADS 7 and a negative reading time were imported as they were."""
    exported["study_reads"][0][column] = value
    refused(store, exported, rf"the export's study_reads row 1 \(counted from 1 in the file: .*\): {says}")


def test_an_import_keeps_readers_in_one_unicode_form(store):
    """A reader written with a combining accent was stored so (another name to the reading screen), and one
    written one way in the readers and the other in the reads was 'not a reader of the study'."""
    import unicodedata  # noqa: PLC0415

    study = create_study(store, "accents", Design.SEQUENTIAL, ["Chloé", "B"], cases(4, 2), seed=1)
    store_ai_results(store, study)
    session = ReadingSession(store, study, "Chloé")
    case = session.case_at(0).case_id
    session.commit(case, "unaided", {"L": 0.3, "R": 0.2}).result()
    data = json.loads(json.dumps(export_study(store, study)))
    decomposed = unicodedata.normalize("NFD", "Chloé")
    for table in ("study_readers", "reading_order"):
        for row in data[table]:
            if row["reader"] == "Chloé":
                row["reader"] = decomposed
    copy = import_study(store, data, name="copy")
    readers = {r for (r,) in store.read("SELECT reader FROM study_readers WHERE study_id=?", (copy,))}
    assert readers == {"Chloé", "B"} and all(unicodedata.is_normalized("NFC", r) for r in readers)
    assert store.read("SELECT COUNT(*) FROM study_reads WHERE study_id=? AND reader='Chloé'", (copy,)) == [(2,)]


def test_a_reader_named_in_other_capitals_is_that_reader(store):
    """A coordinator's test: 'study results --readers chloé,b' said "no reader 'chloé', 'b'"; a study refuses two
    readers whose names differ only in capitals, so such a name is one of its readers, to the results and to the
    reading session alike."""
    from app.study.results import study_results  # noqa: PLC0415

    study = create_study(store, "caps", Design.UNAIDED, ["Chloé", "B"], cases(6, 3), seed=1)
    for name in ("chloé", "b"):
        session = ReadingSession(store, study, name)
        assert session.reader == {"chloé": "Chloé", "b": "B"}[name]
        for position in range(len(session.order)):
            case = session.case_at(position).case_id
            session.commit(case, "unaided", {"L": 0.1 + 0.1 * position, "R": 0.2}).result()
    results = study_results(store, study, readers=["CHLOÉ", "b"])
    assert {row.reader for row in results.aucs} >= {"Chloé", "B"}


def test_an_import_refuses_a_read_the_design_has_not(store, exported):
    exported["study_reads"].append({**exported["study_reads"][0], "modality": "concurrent"})
    refused(store, exported, rf"study_reads row {len(exported['study_reads'])} .* is refused \(a sequential study "
                             "records an unaided read")



def test_an_import_refuses_a_read_with_one_breast(store, exported):
    """An export with one breast's row of a read taken out was imported: its reader resumed at that case and
    every commit of it was refused as replacing a committed read (a coordinator's test)."""
    gone = next(i for i, row in enumerate(exported["study_reads"]) if row["modality"] == "unaided")
    row = exported["study_reads"].pop(gone)
    other = "R" if row["breast"] == "L" else "L"
    refused(store, exported, rf"the export's unaided read of case '{row['case_id']}' by reader '{row['reader']}' "
                             rf"gives breast\(s\) {other} only: a read gives both breasts")

def test_an_import_refuses_a_reading_order_that_lists_a_case_twice(store, exported):
    """Seen: reading_order[0] appended again (position 99) was imported, and 'study status' said 'A: 13 of 13
    read' on a 12-case study."""
    first = exported["reading_order"][0]
    exported["reading_order"].append({**first, "position": 99})
    count = len(exported["reading_order"])
    refused(store, exported, rf"the export's reading plan \(reading_order\) does not give each reader each case "
                             rf"exactly once per session: reader 'A' has 7 reading\(s\) in the order for the study's "
                             rf"6 case\(s\); reader 'A' has case\(s\) '{first['case_id']}' more than once; rows 1, "
                             rf"{count} of reading_order \(counted from 1 in the file\) list case")


def test_an_import_refuses_a_crossover_plan_with_a_case_twice_in_one_session_or_without_its_arm(store):
    study = create_study(store, "pilot", Design.CROSSOVER, ["A"], cases(4, 2), seed=1, washout_days=28)
    good = json.loads(json.dumps(export_study(store, study)))
    swapped = json.loads(json.dumps(good))
    session_one = [row for row in swapped["reading_order"] if row["position"] < 4]
    session_one[1]["case_id"] = session_one[0]["case_id"]  # right count, one case twice, another missing
    refused(store, swapped, rf"reader 'A' has case\(s\) '{session_one[0]['case_id']}' more than once in session 1; "
                            rf"reader 'A' lacks case\(s\) '{good['reading_order'][1]['case_id']}' in session 1")
    armless = json.loads(json.dumps(good))
    armless["crossover_arms"].pop()
    refused(store, armless, r"reading plan \(reading_order, crossover_arms\) .* reader 'A' has no crossover arm")
    assert import_study(store, good, name="copy") > study  # the plan as made is imported


def test_breast_level_records_carry_their_case_as_the_cluster_exam_level_none(store, exported):
    """The breast-level analysis took a woman's two breasts as two independent units (CIs and p too small)."""
    from app.study.records import analysis_records  # noqa: PLC0415

    breasts = analysis_records(store, 1, "breast")
    assert breasts and all(r["cluster"] == r["case"].rsplit(":", 1)[0] for r in breasts)
    assert all("cluster" not in r for r in analysis_records(store, 1, "exam"))
