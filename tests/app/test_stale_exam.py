"""Nothing of the previous exam stays on screen: a failed open clears it, a late result of exam A is dropped."""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from PySide6.QtWidgets import QTableWidget

from app.settings import AppSettings
from app.study.store import ReaderMark
from app.ui.workstation.main_window import MainWindow
from inference.intake.views import View
from inference.weights import LoadedModel, ModelIdentity
from tests.app.conftest import settle
from tests.helpers import BrightSpotGMIC, synthetic_view, write_png
from inference.families.gmic.model import GMICConfig



def _window(qtbot, store, models, **settings) -> MainWindow:
    settings = {"blind_first": False, "show_overlays": True, "auto_run": True, **settings}
    window = MainWindow(AppSettings(**settings), store)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    window.use_models(models)
    return window


def _visible_texts(window) -> str:
    from PySide6.QtWidgets import QLabel, QTableWidget

    texts = [window.windowTitle()]
    texts += [label.text() for label in window.findChildren(QLabel) if label.isVisible()]
    for table in window.findChildren(QTableWidget):
        if table.isVisible():
            texts += [table.item(r, c).text() for r in range(table.rowCount()) for c in range(table.columnCount())
                      if table.item(r, c) is not None]
    texts += [window.notes.item(i).text() for i in range(window.notes.count())]
    return "\n".join(texts)


def test_a_failed_open_after_a_success_leaves_nothing_of_the_first_exam(qtbot, store, tmp_path, stub_model):
    first = tmp_path / "Smith_Sally"
    first.mkdir()
    write_png(first / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = _window(qtbot, store, [stub_model])
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(first)
    window.scores.reader.inputs["R"].spin.setValue(40)
    window.add_mark(View.R_CC, 700, 500, ReaderMark("R-CC", 700, 500, "mass", 4))
    window.cursor_label.setText("R-CC  row 700  col 500  value 1219")  # the mouse was over the first exam
    assert window.result is not None and window.gallery.lists and window.scores.model_tables
    assert "Smith_Sally" in _visible_texts(window)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0_L-CC.png").write_bytes(b"\x89PNG broken")
    with qtbot.waitSignal(window.loadFailed, timeout=30_000):
        window.open_exam(broken)
    assert window.exam is None and window.result is None and window.overlays is None
    assert not window.scores.model_tables and window.scores.result is None
    assert not window.gallery.lists
    assert window.scores.model_malignant("R") is None
    assert window.scores.reader.value("R") is None  # the estimate form is empty
    assert window.marks == [] and all(not w._marks for w in window.hanging.views.values())
    assert all(w.image is None and w.result is None for w in window.hanging.views.values())
    # why, on screen after the dialog: every slot and the notes name the file and the problem
    for widget in window.hanging.views.values():
        assert widget.empty.isVisible() and widget.empty.text().startswith("Not opened:")
        assert "0_L-CC.png" in widget.empty.text()
    assert "0_L-CC.png" in window.notes.item(0).text()
    assert window.cursor_label.text() == ""  # no pixel of the last exam read out
    shown = _visible_texts(window)
    assert "Smith_Sally" not in shown and "40" not in window.scores.reader.inputs["R"].spin.text()
    for dialog in window.findChildren(__import__("PySide6.QtWidgets", fromlist=["QMessageBox"]).QMessageBox):
        dialog.close()


class _GatedGMIC(BrightSpotGMIC):
    """A stub whose first forward waits for the test to let it go: a slow analysis of exam A."""

    entered = threading.Event()
    release = threading.Event()

    def global_forward(self, x):
        if not self.release.is_set():
            self.entered.set()
            self.release.wait(60)
        return super().global_forward(x)


def test_a_slow_analysis_of_a_finishing_after_b_was_opened_is_dropped(qtbot, store, tmp_path):
    torch.manual_seed(0)
    gated = LoadedModel(model=_GatedGMIC(GMICConfig(local_width=8)).eval(),
                        identity=ModelIdentity(path="<gated>", git_blob_sha1="gated", sha256="gated",
                                               published_name=None, percent_t=0.02, label="gated stub"))
    exam_a, exam_b = tmp_path / "A", tmp_path / "B"
    exam_a.mkdir()
    exam_b.mkdir()
    write_png(exam_a / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    write_png(exam_b / "0_L-CC.png", synthetic_view("L-CC", (600, 300)))
    window = _window(qtbot, store, [gated])
    applied = []
    original = window.scores.set_result
    window.scores.set_result = lambda result: (applied.append(result), original(result))[1]
    window.open_exam(exam_a)
    qtbot.waitUntil(lambda: _GatedGMIC.entered.is_set(), timeout=60_000)
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        window.open_exam(exam_b)
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        _GatedGMIC.release.set()  # A's analysis ends now, after B was asked for
    assert window.exam.views.keys() == {View.L_CC}
    assert window.result is not None and set(window.result.views) == {View.L_CC}
    shown = [r for r in applied if r is not None]
    assert shown and all(set(r.views) == {View.L_CC} for r in shown)  # A's result was never put on screen
    assert window.hanging.views[View.R_CC].result is None


def test_closing_cancels_and_waits_for_every_worker(qtbot, store, tmp_path):
    from app.ui.worker import running_workers

    class Gated(BrightSpotGMIC):
        entered, release = threading.Event(), threading.Event()

        def global_forward(self, x):
            self.entered.set()
            self.release.wait(60)
            return super().global_forward(x)

    torch.manual_seed(0)
    gated = LoadedModel(model=Gated(GMICConfig(local_width=8)).eval(),
                        identity=ModelIdentity(path="<gated>", git_blob_sha1="gated2", sha256="gated2",
                                               published_name=None, percent_t=0.02, label="gated stub"))
    folder = tmp_path / "A"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = _window(qtbot, store, [gated])
    window.open_exam(folder)
    qtbot.waitUntil(Gated.entered.is_set, timeout=60_000)
    assert running_workers() >= 1
    threading.Timer(0.3, Gated.release.set).start()  # the forward returns while close() waits for it
    window.close()
    assert window._workers and not any(w.is_running() for w in window._workers)  # close waited for them all
    settle()  # the late 'finished' signals are delivered to a closed window without harm
    assert window.result is None


def test_exam_b_shown_while_the_maps_of_a_are_being_drawn_gets_none_of_them(qtbot, store, tmp_path, stub_model):
    """The maps are drawn one view per event-loop turn; a prefetched exam B shown at once between two of those
    turns (the worklist's Next) must get none of A's maps or regions, and A's last step must not fail on B."""
    from PySide6.QtCore import QCoreApplication

    from app.workstation import load_exam_task
    from tests.app.conftest import open_and_wait

    a, b = tmp_path / "A", tmp_path / "B"
    for folder, lesion in ((a, (700, 500)), (b, (300, 300))):
        folder.mkdir()
        for name in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
            write_png(folder / f"0_{name}.png", synthetic_view(name, lesion))
    window = _window(qtbot, store, [stub_model])
    open_and_wait(qtbot, window, a, analysis=True)
    assert window.result is not None
    loaded_b = load_exam_task(b, store, "reader", progress=lambda *_: None, cancel=lambda: False)
    window.settings = AppSettings(blind_first=False, show_overlays=True, auto_run=False)  # B is not analysed
    window.overlay_control.draw_result()  # A's maps: the first view now, the others on the next turns
    window.exams.open_prefetched(loaded_b, None)
    assert window.exam is loaded_b.exam and window.result is None
    for _ in range(20):
        QCoreApplication.processEvents()
    for view, widget in window.hanging.views.items():
        assert widget.image is loaded_b.exam.views[view]
        assert widget.result is None and not widget._heat_items and not widget._boxes, view
    assert not window.gallery.lists and not window._overlays_pending



def test_a_late_cancel_of_an_earlier_retrieve_leaves_the_next_exam_alone(qtbot, store, tmp_path, monkeypatch):
    """Opening exam B cancels the PACS retrieve of A; A's "cancelled" (seen at its next instance, after B is
    shown) blanked B's images and said "Retrieve cancelled" on B's panel."""
    import app.pacs.retrieve as retrieve  # noqa: PLC0415
    from app.pacs.nodes import parse_study  # noqa: PLC0415
    from app.ui.worker import running_workers  # noqa: PLC0415
    from inference.errors import Cancelled  # noqa: PLC0415

    entered, release = threading.Event(), threading.Event()

    def slow_retrieve(address, *, progress=None, cancel=lambda: False, **kwargs):
        entered.set()
        release.wait(60)
        if progress is not None:
            progress("retrieving A", 1, 4)
        raise Cancelled("retrieve cancelled")

    monkeypatch.setattr(retrieve, "retrieve_study", slow_retrieve)
    exam_b = tmp_path / "B"
    exam_b.mkdir()
    write_png(exam_b / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = MainWindow(AppSettings(auto_run=False, blind_first=False), store, model_path="")
    qtbot.addWidget(window)
    window.show()
    window.open_exam(parse_study("dimse://PACS@127.0.0.1:11112/1.2.3.4"))
    qtbot.waitUntil(entered.is_set, timeout=10_000)
    with qtbot.waitSignal(window.examShown, timeout=30_000):
        window.open_exam(exam_b)
    release.set()
    qtbot.waitUntil(lambda: running_workers() == 0, timeout=10_000)
    settle()
    assert window.exam.source == exam_b and window.hanging.views[View.R_CC].image is not None
    assert "Retrieve cancelled" not in window.scores.model_status.text()
    assert "retrieving A" not in window.stage_label.text()


def test_two_exams_whose_images_share_uids_never_share_reads_or_results(qtbot, store, tmp_path, stub_model):
    """A broken anonymiser (or a device reusing UIDs) gave two patients' images the same UIDs: the second
    patient's exam showed the first one's committed read and stored AI result (maps of the other pixels)."""
    import pydicom  # noqa: PLC0415

    from inference.intake.phantom import generate_exam, write_dicom_exam  # noqa: PLC0415
    from tests.app.conftest import open_and_wait  # noqa: PLC0415

    def write(seed: int, folder):
        for path in write_dicom_exam(generate_exam(seed, shape=(640, 480)), folder):
            dataset = pydicom.dcmread(path)
            number = ["R-CC", "L-CC", "R-MLO", "L-MLO"].index(path.stem) + 1  # the same UID per view in both
            dataset.SOPInstanceUID = f"1.2.826.0.1.3680043.2.1125.1.{number}"
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            dataset.save_as(path)

    first, second = tmp_path / "A", tmp_path / "B"
    write(101, first)
    write(202, second)
    window = MainWindow(AppSettings(auto_run=True, blind_first=True, show_overlays=True), store)
    qtbot.addWidget(window)
    window.show()
    window.use_models([stub_model])
    open_and_wait(qtbot, window, first, analysis=True)
    key_a = window.exam_key
    window.scores.reader.inputs["R"].spin.setValue(80)
    window.scores.reader.inputs["L"].spin.setValue(10)
    assert window.commit_estimate()
    store.submit(lambda db: None).result()
    open_and_wait(qtbot, window, second, analysis=True)
    assert window.exam_key != key_a and not window.committed and window.scores.reader.value("R") is None
    assert not window.restored and window.model_hidden()
    open_and_wait(qtbot, window, first, analysis=True)  # the first exam keeps its key, its read and its result
    assert window.exam_key == key_a and window.committed and window.scores.reader.value("R") == 0.8
    assert window.restored


def test_the_hidden_result_of_the_exam_left_never_shows_while_the_next_one_loads(qtbot, store, tmp_path, stub_model):
    """Seen by a radiologist switching fast through a worklist: on exam D (read) "Loading the exam…" stood over a
    filled table of exam E's probabilities, which E's reader had not yet been shown (blind first). The tables of
    the result left were taken out of the layout and deleted later, and stayed visible until then."""
    first = tmp_path / "Smith_Sally"
    first.mkdir()
    write_png(first / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = _window(qtbot, store, [stub_model], blind_first=True, show_overlays=False)
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(first)
    assert window.scores.model_tables and not window.scores.model_box.isVisible()  # blind: hidden
    shown = window.scores.model_table.item(0, 1).text()
    window.clear_exam()  # as leaving it for the next exam does; no event processed after it
    assert window.scores.model_box.isVisible()  # nothing of an exam to hide: the box says what comes
    stale = [t for t in window.findChildren(QTableWidget)
             if t.objectName().startswith("modelTable_") and t.isVisible()]
    assert stale == []
    assert shown not in _visible_texts(window)


def _shown_window_and_exam(qtbot, store, tmp_path) -> tuple[MainWindow, Path]:
    """A shown window (no analysis) and a one-view R-CC exam folder, not opened yet."""
    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = MainWindow(AppSettings(auto_run=False), store)
    qtbot.addWidget(window)
    window.show()
    return window, folder


def test_the_first_paint_of_an_exam_paints_its_panels_with_its_pixels(qtbot, store, tmp_path, monkeypatch):
    """Only the hanging was painted at once: the new patient's pixels showed beside the previous exam's notes (a
    radiologist saw them together for 0.3 s on a loaded machine) until the next paint."""
    window, folder = _shown_window_and_exam(qtbot, store, tmp_path)
    painted = []
    real = window.repaint
    monkeypatch.setattr(window, "repaint", lambda *a: (painted.append([window.notes.item(i).text() for i in
                                                                       range(window.notes.count())]), real(*a)))
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        window.open_exam(folder)
    # the paint of the exam shown (the one before it is the cleared window, when the last exam left)
    assert painted == [[], [window.notes.item(i).text() for i in range(window.notes.count())]]


def test_leaving_an_exam_paints_the_cleared_window_at_once(qtbot, store, tmp_path, monkeypatch):
    """On an X server, after Ctrl+Right in a worklist, the previous exam's notes ("missing views: L-MLO, R-MLO")
    stood beside the next exam's "Loading images…" slots (a radiologist's screenshots, reproduced on Xvfb), and
    the Models box said "Analysed: …" of the exam left. The cleared window is painted and sent to the display
    before anything else is done."""
    import app.ui.workstation.exam_control as exam_control  # noqa: PLC0415

    window, folder = _shown_window_and_exam(qtbot, store, tmp_path)
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        window.open_exam(folder)
    window.scores.set_status("Analysed: cpu (exact mode), 1 model(s).")
    assert window.notes.count()
    seen = []
    real = window.repaint
    def painted(*a):
        slots = {w.empty.text() for w in window.hanging.views.values()}
        seen.append(("painted", window.notes.count(), window.scores.model_status.text(), slots))
        real(*a)

    monkeypatch.setattr(window, "repaint", painted)
    monkeypatch.setattr(exam_control.QGuiApplication, "sync", staticmethod(lambda: seen.append(("synced",))))
    window.scores.reader.inputs["R"].spin.lineEdit().setText("150 %")  # a refused number left in the box
    window.clear_exam()
    # the slots said "No R-CC image in this exam" (the re-test's screenshots) for an exam still to come
    assert seen == [("painted", 0, "", {"Loading images…"}), ("synced",)]
    assert window.statusBar().currentMessage() == ("the exam you left: Right breast, malignant: 150 % was not taken "
                                                   "(not a whole percentage from 0 to 100)")
