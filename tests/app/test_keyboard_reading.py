"""Reading an exam from the keyboard: a list box chooses by typing (no view key fires), Tab leaves the tables,
+ and - zoom, the commit hands the keys back to the views, W says when there is no window preset, and the regions'
rule is hidden with the model. Found by a radiologist driving the window by keys on a real X server."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.ui.workstation.hanging import Layout
from inference.intake.views import View
from tests.app.test_main_window import analysed_r_cc_window


def _focus(qtbot, widget) -> None:
    widget.window().activateWindow()
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=5000)


def test_typing_into_a_list_box_chooses_and_fires_no_view_key(qtbot, store, tmp_path, stub_model):
    """Typing 4 into BI-RADS switched the layout to "right CC + MLO" and chose nothing; b in the density box
    turned the benign map off; Space on a list box was swallowed."""
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    inputs = window.scores.reader.inputs["R"]
    benign_before = window.overlay_control.overlay_options()
    _focus(qtbot, inputs.birads)
    QTest.keyClick(inputs.birads, Qt.Key.Key_4)
    QTest.keyClick(inputs.birads, Qt.Key.Key_B)  # 4 then B, quickly: 4B
    assert inputs.birads.currentText() == "4B"
    assert window.hanging.layout_mode == Layout.FOUR
    _focus(qtbot, inputs.density)
    QTest.keyClick(inputs.density, Qt.Key.Key_D)
    assert inputs.density.currentText() == "d" and not window.ruler_action.isChecked()
    _focus(qtbot, inputs.recommendation)
    QTest.keyClick(inputs.recommendation, Qt.Key.Key_B)
    assert inputs.recommendation.currentText() == "biopsy"
    assert window.overlay_control.overlay_options() == benign_before  # B (benign map) did not fire
    steps_before = window.hanging_steps.cursor.index
    QTest.keyClick(inputs.recommendation, Qt.Key.Key_Space)  # opens the list, not the next hanging step
    assert window.hanging_steps.cursor.index == steps_before
    qtbot.waitUntil(lambda: inputs.recommendation.view().isVisible(), timeout=5000)
    inputs.recommendation.hidePopup()
    # a typed capital is typing too; a command key still reaches the window from a list box
    QTest.qWait(QApplication.keyboardInputInterval() + 100)  # a new search, not "d" then "A"
    _focus(qtbot, inputs.density)
    QTest.keyClick(inputs.density, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    assert inputs.density.currentText() == "a" and window.hanging.layout_mode == Layout.FOUR
    run = window.findChild(type(window.ruler_action), "runAnalysis")
    _focus(qtbot, inputs.recommendation)
    with qtbot.waitSignal(run.triggered, timeout=5000):
        QTest.keyClick(inputs.recommendation, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    window.close()


def test_tab_leaves_the_tables_for_the_form(qtbot, store, tmp_path, stub_model):
    """Tab, Shift+Tab and Ctrl+Tab went round the reader | model | hybrid table's cells for ever, and the
    worklist's likewise: the reader's form could not be reached without the mouse."""
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    table = window.scores.compare
    _focus(qtbot, table)
    QTest.keyClick(table, Qt.Key.Key_Tab)
    assert not table.hasFocus()
    assert not window.worklist.panel.table.tabKeyNavigation()
    assert not any(t.tabKeyNavigation() for t in window.scores.model_tables.values())
    window.close()


def test_plus_and_minus_zoom_every_view_and_the_views_are_off_the_tab_chain(qtbot, store, tmp_path, stub_model):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    widget = window.hanging.views[View.R_CC]
    assert widget.graphics.focusPolicy() == Qt.FocusPolicy.ClickFocus
    before = widget.zoom_factor()
    window.findChild(type(window.ruler_action), "zoomIn").trigger()
    assert widget.zoom_factor() == pytest.approx(1.25 * before, rel=0.02)
    QTest.keyClick(window.hanging, Qt.Key.Key_Minus)
    assert widget.zoom_factor() == pytest.approx(before, rel=0.02)
    QTest.keyClick(window.hanging, Qt.Key.Key_Equal)  # + without Shift
    assert widget.zoom_factor() == pytest.approx(1.25 * before, rel=0.02)
    # about the chest wall: the breast hanging against it stays on screen (about the pane's centre, both CC
    # views were black at 0.34×)
    def wall_at() -> float:
        (x0, x1), _ = widget.item_range()
        return (widget.chest_wall_x() - x0) / (x1 - x0)

    at = wall_at()
    for _ in range(3):
        widget.zoom_by(1.25)
    assert wall_at() == pytest.approx(at, abs=1e-6)
    # a % box leaves + and - to the window (a percentage is never signed)
    spin = window.scores.reader.inputs["R"].spin
    _focus(qtbot, spin)
    zoomed = widget.zoom_factor()
    QTest.keyClick(spin, Qt.Key.Key_Minus)
    assert widget.zoom_factor() == pytest.approx(zoomed / 1.25, rel=0.02) and spin.lineEdit().text() in ("", "—")
    window.close()


def test_the_commit_hands_the_keys_back_to_the_views(qtbot, store, tmp_path, stub_model):
    """After Ctrl+Enter the cursor stayed in the % box: H, the key the form names to show the maps, was typed
    into it ("the letter h is not a percentage")."""
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    assert not window.regions_note_action.isVisible()  # the rule of the model's regions is the model's: hidden
    spin = window.scores.reader.inputs["R"].spin
    _focus(qtbot, spin)
    QTest.keyClicks(spin, "30")
    QTest.keyClick(spin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.committed, timeout=5000)
    assert not window.scores.reader.isAncestorOf(QApplication.focusWidget())
    assert window.regions_note_action.isVisible()
    shown = window.overlays_box.isChecked()
    QTest.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_H)
    assert window.overlays_box.isChecked() != shown and spin.lineEdit().text() == "30 %"
    window.close()


def test_after_commit_anyway_the_keys_go_to_the_views_too(qtbot, store, tmp_path, stub_model):
    """A re-test: through "Commit anyway?" the box gave the focus back to the % box as it closed, and H was typed
    into it."""
    from PySide6.QtWidgets import QMessageBox

    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    inputs = window.scores.reader.inputs["R"]
    inputs.birads.setCurrentText("4C")
    inputs.recommendation.setCurrentText("short-interval follow-up")
    _focus(qtbot, inputs.spin)
    QTest.keyClicks(inputs.spin, "40")
    QTest.keyClick(inputs.spin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.commit_anyway_box is not None and window.commit_anyway_box.isVisible())
    yes = window.commit_anyway_box.button(QMessageBox.StandardButton.Yes)
    window.commit_anyway_box.activateWindow()  # as a window manager does: the box has the keys
    yes.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is yes, timeout=5000)
    yes.click()
    assert window.committed
    # what the window gives the focus back to once the box has gone: the images, not the % box
    assert window.focusWidget() is window.hanging
    window.close()


def test_w_on_images_without_a_window_preset_says_so(qtbot, store, tmp_path, stub_model):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    window.findChild(type(window.ruler_action), "nextWindow").trigger()
    assert "no DICOM window presets" in window.statusBar().currentMessage()
    window.close()


def test_help_opens_the_user_guide_read_off_the_gui_thread(qtbot, store, tmp_path):
    """Help had the shortcuts and About only, and Preferences pointed at "docs/workstation.md", a file the user of
    the installed app cannot open."""
    from app.guide import PAGES, read_guide
    from tests.app.test_main_window import make_window

    window = make_window(qtbot, store)
    window.findChild(type(window.ruler_action), "userGuide").trigger()
    dialog = window.guide_dialog
    qtbot.waitUntil(lambda: dialog.pages.count() == len(PAGES), timeout=10_000)
    assert dialog.pages.item(0).text() == "The workstation"
    assert "screening hanging" in dialog.text.toPlainText() and "```" not in dialog.text.toPlainText()
    dialog.pages.setCurrentRow(PAGES.index("validation"))
    assert "validate" in dialog.text.toPlainText()
    dialog.text.anchorClicked.emit(QUrl("batch.md"))  # a page's link to another page opens it (it blanked the text)
    assert dialog.pages.currentRow() == PAGES.index("batch") and "batch" in dialog.text.toPlainText()
    # the command blocks wrap: a long command scrolled the whole page sideways, cut at the right
    qtbot.waitUntil(lambda: dialog.text.isVisible() and dialog.text.viewport().width() > 100, timeout=5000)
    QApplication.processEvents()
    assert dialog.text.horizontalScrollBar().maximum() == 0
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert read_guide(tmp_path) == []  # an installation without the pages: the dialog says so
    window.close()


def test_the_worklist_outlines_the_row_the_arrow_keys_are_on_while_it_has_the_focus(qtbot):
    """Rows are never selected (only the exam on screen is highlighted), and Qt's faint frame round one cell was
    all that showed which row Enter would open: a radiologist reading by keyboard lost it."""
    from PySide6.QtWidgets import QLineEdit, QVBoxLayout, QWidget

    from app.ui.workstation.worklist_panel import WorklistPanel
    from app.worklist import Worklist, WorklistItem

    holder = QWidget()
    panel, other = WorklistPanel(), QLineEdit()
    layout = QVBoxLayout(holder)
    layout.addWidget(panel)
    layout.addWidget(other)
    qtbot.addWidget(holder)
    worklist = Worklist.of_items([WorklistItem(f"exam{i}", f"/nowhere/{i}") for i in range(6)])
    worklist.current = 1
    panel.show_worklist(worklist)
    holder.resize(400, 400)
    holder.show()
    table = panel.table
    _focus(qtbot, table)
    table.setCurrentCell(1, 0)
    QTest.keyClick(table, Qt.Key.Key_Down)
    QTest.keyClick(table, Qt.Key.Key_Down)
    delegate = table.itemDelegate()
    assert table.currentRow() == 3 and delegate.outlined_row() == 3

    def edge_colours(row: int) -> set:
        image = table.viewport().grab().toImage()
        colours = set()
        for column in range(table.columnCount()):
            rect = table.visualRect(table.model().index(row, column))
            colours.add(image.pixelColor(rect.center().x(), rect.top() + 1).name())
        return colours

    highlight = table.palette().highlight().color().name()
    assert edge_colours(3) == {highlight}  # along the whole row
    assert highlight not in edge_colours(4)
    _focus(qtbot, other)  # the list without the focus: no outline (the arrow keys are elsewhere)
    assert delegate.outlined_row() == -1 and highlight not in edge_colours(3)
    holder.close()


def test_escape_in_an_answer_undoes_the_edit_and_never_cancels_the_analysis(qtbot, store, tmp_path, stub_model):
    """A radiologist's Esc in a percentage box, to undo what was typed, cancelled the AI analysis (the window's
    Esc), said only on the status line; the reader learnt it after the commit."""
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    cancel = window.findChild(type(window.ruler_action), "cancelAnalysis")
    fired = []
    cancel.triggered.connect(lambda: fired.append(True))
    inputs = window.scores.reader.inputs["R"]
    _focus(qtbot, inputs.spin)
    before = inputs.spin.value()
    QTest.keyClicks(inputs.spin, "45")
    QTest.keyClick(inputs.spin, Qt.Key.Key_Escape)
    assert inputs.spin.value() == before and not inputs.spin.hasFocus() and not fired
    _focus(qtbot, inputs.spin)
    QTest.keyClicks(inputs.spin, "2.5")  # refused text is undone too, and said nowhere as refused
    QTest.keyClick(inputs.spin, Qt.Key.Key_Escape)
    assert inputs.spin.value() == before and inputs.spin.past_range() is None and not fired
    _focus(qtbot, inputs.birads)
    QTest.keyClick(inputs.birads, Qt.Key.Key_3)
    QTest.keyClick(inputs.birads, Qt.Key.Key_Escape)
    assert inputs.birads.currentText() == "3" and not inputs.birads.hasFocus() and not fired
    view = window.hanging.views[View.R_CC]  # on the images, Esc is the window's again
    window.activateWindow()
    view.setFocus()
    qtbot.waitUntil(view.hasFocus, timeout=5000)
    with qtbot.waitSignal(cancel.triggered, timeout=5000):
        QTest.keyClick(view, Qt.Key.Key_Escape)
    window.close()


def test_the_estimate_form_stays_in_place_when_the_result_comes(qtbot, store, tmp_path, stub_model):
    """The models' tables sat above the form and grew when the result came: the form moved some 140 px down
    under a radiologist's click, which hit the tables, and the digit typed next switched the layout."""
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    panel = window.scores
    result = panel.result
    window.show()

    def form_at() -> int:
        QApplication.processEvents()
        return panel.reader.inputs["R"].spin.mapTo(panel, QPoint(0, 0)).y()

    with_result = form_at()
    panel.set_result(None)
    panel.set_status("Analysing … (2 of 4 views)\nmore notes\nand more")
    assert form_at() == with_result
    panel.set_result(result)
    assert form_at() == with_result
    assert panel.reader.geometry().bottom() < panel.model_box.geometry().top()
    window.close()


def test_leaving_with_a_refused_entry_asks_to_drop_it_or_stay(qtbot, store, tmp_path, stub_model):
    """A radiologist typed 2.5 (no whole percentage, refused), went to the next exam without a question ("draft
    saved" stood under the form), and came back to "—"; the study screen asks."""
    from PySide6.QtWidgets import QMessageBox

    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    spin = window.scores.reader.inputs["R"].spin
    _focus(qtbot, spin)
    QTest.keyClicks(spin, "2.5")
    left = []
    assert window.reading.leave_or_ask(lambda: left.append(True)) is False
    box = window.findChild(QMessageBox, "refusedEntryBox")
    assert box is not None and box.isVisible() and "Right breast, malignant: 2.5 %" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()  # stay and correct it
    assert not left and window.scores.reader.refused_entries()
    assert window.reading.leave_or_ask(lambda: left.append(True)) is False
    box = [b for b in window.findChildren(QMessageBox, "refusedEntryBox") if b.isVisible()][0]
    box.button(QMessageBox.StandardButton.Discard).click()  # drop it
    assert left == [True] and window.scores.reader.refused_entries() == []
    assert window.reading.leave_or_ask(lambda: None) is True  # nothing left to ask about
    window.close()


def test_a_cancel_says_whether_the_results_shown_are_an_earlier_analysis(qtbot, store, tmp_path, stub_model):
    """"Analysis cancelled" stood above a full table of scores: they were the exam's earlier analysis, unsaid."""
    from app.ui.workstation.analysis_control import CANCELLED_KEPT_TEXT, CANCELLED_TEXT

    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    window.analyses.say_cancelled()
    assert window.scores.model_status.text() == CANCELLED_KEPT_TEXT and window.scores.model_table is not None
    window.scores.set_result(None)
    window.analyses.say_cancelled()
    assert window.scores.model_status.text() == CANCELLED_TEXT
    window.close()


def test_t_hides_and_shows_the_study_lines_and_never_the_view_s_name(qtbot, store, tmp_path, stub_model):
    """At 1280 × 800 the date, accession and patient lines lay over breast tissue and a region's box, with no
    key to hide them (a radiologist's finding)."""
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    view = window.hanging.views[View.R_CC]
    toggle = window.findChild(type(window.ruler_action), "toggleCornerText")
    assert toggle.shortcut().toString() == "T" and view.corner.isVisible() and view.marker.isVisible()
    toggle.trigger()
    assert not view.corner.isVisible() and view.marker.isVisible()
    assert all(not w.corner_text_shown for w in window.hanging.views.values())
    window.resize(1300, 820)  # laid out again: still hidden
    QApplication.processEvents()
    assert not view.corner.isVisible()
    toggle.trigger()
    assert view.corner.isVisible() and view.marker.isVisible()
    window.close()


def test_e_goes_to_the_form_and_enter_goes_on_to_the_next_answer(qtbot, store, tmp_path, stub_model):
    """Tab from the images did not reach the form (a digit typed then switched the layout), and Enter in a box
    selected its text: "20", Enter, "3" answered 3 %."""
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=False)
    inputs = window.scores.reader.inputs["R"]
    view = window.hanging.views[View.R_CC]
    window.activateWindow()
    view.setFocus()
    qtbot.waitUntil(view.hasFocus, timeout=5000)
    QTest.keyClick(view, Qt.Key.Key_E)
    qtbot.waitUntil(inputs.spin.hasFocus, timeout=5000)
    QTest.keyClicks(inputs.spin, "20")
    QTest.keyClick(inputs.spin, Qt.Key.Key_Return)
    assert not inputs.spin.hasFocus() and inputs.spin.value() == 20
    QTest.keyClicks(QApplication.focusWidget(), "3")
    assert inputs.spin.value() == 20 and window.hanging.layout_mode == Layout.FOUR
    window.close()
