"""The PACS dialog with a real Orthanc: run by test_pacs_gui.py inside a loopback-only network namespace
(``python -m pytest tests/pacs/namespace_gui.py``; the file is not collected on its own). Keyboard only:
type the patient ID, Enter searches, Enter opens the study, the window retrieves and shows it."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from pydicom import dcmread  # noqa: E402

from tests.pacs.orthanc import AET, DICOM_PORT, Orthanc  # noqa: E402


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    from app.pacs import dimse
    from app.pacs.nodes import parse_address
    from inference.intake.phantom import generate_exam, write_dicom_exam

    folder = tmp_path_factory.mktemp("orthanc")
    orthanc = Orthanc(folder / "server")
    files = write_dicom_exam(generate_exam(8101, shape=(640, 480)), folder / "exam")
    dimse.store_files(parse_address(f"dimse://{AET}@127.0.0.1:{DICOM_PORT}")[0], files)
    yield str(dcmread(files[0]).PatientID), str(dcmread(files[0]).StudyInstanceUID)
    orthanc.stop()


def test_search_by_keyboard_enter_opens_and_the_window_shows_the_retrieved_study(qtbot, pacs, tmp_path, monkeypatch):
    from app.settings import AppSettings
    from app.study.store import Store
    from app.ui.workstation.main_window import MainWindow

    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMO_PACS_CACHE", str(tmp_path / "cache"))
    patient_id, study_uid = pacs
    store = Store(tmp_path / "store.db")
    window = MainWindow(AppSettings(auto_run=False, pacs_node=f"dimse://{AET}@127.0.0.1:{DICOM_PORT}"), store)
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    window.open_from_pacs()
    dialog = window.pacs_dialog
    qtbot.waitExposed(dialog)
    dialog.patient_id.setFocus()
    qtbot.keyClicks(dialog.patient_id, patient_id)
    qtbot.keyClick(dialog.patient_id, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=30_000)
    assert dialog.table.item(0, 1).text() == patient_id and dialog.table.item(0, 2).text() == "2026-01-15"
    assert dialog.table.item(0, 4).text() == "R-CC L-CC R-MLO L-MLO"  # the views present
    assert f"1 study on dimse://{AET}@127.0.0.1:{DICOM_PORT}, newest first" in dialog.status.text()  # which server
    shot = os.environ.get("PACS_DIALOG_SCREENSHOT")
    if shot:
        dialog.grab().save(shot)
    events = []
    window.viewArrived.connect(lambda view: events.append(view))
    window.examShown.connect(lambda: events.append("exam shown"))
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Return)
    assert sorted(v.value for v in window.exam.views) == ["L-CC", "L-MLO", "R-CC", "R-MLO"]
    assert window.exam.study_date == "20260115"
    # the hanging filled view by view while the images arrived, before the whole exam was shown
    assert sorted(events[:4]) == ["L-CC", "L-MLO", "R-CC", "R-MLO"] and events[4] == "exam shown"
    assert window.settings.pacs_node == f"dimse://{AET}@127.0.0.1:{DICOM_PORT}"
    if shot:
        window.grab().save(str(Path(shot).with_name("window.png")))

    # a search that finds nothing says so; a node that is down says that, naming it
    window.open_from_pacs()
    dialog = window.pacs_dialog
    qtbot.keyClicks(dialog.patient_id, "NOBODY")
    qtbot.keyClick(dialog.patient_id, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "No study matches" in dialog.status.text(), timeout=30_000)
    dialog.node_edit.setText(f"dimse://{AET}@127.0.0.1:4299")
    dialog.test_node()
    qtbot.waitUntil(lambda: "cannot reach it" in dialog.status.text(), timeout=30_000)
    assert dialog.status.text().startswith(f"dimse://{AET}@127.0.0.1:4299")
    dialog.node_edit.setText(f"dimse://{AET}@127.0.0.1:{DICOM_PORT}")
    dialog.test_node()
    qtbot.waitUntil(lambda: "answers (C-ECHO)" in dialog.status.text(), timeout=30_000)
    dialog.reject()

    # named nodes in Preferences: Test; a DICOMweb node's saved password (no environment) lets a search in
    from app.pacs.credentials import save_credentials
    from app.ui.pacs.dialog import PacsDialog
    from app.ui.workstation.preferences import PreferencesDialog
    from tests.pacs.orthanc import HTTP_PORT, PASSWORD, USER

    monkeypatch.delenv("MAMMO_DICOMWEB_USER", raising=False)
    monkeypatch.delenv("MAMMO_DICOMWEB_PASSWORD", raising=False)
    web = f"dicomweb+http://127.0.0.1:{HTTP_PORT}/dicom-web"
    prefs = PreferencesDialog(AppSettings(pacs_nodes=(("web", web), ("dimse", f"dimse://{AET}@127.0.0.1:{DICOM_PORT}"))))
    qtbot.addWidget(prefs)
    prefs.nodes.selectRow(1)
    prefs.test_node()
    qtbot.waitUntil(lambda: "answers (C-ECHO)" in prefs.test_result.text(), timeout=30_000)
    prefs.nodes.selectRow(0)
    prefs.test_node()
    qtbot.waitUntil(lambda: "authentication failed (HTTP 401)" in prefs.test_result.text(), timeout=30_000)
    save_credentials(web, USER, PASSWORD, file_agreed=True)
    prefs.test_node()
    qtbot.waitUntil(lambda: "answers (QIDO-RS)" in prefs.test_result.text(), timeout=30_000)
    search = PacsDialog(web, "MAMMOREADER", named=prefs.settings().pacs_nodes)
    qtbot.addWidget(search)
    qtbot.keyClicks(search.patient_id, patient_id)
    qtbot.keyClick(search.patient_id, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: search.table.rowCount() == 1, timeout=30_000)
    window.close()
    store.close()


def test_a_study_pushed_by_the_pacs_arrives_in_the_inbox_and_opens(qtbot, pacs, tmp_path, monkeypatch):
    import requests

    from app.settings import AppSettings
    from app.study.store import Store
    from app.ui.workstation.main_window import MainWindow
    from tests.pacs.orthanc import HTTP_PORT, INBOX_AET, INBOX_PORT, PASSWORD, USER

    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    _, study_uid = pacs
    store = Store(tmp_path / "store.db")
    window = MainWindow(AppSettings(auto_run=False, scp_enabled=True, scp_port=INBOX_PORT, ae_title=INBOX_AET,
                                    scp_allowed=("ORTHANC@127.0.0.1",)), store)  # empty: nobody is let in
    qtbot.addWidget(window)
    window.show()
    assert window.scp is not None  # Preferences turned it on: it listens
    found = requests.post(f"http://127.0.0.1:{HTTP_PORT}/tools/lookup", data=study_uid, auth=(USER, PASSWORD),
                          timeout=30).json()
    orthanc_id = next(f["ID"] for f in found if f["Type"] == "Study")
    pushed = requests.post(f"http://127.0.0.1:{HTTP_PORT}/modalities/inbox/store", data=orthanc_id,
                           auth=(USER, PASSWORD), timeout=60)
    assert pushed.status_code == 200
    window.preferences.open_inbox()
    dialog = window.inbox_dialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=30_000)
    assert f"receiving as {INBOX_AET} on port {INBOX_PORT}" in dialog.status.text()
    assert dialog.table.item(0, 4).text() == "4"
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        qtbot.keyClick(dialog.table, Qt.Key.Key_Return)
    assert sorted(v.value for v in window.exam.views) == ["L-CC", "L-MLO", "R-CC", "R-MLO"]
    window.close()
    assert window.scp is None  # closing the window stops the server
    store.close()


def test_export_sends_the_dicom_files_and_a_failed_send_is_retried(qtbot, pacs, tmp_path, monkeypatch):
    import dataclasses

    from app.pacs.nodes import StudyAddress, parse_address
    from app.settings import AppSettings
    from app.study.store import Store
    from app.ui.workstation.main_window import MainWindow
    from tests.helpers import make_stub_model

    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMO_PACS_CACHE", str(tmp_path / "cache"))
    _, study_uid = pacs
    good = f"dimse://{AET}@127.0.0.1:{DICOM_PORT}"
    store = Store(tmp_path / "store.db")
    window = MainWindow(AppSettings(blind_first=False, pacs_node=f"dimse://{AET}@127.0.0.1:4299"), store)
    qtbot.addWidget(window)
    window.show()
    window.use_models([make_stub_model()])
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(StudyAddress(parse_address(good)[0], study_uid))
    with qtbot.waitSignal(window.exportFinished, timeout=60_000) as failed:
        window.export(str(tmp_path / "out"), ["sr", "seg"], deidentify=False, send=True)
    assert "NOT SENT" in failed.args[0] and "cannot reach it" in failed.args[0]
    assert window.retry_send_action.isEnabled() and all(p.is_file() for p in window._unsent)
    window.settings = dataclasses.replace(window.settings, pacs_node=good)
    with qtbot.waitSignal(window.exportFinished, timeout=60_000) as sent:
        window.retry_send()
    assert sent.args[0].startswith(f"sent 5 DICOM file(s) to {good}")  # the SR and four SEG
    assert not window.retry_send_action.isEnabled()
    window.close()
    store.close()
