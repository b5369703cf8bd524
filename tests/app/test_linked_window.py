"""One window for the exam: the auto window from both breasts' tissue, computed in the load task; a right-drag
on one view moves all four (unless Preferences unlink them), by a step scaled to the image's range."""

from __future__ import annotations

import numpy as np
import pytest

from app.exam_window import DRAG_PIXELS_FOR_RANGE
from app.settings import AppSettings
from app.ui.workstation.main_window import MainWindow
from inference.intake.views import View
from tests.helpers import synthetic_view, write_png



def open_two_breasts(qtbot, store, folder, **settings) -> MainWindow:
    """R-CC and L-CC whose tissue lies at other grey levels (the left one darker), as on PNG exams."""
    right = synthetic_view("R-CC", (700, 500)).astype(np.uint16) * 16
    left = (synthetic_view("L-CC", (600, 300)).astype(np.float32) * 12).astype(np.uint16)
    write_png(folder / "0_R-CC.png", right)
    write_png(folder / "0_L-CC.png", left)
    window = MainWindow(AppSettings(auto_run=False, **settings), store, model_path="")
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        window.open_exam(folder)
    return window


def levels(window: MainWindow, view: View) -> tuple[float, float]:
    return tuple(round(float(v), 3) for v in window.hanging.views[view].image_item.getLevels())


def test_window_level_is_one_for_the_exam_and_linked_by_default(qtbot, store, tmp_path):
    window = open_two_breasts(qtbot, store, tmp_path)
    right, left = window.hanging.views[View.R_CC], window.hanging.views[View.L_CC]
    assert window.hanging.exam_window is not None  # computed by the load task, not on the GUI thread
    assert levels(window, View.R_CC) == levels(window, View.L_CC)  # one auto window from both breasts
    before = right.window.width
    right._on_window_drag(150.0, 0.0)  # a 150-pixel right-drag on the right breast
    assert levels(window, View.L_CC) == levels(window, View.R_CC)  # the left follows
    step = window.hanging.exam_window.value_range / DRAG_PIXELS_FOR_RANGE
    assert right.window.width == pytest.approx(before + 150 * step)
    assert left.window.name == "linked"
    # the drag moves through the image's range: 150 px is 15 % of it, not the 2x a width-relative drag made
    assert right.window.width - before <= 0.15 * window.hanging.exam_window.value_range + 1e-6


def test_preferences_unlink_the_window(qtbot, store, tmp_path):
    window = open_two_breasts(qtbot, store, tmp_path, link_window=False)
    assert levels(window, View.R_CC) != levels(window, View.L_CC)  # each view's own auto window
    left_before = levels(window, View.L_CC)
    window.hanging.views[View.R_CC]._on_window_drag(150.0, 0.0)
    assert levels(window, View.L_CC) == left_before


def test_a_view_whose_file_window_is_no_number_starts_every_view_on_the_exam_window(qtbot, store, tmp_path):
    """One view's WindowCenter is NaN (not used): had the others kept their file's window, the pair would be
    drawn under two windows, one breast looking denser. Every view starts on the exam's window; Reset too."""
    from pydicom import dcmread

    from inference.intake.phantom import generate_exam, write_dicom_exam

    files = write_dicom_exam(generate_exam(9301, shape=(320, 240)), tmp_path / "exam")
    broken = dcmread(files[0])
    broken.WindowCenter, broken.WindowWidth = "nan", "nan"
    broken.save_as(files[0])
    window = MainWindow(AppSettings(auto_run=False), store, model_path="")
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        window.open_exam(tmp_path / "exam")
    widgets = window.hanging.views.values()
    assert sum(1 for w in widgets if w.image.windows) == 3  # the three others have their file's window
    assert {w.window.name for w in widgets} == {"exam auto"}
    assert len({levels(window, view) for view in window.hanging.views}) == 1
    window.hanging.views[View.R_CC].cycle_preset()  # the reader may still pick a file's window
    window.hanging.reset()
    assert {w.window.name for w in widgets} == {"exam auto"}


def test_views_that_all_have_a_file_window_start_on_it(qtbot, store, tmp_path):
    from inference.intake.phantom import generate_exam, write_dicom_exam

    write_dicom_exam(generate_exam(9302, shape=(320, 240)), tmp_path / "exam")
    window = MainWindow(AppSettings(auto_run=False), store, model_path="")
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.examShown, timeout=60_000):
        window.open_exam(tmp_path / "exam")
    assert {w.window.name for w in window.hanging.views.values()} == {"STANDARD"}
