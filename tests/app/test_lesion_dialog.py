"""The coordinator draws a case's lesions on its views (issue 29, item 1): a click-drag from a centre to an edge
is a circle with a radius in mm from the pixel spacing, saved with the study off the GUI thread."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox

from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.lesions import drawn_lesions, stored_lesion_truth
from app.study.store import Store
from app.ui.study.lesion_dialog import LesionDialog
from tests.app.conftest import close_windows_then
from tests.study.test_lesion_sources import dicom_exam


@pytest.fixture
def study(tmp_path):
    store = Store(tmp_path / "study.sqlite")
    dicom_exam(tmp_path / "exam")
    case = CaseEntry("c1", str(tmp_path / "exam"), "malignant", "normal")
    study_id = create_study(store, "draw", Design.UNAIDED, ["A"], [case])
    yield store, study_id, case
    close_windows_then(store)


def _open(qtbot, store, study_id, case) -> LesionDialog:
    dialog = LesionDialog(store, study_id, case)
    qtbot.addWidget(dialog)
    dialog.resize(700, 900)
    dialog.show()
    qtbot.waitUntil(lambda: set(dialog.canvases) == {"L-CC", "L-MLO"}, timeout=30_000)
    return dialog


def test_a_drag_on_a_view_draws_a_circle_lesion_that_is_saved_with_the_study(qtbot, study):
    store, study_id, case = study
    dialog = _open(qtbot, store, study_id, case)
    canvas = dialog.canvases["L-CC"]
    qtbot.waitExposed(canvas)
    start, end = canvas.widget_point(300, 150), canvas.widget_point(300, 190)  # 40 pixels of 0.1 mm: 4 mm
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start.toPoint())
    QTest.mouseMove(canvas, QPoint(int(end.x()), int(end.y())))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end.toPoint())
    assert len(dialog.lesions) == 1
    drawn = dialog.lesions[0]
    step = canvas.case_view.step  # a widget pixel is a few image pixels: the drag lands within one of them
    assert drawn.view == "L-CC" and drawn.weight is None
    assert drawn.centre == pytest.approx((300, 150), abs=2 * step)
    assert drawn.radius_mm == pytest.approx(4.0, abs=0.3 * step)
    assert canvas.circles == [(drawn.centre, drawn.radius_mm)]
    assert "L-CC" in dialog.list.item(0).text()

    dialog.weight.setValue(2.0)  # the next lesion, by the dialog's add method in image pixels
    added = dialog.add_lesion("L-MLO", (320, 160), (320, 210))
    assert added.radius_mm == pytest.approx(5.0) and added.weight == 2.0
    dialog.list.setCurrentRow(0)
    dialog.remove_button.click()
    assert [l.view for l in dialog.lesions] == ["L-MLO"]
    dialog.add_lesion("L-CC", (300, 150), (330, 150))
    with qtbot.waitSignal(dialog.saved, timeout=30_000) as saved:
        dialog.save()
    assert saved.args == [2]
    stored = drawn_lesions(store, study_id, "c1")
    assert [(l.view, l.radius_mm) for l in stored] == [("L-MLO", pytest.approx(5.0)), ("L-CC", pytest.approx(3.0))]
    assert [l.weight for l in stored] == pytest.approx([0.5, 0.5])  # 2 and 2, scaled to sum to 1
    truth = stored_lesion_truth(store, study_id)
    assert [l.lesion_id for l in truth.lesions["c1"]] == ["D1", "D2"]


def test_reopening_shows_the_saved_lesions_and_a_bad_save_keeps_the_dialog_open(qtbot, study):
    store, study_id, case = study
    dialog = _open(qtbot, store, study_id, case)
    dialog.weight.setValue(1.0)
    dialog.add_lesion("L-CC", (300, 150), (300, 170))
    dialog.weight.setValue(0.0)  # "equal": no weight, beside a weighted lesion
    dialog.add_lesion("L-MLO", (320, 160), (320, 170))
    dialog.save()
    save_button = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    qtbot.waitUntil(lambda: save_button.isEnabled() and not dialog.worker.is_running(), timeout=30_000)
    assert dialog.isVisible() and not drawn_lesions(store, study_id, "c1")
    error_box = dialog.findChild(QMessageBox, "errorDialog")
    assert error_box is not None and "a positive weight for every lesion" in error_box.text()
    error_box.close()
    del dialog.lesions[1]
    with qtbot.waitSignal(dialog.saved, timeout=30_000):
        dialog.save()
    again = _open(qtbot, store, study_id, case)
    assert [(l.view, l.weight) for l in again.lesions] == [("L-CC", 1.0)]
    assert again.canvases["L-CC"].circles == [((300, 150), pytest.approx(2.0))]
