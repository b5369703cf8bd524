"""The reader's first committed read is final on the real main window: a change after the model was shown is
a separate "amended after AI" read, the hybrid and the exports keep the read before AI, and a read whose parts
disagree asks "commit anyway?" before it is committed."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QMessageBox, QTableWidgetItem

from app.reading import hybrid, percent
from app.settings import AppSettings
from app.ui.workstation.main_window import MainWindow
from inference.intake.views import View
from tests.helpers import synthetic_view, write_png

BEFORE_AFTER = "before AI 80 % → after AI 30 %"
BEFORE_AFTER_CELL = "80 % before AI\n30 % after AI"  # the comparison's reader cell: the estimates, one a line


def analysed_window(qtbot, store, folder, stub_model, **settings) -> MainWindow:
    """A window that opened a one-view R-CC exam and analysed it with the stub model."""
    window = MainWindow(AppSettings(show_overlays=True, auto_run=True, **settings), store)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    window.use_models([stub_model])
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(folder)
    return window


def right_cc_window(qtbot, store, tmp_path, stub_model, **settings) -> MainWindow:
    """The workstation on a one-view exam (a synthetic R-CC), analysed."""
    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    return analysed_window(qtbot, store, folder, stub_model, **settings)


def one_view_exams(tmp_path, names: str) -> dict:
    """One-view R-CC exams under ``tmp_path``, one folder per name, each of other pixels (an exam's key is
    its pixels')."""
    folders = {}
    for name, lesion in zip(names, ((700, 500), (600, 400), (500, 300)), strict=False):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        write_png(folders[name] / "0_R-CC.png", synthetic_view("R-CC", lesion))
    return folders


def set_read(window: MainWindow, malignant: int, birads: str, recommendation: str) -> None:
    form = window.scores.reader.inputs["R"]
    form.spin.setValue(malignant)
    form.birads.setCurrentText(birads)
    form.recommendation.setCurrentText(recommendation)


def commit_read(qtbot, window: MainWindow, malignant: int, birads: str, recommendation: str) -> None:
    """The right breast's first read, committed and said so under the form."""
    set_read(window, malignant, birads, recommendation)
    assert window.commit_estimate()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed"), timeout=10_000)


def type_into(qtbot, window: MainWindow, spin, text: str) -> None:
    """``text`` typed into ``spin`` as a reader would: the window active, the box focused, its text selected."""
    from PySide6.QtTest import QTest

    window.activateWindow()
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=5000)
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin, text)


def answer(qtbot, window: MainWindow, button: QMessageBox.StandardButton) -> None:
    qtbot.waitUntil(lambda: window.commit_anyway_box is not None and window.commit_anyway_box.isVisible())
    box = window.commit_anyway_box
    assert box.objectName() == "commitAnywayBox" and "Commit anyway?" in box.text()
    box.button(button).click()


def test_a_change_after_the_reveal_is_an_amendment_and_the_read_before_ai_stays(qtbot, store, tmp_path, stub_model):
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    assert window.model_hidden()
    set_read(window, 80, "4C", "biopsy")
    assert window.commit_estimate()  # consistent: committed at once, the model is shown
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed"), timeout=10_000)
    assert not window.model_hidden()
    model = window.scores.model_malignant("R")
    assert model is not None

    window.scores.reader.inputs["R"].spin.setValue(30)  # the reader saw the model and changes the estimate
    assert window.scores.compare.item(0, 3).text() == percent(hybrid(0.80, model))  # the hybrid does not move
    assert not window.commit_estimate()  # 30 % with BI-RADS 4C and a biopsy: asked first
    answer(qtbot, window, QMessageBox.StandardButton.Yes)
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("saved as amended after AI"),
                    timeout=10_000)

    read = store.load_reads(window.exam_key, "reader")["R"]
    assert read.committed and read.malignant == pytest.approx(0.80) and read.birads == "4C"
    assert read.amendment.malignant == pytest.approx(0.30) and read.amendment.recorded_at is not None
    assert store.read("SELECT malignant FROM exam_reads WHERE breast = 'R'") == [(pytest.approx(0.80),)]
    amendments = store.read("SELECT kind, malignant, amended_at FROM exam_read_amendments")
    assert len(amendments) == 1 and amendments[0][:2] == ("amended after AI", pytest.approx(0.30))
    assert amendments[0][2] > 0
    assert window.scores.compare.item(0, 1).text() == BEFORE_AFTER_CELL
    assert window.scores.compare.item(0, 3).text() == percent(hybrid(0.80, model))
    assert BEFORE_AFTER in window.scores.reader.amendment_label.text()
    table = window.scores.compare  # reader, model and hybrid side by side: the whole text pushed them out of sight
    assert table.horizontalHeader().length() <= table.viewport().width(), (table.horizontalHeader().length(),
                                                                          table.viewport().width())

    worker = window.export(str(tmp_path / "out"), ["pdf", "json"], deidentify=False)
    with qtbot.waitSignal(worker.result, timeout=60_000) as blocker:
        pass
    data = json.loads(next(p for p in blocker.args[0].paths if p.suffix == ".json").read_text())
    right = data["reads"]["R"]
    assert right["reader_malignant"] == pytest.approx(0.80)
    assert right["models"][next(iter(right["models"]))]["hybrid_malignant"] == pytest.approx(hybrid(0.80, model))
    assert right["amended_after_ai"]["malignant"] == pytest.approx(0.30) and right["amended_after_ai"]["amended_at"]
    assert right["read_with_ai_shown"] is False and right["hybrid_note"] == ""  # blind first: hidden until it
    from tests.report.test_report import pdf_text

    pdf = pdf_text(next(p for p in blocker.args[0].paths if p.suffix == ".pdf"))
    assert BEFORE_AFTER in " ".join(pdf.split())  # as printed, wrapped in its column

    window.close()  # the exam opened again (a restart) shows both reads and keeps the hybrid on the first
    again = analysed_window(qtbot, store, tmp_path / "exam", stub_model, blind_first=True)
    assert again.committed and not again.model_hidden()
    assert again.scores.reader.value("R") == pytest.approx(0.30)
    assert again.scores.compare.item(0, 1).text() == BEFORE_AFTER_CELL
    assert again.scores.compare.item(0, 3).text() == percent(hybrid(0.80, model))
    assert BEFORE_AFTER in again.scores.reader.amendment_label.text()


def test_every_amendment_is_shown_in_turn_and_exported_with_its_time(qtbot, store, tmp_path, stub_model):
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    commit_read(qtbot, window, 80, "4C", "biopsy")
    for count, value in enumerate((60, 90), start=1):  # two amendments: the first must not vanish behind the second
        window.scores.reader.inputs["R"].spin.setValue(value)
        assert window.commit_estimate()
        qtbot.waitUntil(lambda n=count: window.scores.reader.saved_label.text().startswith("saved as amended after AI")
                        and store.read("SELECT COUNT(*) FROM exam_read_amendments") == [(n,)], timeout=10_000)
    chain = "before AI 80 % → after AI 60 % → 90 %"
    assert chain in window.scores.reader.amendment_label.text()
    read = store.load_reads(window.exam_key, "reader")["R"]
    assert read.amendment.malignant == pytest.approx(0.90)
    assert [a.malignant for a in read.earlier_amendments] == [pytest.approx(0.60)]
    held = window.scores.reader.first_reads["R"]  # what the panel holds is what the store holds
    assert [a.malignant for a in (*held.earlier_amendments, held.amendment)] == [pytest.approx(0.60), pytest.approx(0.90)]

    worker = window.export(str(tmp_path / "out"), ["pdf", "json"], deidentify=False)
    with qtbot.waitSignal(worker.result, timeout=60_000) as blocker:
        pass
    amended = json.loads(next(p for p in blocker.args[0].paths if p.suffix == ".json").read_text())[
        "reads"]["R"]["amended_after_ai"]
    assert amended["malignant"] == pytest.approx(0.90) and amended["text"] == chain
    assert [e["malignant"] for e in amended["earlier"]] == [pytest.approx(0.60)]
    assert amended["earlier"][0]["amended_at"] <= amended["amended_at"]
    from tests.report.test_report import pdf_text

    assert chain in " ".join(pdf_text(next(p for p in blocker.args[0].paths if p.suffix == ".pdf")).split())

    window.close()  # reopened: the same history
    again = analysed_window(qtbot, store, tmp_path / "exam", stub_model, blind_first=True)
    assert chain in again.scores.reader.amendment_label.text()
    assert again.scores.reader.value("R") == pytest.approx(0.90)


def test_a_read_whose_parts_disagree_is_committed_only_on_yes(qtbot, store, tmp_path, stub_model):
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    set_read(window, 30, "4C", "biopsy")
    assert not window.commit_estimate()
    answer(qtbot, window, QMessageBox.StandardButton.No)
    assert not window.committed and window.model_hidden()
    assert "Not committed" in window.scores.reader.saved_label.text()
    store.submit(lambda db: None).result()  # any draft save has reached the store
    assert not any(r.committed for r in store.load_reads(window.exam_key, "reader").values())

    assert not window.commit_estimate()
    answer(qtbot, window, QMessageBox.StandardButton.Yes)
    assert window.committed and not window.model_hidden()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed"), timeout=10_000)
    read = store.load_reads(window.exam_key, "reader")["R"]
    assert read.committed and read.malignant == pytest.approx(0.30) and read.birads == "4C"


def _wheel_down(widget) -> bool:
    """A wheel notch down sent to ``widget``; whether it took it. (Qt hands a real wheel event the widget
    ignores on to its parents: the panel's scroll area scrolls. A sent one is not handed on, hence the flag.)"""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


def test_scrolling_the_panel_over_the_form_never_changes_an_answer(qtbot, store, tmp_path, stub_model):
    """The wheel over a combo box or spin box of the estimate (not clicked into) scrolls the side panel: it
    changed the left breast's recommendation from "routine screening" to "short-interval follow-up"."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    window.resize(1024, 700)  # the side panel scrolls
    set_read(window, 20, "2", "routine screening")
    form = window.scores.reader.inputs["R"]
    scroll = window.findChild(__import__("PySide6.QtWidgets", fromlist=["QScrollArea"]).QScrollArea, "scoresScroll")
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() > 0, timeout=5000)  # a panel that scrolls
    for widget in (form.recommendation, form.birads, form.density, form.spin, form.benign, form.slider):
        assert not _wheel_down(widget), widget  # not taken: on to the scroll area
    assert form.recommendation.currentText() == "routine screening" and form.birads.currentText() == "2"
    assert form.spin.value() == 20 and form.slider.value() == 20 and form.benign.value() == -1
    # nor over the panel's tables, also one wider than the panel: Qt scrolled it sideways, hiding the rows' names
    # ("breast" / "east")
    for table in (window.scores.model_table, window.scores.compare):
        table.setColumnCount(table.columnCount() + 1)
        table.setHorizontalHeaderItem(table.columnCount() - 1, QTableWidgetItem("x" * 400))  # wider than the panel
        qtbot.waitUntil(lambda t=table: t.horizontalScrollBar().maximum() > 0, timeout=5000)
        assert not _wheel_down(table.viewport()), table.objectName()
        assert table.horizontalScrollBar().value() == 0
    window.activateWindow()
    form.spin.setFocus()  # clicked into: the wheel is the input's again
    qtbot.waitUntil(form.spin.hasFocus, timeout=2000)
    assert _wheel_down(form.spin) and form.spin.value() == 19


def test_leaving_with_a_change_after_the_commit_asks_and_never_drops_it_silently(qtbot, store, tmp_path, stub_model):
    folder, other = tmp_path / "exam", tmp_path / "other"
    for path in (folder, other):
        path.mkdir()
        write_png(path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=True)
    commit_read(qtbot, window, 20, "2", "routine screening")
    key = window.exam_key
    window.scores.reader.inputs["R"].spin.setValue(25)  # changed after the commit, not recorded
    qtbot.waitUntil(lambda: "not recorded yet" in window.scores.reader.saved_label.text(), timeout=5000)

    window.open_exam(other)  # asked first: the exam stays
    box = window.pending_amendment_box
    qtbot.waitUntil(lambda: box.isVisible(), timeout=5000)
    assert window.exam_key == key and "not recorded" in box.text()
    assert "(Right breast 20 % → 25 %)" in box.text() and "Before leaving this exam:" in box.text()  # which change
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.exam_key == key and window.scores.reader.inputs["R"].spin.value() == 25

    # an export gave the recorded 20 % with nothing said of the 25 % on screen (a hands-on review): asked first
    window.exports.open_export()
    box = window.pending_amendment_box
    qtbot.waitUntil(lambda: box.isVisible(), timeout=5000)
    assert "Before exporting:" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()  # no export, the change still on screen
    assert window.scores.reader.inputs["R"].spin.value() == 25 and window.export_worker is None

    window.close()  # asked again; "Record it" records the amendment, then the window closes
    box = window.pending_amendment_box
    qtbot.waitUntil(lambda: box.isVisible(), timeout=5000)
    assert window.isVisible()
    box.button(QMessageBox.StandardButton.Save).click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)
    store.submit(lambda db: None).result()
    read = store.load_reads(key, "reader")["R"]
    assert read.malignant == pytest.approx(0.20) and read.amendment.malignant == pytest.approx(0.25)


def test_no_stale_not_saved_line_after_an_amendment_is_recorded(qtbot, store, tmp_path, stub_model):
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    set_read(window, 30, "3", "short-interval follow-up")
    assert window.commit_estimate()
    window.scores.reader.inputs["R"].spin.setValue(40)
    assert window.commit_estimate()  # at once, before the debounced save of the edit fires
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("saved as amended after AI"),
                    timeout=10_000)
    qtbot.wait(800)  # past the debounce: the line stays what it is
    assert window.scores.reader.saved_label.text().startswith("saved as amended after AI")


def test_one_question_at_a_time_about_the_exam_asked_and_the_last_wish_follows(qtbot, store, tmp_path, stub_model):
    """A second leave while "Record your change?" is open (a worklist arriving, the reader's own Ctrl+O) made a
    second box; answering the first one later committed the blank read of whatever exam was then on screen."""
    folders = one_view_exams(tmp_path, "abc")
    window = analysed_window(qtbot, store, folders["a"], stub_model, blind_first=False)
    set_read(window, 20, "2", "routine screening")
    assert window.commit_estimate()
    key_a = window.exam_key
    window.scores.reader.inputs["R"].spin.setValue(25)
    window.open_exam(folders["b"])
    box = window.pending_amendment_box
    qtbot.waitUntil(box.isVisible, timeout=5000)
    window.open_exam(folders["c"])  # asked again while the question is open: no second question
    assert window.pending_amendment_box is box and window.exam_key == key_a
    with qtbot.waitSignal(window.examShown, timeout=30_000):
        box.button(QMessageBox.StandardButton.Save).click()  # recorded, then the last wish: exam c
    assert window.exam.source == folders["c"]
    store.submit(lambda db: None).result()
    assert store.load_reads(key_a, "reader")["R"].amendment.malignant == pytest.approx(0.25)
    stored_c = store.load_reads(window.exam_key, "reader")
    assert not any(r.committed for r in stored_c.values()), stored_c  # c: nothing committed


def test_moving_a_view_keeps_a_change_made_after_the_commit_to_record(qtbot, store, tmp_path, stub_model):
    write_png(tmp_path / "0_R-CC.png", synthetic_view("L-CC", (700, 300)))  # a left breast labelled right
    window = analysed_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    form = window.scores.reader.inputs["L"]
    form.spin.setValue(20)
    window.scores.reader.inputs["R"].spin.setValue(0)  # the labelled breast is answered too before a commit
    assert window.commit_estimate()
    form.spin.setValue(25)  # changed after the commit, not recorded yet
    with qtbot.waitSignal(window.analysisFinished, timeout=60_000):
        window.hanging.views[View.R_CC].banner.move_button.click()
    assert window.scores.reader.inputs["L"].spin.value() == 25  # still there, still to record
    assert [r.malignant for r in window.scores.reader.changed_since_commit()] == [pytest.approx(0.25)]
    assert "not recorded yet" in window.scores.reader.saved_label.text()


def test_record_it_then_commit_anyway_yes_records_and_then_leaves(qtbot, store, tmp_path, stub_model):
    """"Record it" on a change whose parts disagree asks "Commit anyway?"; on Yes it was recorded but the leave
    asked for never happened (the reader had to press Next again)."""
    folders = one_view_exams(tmp_path, "ab")
    window = analysed_window(qtbot, store, folders["a"], stub_model, blind_first=False)
    set_read(window, 20, "2", "routine screening")
    assert window.commit_estimate()
    key_a = window.exam_key
    set_read(window, 20, "5", "routine screening")  # BI-RADS 5 below 50 %: its parts disagree
    window.open_exam(folders["b"])
    box = window.pending_amendment_box
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.button(QMessageBox.StandardButton.Save).click()
    with qtbot.waitSignal(window.examShown, timeout=30_000):
        answer(qtbot, window, QMessageBox.StandardButton.Yes)
    assert window.exam.source == folders["b"]
    store.submit(lambda db: None).result()
    assert store.load_reads(key_a, "reader")["R"].amendment.birads == "5"


def test_commit_with_no_exam_open_says_so(qtbot, store):
    window = MainWindow(AppSettings(), store)
    qtbot.addWidget(window)
    window.scores.reader.inputs["R"].spin.setValue(40)
    assert not window.commit_estimate()
    assert "No exam is open" in window.scores.reader.saved_label.text()


def test_a_read_the_store_refuses_shows_the_committed_read_it_holds(qtbot, store, tmp_path, stub_model):
    """Another window of the same reader committed this exam first: this window's commit is refused by the
    store, and the window then shows the stored read (it went on as committed with the refused one, and its
    hybrid and reports used it)."""
    from app.study.store import BreastRead  # noqa: PLC0415

    folder = one_view_exams(tmp_path, "a")["a"]
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=True)
    store.save_reads(window.exam_key, window._reader(), [  # noqa: SLF001
        BreastRead("R", 0.8, birads="4C", committed=True, recommendation="biopsy")]).result()  # the other window's commit
    set_read(window, 20, "2", "routine screening")
    window.commit_estimate()
    qtbot.waitUntil(lambda: "stored already" in window.scores.reader.saved_label.text(), timeout=10_000)
    assert window.committed and window.scores.reader.value("R") == 0.8
    assert window.scores.reader.hybrid_value("R") == 0.8 and not window.model_hidden()
    assert store.load_reads(window.exam_key, window._reader())["R"].malignant == 0.8  # noqa: SLF001


def test_another_reader_named_in_preferences_gets_the_exam_on_screen_with_their_own_reads(qtbot, store, tmp_path,
                                                                                           stub_model):
    import dataclasses  # noqa: PLC0415

    folder = one_view_exams(tmp_path, "a")["a"]
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=True, reader_name="dr A")
    set_read(window, 70, "4C", "biopsy")
    assert window.commit_estimate() and not window.model_hidden()
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        window.apply_settings(dataclasses.replace(window.settings, reader_name="dr B"))
    assert window.scores.reader.inputs["R"].spin.value() == -1 and not window.committed and window.model_hidden()


def test_a_reader_change_waiting_on_the_pending_change_applies_the_other_preferences_now(qtbot, store, tmp_path,
                                                                                          stub_model):
    """Asked to record the previous reader's change first, "Stay" threw away every preference of the dialog."""
    import dataclasses  # noqa: PLC0415

    folder = one_view_exams(tmp_path, "a")["a"]
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=True, reader_name="dr A")
    set_read(window, 20, "2", "routine screening")
    assert window.commit_estimate()
    window.scores.reader.inputs["R"].spin.setValue(25)  # changed after the commit, not recorded
    window.apply_settings(dataclasses.replace(window.settings, reader_name="dr B", prefetch_exams=5))
    box = window.pending_amendment_box
    qtbot.waitUntil(lambda: box.isVisible(), timeout=5000)
    assert window.settings.prefetch_exams == 5 and window._reader() == "dr A"  # noqa: SLF001
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        box.button(QMessageBox.StandardButton.Discard).click()
    assert window._reader() == "dr B" and window.scores.reader.inputs["R"].spin.value() == -1  # noqa: SLF001


def test_a_reader_change_cancelled_at_the_question_says_the_reader_stays(qtbot, store, tmp_path, stub_model):
    """A radiologist's test: Cancel in "Record your change?" left "the reader becomes dr B once the question …
    is answered" on the status line for 15 s, while the reader stayed dr A."""
    import dataclasses  # noqa: PLC0415

    folder = one_view_exams(tmp_path, "a")["a"]
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=True, reader_name="dr A")
    commit_read(qtbot, window, 20, "2", "routine screening")
    window.scores.reader.inputs["R"].spin.setValue(25)
    window.apply_settings(dataclasses.replace(window.settings, reader_name="dr B"))
    box = window.pending_amendment_box
    qtbot.waitUntil(box.isVisible, timeout=5000)
    assert window.statusBar().currentMessage().startswith("the reader becomes dr B")
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window._reader() == "dr A"  # noqa: SLF001
    assert window.statusBar().currentMessage().startswith("the reader stays dr A")
    assert window.scores.reader.inputs["R"].spin.value() == 25


def test_a_reader_change_while_the_exam_loads_loads_it_for_the_new_reader(qtbot, store, tmp_path, stub_model,
                                                                          monkeypatch):
    """The load started for the previous reader landed with that reader's committed read and the model shown."""
    import dataclasses  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from app.study.store import BreastRead  # noqa: PLC0415
    from app.ui.workstation import exam_control  # noqa: PLC0415

    folder = one_view_exams(tmp_path, "a")["a"]
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=True, reader_name="dr A")
    store.save_reads(window.exam_key, "dr A", [BreastRead("R", 0.7, birads="4A", committed=True)]).result()
    gate, real = threading.Event(), exam_control.load_exam_task
    monkeypatch.setattr(exam_control, "load_exam_task", lambda *a, **k: gate.wait(30) and real(*a, **k))
    window.open_exam(folder)  # dr A's load, held
    window.apply_settings(dataclasses.replace(window.settings, reader_name="dr B"))
    gate.set()
    qtbot.waitUntil(lambda: window.exam is not None, timeout=60_000)
    qtbot.wait(300)  # the first load's late result, if any, would land now
    assert window.scores.reader.inputs["R"].spin.value() == -1 and not window.committed and window.model_hidden()


def test_a_mark_of_the_committed_read_is_final_and_a_mark_after_ai_is_one(qtbot, store, tmp_path, stub_model):
    """A radiologist's test: Shift+K after the commit deleted a mark of the committed blind read from the store
    and the report, and every change re-stamped every mark, so a mark made after the model was shown could not be
    told from one made blind."""
    import sqlite3

    from app.study.store import ReaderMark

    window = analysed_window(qtbot, store, one_view_exams(tmp_path, "e")["e"], stub_model, blind_first=True)
    blind = ReaderMark("R-CC", 700.0, 500.0, "mass", 4)
    window.add_mark(View.R_CC, 700.0, 500.0, blind)
    commit_read(qtbot, window, 80, "4C", "biopsy")
    stored = lambda: store.read("SELECT label, after_ai, created_at FROM exam_marks ORDER BY mark_id")  # noqa: E731
    store.submit(lambda db: None).result()
    (before,) = stored()
    window.reading.remove_last_mark()  # Shift+K on the committed read's mark: refused, said
    assert window.marks == [blind] and "final" in window.statusBar().currentMessage()
    window.add_mark(View.R_CC, 600.0, 400.0, ReaderMark("R-CC", 600.0, 400.0, "asymmetry", 2))
    assert window.marks[-1].after_ai and "after AI" in window.hanging.views[View.R_CC]._marks[-1].label.toPlainText()
    store.submit(lambda db: None).result()
    assert stored()[0] == before and stored()[1][:2] == ("asymmetry", 1)  # the blind mark keeps its time
    window.reading.remove_last_mark()  # a mark after AI can be taken back
    store.submit(lambda db: None).result()
    assert window.marks == [blind] and stored() == [before]
    with pytest.raises(sqlite3.IntegrityError, match="a mark of a committed read is final"):  # nor by SQL
        store.submit(lambda db: db.execute("DELETE FROM exam_marks")).result()
    window.add_mark(View.R_CC, 600.0, 400.0, ReaderMark("R-CC", 600.0, 400.0, "asymmetry", 2))
    report = window.exports.report_input(False)  # the export says which mark was made when
    assert [(m.label, m.after_ai) for m in report.marks] == [("mass", False), ("asymmetry", True)]


def test_a_stale_window_cannot_change_the_committed_reads_marks_and_is_shown_the_stores(qtbot, store, tmp_path,
                                                                                          stub_model):
    """A review: a second window on the exam, opened before the first committed, stored nothing of a different
    blind mark of the same count and showed and exported it as "before AI"; its Shift+K took the committed
    read's mark off its screen and export, the store's refusal said nowhere. And with blind-first off, marks made
    with the model on screen were "before AI"."""
    from app.study.store import ReaderMark

    folder, open_folder = one_view_exams(tmp_path, "ab").values()
    first = analysed_window(qtbot, store, folder, stub_model, blind_first=True)
    mass = ReaderMark("R-CC", 700.0, 500.0, "mass", 4)
    first.add_mark(View.R_CC, 700.0, 500.0, mass)
    store.submit(lambda db: None).result()
    second = analysed_window(qtbot, store, folder, stub_model, blind_first=True)  # opened before the commit
    assert second.marks == [mass]
    commit_read(qtbot, first, 80, "4C", "biopsy")
    stored = lambda: store.read("SELECT label, after_ai FROM exam_marks ORDER BY mark_id")  # noqa: E731
    second.reading.remove_last_mark()  # stale: it does not know the read is committed
    qtbot.waitUntil(lambda: second.committed, timeout=10_000)  # refused, and the store's read and marks shown
    assert second.marks == [mass] and stored() == [("mass", 0)]
    assert "NOT saved" in second.scores.reader.saved_label.text()
    second.marks[:] = [ReaderMark("R-CC", 600.0, 400.0, "calcifications", 3)]  # a different blind mark, as many
    second.reading._marks_changed()
    qtbot.waitUntil(lambda: second.marks == [mass], timeout=10_000)  # refused by the store, the store's shown
    assert stored() == [("mass", 0)]
    shown = analysed_window(qtbot, store, open_folder, stub_model, blind_first=False)  # the model on screen
    shown.add_mark(View.R_CC, 600.0, 400.0, ReaderMark("R-CC", 600.0, 400.0, "mass", 3))
    assert shown.marks[-1].after_ai


def test_a_committed_read_stays_shown_when_a_retake_of_the_study_arrives(qtbot, store, tmp_path, stub_model):
    """Reads were keyed by the exam's images alone: an R-MLO retake that came after the commit hid the committed
    read (an empty form, the model hidden again) and let a second "first" read be committed beside it."""
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    folder = tmp_path / "study"
    folder.mkdir()
    for view in ("R-CC", "R-MLO"):
        write(make_dataset(sample_pixels(view), view, AcquisitionDateTime="20260101090000"), folder, f"{view}.dcm")
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=True)
    window.scores.reader.inputs["R"].spin.setValue(30)
    assert window.commit_estimate() and not window.model_hidden()
    key = window.exam_key
    write(make_dataset(sample_pixels("R-MLO")[:, :-8].copy(), "R-MLO", AcquisitionDateTime="20260101093000"),
          folder, "R-MLO_retake.dcm")
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(folder)
    assert window.exam.views[View.R_MLO].source.name == "R-MLO_retake.dcm"  # the later image is analysed
    assert window.exam_key == key and window.committed and not window.model_hidden()
    assert window.scores.reader.value("R") == 0.3
    (note,) = [n for n in window.exam.warnings if "made on another set of its images" in n]
    assert "(R-MLO: another image now" in note and "committed" in note
    reused = tmp_path / "reused_uids"  # the study's UID on other images only (a device reusing UIDs): no read
    reused.mkdir()
    for view in ("R-CC", "R-MLO"):
        write(make_dataset(sample_pixels(view)[:-8].copy(), view), reused, f"{view}.dcm")
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(reused)
    assert window.exam_key != key and not window.committed and window.model_hidden()
    other = tmp_path / "other_study"  # another study of the patient: its own read
    other.mkdir()
    for view in ("R-CC", "R-MLO"):
        write(make_dataset(sample_pixels(view), view, StudyInstanceUID="1.2.826.0.1.99.7"), other, f"{view}.dcm")
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(other)
    assert window.exam_key != key and not window.committed and window.model_hidden()


def test_a_box_emptied_after_the_commit_is_no_amendment(qtbot, store, tmp_path, stub_model):
    """Found in review: with the empty box now no answer, Ctrl+Enter recorded an amendment with no probability."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    commit_read(qtbot, window, 40, "3", "short-interval follow-up")
    window.scores.reader.inputs["R"].spin.lineEdit().setText("")  # emptied, to be retyped
    assert window.scores.reader.value("R") is None
    assert not window.commit_estimate()
    assert window.scores.reader.saved_label.text().startswith("Not recorded: give a probability of malignancy for "
                                                              "the right breast")
    assert store.read("SELECT COUNT(*) FROM exam_read_amendments") == [(0,)]


def test_a_benign_box_emptied_after_the_commit_takes_no_answer_away(qtbot, store, tmp_path, stub_model):
    """A re-test: the benign box emptied to be retyped after the commit, Ctrl+Enter recorded an amendment to "no
    benign answer" without a word (the malignant box's emptying was refused)."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    set_read(window, 40, "3", "short-interval follow-up")
    window.scores.reader.inputs["R"].benign.setValue(10)
    assert window.commit_estimate()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed"), timeout=10_000)
    window.scores.reader.inputs["R"].spin.setValue(5)  # a change, and the benign box emptied to be retyped
    window.scores.reader.inputs["R"].benign.lineEdit().setText("")
    assert not window.commit_estimate()
    assert window.scores.reader.saved_label.text().startswith("Not recorded: give a benign probability for the "
                                                              "right breast")
    assert store.read("SELECT COUNT(*) FROM exam_read_amendments") == [(0,)]
    window.scores.reader.inputs["R"].benign.setValue(0)  # 0 % is an answer
    assert window.commit_estimate()


def test_a_number_past_100_in_the_box_is_not_committed(qtbot, store, tmp_path, stub_model):
    """Typed "150": the box showed "15 %" (Qt refused the last digit) and that was committed. Now the box shows
    "150 %", nothing behind it holds 15 (Qt sent 15 on the way), and the commit refuses it, naming the breast;
    also when the Commit button is clicked, which takes the focus (and clears the box) before it commits."""
    from PySide6.QtCore import Qt  # noqa: PLC0415

    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    reader = window.scores.reader
    spin = reader.inputs["R"].spin
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "150")
    assert spin.text() == "150 %" and reader.value("R") is None and reader.inputs["R"].slider.value() == 0
    assert window.scores.compare.item(0, 1).text() == "—"  # the comparison holds no 15 % either
    qtbot.mouseClick(reader.commit_button, Qt.MouseButton.LeftButton)
    assert not window.committed
    assert reader.saved_label.text() == (
        "Not committed: Right breast, malignant: 150 % is not a whole percentage from 0 to 100. Correct it, then commit.")
    qtbot.wait(600)  # the draft saved meanwhile does not hide the refusal
    assert "Right breast, malignant: 150 %: not a whole percentage from 0 to 100, not taken." in reader.saved_label.text() \
        or reader.saved_label.text().startswith("Not committed")
    assert store.read("SELECT COUNT(*) FROM exam_reads WHERE committed = 1") == [(0,)]
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "15")  # corrected: committed as typed
    assert window.commit_estimate() and reader.value("R") == pytest.approx(0.15)


def test_digits_typed_into_the_empty_box_or_on_its_slider_are_the_answer(qtbot, store, tmp_path, stub_model):
    """A radiologist at a desktop clicked into the "—" box and typed 30: nothing (the cursor after the dash, Qt
    refused "—3"), and Tab lost it; and a 5 typed while the slider had the focus (Tab went recommendation →
    slider → box) switched the layout instead. Tab now goes from box to box, and digits are the answer."""
    from PySide6.QtCore import Qt  # noqa: PLC0415
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415

    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    window.activateWindow()
    reader = window.scores.reader
    right, left = reader.inputs["R"], reader.inputs["L"]
    right.spin.setFocus(Qt.FocusReason.MouseFocusReason)
    right.spin.lineEdit().setCursorPosition(len(right.spin.text()))  # where a click leaves it: after the "—"
    qtbot.keyClicks(right.spin, "30")
    assert right.spin.answer() == 30 and reader.value("R") == pytest.approx(0.30)

    right.recommendation.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.keyClick(right.recommendation, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is left.spin  # the slider is no stop on the way

    layout = window.hanging.layout_mode
    left.slider.setFocus(Qt.FocusReason.MouseFocusReason)  # clicked (its value aside)
    qtbot.keyClick(left.slider, Qt.Key.Key_5)
    assert left.spin.answer() == 5 and QApplication.focusWidget() is left.spin
    qtbot.keyClick(left.spin, Qt.Key.Key_0)
    assert left.spin.answer() == 50
    assert window.hanging.layout_mode == layout and not window.statusBar().currentMessage().startswith("layout:")


def test_a_second_ctrl_enter_keeps_the_commit_confirmation_said(qtbot, store, tmp_path, stub_model):
    """Ctrl+Enter pressed twice replaced "committed: this read is final" with "Nothing changed since your commit."
    alone: the reader no longer saw that the read was committed."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    commit_read(qtbot, window, 40, "", "")
    assert not window.commit_estimate()
    said = window.scores.reader.saved_label.text()
    assert said.startswith("Nothing changed since your commit") and "committed: this read is final" in said


def test_the_commit_keeps_the_form_and_its_confirmation_in_sight_on_a_small_screen(qtbot, store, tmp_path,
                                                                                   stub_model):
    """At 1280 × 800 the models' box that the commit reveals above the form pushed the form and "committed: this
    read is final" below the fold: the reader could not see that the commit had worked."""
    from PySide6.QtCore import QPoint  # noqa: PLC0415

    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    window.resize(1280, 560)
    qtbot.wait(100)
    set_read(window, 40, "", "")
    assert window.commit_estimate()
    label, viewport = window.scores.reader.saved_label, window.scores_scroll.viewport()

    def in_sight() -> bool:
        top = label.mapTo(viewport, QPoint(0, 0)).y()
        return label.text().startswith("committed") and 0 <= top and top + label.height() <= viewport.height()

    qtbot.waitUntil(in_sight, timeout=5_000)
    assert window.scores.model_box.isVisible()


def test_a_letter_typed_in_a_percentage_is_said_not_taken(qtbot, store, tmp_path, stub_model):
    """A reader typed "4o" for 40: Qt dropped the "o" without a sign, the box showed "4 %" and 4 % was committed
    (seen in a reader study on X). The letter is said not taken, beside the box, and the box shows what was typed,
    no answer ("1e2" had stood as "12 %" after the letter's line, and was committed so: a coordinator's re-test)."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    window.activateWindow()
    reader = window.scores.reader
    spin = reader.inputs["R"].spin
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "4o")
    assert spin.text() == "4o %" and spin.answer() is None and reader.value("R") is None
    assert reader.saved_label.text() == ('Right breast, malignant: the letter "o" is not a whole percentage from 0 to 100; '
                                         "not taken.")


def test_a_first_read_made_with_the_model_on_screen_is_never_called_before_ai(qtbot, store, tmp_path, stub_model):
    """Blind reading off: the model's table was on screen while the reader gave 10 %, and the panel, the PDF and
    the JSON called that read "before AI" (a radiologist's hands-on test). It is recorded as read with the AI
    shown, said so everywhere, and the hybrid is said not to be of two independent opinions. A draft and a
    committed read no longer both say "saved"."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    assert not window.model_hidden() and window.result is not None
    set_read(window, 10, "2", "routine screening")
    window.reading.save_reads(committed=False)
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text() == "draft saved (not committed)", timeout=10_000)
    assert window.commit_estimate()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed: this read is final"),
                    timeout=10_000)
    assert store.read("SELECT ai_shown FROM exam_reads WHERE breast = 'R'") == [(1,)]
    window.scores.reader.inputs["R"].spin.setValue(40)
    assert window.commit_estimate()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("saved as amended"), timeout=10_000)
    text = window.scores.reader.amendment_label.text()
    assert "Right breast: first read (AI shown) 10 % → amended 40 % (amended at " in text and "before AI" not in text
    assert "Right breast: read with the AI shown; the hybrid is not of two independent opinions." in text
    worker = window.export(str(tmp_path / "out"), ["pdf", "json"], deidentify=False)
    with qtbot.waitSignal(worker.result, timeout=60_000) as blocker:
        pass
    data = json.loads(next(p for p in blocker.args[0].paths if p.suffix == ".json").read_text())
    right = data["reads"]["R"]
    assert right["read_with_ai_shown"] is True and right["reader_malignant"] == pytest.approx(0.10)
    assert right["hybrid_note"].endswith("the hybrid is not of two independent opinions")
    assert right["amended_after_ai"]["text"] == "first read (AI shown) 10 % → amended 40 %"
    from tests.report.test_report import pdf_text

    pdf = " ".join(pdf_text(next(p for p in blocker.args[0].paths if p.suffix == ".pdf")).split())
    assert "first read (AI shown) 10 % → amended 40 %" in pdf and "before AI" not in pdf
    assert "the hybrid is not of two independent opinions" in pdf
    window.close()  # opened again: the store says how the read was made
    again = analysed_window(qtbot, store, tmp_path / "exam", stub_model, blind_first=False)
    assert "first read (AI shown) 10 % → amended 40 %" in again.scores.reader.amendment_label.text()


def test_a_read_made_after_blind_reading_was_turned_off_and_on_again_is_recorded_with_the_ai_shown(
        qtbot, store, tmp_path, stub_model):
    """Blind reading unticked in Preferences mid-read showed the model; ticked again before the commit, the read
    was stored as an independent first read (ai_shown 0; a radiologist's hands-on test). It is stored as read
    with the AI shown, and turning blind reading off says so."""
    import dataclasses

    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    assert window.model_hidden() and window.result is not None
    set_read(window, 25, "3", "routine screening")
    window.apply_settings(dataclasses.replace(window.settings, blind_first=False))
    assert not window.model_hidden()
    assert "recorded as read with the AI shown" in window.statusBar().currentMessage()
    window.apply_settings(dataclasses.replace(window.settings, blind_first=True))
    assert window.model_hidden()
    assert window.commit_estimate()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed: this read is final"),
                    timeout=10_000)
    assert store.read("SELECT ai_shown FROM exam_reads WHERE breast = 'R'") == [(1,)]
    assert "Right breast: read with the AI shown" in window.scores.reader.amendment_label.text()


def test_a_model_seen_before_leaving_the_exam_still_counts_when_it_is_committed_later_and_no_other_exam_s(
        qtbot, store, tmp_path, stub_model):
    """What was seen lived in the window only: the model shown on exam a (blind reading off), a draft saved, exam
    b opened, blind reading on again, a committed "before AI" read (a review). The draft keeps it; exam b, read
    blind, is stored as such."""
    import dataclasses

    folders = one_view_exams(tmp_path, "ab")
    window = analysed_window(qtbot, store, folders["a"], stub_model, blind_first=True)
    key_a = window.exam_key
    window.apply_settings(dataclasses.replace(window.settings, blind_first=False))  # the model shown on a
    set_read(window, 25, "3", "routine screening")
    window.reading.save_reads(committed=False)
    store.submit(lambda db: None).result()
    window.apply_settings(dataclasses.replace(window.settings, blind_first=True))
    with qtbot.waitSignal(window.analysisFinished, timeout=60_000):
        window.open_exam(folders["b"])
    assert window.model_hidden() and not window.reading.seen_breasts
    set_read(window, 10, "2", "routine screening")
    assert window.commit_estimate()  # read blind
    store.submit(lambda db: None).result()
    key_b = window.exam_key
    with qtbot.waitSignal(window.analysisFinished, timeout=60_000):
        window.open_exam(folders["a"])
    assert window.exam_key == key_a and window.model_hidden()
    assert window.commit_estimate()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed: this read is final"),
                    timeout=10_000)
    shown = dict(store.read("SELECT exam_key, ai_shown FROM exam_reads WHERE breast = 'R'"))
    assert shown == {key_a: 1, key_b: 0}


def test_a_read_with_a_breast_left_blank_is_not_committed_with_blind_reading_off_either(qtbot, store, tmp_path,
                                                                                      stub_model):
    """Blind reading off, only the right breast given: the read was committed as final and the exam counted as
    read, its left breast never assessed (a radiologist's hands-on test). Refused as with blind reading on."""
    folder = tmp_path / "both"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (600, 400)))
    window = analysed_window(qtbot, store, folder, stub_model, blind_first=False)
    set_read(window, 10, "2", "routine screening")
    assert not window.commit_estimate() and not window.committed
    refusal = "Not committed: give a probability of malignancy for the left breast first (0 % is an answer: set it)."
    assert window.scores.reader.saved_label.text() == refusal
    assert store.read("SELECT COUNT(*) FROM exam_reads WHERE committed = 1") == [(0,)]
    # the draft's delayed save said "draft saved" over it, and the reader never saw why (a hands-on review)
    qtbot.waitUntil(lambda: "draft saved" in window.scores.reader.saved_label.text(), timeout=10_000)
    assert window.scores.reader.saved_label.text().startswith(refusal)
    window.scores.reader.inputs["L"].spin.setValue(0)  # 0 % is an answer: the refusal no longer holds
    assert refusal not in window.scores.reader.saved_label.text()
    assert window.commit_estimate() and window.committed


def test_a_reopened_exam_says_whether_its_read_is_committed_by_whom_and_when_or_a_draft(qtbot, store, tmp_path,
                                                                                      stub_model):
    """Going back to a committed exam, or after a restart, showed the filled, editable form and an empty line
    under it; a draft restored after a crash said nothing either (a radiologist's hands-on test)."""
    from app.ui.workstation.reading_control import COMMITTED_TEXT

    folders = one_view_exams(tmp_path, "ab")
    window = analysed_window(qtbot, store, folders["a"], stub_model, blind_first=False)
    set_read(window, 20, "2", "routine screening")
    assert window.commit_estimate()
    window.open_exam(folders["b"])
    qtbot.waitUntil(lambda: window.exam is not None and window.exam.source == folders["b"], timeout=30_000)
    set_read(window, 40, "", "")
    window.reading.save_reads(committed=False)
    store.submit(lambda db: None).result()
    window.close()
    again = analysed_window(qtbot, store, folders["a"], stub_model, blind_first=False)
    line = again.scores.reader.saved_label.text()
    assert line.startswith(f"{COMMITTED_TEXT}; committed by reader at 20"), line  # the year: 20xx
    again.open_exam(folders["b"])
    qtbot.waitUntil(lambda: again.exam is not None and again.exam.source == folders["b"], timeout=30_000)
    assert again.scores.reader.saved_label.text() == "draft restored (not committed)"


def test_the_panel_names_the_breasts_right_before_left_however_the_store_gives_them(qtbot, store, tmp_path,
                                                                                  stub_model):
    """"Right breast and Left breast: read with the AI shown" after the commit, "Left breast and Right breast" after
    a restart (the store's order; a radiologist's re-test)."""
    from app.study.store import BreastRead

    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    reads = {side: BreastRead(side, 0.2, committed=True, ai_shown=True) for side in ("L", "R")}
    window.scores.reader.set_first_reads(reads)
    assert list(window.scores.reader.first_reads) == ["R", "L"]
    assert "Right breast and Left breast: read with the AI shown" in window.scores.reader.amendment_label.text()


def test_the_comparison_cell_of_an_amendment_of_the_assessment_alone_says_what_changed():
    """"80 % before AI / 80 % after AI" read as no change where the BI-RADS category had changed (a review)."""
    from app.reading import amendment_cell
    from app.study.store import BreastRead

    first = BreastRead("R", 0.8, birads="4B", committed=True,
                       amendment=BreastRead("R", 0.8, birads="4C", committed=True))
    assert amendment_cell(first) == "80 % before AI\n80 %, BI-RADS 4C after AI"
    moved = BreastRead("R", 0.8, birads="4B", committed=True, ai_shown=True,
                       amendment=BreastRead("R", 0.3, birads="4C", committed=True))
    assert amendment_cell(moved) == "80 % first read (AI shown)\n30 % amended"



def test_the_pdf_s_assessment_table_says_what_the_amendment_changed(qtbot, store, tmp_path, stub_model):
    """The PDF's "Reader's assessment" gave BI-RADS 4A alone under a reader line saying "→ after AI 60 %, BI-RADS
    4C": the table now says 4A → 4C after AI."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    commit_read(qtbot, window, 5, "4A", "additional imaging")
    set_read(window, 60, "4C", "biopsy")
    assert window.commit_estimate()
    qtbot.waitUntil(lambda: store.read("SELECT COUNT(*) FROM exam_read_amendments") == [(1,)], timeout=10_000)
    worker = window.export(str(tmp_path / "out"), ["pdf"], deidentify=False)
    with qtbot.waitSignal(worker.result, timeout=60_000) as blocker:
        pass
    from tests.report.test_report import pdf_text

    text = " ".join(pdf_text(next(p for p in blocker.args[0].paths if p.suffix == ".pdf")).split())
    assert "4A → 4C after AI" in text and "additional imaging → biopsy after AI" in text, text


def test_a_change_after_the_commit_survives_a_crash_until_recorded_or_discarded(qtbot, store, tmp_path, stub_model):
    """A radiologist changed a committed 10 % to 30 %, the app was killed before the change was recorded, and it
    was gone without a trace (only the drafts before a commit were kept)."""
    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    first = analysed_window(qtbot, store, folder, stub_model, blind_first=True)
    commit_read(qtbot, first, 10, "2", "routine screening")
    key, reader = first.exam_key, first._reader()
    first.scores.reader.inputs["R"].spin.setValue(30)
    qtbot.waitUntil(lambda: "R" in store.load_pending_change(key, reader), timeout=10_000)
    assert store.load_pending_change(key, reader)["R"].malignant == pytest.approx(0.30)
    assert store.load_reads(key, reader)["R"].malignant == pytest.approx(0.10)  # never a read of its own

    # the app "crashed": another window on the same store opens the exam again
    again = analysed_window(qtbot, store, folder, stub_model, blind_first=True)
    assert again.scores.reader.inputs["R"].spin.value() == 30
    assert "not recorded yet" in again.scores.reader.saved_label.text()
    assert "Kept from before the app stopped" in again.scores.reader.saved_label.text()
    assert again.reading.leave_or_ask(lambda: None) is False  # "Record your change?", as before the crash
    box = again.pending_amendment_box
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.button(QMessageBox.StandardButton.Save).click()  # recorded: an amendment, and nothing pending any more
    qtbot.waitUntil(lambda: bool(store.load_amendments(key, reader)), timeout=10_000)
    assert store.load_amendments(key, reader)[-1].malignant == pytest.approx(0.30)
    assert store.load_pending_change(key, reader) == {}

    # a change discarded is not kept either
    again.scores.reader.inputs["R"].spin.setValue(40)
    qtbot.waitUntil(lambda: "R" in store.load_pending_change(key, reader), timeout=10_000)
    assert again.reading.leave_or_ask(lambda: None) is False
    box = again.pending_amendment_box
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.button(QMessageBox.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: store.load_pending_change(key, reader) == {}, timeout=10_000)
    assert again.scores.reader.inputs["R"].spin.value() == 30
    first.scores.reader.set_reads(first.scores.reader.first_reads)  # the first window leaves nothing to ask


def test_dropping_a_refused_entry_over_a_committed_read_leaves_the_exam(qtbot, store, tmp_path, stub_model):
    """A review's finding: "2.5" typed over a committed 10 %, then Open: "Drop it" did nothing (the question was
    still on screen while its answer ran, and the leave that followed stopped at it), and the box's "—" was a
    change after the commit that could not be recorded."""
    folders = one_view_exams(tmp_path, "ab")
    window = analysed_window(qtbot, store, folders["a"], stub_model, blind_first=True)
    commit_read(qtbot, window, 10, "2", "routine screening")
    key = window.exam_key
    spin = window.scores.reader.inputs["R"].spin
    type_into(qtbot, window, spin, "2.5")
    window.open_exam(folders["b"])
    box = window.findChild(QMessageBox, "refusedEntryBox")
    qtbot.waitUntil(box.isVisible, timeout=5000)
    assert window.exam_key == key
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        box.button(QMessageBox.StandardButton.Discard).click()  # drop it: the 10 % is back, and the exam is left
    assert window.exam_key != key
    assert store.load_reads(key, window._reader())["R"].malignant == pytest.approx(0.10)
    assert store.load_pending_change(key, window._reader()) == {}


def test_a_navigation_key_pressed_again_in_the_question_never_moves_it_off_its_default(qtbot, store, tmp_path,
                                                                                       stub_model):
    """A radiologist's re-test: Ctrl+Left twice, then Return, discarded a change after the commit (the second
    Ctrl+Left moved the focus from Cancel to Discard inside "Record your change?")."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    commit_read(qtbot, window, 30, "2", "routine screening")
    window.scores.reader.inputs["R"].spin.setValue(40)
    assert window.reading.leave_or_ask(lambda: None) is False
    box = window.pending_amendment_box
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.activateWindow()
    box.button(QMessageBox.StandardButton.Cancel).setFocus()
    qtbot.waitUntil(lambda: box.button(QMessageBox.StandardButton.Cancel).hasFocus(), timeout=5000)
    for key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Left):
        QTest.keyClick(QApplication.focusWidget(), key, Qt.KeyboardModifier.ControlModifier)
        QTest.keyClick(QApplication.focusWidget(), key)
    assert box.button(QMessageBox.StandardButton.Cancel).hasFocus()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.scores.reader.inputs["R"].spin.value() == 40  # the change still there, still to record


def test_staying_to_correct_a_refused_entry_puts_it_back_in_its_box(qtbot, store, tmp_path, stub_model):
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    spin = window.scores.reader.inputs["R"].spin
    type_into(qtbot, window, spin, "2.5")
    spin.clearFocus()  # the box left: "—", the entry named under the form
    qtbot.waitUntil(lambda: spin.text() == "—", timeout=5000)
    assert window.reading.leave_or_ask(lambda: None) is False
    box = window.findChild(QMessageBox, "refusedEntryBox")
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: window.focusWidget() in (spin, spin.lineEdit()), timeout=5000)
    assert spin.past_range() == "2.5 %" and "2.5 %" in window.scores.reader.saved_label.text()


def test_switching_to_another_window_keeps_a_refused_entry_as_typed(qtbot, store, tmp_path, stub_model):
    """A radiologist's test: "2.5" typed, Alt+Tab to the worklist's mail and back: the box said "—", the entry
    gone from it (only a line under the form named it)."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QFocusEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    spin = window.scores.reader.inputs["R"].spin
    type_into(qtbot, window, spin, "2.5")
    QApplication.sendEvent(spin, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.ActiveWindowFocusReason))
    assert spin.text() == "2.5 %" and spin.past_range() == "2.5 %" and spin.answer() is None
    assert window.reading.leave_or_ask(lambda: None) is False  # still asked about before leaving
    QApplication.sendEvent(spin, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.TabFocusReason))
    assert spin.text() == "—" and spin.past_range() == "2.5 %"  # left for good: cleared, and named
    spin.setValue(10)  # an emptied box is no refused entry: left as on any leave, its "—" and slider agreeing
    spin.setFocus()
    spin.lineEdit().selectAll()
    QTest.keyClick(spin, Qt.Key.Key_Delete)
    QApplication.sendEvent(spin, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.ActiveWindowFocusReason))
    assert spin.text() == "—" and spin.value() == -1 and spin.answer() is None


def test_an_emptied_box_after_the_commit_is_no_pending_change_to_keep(qtbot, store, tmp_path, stub_model):
    """Kept across a kill, an emptied (or refused) box came back as "50 % → —", and "Record it" was refused."""
    window = right_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    commit_read(qtbot, window, 30, "2", "routine screening")
    key, reader = window.exam_key, window._reader()
    window.scores.reader.inputs["R"].spin.setValue(40)
    qtbot.waitUntil(lambda: "R" in store.load_pending_change(key, reader), timeout=10_000)
    window.scores.reader.inputs["R"].spin.setValue(-1)  # emptied: no answer
    qtbot.waitUntil(lambda: store.load_pending_change(key, reader) == {}, timeout=10_000)
    window.scores.reader.set_reads(window.scores.reader.first_reads)
