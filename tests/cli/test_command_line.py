"""The command line: every documented form parses as meant; the workstation is the default command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.parser import build_parser, parse_args, with_default_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv, command", [
    ([], "open"),
    (["exam_folder"], "open"),
    (["--device", "cpu", "analyze", "E"], "analyze"),
    (["analyze", "E", "--device", "cpu"], "analyze"),
    (["-v", "study", "status", "pilot"], "study"),
    (["open", "report"], "open"),
    (["--screenshot", "shot.png", "E"], "open"),
    (["report", "E", "--out", "o"], "report"),
    (["train", "--config", "c.json"], "train"),
])
def test_documented_forms(argv, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("exam_folder", "E"):  # an exam named bare is one on disk
        (tmp_path / folder).mkdir()
    assert parse_args(argv).command == command


@pytest.mark.parametrize("argv, says", [
    (["analyse", "E"], "'analyse' is neither a command (analyze, verify, report, batch, serve, validate, study, train, "
                       "calibrate, evaluate) nor an exam (no such file or folder); did you mean analyze?"),
    (["bogus"], "'bogus' is neither a command"),
])
def test_a_mistyped_command_is_said_not_opened_as_an_exam(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as refused:
        parse_args(argv)
    assert refused.value.code == 2 and says in capsys.readouterr().err


def test_options_before_the_subcommand_are_kept():
    args = parse_args(["--device", "cpu", "--mode", "fast", "analyze", "E"])
    assert (args.device, args.mode, args.exam) == ("cpu", "fast", ["E"])
    args = parse_args(["analyze", "E", "--device", "cuda"])
    assert args.device == "cuda" and args.mode is None


def test_a_folder_named_like_a_subcommand_opens_with_open():
    args = parse_args(["open", "report"])
    assert args.command == "open" and args.exam == "report"
    assert with_default_command(["./report"], build_parser()) == ["open", "./report"]


def test_several_models_and_the_exam_after_them(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"")
    b.write_bytes(b"")
    exam = tmp_path / "exam"
    exam.mkdir()
    (exam / "0_L-CC.png").write_bytes(b"")
    args = parse_args(["analyze", str(exam), "--models", str(a), str(b), "--json", "out.json"])
    assert args.models == [str(a), str(b)] and args.exam == [str(exam)] and args.json == "out.json"
    args = parse_args(["--screenshot", "s.png", "--models", str(a), str(exam)])  # README's form
    assert args.command == "open" and args.models == [str(a)] and args.exam == str(exam)


def test_help_lists_every_command_and_version_answers():
    done = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("open", "analyze", "report", "study", "train"):
        assert f"    {command} " in done.stdout
    done = subprocess.run([sys.executable, "main.py", "--version"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Mammo Reader ")


def test_analyze_without_an_exam_says_so():
    done = subprocess.run([sys.executable, "main.py", "analyze"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "give the exam" in done.stderr


def test_open_passes_the_ae_title_to_every_pacs_call_of_the_session(monkeypatch):
    """``open --worklist dimse://… --ae-title MYAE`` queried and retrieved as the saved AE title: a PACS that
    accepts only MYAE refused the worklist."""
    import os

    import app.gui
    from app.cli import workstation
    from app.cli.parser import build_parser

    seen = {}
    monkeypatch.setattr(app.gui, "run_gui", lambda exam, **kw: seen.update(kw) or 0)
    monkeypatch.setattr(os, "_exit", lambda code: seen.setdefault("exit", code))
    args = build_parser().parse_args(["open", "--worklist", "dimse://PACS@127.0.0.1:11112", "--ae-title", "MYAE",
                                      "--device", "cpu"])
    workstation.run(args)
    assert seen["settings_overrides"] == {"device": "cpu", "ae_title": "MYAE"} and seen["exit"] == 0


def test_a_session_ae_title_is_not_saved_with_the_preferences(qtbot, monkeypatch, tmp_path):
    """--ae-title (like --device and --mode) is this session's: taking other preferences saved it for good."""
    import dataclasses

    from app.settings import AppSettings
    from app.ui.workstation.main_window import MainWindow

    saved_to = []
    monkeypatch.setattr("app.ui.workstation.settings_control.save_settings_task",
                        lambda settings, **_: saved_to.append(settings))
    window = MainWindow(dataclasses.replace(AppSettings(), ae_title="MYAE"))
    qtbot.addWidget(window)
    window.session_only = {"ae_title": ("MAMMOREADER", "MYAE")}
    window.preferences.apply_settings(dataclasses.replace(window.settings, link_window=False))
    qtbot.waitUntil(lambda: bool(saved_to), timeout=5000)
    assert saved_to[0].ae_title == "MAMMOREADER" and saved_to[0].link_window is False
    assert window.settings.ae_title == "MYAE"  # still this session's
    window.preferences.apply_settings(dataclasses.replace(window.settings, ae_title="OTHER"))
    qtbot.waitUntil(lambda: len(saved_to) == 2, timeout=5000)
    assert saved_to[1].ae_title == "OTHER"  # changed in Preferences: saved
    # the dialog says which of its values are this session's (it showed --device cpu and saved "auto" unsaid)
    from PySide6.QtWidgets import QLabel

    from app.ui.workstation.preferences import PreferencesDialog

    window.session_only = {"device": ("auto", "cpu")}
    dialog = PreferencesDialog(dataclasses.replace(window.settings, device="cpu"), window,
                               session_only=window.session_only)
    qtbot.addWidget(dialog)
    note = dialog.findChild(QLabel, "prefsSessionNote").text()
    assert note == ("From the command line, for this session only: device cpu (saved: auto). A value changed here "
                    "is saved.")
    assert dialog.device.currentText() == "cpu"


def test_an_output_of_the_wrong_kind_is_said_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "afile"
    a_file.write_text("keep me")
    for argv, says in ((["report", str(tmp_path), "--out", str(a_file)], f"--out: {a_file} is a file, not a folder"),
                       (["analyze", str(tmp_path), "--json", str(tmp_path)], f"--json: {tmp_path} is a folder")):
        with pytest.raises(SystemExit) as refused:
            parse_args(argv)
        assert refused.value.code == 2 and says in capsys.readouterr().err
    assert a_file.read_text() == "keep me"


def test_an_overlap_no_window_stride_tiles_is_said_as_the_option_and_other_families_say_they_have_none(
        tmp_path, capsys):
    """--overlap 0.3 was blamed on the model ("the model's window settings are invalid") and a GMIC model took
    --overlap 2 without a word."""
    with pytest.raises(SystemExit) as refused:
        parse_args(["analyze", str(tmp_path), "--overlap", "0.3"])
    assert refused.value.code == 2 and "argument --overlap: invalid choice: 0.3" in capsys.readouterr().err
    assert parse_args(["analyze", str(tmp_path), "--overlap", "0.50"]).overlap == 0.5
    from main import main
    from tests.helpers import synthetic_view, write_png

    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    assert main(["analyze", str(tmp_path), "--overlap", "0.75", "--device", "cpu"]) == 0  # the demo GMIC
    assert "note: --overlap is a setting of none of these models (they read no windows): not used" in \
        capsys.readouterr().err


def test_a_study_database_that_is_no_database_is_named(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"garbage " * 64)
    done = subprocess.run([sys.executable, "main.py", "study", "--db", str(garbage), "status", "x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{garbage}: this file cannot be used as a study database" in done.stderr and "MAMMO_READER_HOME" not in done.stderr


@pytest.mark.parametrize(("error", "named", "says"), [
    ("database is locked", "s.sqlite", "s.sqlite is being written by another program"),
    ("database or disk is full", "s.sqlite", "s.sqlite: the disk is full"),
    ("file is not a database", "s.sqlite", "s.sqlite: this file cannot be used as a study database"),
    ("database is locked", None, "the local database is being written by another program"),
    ("disk I/O error", None, "cannot be used (disk I/O error); free disk space"),
    # a read-only settings folder: the file named, and what to do (it said "free disk space")
    ("unable to open database file", None, "mammo_reader.sqlite cannot be opened for writing (unable to open database "
                                           "file): its folder is read-only or missing"),
    ("attempt to write a readonly database", "s.sqlite", "s.sqlite cannot be opened for writing"),
])
def test_a_database_error_is_said_as_what_it_is(monkeypatch, capsys, error, named, says):
    """A lock held past the timeout is no damaged file; a full disk is said as such."""
    import sqlite3  # noqa: PLC0415

    import main  # noqa: PLC0415

    def fails(args):
        raise sqlite3.OperationalError(error)

    monkeypatch.setattr(main, "_handler", lambda dotted: fails)
    argv = ["study", *(["--db", named] if named else []), "status", "x"]
    assert main.main(argv) == 1
    assert says in capsys.readouterr().err


def test_several_models_of_the_preferences_are_several_models_for_the_commands(tmp_path, monkeypatch):
    """Preferences hold several models joined by ':' (the field says so, the workstation reads them so): every
    command took the joined text for one file ("…/model.pt:…/other.pt: the model file does not exist")."""
    import argparse
    import dataclasses
    import os

    from app.cli.common import model_sources
    from app.settings import AppSettings

    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path))
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    dataclasses.replace(AppSettings(), model_path=f"{first}{os.pathsep}{second}{os.pathsep}").save()
    assert model_sources(argparse.Namespace(models=None)) == [str(first), str(second)]
    assert model_sources(argparse.Namespace(models=["x.pt"])) == ["x.pt"]


def test_batch_and_report_say_that_a_gpu_asked_for_is_not_there(capsys, monkeypatch):
    """'batch --device cuda' on a machine without a GPU ran on the CPU without a word ('analyze' says it)."""
    import torch

    from app.cli.common import print_device_notice

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("auto", "cpu", None):
        print_device_notice(device)
    assert capsys.readouterr().out == ""
    print_device_notice("cuda")
    assert capsys.readouterr().out == "notice: CUDA was requested but no usable GPU was found; running on the CPU\n"


def test_an_output_folder_that_cannot_be_written_is_said_before_the_work(tmp_path):
    """analyze ran the whole analysis, and calibrate read every image, before failing on a read-only folder
    with the name of a hidden temporary file."""
    a_file = tmp_path / "afile"
    a_file.write_text("keep me")
    model = ROOT / "resources" / "demo" / "sliding_window" / "model.pt"
    for argv, says in (
            (["analyze", "no-such-exam", "--json", str(a_file / "r.json")],
             f"error: {a_file}: the JSON result cannot be written there (the file {a_file} is in the way"),
            (["calibrate", "--model", str(model), "--data", str(tmp_path / "none.csv"), "--diagram",
              str(a_file / "d.png")],
             f"error: {a_file}: the reliability diagram cannot be written there (the file {a_file} is in the way")):
        done = subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2 and says in done.stderr, done.stderr
    assert a_file.read_text() == "keep me"


def test_progress_in_a_log_is_a_line_per_stage_and_tenth_not_a_redrawn_line():
    import io

    from app.cli.common import ProgressBar

    log = io.StringIO()  # no terminal: "1/122/123/12…" piled up on one line
    bar = ProgressBar(log)
    for done in range(0, 21):
        bar("reading the images", done, 20)
    bar("models", 1, 1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 12
    assert lines[0].startswith("0/20 reading the images ") and lines[-2].startswith("20/20 reading the images ")
    assert lines[-1].startswith("1/1 models ")


def test_a_warning_is_one_line_in_words(tmp_path):
    """A GMIC checkpoint without a pooling threshold printed "…/app/cli/evaluate.py:44: UserWarning: …" and the
    source line."""
    import torch

    from tests.conftest import REFERENCE

    state = torch.load(REFERENCE / "seeded_state_dict.pt", weights_only=True)
    torch.save(state, tmp_path / "unknown.pt")  # no sidecar, not the published weights: percent_t unknown
    done = subprocess.run([sys.executable, "main.py", "evaluate", "--model", str(tmp_path / "unknown.pt"), "--data",
                           str(tmp_path / "none.csv")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "warning: " in done.stderr and "UserWarning" not in done.stderr, done.stderr


def test_a_pydicom_warning_is_said_once(tmp_path):
    """pydicom logs and warns each warning: a file with excess pixel padding printed it twice (the node's log)."""
    import numpy as np

    from tests.inference.intake.dicom_factory import make_dataset, write

    dataset = make_dataset(np.full((600, 400), 700, np.uint16), "L-CC")
    dataset.PixelData = dataset.PixelData + b"\0\0"
    write(dataset, tmp_path, "a.dcm")
    done = subprocess.run([sys.executable, "main.py", "analyze", str(tmp_path / "a.dcm"), "--models",
                           str(tmp_path / "none.pt")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stderr.count("excess padding") == 1, done.stderr


def test_the_command_line_s_models_are_this_session_s_and_never_saved_relative(qtbot, monkeypatch, tmp_path):
    """Seen by a radiologist: started with --models resources/demo/model.pt, any preferences saved stored that
    relative path as the site's models, and the next start elsewhere had none ("the model file does not exist")."""
    import dataclasses
    import os

    from app.gui import session_settings
    from app.settings import AppSettings
    from app.ui.workstation.main_window import MainWindow

    monkeypatch.chdir(ROOT)
    saved = AppSettings(model_path="/site/models")
    settings, session_only = session_settings(saved, ["resources/demo/model.pt"], {"device": "cpu"})
    assert settings.model_path == str(ROOT / "resources" / "demo" / "model.pt") and settings.device == "cpu"
    assert session_only == {"device": ("auto", "cpu"), "model_path": ("/site/models", settings.model_path)}
    saved_to = []
    monkeypatch.setattr("app.ui.workstation.settings_control.save_settings_task",
                        lambda settings, **_: saved_to.append(settings))
    window = MainWindow(settings, model_path=settings.model_path)
    qtbot.addWidget(window)
    window.session_only = session_only
    window.preferences.apply_settings(dataclasses.replace(window.settings, link_window=False))
    qtbot.waitUntil(lambda: bool(saved_to), timeout=5000)
    assert saved_to[0].model_path == "/site/models" and saved_to[0].link_window is False
    assert window.model_path == settings.model_path and os.path.isabs(window.model_path)  # still this session's
