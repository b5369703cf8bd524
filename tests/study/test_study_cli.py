"""The study command line: create, scores, results with exports, export/import."""

from __future__ import annotations

import re
import shutil

import cv2

from app.study.store import Store
from app.study.sessions import ReadingSession
from tests.helpers import insert_model_scores
from tests.study.ai_results import store_ai_results
from tests.conftest import DATA, REFERENCE, require_shared
from tests.helpers import run_main

def run(*args):
    return run_main(list(args))


def test_study_cli_end_to_end(tmp_path):
    require_shared()
    db = tmp_path / "s.sqlite"
    for i in range(6):  # one exam has one truth: a copy per case
        shutil.copytree(DATA / "gmic-exam0", tmp_path / f"exam{i}")
    (tmp_path / "cases.csv").write_text(
        "case_id,exam,truth_left,truth_right\n"
        + "".join(f"c{i},exam{i},{'malignant' if i % 3 == 0 else 'normal'},normal\n" for i in range(6)))
    done = run("study", "--db", str(db), "create", "pilot", "--cases", str(tmp_path / "cases.csv"),
               "--readers", "A,B", "--design", "sequential", "--seed", "4")
    assert done.returncode == 0, done.stderr
    done = run("study", "--db", str(db), "scores", "pilot", "--models", str(REFERENCE / "seeded_state_dict.pt"),
               "--device", "cpu")
    assert done.returncode == 0 and "6 case(s)" in done.stdout, done.stderr
    store = Store(db)
    for k, reader in enumerate(("A", "B")):
        session = ReadingSession(store, 1, reader)
        for position in range(6):
            case = session.case_at(position).case_id
            index = int(case[1:])
            first = (0.7 if index % 3 == 0 else 0.3) + 0.05 * ((index + k) % 3)
            session.commit(case, "unaided", {"L": first, "R": 0.1 + 0.01 * index}).result()
            session.reveal(case).result()
            session.commit(case, "aided", {"L": min(first + 0.1, 1.0), "R": 0.1 + 0.01 * index}).result()
    store.close()
    out = tmp_path / "results"
    done = run("study", "--db", str(db), "results", "pilot", "--method", "delong", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "ORH aided vs unaided" in done.stdout and "telemetry: aided reads (per breast): 24" in done.stdout
    assert (out / "aucs_breast.csv").is_file() and (out / "reads_breast.imrmc").is_file()
    assert "Reader-averaged AUCs (ORH random readers and cases, delong, 95 % CI):" in done.stdout
    # every AUC is 1 here: no variance, no interval, the means still shown
    assert re.search(r"\n  aided +1\.000  \(no CI\)  n\+ 2  n- 10\n", done.stdout), done.stdout
    assert "reader mean,aided,1.0,,,2,10,no CI\n" in (out / "reader_averages_breast.csv").read_text()
    shot = tmp_path / "shots" / "results.png"  # its folder made, as --out's is (it failed, status 1)
    done = run("study", "--db", str(db), "results", "pilot", "--screenshot", str(shot))
    assert done.returncode == 0, done.stderr
    assert cv2.imread(str(shot)).shape[:2] == (900, 1400)
    done = run("study", "--db", str(db), "export", "pilot", str(tmp_path / "pilot.json"))
    assert done.returncode == 0
    done = run("study", "--db", str(db), "import", str(tmp_path / "pilot.json"), "--name", "pilot copy")
    assert done.returncode == 0 and "study id 2" in done.stdout
    # a coordinator is told that an import is a copy of reads already there
    assert "note: this database held the same study already ('pilot': the same creation time" in done.stdout
    assert "are not at their paths" not in done.stdout
    shutil.move(tmp_path / "exam0", tmp_path / "moved")  # an export read where an exam is not (another machine)
    done = run("study", "--db", str(db), "import", str(tmp_path / "pilot.json"), "--name", "pilot again")
    assert done.returncode == 0 and "study id 3" in done.stdout
    assert (f"note: 1 case(s)' exams are not at their paths on this machine (e.g. {tmp_path / 'exam0'}): the "
            "reading screen and study scores cannot open them until they are") in done.stdout
    assert "note: this database held the same study already ('pilot', 'pilot copy': the same" in done.stdout
    done = run("study", "--db", str(db), "results", "nonexistent")
    assert done.returncode == 2
    assert f"no study named 'nonexistent' in {db}; it holds 'pilot', 'pilot again', 'pilot copy'" in \
        done.stderr


def test_a_mistyped_db_is_said_and_never_made_by_a_command_that_reads_a_study(tmp_path, capsys):
    """``study --db /no/such/dir/x.sqlite status pilot`` made the file and its folders and said only "no study
    named 'pilot'"; a folder given as --db was said to be read-only or missing. (In process: the CLI's own entry.)"""
    from main import main  # noqa: PLC0415

    typo = tmp_path / "no" / "such" / "x.sqlite"
    for command in (("status", "pilot"), ("results", "pilot"), ("export", "pilot", str(tmp_path / "p.json")),
                    ("scores", "pilot", "--models", "demo")):
        assert main(["study", "--db", str(typo), *command]) == 2
        assert f"{typo}: no such study database" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    # --db after the study command too (it was "unrecognized arguments: --db": a coordinator's test)
    assert main(["study", "status", "pilot", "--db", str(typo)]) == 2
    assert f"{typo}: no such study database" in capsys.readouterr().err
    assert main(["study", "--db", str(tmp_path), "status", "pilot"]) == 2
    assert f"{tmp_path}: a folder, not a study database file" in capsys.readouterr().err
    # a create or an import that fails leaves nothing it made (an empty database then said "it holds no study")
    (tmp_path / "broken.json").write_text("{}")
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right\nc1,gone,malignant,normal\n")
    for command in (("import", str(tmp_path / "broken.json")),
                    ("create", "pilot", "--cases", str(tmp_path / "cases.csv"), "--readers", "A")):
        assert main(["study", "--db", str(typo), *command]) == 2
        capsys.readouterr()
        assert not (tmp_path / "no").exists(), command


def test_study_cli_crossover_with_washout(tmp_path):
    db = tmp_path / "s.sqlite"
    (tmp_path / "cases.csv").write_text("case_id,exam,truth_left,truth_right\nc1,e1,malignant,normal\nc2,e2,normal,normal\n")
    common = ("study", "--db", str(db), "create")
    done = run(*common, "cross", "--cases", str(tmp_path / "cases.csv"), "--readers", "A,B", "--design", "crossover")
    assert done.returncode == 2 and "2 exam(s) of the case list do not exist: c1" in done.stderr  # never created
    for name in ("e1", "e2"):
        (tmp_path / name).mkdir()
    done = run(*common, "cross", "--cases", str(tmp_path / "cases.csv"), "--readers", "A,B", "--design", "crossover")
    assert done.returncode == 2
    assert "2 exam(s) of the case list are folders without a DICOM or PNG file: c1" in done.stderr
    for name in ("e1", "e2"):
        (tmp_path / name / "1.dcm").write_bytes(b"an exam's file")
    done = run(*common, "seq", "--cases", str(tmp_path / "cases.csv"), "--readers", "A", "--washout-days", "28")
    assert done.returncode == 2 and "crossover" in done.stderr
    done = run(*common, "cross", "--cases", str(tmp_path / "cases.csv"), "--readers", "A,B", "--design", "crossover",
               "--washout-days", "28")
    assert done.returncode == 0, done.stderr
    assert "note: " not in done.stdout  # two readers, four weeks: nothing to say
    done = run(*common, "cross-default", "--cases", str(tmp_path / "cases.csv"), "--readers", "A", "--design",
               "crossover")  # no washout given: 28 days, as the New study dialog (0 let session 2 open at once)
    assert done.returncode == 0, done.stderr
    # a coordinator's review: one reader was taken without a word, and so was a 0-day washout
    assert "note: one reader: the ORH comparisons of the modalities need two readers or more" in done.stdout
    done = run(*common, "cross-now", "--cases", str(tmp_path / "cases.csv"), "--readers", "A,B", "--design",
               "crossover", "--washout-days", "0")
    assert done.returncode == 0 and "note: a washout of 0 days between a reader's two sessions" in done.stdout
    done = run("study", "--db", str(db), "status", "cross")
    assert done.returncode == 0, done.stderr
    assert "A: session 1 of 2: 0 of 2 read" in done.stdout
    assert "B: session 2 of 2: 0 of 2 read  (opens after session 1)" in done.stdout
    store = Store(db)
    try:
        assert store.read("SELECT design, washout_days FROM studies WHERE name LIKE 'cross%' ORDER BY name") == [
            ("crossover", 28), ("crossover", 28), ("crossover", 0)]
        store_ai_results(store, 1)  # study scores, as the coordinator runs it before the reading
        session = ReadingSession(store, 1, "A")
        assert session.sessions == 2
        for position in range(2):
            case = session.case_at(position)
            session.commit(case.case_id, case.modality, {"L": 0.5, "R": 0.5}).result()
    finally:
        store.close()
    done = run("study", "--db", str(db), "status", "cross")
    assert "A: session 1 of 2: 2 of 2 read" in done.stdout
    assert "A: session 2 of 2: 0 of 2 read  (opens " in done.stdout and "after the washout" in done.stdout


def test_results_window_draws_rocs(qtbot, tmp_path):
    from app.study.results import study_results
    from app.study.cases import CaseEntry
    from app.study.design import Design, create_study
    from PySide6.QtWidgets import QTableWidget

    from app.ui.study.results import StudyResultsWindow

    store = Store(tmp_path / "r.sqlite")
    entries = [CaseEntry(f"c{i}", "/x", "malignant" if i < 3 else "normal", "normal") for i in range(8)]
    study = create_study(store, "r", Design.SEQUENTIAL, ["A", "B"], entries)
    insert_model_scores(store, study, {(f"c{i}", b): 0.8 if (i < 3 and b == "L") else 0.3 - 0.02 * i
                                       for i in range(8) for b in ("L", "R")})
    store_ai_results(store, study)
    for k, reader in enumerate(("A", "B")):
        session = ReadingSession(store, study, reader)
        for position in range(8):
            case = session.case_at(position).case_id
            i = int(case[1:])
            value = (0.6 if i < 3 else 0.2) + 0.05 * ((i + k) % 4)
            session.commit(case, "unaided", {"L": value, "R": 0.2 + 0.01 * i}).result()
            session.reveal(case).result()
            session.commit(case, "aided", {"L": min(value + 0.05, 1.0), "R": 0.2 + 0.01 * i}).result()
    results = study_results(store, study)
    window = StudyResultsWindow(results)
    qtbot.addWidget(window)
    assert {"unaided", "aided"} <= set(window.curves) and any(m.startswith("model") for m in window.curves)
    assert "aided vs unaided" in results.comparisons
    assert [a.reader for a in results.aucs if a.modality == "model"] == ["(model)"]  # one row, not one per reader
    table = window.findChild(QTableWidget, "aucTable")
    first_rows = {table.item(row, 1).text(): table.item(row, 0).text() for row in range(2)}
    assert first_rows == {"aided": "reader mean", "unaided": "reader mean"}  # the reader-averaged rows lead
    store.close()


def test_study_create_names_the_line_of_a_case_list_that_is_not_utf8_or_holds_a_nul(tmp_path):
    (tmp_path / "latin.csv").write_bytes(b"case_id,exam,truth_left,truth_right\nc1,exam,normal,normal\n"
                                         b"c2,caf\xe9,normal,normal\n")
    (tmp_path / "nul.csv").write_bytes(b"case_id,exam,truth_left,truth_right\nc1,ex\x00am,normal,normal\n")
    for name, expected in (("latin.csv", "line 3: not UTF-8 text (byte 0xe9)"), ("nul.csv", "line 2: a NUL byte")):
        done = run("study", "--db", str(tmp_path / "s.sqlite"), "create", "pilot", "--cases", str(tmp_path / name),
                   "--readers", "A")
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert f"{tmp_path / name}, {expected}" in done.stderr


def test_an_unaided_study_prints_no_telemetry_of_aided_reads(tmp_path, capsys):
    """'telemetry: changed after seeing the AI: 0' was printed for a study that never shows the AI."""
    from app.study.design import Design, create_study  # noqa: PLC0415
    from app.study.cases import CaseEntry  # noqa: PLC0415

    db = tmp_path / "s.sqlite"
    store = Store(db)
    entries = [CaseEntry(f"c{i}", f"/exams/{i}", "malignant" if i < 2 else "normal", "normal") for i in range(4)]
    study = create_study(store, "plain", Design.UNAIDED, ["A"], entries, seed=1)
    session = ReadingSession(store, study, "A")
    for case in entries:
        session.commit(case.case_id, "unaided", {"L": 0.3, "R": 0.2}).result()
    store.close()
    from main import main  # noqa: PLC0415

    assert main(["study", "--db", str(db), "results", "plain"]) == 0
    said = capsys.readouterr().out
    assert "AUC" in said and "telemetry:" not in said


def test_the_terminal_auc_table_stays_in_columns_with_long_names(monkeypatch, capsys):
    """"Jan van der Berg aided" ran past the reader column (a coordinator's review)."""
    import argparse  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415

    import app.cli.study as study_cli  # noqa: PLC0415
    import app.study.results as results_module  # noqa: PLC0415

    def row(reader, modality, auc):
        return SimpleNamespace(reader=reader, modality=modality, auc=auc, ci_low=0.5, ci_high=0.9, n_positive=2,
                               n_negative=10)

    rows = [row("A", "unaided", 0.7), row("Jan van der Berg", "hybrid (unaided, long label)", 0.8)]
    fake = SimpleNamespace(aucs=rows, notes=lambda: [], reader_averages=lambda: [row("", "unaided", 0.75)],
                           comparisons={}, telemetry=None, recalls=[])
    monkeypatch.setattr(results_module, "study_results", lambda *args: fake)
    monkeypatch.setattr(study_cli, "_study_id", lambda store, name: 1)
    args = argparse.Namespace(name="pilot", level="breast", method="jackknife", readers=None, out=None, window=False,
                              screenshot=None)
    assert study_cli._results(None, args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert len({line.index("0.") for line in lines}) == 1, lines  # every AUC in one column


def test_another_program_s_sqlite_file_is_refused_and_left_as_it_was(tmp_path, capsys):
    """A coordinator's test: ``study --db other.sqlite status zz`` on another program's database said only "no study
    named 'zz'", and had added the store's 19 tables to it, set its user_version and put it in WAL mode. Every study
    command, ``create`` included, refuses it; the file is byte for byte as it was."""
    import hashlib
    import sqlite3

    from main import main  # noqa: PLC0415

    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE patients (id, name)")
    db.execute("INSERT INTO patients VALUES (1, 'someone')")
    db.commit()
    db.close()
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    cases = tmp_path / "cases.csv"
    cases.write_text("case_id,exam,cancer\n")
    for command in (("status", "zz"), ("results", "zz"), ("create", "zz", "--cases", str(cases), "--readers", "A")):
        assert main(["study", "--db", str(other), *command]) == 1
        said = capsys.readouterr().err
        assert (f"{other}: this file cannot be used as a study database (an SQLite database that Mammo Reader did "
                "not make (it holds the table(s) patients); it was left as it was)") in said, said
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv", "other.sqlite"]  # no -wal, no -shm
    # another program's database in WAL mode: refused with nothing left beside it (a read-only open left -shm, -wal)
    wal = tmp_path / "wal" / "other.sqlite"
    wal.parent.mkdir()
    db = sqlite3.connect(wal)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE customers (id)")
    db.commit()
    db.close()
    assert main(["study", "status", "zz", "--db", str(wal)]) == 1 and "did not make" in capsys.readouterr().err
    assert [p.name for p in wal.parent.iterdir()] == ["other.sqlite"]
    # an empty file is no store to a command that reads one (it became a 200 KB store); create makes one in it
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    assert main(["study", "--db", str(empty), "status", "zz"]) == 2
    assert "empty.sqlite: an empty file, no study database" in capsys.readouterr().err and not empty.stat().st_size
