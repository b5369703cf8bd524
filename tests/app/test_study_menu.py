"""The Study menu of the workstation: create a study (scores computed in the background), read it, see results."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

from app.settings import AppSettings
from app.study.design import Design
from app.study.lesions import scoring_rule, study_lesions
from app.study.sessions import ReadingSession
from app.ui.workstation.main_window import MainWindow
from app.study.reading_screen import study_overview
from app.ui.study.dialogs import ChooseStudyDialog, NewStudy, NewStudyDialog
from app.ui.study.results import StudyResultsWindow
from app.ui.study.window import StudyReadingWindow
from tests.app.conftest import synthetic_view, write_png



@pytest.fixture
def window(qtbot, store, stub_model):
    w = MainWindow(AppSettings(), store, model_path="")
    qtbot.addWidget(w)
    w.use_models([stub_model])
    return w


def case_list(tmp_path, n: int = 4):
    lines = ["case_id,exam,truth_left,truth_right"]
    for i in range(n):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (600 + 40 * i, 500)))
        write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (700, 250)))
        lines.append(f"c{i},case{i},normal,{'malignant' if i % 2 else 'normal'}")
    (tmp_path / "cases.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "cases.csv"


def test_new_study_dialog_offers_a_washout_only_for_crossover(qtbot):
    dialog = NewStudyDialog()
    qtbot.addWidget(dialog)
    assert not dialog.washout.isEnabled() and dialog.design.currentData() == Design.SEQUENTIAL
    dialog.design.setCurrentIndex(list(Design).index(Design.CROSSOVER))
    assert dialog.washout.isEnabled() and dialog.washout.value() == 28
    dialog.name.setText(" pilot ")
    dialog.readers.setText("R1, R2,, ")
    dialog.case_list.setText("/x/cases.csv")
    assert dialog.values() == NewStudy("pilot", "/x/cases.csv", ("R1", "R2"), Design.CROSSOVER, 0, 28)
    dialog.design.setCurrentIndex(0)
    assert not dialog.washout.isEnabled() and dialog.values().washout_days == 0


def test_a_study_that_can_never_give_an_auc_says_so_when_it_is_created(qtbot, window, store, tmp_path):
    """Seen: an all-normal case list made a study without a word; the coordinator learnt that it gives no AUC
    after the readers had read every case."""
    cases = case_list(tmp_path)
    header, *rows = cases.read_text().replace("malignant", "normal").splitlines()
    cases.write_text("\n".join([f"{header},note", *(f"{row},x" for row in rows)]) + "\n")  # "note": misspelt
    assert window.study_menu.worker is None or not window.study_menu.worker.is_running()
    with qtbot.waitSignal(window.study_menu.studyCreated, timeout=60_000):
        window.study_menu.create(NewStudy("normals", str(cases), ("A",), Design.UNAIDED, 3, 0))
    qtbot.waitUntil(lambda: getattr(window.study_menu, "case_mix_box", None) is not None, timeout=10_000)
    box = window.study_menu.case_mix_box
    assert box.isVisible() and box.objectName() == "studyCaseMixNote"
    assert "Study normals created. Note: the case list's column note is not read" in box.text()
    assert "; the case list has no malignant breast among its 4 study case(s)" in box.text()
    box.accept()


def test_create_read_and_see_results_from_the_workstation(qtbot, window, store, tmp_path):
    cases = case_list(tmp_path)
    with qtbot.waitSignal(window.study_menu.studyCreated, timeout=60_000) as created:
        window.study_menu.create(NewStudy("pilot", str(cases), ("A", "B"), Design.UNAIDED, 3, 0))
    study_id = created.args[0]
    assert store.read("SELECT COUNT(*) FROM model_scores WHERE study_id=?", (study_id,)) == [(8,)]
    assert "model scores for 4 case(s)" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not window.study_menu.worker.is_running(), timeout=10_000)

    chooser = ChooseStudyDialog(study_overview(store), with_reader=True)
    qtbot.addWidget(chooser)
    assert chooser.study.currentData() == study_id and chooser.chosen() == (study_id, "A")
    assert "A: 0 of 4" in chooser.progress_label.text() and "B: 0 of 4" in chooser.progress_label.text()

    with qtbot.waitSignal(window.study_menu.readingOpened, timeout=10_000) as opened:
        window.study_menu.open_reading(study_id, "A")  # the session is read off the GUI thread
    reading = opened.args[0]
    assert isinstance(reading, StudyReadingWindow) and reading.isVisible()
    qtbot.waitUntil(lambda: reading.exam is not None, timeout=30_000)
    for reader, shift in (("A", 0.0), ("B", 0.1)):
        session = ReadingSession(store, study_id, reader)
        for position in range(4):
            case = session.case_at(position).case_id
            positive = int(case[1:]) % 2
            session.commit(case, "unaided", {"L": 0.2, "R": 0.3 + 0.4 * positive - shift * position / 2}).result()
    worker = window.study_menu.show_results(study_id)
    with qtbot.waitSignal(worker.finished, timeout=30_000):  # delivered through the event loop: no race
        pass
    results_windows = [w for w in window.study_menu.windows if isinstance(w, StudyResultsWindow)]
    assert results_windows and results_windows[0].isVisible() and "unaided" in results_windows[0].curves


def test_a_localisation_study_is_created_from_the_form_with_its_lesion_list(qtbot, window, store, tmp_path):
    """The New study form took no lesion list: a FROC study needed the command line (or drawing every case)."""
    cases = case_list(tmp_path)
    lesions = tmp_path / "lesions.csv"
    lesions.write_text("case_id,breast,view,mask,row,col,radius_mm,weight,lesion,spacing_mm\n"
                       "c1,R,CC,,300,250,5,,,0.1\n")  # c3's malignant right breast has none: refused, by name
    dialog = NewStudyDialog()
    qtbot.addWidget(dialog)
    assert not dialog.distance.isEnabled()
    dialog.name.setText("loc")
    dialog.case_list.setText(str(cases))
    dialog.readers.setText("A")
    dialog.lesions.setText(f" {lesions} ")
    assert dialog.distance.isEnabled()
    dialog.distance.setValue(7)
    study = dialog.values()
    assert (study.lesions, study.distance_mm) == (str(lesions), 7.0)
    worker = window.study_menu.create(study)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    boxes = [w for w in window.findChildren(QMessageBox) if w.objectName() == "errorDialog"]
    assert boxes and "lesions.csv" in boxes[-1].text() and "c3" in boxes[-1].text()
    assert store.read("SELECT COUNT(*) FROM studies") == [(0,)]
    boxes[-1].button(QMessageBox.StandardButton.Ok).click()
    again = window.study_menu.new_study_dialog  # the form as it was, lesion list and distance included
    qtbot.waitUntil(again.isVisible, timeout=5_000)
    assert (again.lesions.text(), again.distance.value()) == (str(lesions), 7.0)
    again.reject()

    with lesions.open("a") as rows:
        rows.write("c3,R,CC,,320,260,5,,,0.1\n")
    with qtbot.waitSignal(window.study_menu.studyCreated, timeout=60_000) as created:
        window.study_menu.create(study)
    qtbot.waitUntil(lambda: getattr(window.study_menu, "case_mix_box", None) is not None, timeout=10_000)
    assert "2 lesion(s) on 2 case(s)" in window.study_menu.case_mix_box.text()
    assert "within 7 mm of its centre" in window.study_menu.case_mix_box.text()
    window.study_menu.case_mix_box.accept()
    assert scoring_rule(store, created.args[0]).distance_mm == 7.0
    assert {(l.case_id, l.view) for l in study_lesions(store, created.args[0])} == {("c1", "R-CC"), ("c3", "R-CC")}
    qtbot.waitUntil(lambda: not window.study_menu.worker.is_running(), timeout=30_000)


def test_a_bad_case_list_is_reported_and_nothing_is_created(qtbot, window, store, tmp_path):
    worker = window.study_menu.create(NewStudy("broken", str(tmp_path / "missing.csv"), ("A",), Design.UNAIDED, 0, 0))
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    boxes = [w for w in window.findChildren(QMessageBox) if w.objectName() == "errorDialog"]
    assert boxes and "missing.csv" in boxes[-1].text() and boxes[-1].windowTitle() == "Reader study"
    assert store.read("SELECT COUNT(*) FROM studies") == [(0,)]
    boxes[-1].button(QMessageBox.StandardButton.Ok).click()
    dialog = window.study_menu.new_study_dialog  # the form again, as it was: corrected, not typed anew
    qtbot.waitUntil(dialog.isVisible, timeout=5_000)
    assert (dialog.name.text(), dialog.case_list.text(), dialog.readers.text()) == (
        "broken", str(tmp_path / "missing.csv"), "A")
    dialog.reject()


def test_a_coordinator_reaches_a_case_s_lesion_dialog_from_the_study_menu(qtbot, window, store, tmp_path):
    cases = case_list(tmp_path)
    with qtbot.waitSignal(window.study_menu.studyCreated, timeout=60_000) as created:
        window.study_menu.create(NewStudy("drawn", str(cases), ("A",), Design.UNAIDED, 3, 0))
    qtbot.waitUntil(lambda: not window.study_menu.worker.is_running(), timeout=10_000)
    worker = window.study_menu.open_lesions(created.args[0])
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    chooser = window.study_menu.case_chooser
    assert chooser.isVisible() and chooser.comboBoxItems() == ["c0", "c1", "c2", "c3"]
    chooser.setTextValue("c1")
    chooser.accept()
    dialog = window.study_menu.lesion_dialog
    assert dialog.isVisible() and dialog.case.case_id == "c1" and "c1" in dialog.windowTitle()
    qtbot.waitUntil(lambda: dialog.worker is None or not dialog.worker.is_running(), timeout=30_000)
    dialog.close()


def test_study_read_asks_which_study_from_what_a_worker_read_then_opens_the_reading(qtbot, window, store, tmp_path,
                                                                                   monkeypatch):
    """Study -> Read: the studies and their readers' progress are read off the GUI thread, the chooser shows
    them, and OK opens the chosen reader's session (also read off the GUI thread)."""
    cases = case_list(tmp_path)
    with qtbot.waitSignal(window.study_menu.studyCreated, timeout=60_000):
        window.study_menu.create(NewStudy("pilot", str(cases), ("A", "B"), Design.UNAIDED, 3, 0))
    qtbot.waitUntil(lambda: not window.study_menu.worker.is_running(), timeout=10_000)
    shown = []

    def accept(dialog) -> int:  # the reader chooses reader B and presses OK
        shown.append(dialog.progress_label.text())
        dialog.reader.setCurrentText("B")
        return 1

    monkeypatch.setattr(ChooseStudyDialog, "exec", accept)
    with qtbot.waitSignal(window.study_menu.readingOpened, timeout=30_000) as opened:
        window.study_menu.choose_reading()
    assert shown and "A: 0 of 4" in shown[0] and "B: 0 of 4" in shown[0]
    assert opened.args[0].session.reader == "B"


def test_closing_the_workstation_asks_a_study_reading_with_answers_not_committed_first(qtbot, window, store,
                                                                                       tmp_path):
    with qtbot.waitSignal(window.study_menu.studyCreated, timeout=60_000) as created:
        window.study_menu.create(NewStudy("pilot", str(case_list(tmp_path)), ("A",), Design.UNAIDED, 3, 0))
    qtbot.waitUntil(lambda: not window.study_menu.worker.is_running(), timeout=10_000)
    with qtbot.waitSignal(window.study_menu.readingOpened, timeout=10_000) as opened:
        window.study_menu.open_reading(created.args[0], "A")
    reading = opened.args[0]
    qtbot.waitUntil(lambda: reading.exam is not None, timeout=30_000)
    reading.reader_panel.inputs["R"].spin.setValue(55)
    window.show()
    assert not window.close()  # the reading asks; the workstation stays open meanwhile
    assert window.isVisible() and reading.isVisible() and reading.leave_box.isVisible()
    next(b for b in reading.leave_box.buttons() if b.text() == "Discard them").click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)  # then both close, as asked
    assert not reading.isVisible()


def test_the_chooser_grows_to_show_another_study_s_whole_progress(qtbot, store):
    """A crossover's two sessions per reader take more lines than the study shown first: nothing is cut."""
    from app.study.design import create_study  # noqa: PLC0415
    from tests.study.test_study import cases  # noqa: PLC0415

    create_study(store, "xo", Design.CROSSOVER, ["A", "B", "C", "D"], cases(8, 2), seed=1, washout_days=28)
    create_study(store, "plain", Design.UNAIDED, ["A"], cases(4, 1), seed=1)
    dialog = ChooseStudyDialog(study_overview(store), with_reader=True)
    qtbot.addWidget(dialog)
    assert "plain" in dialog.study.currentText()
    dialog.show()
    dialog.study.setCurrentIndex(1)
    label = dialog.progress_label
    assert "xo" in dialog.study.currentText() and "D, session 2: 0 of 8" in label.text()
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()) - 1, timeout=2_000)


def test_the_case_mix_note_is_said_even_when_the_scoring_after_the_creation_fails(qtbot, window, store, tmp_path,
                                                                                  monkeypatch):
    """Found in review: the note travelled with the scores, so a study whose scoring failed or was cancelled
    existed without the note ever being shown."""
    import app.study.scores

    def failing(*_args, **_kwargs):
        raise RuntimeError("the scoring broke")

    monkeypatch.setattr(app.study.scores, "compute_model_scores", failing)
    cases = case_list(tmp_path)
    cases.write_text(cases.read_text().replace("malignant", "normal"))
    window.study_menu.create(NewStudy("normals", str(cases), ("A",), Design.UNAIDED, 3, 0))
    qtbot.waitUntil(lambda: getattr(window.study_menu, "case_mix_box", None) is not None, timeout=30_000)
    assert "no malignant breast" in window.study_menu.case_mix_box.text()
    qtbot.waitUntil(lambda: not window.study_menu.worker.is_running(), timeout=10_000)
    for box in window.findChildren(QMessageBox):
        box.accept()
