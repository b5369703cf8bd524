"""The archive batch on the local engine: sources, the unit's files, the table, failures, resume, crash."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.archive.ledger import Progress
from app.archive.run import run_batch
from app.archive.sources import ExamItem, read_batch_source
from app.archive.unit import BatchOptions, marker_path
from inference.errors import MammoError
from tests.archive.conftest import DEMO_MODEL, GOOD
from tests.conftest import ROOT
from tests.inference.intake.dicom_factory import make_dataset, write
from tests.helpers import run_main, synthetic_view

OPTIONS = BatchOptions(formats=("json",), device="cpu")


def read_result_of_report(path: Path):
    """The ExamResult inside a report JSON (its "result" with the maps file beside it)."""
    from inference.results.serialize import maps_from_bytes, result_from_data

    data = dict(json.loads(path.read_text())["result"])
    return result_from_data(data, maps_from_bytes((path.parent / data.pop("maps_file")).read_bytes()))


def run(items, out, options=OPTIONS, **kw):
    return run_batch(items, [str(DEMO_MODEL)], out, options, **kw)


def test_sources_case_list_folder_and_list(archive, tmp_path):
    folder = read_batch_source(archive)
    assert [i.exam_id for i in folder] == [*GOOD, "zz_bad"]
    assert all(Path(i.location).is_absolute() for i in folder)
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,exam,truth_left,truth_right\nc1,{archive / 'exam0'},normal,normal\n"
                     f"c2,{os.path.relpath(archive / 'exam1', tmp_path)},malignant,normal\n")
    assert [(i.exam_id, i.location) for i in read_batch_source(cases)] == [
        ("c1", str(archive / "exam0")), ("c2", str(archive / "exam1"))]
    listing = tmp_path / "exams.txt"
    listing.write_text(f"# two exams\n{archive / 'exam2'}\n\n{archive / 'exam3'}\n")
    assert [i.exam_id for i in read_batch_source(listing)] == ["exam2", "exam3"]
    twice = tmp_path / "twice.csv"
    twice.write_text(f"case_id,exam\nc1,{archive / 'exam0'}\nc1,{archive / 'exam1'}\n")
    with pytest.raises(MammoError, match="'c1' is given twice"):
        read_batch_source(twice)
    # a header without 'exam' was blamed on line 2 (a reviewer's semicolon export and 'id,path')
    for name, text, says in (("semi.csv", "\ufeffcase_id;exam\nc1;x\n", "it has case_id;exam (is it separated by "
                              "semicolons?"), ("other.csv", "id,path\nc1,x\n", "the header lacks exam; it has id, path")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(MammoError, match=re.escape(says)):
            read_batch_source(tmp_path / name)
    (tmp_path / "caps.csv").write_text(f"Case_ID,Exam\nc9,{archive / 'exam0'}\n")  # a spreadsheet's header
    assert [(i.exam_id, i.location) for i in read_batch_source(tmp_path / "caps.csv")] == [
        ("c9", str(archive / "exam0"))]
    with pytest.raises(MammoError, match="line 2 has no 'exam'"):
        (tmp_path / "empty.csv").write_text("case_id,exam\nc1,\n")
        read_batch_source(tmp_path / "empty.csv")
    with pytest.raises(MammoError, match="no such"):
        read_batch_source(tmp_path / "nothing")


def test_a_folder_named_like_a_formula_is_text_in_failures_csv_and_reads_back_as_itself(archive, tmp_path):
    """A security review: a folder named "=cmd|' /C calc'!A0" reached failures.csv and the journal as a formula,
    which a spreadsheet evaluates."""
    from app.archive.ledger import read_failure_rows

    name = "=cmd|' _C calc'!A0"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "x.dcm").write_bytes(b"not a dicom")
    out = tmp_path / "out"
    run([ExamItem(name, str(folder))], out)
    with (out / "failures.csv").open(newline="") as handle:
        (written,) = list(csv.DictReader(handle))
    assert written["exam_id"] == "'" + name and written["location"] == str(folder)  # a path: no formula
    (row,) = read_failure_rows(out)
    assert row["exam_id"] == name and row["location"] == str(folder)
    journal = (out / ".batch" / "journal.csv").read_text(encoding="utf-8")
    assert f",'{name}," in journal and f",{name}," not in journal


def test_local_batch_writes_files_table_and_failures_and_a_rerun_skips(archive, tmp_path):
    items = read_batch_source(archive)[:3] + [ExamItem("zz_bad", str(archive / "zz_bad"))]
    out = tmp_path / "out"
    summary = run(items, out)
    assert [o.exam_id for o in summary.done] == GOOD[:3]
    assert [o.exam_id for o in summary.failed] == ["zz_bad"]
    assert "not a DICOM image" in summary.failed[0].reason and "x.dcm" in summary.failed[0].reason
    for name in GOOD[:3]:
        (report,) = (out / name).glob("*.json")
        assert json.loads(report.read_text())["result"]["models"]
    with (out / "failures.csv").open(newline="") as handle:
        failures = list(csv.DictReader(handle))
    assert [f["exam_id"] for f in failures] == ["zz_bad"] and "x.dcm" in failures[0]["reason"]

    table = pq.read_table(out / "scores.parquet").to_pylist()
    assert {r["exam_id"] for r in table} == set(GOOD[:3])
    exam0 = [r for r in table if r["exam_id"] == "exam0"]
    views = {r["view"] for r in exam0 if r["level"] == "view"}
    assert views == {"L-CC", "R-CC", "L-MLO", "R-MLO"}
    assert {r["breast"] for r in exam0 if r["level"] == "breast"} == {"L", "R"}
    assert all(r["mode"] == "exact" and r["device"] == "cpu" and r["model_key"].startswith("gmic:") for r in exam0)
    # the table holds the numbers of the report's result
    result = read_result_of_report(next((out / "exam0").glob("*.json")))
    exam_rule = [r for r in exam0 if r["level"] == "exam" and r["kind"] == "malignancy"]
    assert len(exam_rule) == 1 and exam_rule[0]["class"] == "malignant"
    assert exam_rule[0]["probability"] == result.exam["model"].malignant
    view_rows = {(r["view"], r["class"]): r["probability"] for r in exam0 if r["level"] == "view" and r["kind"] == "class"}
    assert view_rows == {(v.value, c): p for v, vr in result.views.items()
                         for c, p in vr.entries["model"].probabilities.items()}
    breast = {r["breast"]: r["probability"] for r in exam0 if r["level"] == "breast" and r["kind"] == "malignancy"}
    assert exam_rule[0]["probability"] == pytest.approx(max(breast.values()))

    again = run(items, out)
    assert [o.exam_id for o in again.skipped] == GOOD[:3] and not again.done
    assert [o.exam_id for o in again.failed] == ["zz_bad"]  # bad input is tried again, and fails again
    assert pq.read_table(out / "scores.parquet").num_rows == len(table)
    # an exam whose rows are lost (its part damaged or gone, or a copied folder whose markers name the old
    # folder's parts) is made again, not counted as done with no rows in the table
    from app.archive.table import part_path

    part_path(out, items[0]).write_bytes(b"not parquet")
    part_path(out, items[1]).unlink()
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / ".batch" / "parts")
    redone = run(items, out)
    assert sorted(o.exam_id for o in redone.done) == GOOD[:2] and [o.exam_id for o in redone.skipped] == GOOD[2:3]
    assert pq.read_table(out / "scores.parquet").num_rows == len(table)
    assert not run(items[:1], copy).skipped
    # other options are not what was done: the exams are made again
    assert len(run(items[:1], out, BatchOptions(formats=("json", "sr"), device="cpu")).done) == 1


def test_an_exam_missing_a_view_fails_unless_allowed(tmp_path):
    folder = tmp_path / "archive" / "three_views"
    folder.mkdir(parents=True)
    for view, lesion in (("L-CC", (700, 200)), ("R-CC", (600, 500)), ("L-MLO", (800, 250))):
        ds = make_dataset(synthetic_view(view, lesion), view)
        write(ds, folder, f"{view}.dcm")
    items = read_batch_source(tmp_path / "archive")
    failed = run(items, tmp_path / "out")
    assert "missing views: R-MLO" in failed.failed[0].reason
    (folder / "R-MLO.dcm").write_bytes(b"\0" * 128 + b"DICM")  # there, but it cannot be read: the reason says why
    failed = run(read_batch_source(tmp_path / "archive"), tmp_path / "out-2")
    assert "missing views: R-MLO; R-MLO.dcm could not be loaded: " in failed.failed[0].reason
    complete = tmp_path / "archive" / "four_views"
    complete.mkdir()
    for view, lesion in (("L-CC", (700, 200)), ("R-CC", (600, 500)), ("L-MLO", (800, 250)), ("R-MLO", (700, 450))):
        write(make_dataset(synthetic_view(view, lesion), view), complete, f"{view}.dcm")
    items = read_batch_source(tmp_path / "archive")
    assert [o.exam_id for o in run(items, tmp_path / "out").done] == ["four_views"]
    allowed = run(items, tmp_path / "out", BatchOptions(formats=("json",), device="cpu", allow_missing_views=True))
    # the complete exam is not analysed again: the flag changes nothing for it (every complete exam was redone)
    # the file that could not be read is said: the exam is analysed in part, in failures.csv (it was "done" and
    # gone from failures.csv, the reason only inside its report)
    assert [o.exam_id for o in allowed.partial] == ["three_views"] and not allowed.done
    assert "R-MLO.dcm could not be loaded: " in allowed.partial[0].reason
    with open(tmp_path / "out" / "failures.csv", newline="") as handle:
        assert "R-MLO.dcm could not be loaded" in {r["exam_id"]: r for r in csv.DictReader(handle)}["three_views"][
            "reason"]
    assert [o.exam_id for o in allowed.skipped] == ["four_views"]
    rows = pq.read_table(tmp_path / "out" / "scores.parquet").to_pylist()
    views = {r["view"] for r in rows if r["level"] == "view" and r["exam_id"] == "three_views"}
    assert views == {"L-CC", "R-CC", "L-MLO"}
    assert [o.exam_id for o in run(items, tmp_path / "out").skipped] == ["four_views"]  # and without the flag again
    # a complete exam's refused file (a CAD SR beside the four views) is a note, not a partial exam (found in
    # review: such an exam was analysed again at every run)
    write(make_dataset(synthetic_view("L-CC", (700, 200)), "L-CC", Modality="SR"), complete, "cad_sr.dcm")
    again = run([i for i in read_batch_source(tmp_path / "archive") if i.exam_id == "four_views"], tmp_path / "out-3",
                BatchOptions(formats=("json",), device="cpu", allow_missing_views=True))
    assert [o.exam_id for o in again.done] == ["four_views"], (again.partial, again.failed)


def test_a_full_disk_fails_one_exam_and_the_batch_goes_on(archive, tmp_path, monkeypatch):
    import errno

    from app.report import export

    real, calls = export.export_report, []

    def filling_the_disk(report, out, formats, page_size):
        calls.append(out)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(out))
        return real(report, out, formats, page_size)

    monkeypatch.setattr(export, "export_report", filling_the_disk)
    summary = run(read_batch_source(archive)[:2], tmp_path / "out")
    assert [o.exam_id for o in summary.done] == ["exam1"]
    assert summary.failed[0].exam_id == "exam0" and summary.failed[0].reason.startswith("the disk is full")
    assert not marker_path(tmp_path / "out", read_batch_source(archive)[0]).exists()


def test_a_disk_too_full_for_the_table_stops_the_batch_with_its_failures_written(archive, tmp_path, monkeypatch):
    """A deployer's test on a 2 MB disk: an exam failed for the full disk, its failures.csv line could not be written
    then, and the table's could not either: the batch stopped, and the final bookkeeping tried the table first and
    stopped there, leaving no failures.csv. Each file is tried; the failures first."""
    import errno

    from app.archive import ledger
    from app.report import export

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "export_report", full)
    tables = []

    def table_at_start_only(out, parts):
        tables.append(out)
        return full() if len(tables) > 1 else real_table(out, parts)

    real_table = ledger.write_scores
    monkeypatch.setattr(ledger, "write_scores", table_at_start_only)
    real, calls = ledger.write_text_atomic, []

    def failures_once(path, text):
        calls.append(path)
        if len(calls) == 1:
            full()
        return real(path, text)

    monkeypatch.setattr(ledger, "write_text_atomic", failures_once)
    items = read_batch_source(archive)[:2]
    with pytest.raises(OSError, match="No space left"):
        run(items, tmp_path / "out")
    with (tmp_path / "out" / "failures.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["exam_id"] == "exam0" and row["reason"].startswith("the disk is full")


def test_a_folder_the_account_may_not_read_fails_its_exam_and_the_batch_goes_on(archive, tmp_path, monkeypatch):
    """A site lead's test (as root without CAP_DAC_OVERRIDE): one exam folder of mode 000 stopped the whole batch
    ("error: …/.batch: Permission denied"), nothing analysed. (The tests run as root, whom modes do not stop: the
    folder's listing raises here.)"""
    locked = tmp_path / "archive"
    shutil.copytree(archive / "exam0", locked / "exam0")
    shutil.copytree(archive / "exam1", locked / "locked")
    real_is_dir, real_iterdir = Path.is_dir, Path.iterdir

    def is_dir(path):
        if path.parent.name == "locked" and path.parent.parent == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_dir(path)

    def iterdir(path):
        if path == locked / "locked" or path.resolve() == (locked / "locked").resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real_iterdir(path)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    items = read_batch_source(locked)
    assert [i.exam_id for i in items] == ["exam0", "locked"]
    summary = run(items, tmp_path / "out")
    assert [o.exam_id for o in summary.done] == ["exam0"]
    (failed,) = summary.failed
    assert failed.exam_id == "locked" and "permission denied: this account may not read the folder" in failed.reason


def test_progress_line_says_done_failed_rate_and_time_left():
    progress = Progress(10, stream=None)
    progress.started -= 60.0  # a minute in
    line = progress.line(4, 1)
    assert line.startswith("5/10 exams: 4 done, 1 failed, 5.0/min, 1.0 min left")
    assert progress.line(9, 1).endswith("finished")
    assert progress.line(3, 1, partial=1).startswith("5/10 exams: 3 done, 1 only in part, 1 failed, 5.0/min")


def test_progress_in_a_log_is_a_line_per_tenth_each_once_and_on_a_terminal_one_redrawn_line():
    """Captured (a log, a pipe), the carriage-returned line ran together and its last state came twice."""
    import io

    log = io.StringIO()
    progress = Progress(25, stream=log)
    for finished in range(26):
        progress(finished, 0)
        progress(finished, 0)  # the engines call again without news
    progress(25, 0, final=True)
    lines = log.getvalue().split("\n")
    assert "\r" not in log.getvalue() and lines[-1] == ""
    counts = [int(line.split("/")[0]) for line in lines[:-1]]
    assert counts == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25]  # each tenth's first exam; the end once
    assert lines[-2].startswith("25/25 exams: 25 done, 0 failed") and lines[-2].endswith("finished")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = Progress(3, stream=terminal, every_s=0.0)
    for finished in range(4):
        progress(finished, 0)
    progress(3, 0, final=True)
    assert terminal.getvalue().count("\n") == 1 and terminal.getvalue().endswith("\n")
    assert terminal.getvalue().split("\r")[-1].startswith("3/3 exams: 3 done")


def test_a_resumed_run_counts_its_own_exams_and_finishes(archive, tmp_path):
    """Resumed, the line counted the new exams against all of them ("15/30 exams … 0.2 min left") and never
    said "finished"."""
    import io

    items = read_batch_source(archive)[:3]
    run(items[:2], tmp_path / "out")
    stream = io.StringIO()
    run(items, tmp_path / "out", progress=Progress(len(items), stream=stream))
    assert stream.getvalue().rstrip().split("\n")[-1].startswith("1/1 exams: 1 done, 0 failed")
    assert stream.getvalue().rstrip().endswith("finished")


def test_a_killed_batch_keeps_a_usable_table_and_a_rerun_finishes(archive, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "main.py", "batch", str(archive), "--out", str(out), "--models", str(DEMO_MODEL),
               "--device", "cpu"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = out / ".batch" / "done"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(parts.glob("*.json")) if parts.exists() else []) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    markers = [json.loads(p.read_text())["exam_id"] for p in parts.glob("*.json")]
    finished = len(markers)
    assert 3 <= finished < 8, "the batch was to be killed part-way"
    # the partial table reads and holds the finished exams (the last one may have been killed between its
    # marker and the table's rewrite)
    partial = {r["exam_id"] for r in pq.read_table(out / "scores.parquet").to_pylist()}
    assert partial <= set(markers) and len(partial) >= finished - 1
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stderr  # zz_bad fails
    assert f"{8 - finished} exam(s) done, {finished} already done (skipped), 1 failed" in rerun.stdout
    rows = pq.read_table(out / "scores.parquet").to_pylist()
    assert {r["exam_id"] for r in rows} == set(GOOD)
    keyed = [(r["exam_id"], r["level"], r["view"], r["breast"], r["kind"], r["class"]) for r in rows]
    assert len(keyed) == len(set(keyed)), "an exam's rows appear twice"
    with (out / "failures.csv").open(newline="") as handle:
        assert [f["exam_id"] for f in csv.DictReader(handle)] == ["zz_bad"]


def test_the_local_engine_never_imports_ray(archive, tmp_path):
    code = ("import sys; from app.archive.run import run_batch; from app.archive.sources import read_batch_source; "
            "from app.archive.unit import BatchOptions; "
            f"run_batch(read_batch_source({str(archive)!r})[:1], [{str(DEMO_MODEL)!r}], {str(tmp_path / 'o')!r}, "
            "BatchOptions(device='cpu')); assert 'ray' not in sys.modules, 'ray was imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_engine_ray_without_ray_says_how_to_install_it(archive, tmp_path):
    blocker = tmp_path / "blocker" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named ray (blocked by the test)')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "main.py", "batch", str(archive), "--out", str(tmp_path / "o"),
                           "--engine", "ray", "--models", str(DEMO_MODEL)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "pip install -e '.[cluster]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()  # said before anything was made


def test_study_create_takes_the_model_scores_from_the_batch_table(archive, tmp_path):
    out = tmp_path / "out"
    cases = tmp_path / "cases.csv"
    cases.write_text("case_id,exam,truth_left,truth_right\n"
                     f"exam0,{archive / 'exam0'},malignant,normal\nexam1,{archive / 'exam1'},normal,benign\n"
                     f"exam2,{archive / 'exam2'},normal,normal\n")
    run(read_batch_source(cases)[:2], out)
    db = tmp_path / "study.db"
    done = run_main(["study", "--db", str(db), "create", "s1", "--cases", str(cases), "--readers", "ann,bob",
                     "--scores", str(out / "scores.parquet")], env={"MAMMO_READER_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    assert "model scores of 2 case(s)" in done.stdout and "1 case(s) have none" in done.stdout

    from app.analysis import restore
    from app.study.scores import stored_result_key
    from app.study.store import Store

    store = Store(db)
    try:
        rows = store.read("SELECT case_id, breast, model_id, malignant, probabilities_json FROM model_scores")
        table = pq.read_table(out / "scores.parquet").to_pylist()
        expected = {(r["exam_id"], r["breast"]): r["probability"] for r in table
                    if r["level"] == "breast" and r["kind"] == "malignancy"}
        assert {(c, b): m for c, b, _, m, _ in rows} == expected
        assert json.loads(rows[0][4]).keys() == {"benign", "malignant"}
        study_id = store.read("SELECT study_id FROM studies")[0][0]
        restored = restore(store, stored_result_key(store, study_id, "exam0"))
        assert restored is not None and restored.entries[0].id == "model"  # aided reading shows the maps
        # stored under the keys the workstation looks up: opening the exam there analyses nothing
        from app.analysis import analyse_or_restore
        from inference.intake.exam import load_exam
        from inference.weights import load_model_groups

        opened = analyse_or_restore(load_exam(archive / "exam0"), load_model_groups([str(DEMO_MODEL)]), store=store,
                                    device="cpu")
        assert opened.restored and opened.key == stored_result_key(store, study_id, "exam0")
        batch = read_result_of_report(next((out / "exam0").glob("*.json")))
        assert opened.result.exam["model"].malignant == pytest.approx(batch.exam["model"].malignant, abs=1e-9)
    finally:
        store.close()


def test_the_batch_goes_through_the_results_store_when_given_one(archive, tmp_path, monkeypatch):
    import inference.pipeline
    from app.analysis import analyse_or_restore
    from app.study.store import Store
    from inference.intake.exam import load_exam
    from inference.weights import load_model_groups

    real, calls = inference.pipeline.run_prepared, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inference.pipeline, "run_prepared", counted)
    store = Store(tmp_path / "store.sqlite")
    try:
        first = run(read_batch_source(archive)[:2], tmp_path / "one", store=store)
        assert len(first.done) == 2 and len(calls) == 2
        again = run(read_batch_source(archive)[:2], tmp_path / "two", store=store)  # another folder: no skip
        assert len(again.done) == 2 and len(calls) == 2  # each model's part restored, nothing run
        one = read_result_of_report(next((tmp_path / "one" / "exam1").glob("*.json")))
        two = read_result_of_report(next((tmp_path / "two" / "exam1").glob("*.json")))
        assert two.exam["model"].malignant == pytest.approx(one.exam["model"].malignant, abs=1e-9)
        opened = analyse_or_restore(load_exam(archive / "exam1"), load_model_groups([str(DEMO_MODEL)]), store=store,
                                    device="cpu")  # the workstation finds what the batch computed
        assert opened.restored and len(calls) == 2
    finally:
        store.close()
    run(read_batch_source(archive)[:1], tmp_path / "three")  # without a store: analysed, through the same path
    assert len(calls) == 3


def test_out_of_memory_fails_the_exam_with_that_reason_and_the_batch_goes_on(archive, tmp_path, monkeypatch):
    import inference.pipeline

    real, calls = inference.pipeline.run_prepared, []

    def running_out(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("cannot allocate 2.1 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(inference.pipeline, "run_prepared", running_out)
    summary = run(read_batch_source(archive)[:2], tmp_path / "out")
    assert summary.failed[0].exam_id == "exam0"
    assert summary.failed[0].reason == "out of memory (MemoryError: cannot allocate 2.1 GiB)"
    assert [o.exam_id for o in summary.done] == ["exam1"]


def test_a_nul_byte_or_bytes_that_are_not_utf8_in_a_list_name_the_file_and_line(tmp_path):
    (tmp_path / "nul.csv").write_bytes(b"case_id,exam\nc1,exam0\nc2,ex\x00am1\n")
    (tmp_path / "nul.txt").write_bytes(b"# exams\nex\x00am1\n")
    (tmp_path / "latin.csv").write_bytes(b"case_id,exam\nc1,caf\xe9\n")
    for name, line, problem in (("nul.csv", 3, "a NUL byte"), ("nul.txt", 2, "a NUL byte"),
                                ("latin.csv", 2, "not UTF-8 text (byte 0xe9)")):
        with pytest.raises(MammoError) as refused:
            read_batch_source(tmp_path / name)
        assert str(refused.value).startswith(f"{tmp_path / name}, line {line}: {problem}")
    done = run_main(["batch", str(tmp_path / "nul.csv"), "--out", str(tmp_path / "o")])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'nul.csv'}, line 3: a NUL byte" in done.stderr


def test_case_ids_that_sanitise_alike_get_their_own_folders(tmp_path):
    from app.archive.unit import exam_folder

    options = BatchOptions(formats=("json",), device="cpu")
    folders = {exam_folder(tmp_path, ExamItem(case, str(tmp_path / case.replace("/", "-"))), options)
               for case in ("x/1", "x_1", "x:1", "x 1")}
    assert len(folders) == 4
    assert exam_folder(tmp_path, ExamItem("x_1", "/a"), options) == tmp_path / "x_1"  # a clean ID keeps its name
    assert all(f.parent == tmp_path and "/" not in f.name for f in folders)


def test_the_progress_line_goes_to_the_stderr_of_the_moment(monkeypatch):
    """Not to the stream that was stderr when the module was first imported (under pytest's capture that one is
    closed by the time a later batch writes: 'I/O operation on closed file')."""
    import io
    import sys

    from app.archive.ledger import Progress

    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    Progress(2)(1, 0, final=True)
    assert "1/2 exams: 1 done" in now.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    Progress(2, stream=None)(2, 0, final=True)
    assert quiet.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", None)  # no console at all (a windowed build): silent, not a crash
    Progress(2)(2, 0, final=True)


def test_a_breast_whose_batch_views_have_no_result_is_said_so_on_import(tmp_path):
    """The batch's table holds a model's view rows of a breast without scores (no result: refused or not
    finite) and no breast rows: the study's reason is "no result", not "no images of this breast"."""
    from app.archive.study_scores import import_batch_scores
    from app.archive.table import SCHEMA
    from app.study.cases import CaseEntry
    from app.study.design import Design, create_study
    from app.study.store import Store

    exam = tmp_path / "exam0"
    exam.mkdir()
    base = {name: None for name in SCHEMA.names}
    base.update(exam_id="exam0", location=str(exam), model_id="m", model_label="m", family="maskrcnn",
                model_key="k", mode="exact", numerics="fp32", device="cpu", seconds=1.0, analysed_at="2026")
    rows = [{**base, "level": "view", "view": "L-CC", "breast": "L", "kind": "class", "class": "benign mass",
             "probability": None, "counted": False},
            {**base, "level": "view", "view": "R-CC", "breast": "R", "kind": "class", "class": "benign mass",
             "probability": 0.2, "counted": True},
            {**base, "level": "breast", "view": "", "breast": "R", "kind": "class", "class": "benign mass",
             "probability": 0.2, "counted": True}]
    table = tmp_path / "out" / "scores.parquet"
    table.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), table)
    store = Store(tmp_path / "study.db")
    try:
        study = create_study(store, "s", Design.UNAIDED, ["a"], [CaseEntry("exam0", str(exam), "normal", "normal")],
                             seed=1)
        assert import_batch_scores(store, study, table) == (1, 0)
        reasons = dict(store.read("SELECT breast, missing_reason FROM model_scores WHERE study_id=?", (study,)))
        assert reasons == {"L": "no result on this breast (the batch's failures.csv says why)", "R": ""}
    finally:
        store.close()


def test_a_batch_never_overwrites_a_table_it_did_not_make(archive, tmp_path):
    """A folder holding a scores.parquet or failures.csv but no batch bookkeeping is someone else's: refused,
    the files left as they were (they were overwritten)."""
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "scores.parquet").write_bytes(b"their table")
    (out / "failures.csv").write_text("their notes\n")
    with pytest.raises(MammoError, match=r"holds scores.parquet and failures.csv that no batch or report run made"):
        run(read_batch_source(archive)[:1], out)
    assert (out / "scores.parquet").read_bytes() == b"their table" and not (out / ".batch").exists()


def test_a_deidentified_reason_loses_the_exam_s_folder_as_a_word_not_inside_other_words():
    """A folder called "port" took "report" apart ("a DICOM structured reanon-… needs …")."""
    from app.archive.sources import ExamItem

    item = ExamItem("anon-1234", "anon-1234", opens="/archive/port")
    said = item.redacted("/archive/port/0_L-CC.dcm: a DICOM structured report needs; exam port: no views")
    assert said == "…: a DICOM structured report needs; exam anon-1234: no views"  # paths and files go as a whole
    # a file named after the folder loses it too (the folder often carries the patient's record number)
    item = ExamItem("anon-5", "anon-5", opens="/data/exams/MRN1234567")
    said = item.redacted("/data/exams/MRN1234567/MRN1234567_L_CC.dcm is damaged; MRN1234567-R-MLO.dcm too; MRN1234567")
    assert said == "… is damaged; … too; anon-5"


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_writes(archive, tmp_path):
    """Two runs on one folder both analysed every exam (60 journal lines for 30 exams) and both wrote its
    table: the second is refused, naming the folder; once the first ends, the folder is free again."""
    from filelock import FileLock

    from app.archive.run import LOCK_NAME

    out = tmp_path / "out"
    out.mkdir()
    items = read_batch_source(archive)[:1]
    with FileLock(out / LOCK_NAME):  # the first run holds it
        with pytest.raises(MammoError, match="another batch or report run is writing to this folder") as refused:
            run(items, out)
        assert str(out) in str(refused.value)
        assert not (out / ".batch").exists()  # nothing of the folder touched
    assert [o.exam_id for o in run(items, out).done] == [items[0].exam_id]


def test_an_output_folder_inside_the_archive_is_not_an_exam_of_it(archive, tmp_path):
    """--out inside the source folder: every rerun read its own output as an exam and failed it ("the folder
    holds no mammogram")."""
    source = tmp_path / "archive"
    shutil.copytree(archive / "exam0", source / "exam0")
    run(read_batch_source(source), source / "out")
    again = run(read_batch_source(source), source / "out")
    assert not again.failed and [o.exam_id for o in again.skipped] == ["exam0"]
    # a batch's result folders in the folder the exams are read from, or in an exam's folder, and de-identified
    # image copies in an exam's folder, would be read as exams (a reviewer's de-identified reruns counted the
    # same patient again each time) or as another patient's images of the exam: refused, before any work
    as_report = dataclasses.replace(OPTIONS, folder_per_exam=False)
    for out, options, says in ((source, OPTIONS, "the folder the exams are read from"),
                               (source / "exam0" / "results", OPTIONS, "lies in, the folder of exam exam0"),
                               (source / "exam0", dataclasses.replace(as_report, deidentify=True), "exam exam0")):
        with pytest.raises(MammoError, match=says):
            run(read_batch_source(source), out, options)
    assert sorted(p.name for p in source.iterdir()) == ["exam0", "out"] and not (source / "exam0" / "results").exists()
    # an exam named with the output folder as its own (report EXAM --out EXAM) is still that exam
    assert [o.exam_id for o in run(read_batch_source(source)[:1], source / "exam0", as_report).done] == ["exam0"]


def test_a_deidentified_failure_names_no_file_and_no_header_identifier(tmp_path, monkeypatch):
    """Seen by a privacy reviewer: a de-identified batch's failures.csv said "patient PID000111 (PRIVHOSP):
    Testperson_PID987654_L-CC.dcm; patient PID987654 …": only the exam's folder was replaced, not the files
    named after the patient nor what their headers gave."""
    from app.archive.sources import ExamItem
    from app.archive.unit import failure_reason
    from inference.intake.exam import load_exam
    from tests.inference.intake.dicom_factory import PATIENT_ID, make_dataset, sample_pixels, write

    folder = tmp_path / "Testperson_Privacy_PID987654"
    folder.mkdir()
    write(make_dataset(sample_pixels("L-CC"), "L-CC", IssuerOfPatientID="PRIVHOSP"), folder,
          "Testperson_PID987654_L-CC.dcm")
    write(make_dataset(sample_pixels("R-CC"), "R-CC", PatientID="PID000111", IssuerOfPatientID="PRIVHOSP"), folder,
          "Otherperson_PID000111_R-CC.dcm")
    with pytest.raises(MammoError) as caught:
        load_exam(folder)
    reason = failure_reason(caught.value)
    assert "PID000111" in reason and "Testperson_PID987654_L-CC.dcm" in reason  # what the identified batch says
    said = ExamItem("anon-77", "anon-77", opens=str(folder)).redacted(reason)
    for identifier in ("PID000111", PATIENT_ID, "PRIVHOSP", "Testperson", "Otherperson", "PID987654", ".dcm"):
        assert identifier not in said, said
    assert "the images belong to 2 different patients" in said
    # the same exam named by a manifest (found in review: only the manifest's own name was known)
    manifest = tmp_path / "exam.csv"
    manifest.write_text("path,view\n" + "".join(f"{p},\n" for p in sorted(folder.glob("*.dcm"))))
    with pytest.raises(MammoError) as caught:
        load_exam(manifest)
    said = ExamItem("anon-78", "anon-78", opens=str(manifest)).redacted(failure_reason(caught.value))
    for identifier in ("PID000111", PATIENT_ID, "PRIVHOSP", "Testperson", "Otherperson"):
        assert identifier not in said, said

    # the same exam as a PACS study (its address names no file; the refusal came from the retrieved copies)
    from app.archive.unit import BatchOptions, decode
    from app.pacs.retrieve import RetrievedStudy

    retrieved_folder = tmp_path / "cache" / "0123456789abcdef0123"
    shutil.copytree(folder, retrieved_folder)
    monkeypatch.setattr("app.pacs.retrieve.retrieve_study", lambda *a, **k: RetrievedStudy(retrieved_folder, 2, []))
    item = ExamItem("anon-79", "anon-79", opens="dimse://PACS@127.0.0.1:11112/1.2.826.0.1.3680043.2.1125.1")
    said = decode(item, ("gmic",), BatchOptions(deidentify=True)).failure
    assert "the images belong to 2 different patients" in said
    for identifier in ("PID000111", PATIENT_ID, "PRIVHOSP", "Testperson", "Otherperson", "PID987654"):
        assert identifier not in said, said


def test_a_deidentified_failure_names_no_cbis_ddsm_patient_key(tmp_path):
    """A re-test: two CBIS-DDSM patients in one folder; the de-identified failure read "patient P_00173
    (CBIS-…): …; patient P_00820 (CBIS-…)": the intake's patient keys were no identifier, and the data set's
    StudyID "DDSM" was one."""
    from app.archive.sources import ExamItem
    from app.archive.unit import failure_reason
    from inference.intake.exam import load_exam
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    folder = tmp_path / "exam2"
    folder.mkdir()
    for view, patient in (("L-CC", "Mass-Test_P_00173_LEFT_CC"), ("R-CC", "Mass-Test_P_00820_RIGHT_CC")):
        write(make_dataset(sample_pixels(view), view, PatientID=patient, StudyID="DDSM"), folder, f"{view}.dcm")
    with pytest.raises(MammoError) as caught:
        load_exam(folder)
    reason = failure_reason(caught.value)
    assert "P_00173" in reason and "P_00820" in reason
    said = ExamItem("anon-80", "anon-80", opens=str(folder)).redacted(reason)
    assert "P_00173" not in said and "P_00820" not in said and "(CBIS-DDSM)" in said, said


def test_a_deidentified_failure_keeps_the_words_that_name_no_one(tmp_path):
    """Found in review: an institution's words ("The Breast Imaging Centre"), a StudyID of "100" and a file
    named after its view were taken out of every reason ("… model gmic refused … … image: … mask empty
    (… pixels)")."""
    from app.archive.sources import ExamItem
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    folder = tmp_path / "exam1"
    folder.mkdir()
    write(make_dataset(sample_pixels("L-CC"), "L-CC", InstitutionName="The Breast Imaging Centre", StudyID="100"),
          folder, "L-CC.dcm")
    reason = "missing views: R-CC; the model gmic refused the L-CC image: breast mask empty (100 pixels)"
    assert ExamItem("anon-1", "anon-1", opens=str(folder)).redacted(reason) == reason
    # a file named after its view names no one: its name stays (a site saw "; … could not be loaded")
    refused = "missing views: L-CC; L-CC.dcm could not be loaded: the pixel data is truncated"
    assert ExamItem("anon-1", "anon-1", opens=str(folder)).redacted(refused) == refused
    named = "The Breast Imaging Centre refused it"
    assert ExamItem("anon-1", "anon-1", opens=str(folder)).redacted(named) == "… refused it"
    (folder / "L-CC.dcm").rename(folder / "image.dcm")  # a generic file name names no one (found in review)
    assert ExamItem("anon-1", "anon-1", opens=str(folder)).redacted(reason) == reason
    manifest = tmp_path / "Testperson_PID987654.csv"  # a manifest's own stem is a word that names (review)
    manifest.write_text(f"path,view\n{folder / 'image.dcm'},L-CC\n")
    said = ExamItem("anon-2", "anon-2", opens=str(manifest)).redacted("Testperson_PID987654: the list is empty")
    assert "Testperson" not in said


def test_a_deidentified_batch_writes_no_time_beside_an_exam(tmp_path):
    """Found in review: failures.csv's failed_at and the journal's time were the true times beside the pseudonym
    and the shifted study date: a nightly batch of the day's exams gave each patient's date offset away."""
    import csv

    from app.archive.ledger import Ledger
    from app.archive.sources import ExamItem
    from app.archive.unit import Outcome

    for deidentify in (True, False):
        out = tmp_path / str(deidentify)
        item = ExamItem("anon-1", "anon-1", opens=str(tmp_path)) if deidentify else ExamItem("e1", str(tmp_path))
        ledger = Ledger(out, [item], {"deidentify": deidentify})
        ledger.add(Outcome(item.exam_id, item.location, "failed", "the file is damaged"))
        ledger.journal.close()
        with (out / "failures.csv").open(newline="") as handle:
            (row,) = list(csv.DictReader(handle))
        journal_time = (out / ".batch" / "journal.csv").read_text().split(",")[0]
        assert (row["failed_at"] == "" and journal_time == "") == deidentify


def test_a_deidentified_ray_workers_record_carries_the_one_file_time(tmp_path):
    """The Ray worker's record is rewritten after each exam (so its time says when that exam was done): in a
    de-identified batch it and its folder get the one file time. Its writing needs no Ray."""
    from app.archive.ray_engine import ModelActor
    from app.archive.unit import BatchOptions
    from inference.files import DEIDENTIFIED_FILE_TIME

    for deidentify in (False, True):
        actor = object.__new__(ModelActor)  # its models are not needed to write the record
        folder = tmp_path / str(deidentify) / "workers"
        folder.mkdir(parents=True)
        actor.record, actor.analysed, actor.options = folder / "host-1.json", 3, BatchOptions(deidentify=deidentify)
        actor._tell()
        assert json.loads(actor.record.read_text())["analysed"] == 3
        hidden = [p.stat().st_mtime == DEIDENTIFIED_FILE_TIME for p in (actor.record, folder)]
        assert hidden == [deidentify, deidentify]


def test_a_missing_view_whose_image_took_another_slot_is_said_in_the_failure(tmp_path):
    """The R-MLO whose header says L was read as a second L-MLO: the failure said only 'missing views: R-MLO'."""
    folder = tmp_path / "archive" / "wrong_side"
    folder.mkdir(parents=True)
    for view, lesion in (("L-CC", (700, 200)), ("R-CC", (600, 500)), ("L-MLO", (800, 250))):
        write(make_dataset(synthetic_view(view, lesion), view), folder, f"{view}.dcm")
    write(make_dataset(synthetic_view("R-MLO", (700, 450)), "L-MLO"), folder, "R-MLO.dcm")
    failed = run(read_batch_source(tmp_path / "archive"), tmp_path / "out")
    reason = failed.failed[0].reason
    assert "missing views: R-MLO; 2 images for L-MLO: used L-MLO.dcm (R-MLO.dcm faces the way of the other " \
           "breast's MLO (its laterality may be wrong)" in reason, reason


def test_a_rerun_analyses_again_an_exam_whose_files_changed_since(tmp_path):
    """A rerun skipped, as done, an exam given a retake or one that lost an image since: the table kept the
    scores (and a view row) of images that were no longer there."""
    archive = tmp_path / "archive"
    lesions = {"L-CC": (700, 200), "R-CC": (600, 500), "L-MLO": (800, 250), "R-MLO": (700, 450)}
    for name in ("retake", "image_gone", "unchanged"):
        (archive / name).mkdir(parents=True)
        for view, lesion in lesions.items():
            write(make_dataset(synthetic_view(view, lesion), view), archive / name, f"{view}.dcm")
    options = BatchOptions(formats=("json",), device="cpu", allow_missing_views=True)
    first = run(read_batch_source(archive), tmp_path / "out", options)
    assert sorted(o.exam_id for o in first.done) == ["image_gone", "retake", "unchanged"]
    write(make_dataset(synthetic_view("R-CC", (300, 300)), "R-CC"), archive / "retake", "R-CC.dcm")
    (archive / "image_gone" / "L-MLO.dcm").unlink()
    again = run(read_batch_source(archive), tmp_path / "out", options)
    assert sorted(o.exam_id for o in again.done) == ["image_gone", "retake"]
    assert [o.exam_id for o in again.skipped] == ["unchanged"]
    rows = pq.read_table(tmp_path / "out" / "scores.parquet").to_pylist()
    views = {r["view"] for r in rows if r["level"] == "view" and r["exam_id"] == "image_gone"}
    assert views == {"L-CC", "R-CC", "R-MLO"}
    assert [o.exam_id for o in run(read_batch_source(archive), tmp_path / "out", options).skipped] == [
        "image_gone", "retake", "unchanged"]


def _share_a_uid(archive, tmp_path, names, source="exam0"):
    """Copies of the archive's exams ``names`` in ``tmp_path/archive``, each but ``source`` given the SOP Instance
    UID of ``source``'s first file on its view of the same place (an archive error)."""
    import pydicom

    for name in names:
        shutil.copytree(archive / name, tmp_path / "archive" / name)
    first = next(iter(sorted((tmp_path / "archive" / source).glob("*.dcm"))))
    taken = pydicom.dcmread(first, stop_before_pixels=True)
    for name in names:
        if name == source:
            continue
        for path in sorted((tmp_path / "archive" / name).glob("*.dcm")):
            ds = pydicom.dcmread(path)
            if (ds.ImageLaterality, ds.ViewPosition) == (taken.ImageLaterality, taken.ViewPosition):
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = taken.SOPInstanceUID
                ds.save_as(path)
                break
        else:
            raise AssertionError(f"{name} has no view of {source}'s first file")
    return read_batch_source(tmp_path / "archive")


def test_two_exams_with_one_image_uid_have_their_dicom_results_withdrawn_and_say_so(archive, tmp_path):
    """An archive error: an image of exam1 carries the SOP Instance UID of one of exam0's. A DICOM result refers to
    its images by UID, and a PACS would lay exam1's findings on exam0's image, perhaps another patient's; neither
    can be told the true owner. Both exams' SR are withdrawn (exam0's, finished by an earlier run, too), both are
    partial in failures.csv naming the other, their scores stay; a rerun finds the same; exam2 is untouched."""
    from tests.helpers import make_stub_model

    items = _share_a_uid(archive, tmp_path, GOOD[:2])
    shutil.copytree(archive / "exam2", tmp_path / "archive" / "exam2")
    items = read_batch_source(tmp_path / "archive")
    options = BatchOptions(formats=("json", "sr"), device="cpu")
    out, model = tmp_path / "out", make_stub_model()
    earlier = run_batch([items[0], items[2]], [model], out, options)
    assert [o.exam_id for o in earlier.done] == ["exam0", "exam2"] and list((out / "exam0").glob("*_sr.dcm"))

    for attempt in ("exam1 added", "rerun"):
        progress = Progress(0, stream=None)
        summary = run_batch(items, [model], out, options, progress=progress)
        assert sorted(o.exam_id for o in summary.partial) == ["exam0", "exam1"], attempt
        assert progress.total == 2  # exam0, finished before, is one of this run's outcomes now (not "2/1 exams")
        assert [o.exam_id for o in summary.skipped] == ["exam2"] and not summary.done and not summary.failed
        reasons = {o.exam_id: o.reason for o in summary.partial}
        assert "carries the SOP Instance UID of an image of exam exam1" in reasons["exam0"]
        assert "carries the SOP Instance UID of an image of exam exam0" in reasons["exam1"]
        assert "withdrawn" in reasons["exam1"] and "correct the archive" in reasons["exam1"]
        for name in ("exam0", "exam1"):
            assert not list((out / name).glob("*.dcm")) and list((out / name).glob("*.json")), (attempt, name)
            assert not marker_path(out, items[GOOD.index(name)]).exists()  # tried again at the next run
        assert list((out / "exam2").glob("*_sr.dcm"))
        with (out / "failures.csv").open(newline="") as handle:
            failures = {row["exam_id"]: row["reason"] for row in csv.DictReader(handle)}
        assert failures == reasons
        assert {r["exam_id"] for r in pq.read_table(out / "scores.parquet").to_pylist()} == set(GOOD[:3])
    # a review: two exams each finished by a run that did not name the other (or by workers whose driver died
    # before it recorded them) are both skipped at the next run, and withdrawn there
    apart = tmp_path / "apart"
    for item in items[:2]:
        assert [o.exam_id for o in run_batch([item], [model], apart, options).done] == [item.exam_id]
    progress = Progress(0, stream=None)
    summary = run_batch(items[:2], [model], apart, options, progress=progress)
    assert sorted(o.exam_id for o in summary.partial) == ["exam0", "exam1"] and not summary.skipped
    assert progress.total == 2 and summary.withdrawn_before == 2 and summary.analysed == 0  # not analysed now
    assert not list(apart.rglob("*_sr.dcm")) and (apart / "failures.csv").read_text().count("SOP Instance UID") == 2
    # a batch that writes no DICOM result has nothing a PACS could misplace: the exams are done
    assert len(run_batch(items, [model], tmp_path / "json_only", OPTIONS).done) == 3


def test_an_image_uid_shared_by_three_exams_or_with_an_exam_kept_beside_a_report_is_withdrawn_once_each(
        archive, tmp_path):
    """Reviews: a report into a folder that holds an earlier exam's report (kept beside it, not named by this run)
    was never checked, so its SR could be sent; and three exams with one UID had the first withdrawn twice, its
    reason saying "were withdrawn" and then "are withheld". Each is withdrawn once, naming every other."""
    from tests.helpers import make_stub_model

    items = _share_a_uid(archive, tmp_path, GOOD[:3])
    options = BatchOptions(formats=("json", "sr"), device="cpu", folder_per_exam=False)  # as ``report`` writes
    out, model = tmp_path / "out", make_stub_model()
    assert len(run_batch(items[:1], [model], out, options).done) == 1
    summary = run_batch(items[1:], [model], out, options, keep=items[:1])
    reasons = {o.exam_id: o.reason for o in summary.partial}
    assert sorted(reasons) == ["exam0", "exam1", "exam2"] and not summary.done
    for name, others in (("exam0", "exam1, exam2"), ("exam1", "exam0, exam2"), ("exam2", "exam0, exam1")):
        assert f"carries the SOP Instance UID of an image of exam {others} " in reasons[name], reasons[name]
        assert reasons[name].count("were withdrawn") == 1 and "withheld" not in reasons[name]
    assert not list(out.glob("*_sr.dcm")) and len(list(out.glob("*.json"))) == 3
    journal = (out / ".batch" / "journal.csv").read_text()
    assert [line.split(",")[1] for line in journal.splitlines() if "SOP Instance UID" in line].count("exam0") == 1


def test_a_withdrawal_that_cannot_remove_a_file_says_so_and_the_keys_are_the_site_s_only_when_de_identified(
        tmp_path, monkeypatch):
    """What cannot be removed is named, and "withheld" said, not "withdrawn"; a batch that is not de-identified
    keys its images' UIDs with a fixed salt (no batch depends on the site's key), a de-identified one with the key."""
    import hashlib
    import hmac

    from app.archive.ledger import Ledger
    from app.archive.unit import Outcome, image_keys
    from app.report.deidentify import site_key

    item = ExamItem("a", str(tmp_path / "a"))
    ledger = Ledger(tmp_path / "out", [item], {"formats": ["sr"]})
    sr = tmp_path / "out" / "a_sr.dcm"
    sr.write_bytes(b"an SR")

    def refused(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refused)
    withdrawn = ledger._withdraw(Outcome("a", item.location, "done", files=(str(sr),)), ["b"], [str(sr)])
    monkeypatch.undo()
    ledger.close()
    assert withdrawn.status == "partial" and sr.exists() and str(sr) in withdrawn.files
    assert "its DICOM results (SR, SEG, Encapsulated PDF, image copies) are withheld (remove by hand what could " \
           "not be: a_sr.dcm: Permission denied" in withdrawn.reason

    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    exam = type("Exam", (), {"views": {"L-CC": type("Image", (), {"sop_instance_uid": "1.2.3"})()}})()
    plain, keyed = (image_keys(exam, BatchOptions(formats=("sr",), deidentify=d)) for d in (False, True))
    assert plain == (hmac.new(b"mammo-reader image", b"image\x001.2.3", hashlib.sha256).hexdigest()[:32],)
    assert keyed == (hmac.new(site_key(), b"image\x001.2.3", hashlib.sha256).hexdigest()[:32],) != plain
    assert image_keys(exam, BatchOptions(formats=("json", "pdf"))) == ()  # no DICOM result: nothing to misplace
