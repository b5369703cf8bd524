"""Hanging-protocol steps: the Qt-free sequence (JSON in and out, skipping a prior that is not there) and Space /
Shift+Space on the real window, with and without a prior, with a reader's own file and with a broken one."""

from __future__ import annotations

import json

import pytest

from app.hanging_steps import (
    DEFAULT_STEPS,
    HangingStepsError,
    Step,
    StepCursor,
    read_steps,
    steps_from_json,
    write_steps,
)
from tests.app.test_priors import write_exam

# ------------------------------------------------------------------------------------------------ no Qt


def test_default_sequence_is_priors_then_four_then_pairs_then_magnified():
    assert [(s.layout, s.exam, s.zoom) for s in DEFAULT_STEPS] == [
        ("prior-cc", "prior", "fit"), ("prior-mlo", "prior", "fit"), ("four", "current", "fit"),
        ("cc", "current", "fit"), ("mlo", "current", "fit"), ("cc", "current", "quadrant"),
        ("mlo", "current", "quadrant")]
    assert read_steps("") == DEFAULT_STEPS


def test_steps_written_are_read_back(tmp_path):
    steps = (Step("mlo", label="MLO first"), Step("prior-cc", "prior", "quadrant"))
    write_steps(tmp_path / "mine.json", steps)
    assert read_steps(tmp_path / "mine.json") == steps


@pytest.mark.parametrize("text, says", [
    ("[{\"layout\": \"four\"", "not valid JSON"),
    ("[]", "non-empty JSON list"),
    ("[{\"exam\": \"current\"}]", "step 1 is not an object with a \"layout\""),
    ("[{\"layout\": \"four\"}, {\"layout\": \"six up\"}]", "step 2: unknown layout 'six up'"),
    ("[{\"layout\": \"cc\", \"zoom\": \"huge\"}]", "step 1: unknown zoom 'huge'"),
    ("[{\"layout\": \"four\", \"exam\": \"prior\"}]", "step 1: the prior is shown only in the layouts"),
    ("[{\"layout\": \"four\", \"colour\": \"red\"}]", "step 1: unknown field(s) colour"),
])
def test_a_bad_file_says_what_is_wrong_and_names_the_file(tmp_path, text, says):
    path = tmp_path / "steps.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HangingStepsError) as raised:
        read_steps(path)
    assert says in str(raised.value) and str(path) in str(raised.value)


def test_a_missing_file_is_named():
    with pytest.raises(HangingStepsError, match="nowhere.json: the hanging-steps file cannot be read"):
        read_steps("/nowhere/nowhere.json")


def test_cursor_skips_steps_needing_a_prior_and_counts_them():
    cursor = StepCursor(steps_from_json(json.dumps([{"layout": "prior-cc", "exam": "prior"}, {"layout": "four"},
                                                    {"layout": "prior-mlo", "exam": "prior"}, {"layout": "cc"}])))
    assert cursor.move(True, has_prior=False) == (Step("four"), 1)
    assert cursor.move(True, has_prior=False) == (Step("cc"), 1)
    assert cursor.move(True, has_prior=False) == (None, 0)  # the end: stays on the last step
    assert cursor.move(False, has_prior=False) == (Step("four"), 1)
    assert cursor.move(False, has_prior=False) == (None, 1)
    assert cursor.move(True, has_prior=True) == (Step("prior-mlo", "prior"), 0)


# ------------------------------------------------------------------------------------------- the window


def _window(qtbot, settings):
    from app.ui.workstation.main_window import MainWindow

    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    return window


def _open(qtbot, window, folder, with_prior: bool):
    if with_prior:
        with qtbot.waitSignal(window.priorShown, timeout=60_000):
            window.open_exam(folder)
    else:
        with qtbot.waitSignal(window.examShown, timeout=60_000):
            window.open_exam(folder)
        qtbot.waitUntil(lambda: window.prior_worker is not None and not window.prior_worker.is_running(),
                        timeout=60_000)
        assert window.prior is None


def _space(qtbot, window, shift: bool = False):
    from PySide6.QtCore import Qt

    modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    with qtbot.waitSignal(window.hanging_steps.stepped, timeout=5000) as signal:
        qtbot.keyClick(window.hanging, Qt.Key.Key_Space, modifier)
    return signal.args[0]


def test_space_steps_through_the_default_sequence_in_order(qtbot, tmp_path):
    from app.settings import AppSettings
    from app.ui.workstation.hanging import Layout
    from inference.intake.views import View

    root = tmp_path / "exams"
    current = write_exam(root / "now", "20260110")
    write_exam(root / "before", "20250107")
    window = _window(qtbot, AppSettings(auto_run=False))
    _open(qtbot, window, current, with_prior=True)
    hanging = window.hanging
    # the prior's label is unmistakable: PRIOR, amber, larger than the current view's
    prior_marker, current_marker = hanging.prior_views[View.R_CC].marker, hanging.views[View.R_CC].marker
    assert prior_marker.text().startswith("PRIOR") and "#ffb020" in prior_marker.styleSheet()
    assert prior_marker.fontInfo().pixelSize() > current_marker.fontInfo().pixelSize()

    seen = []
    for _ in DEFAULT_STEPS:
        line = _space(qtbot, window)
        seen.append(hanging.layout_mode)
        assert line.startswith(f"step {len(seen)}/{len(DEFAULT_STEPS)}")
    assert seen == [Layout.PRIOR_CC, Layout.PRIOR_MLO, Layout.FOUR, Layout.CC, Layout.MLO, Layout.CC, Layout.MLO]
    # the magnified step: twice the fitted zoom (after the layout's own refit)
    fitted = window.hanging.views[View.R_MLO]
    qtbot.waitUntil(lambda: fitted._fit is None, timeout=5000)
    magnified = fitted.zoom_factor()
    hanging.fit_same_scale()
    assert magnified == pytest.approx(2 * fitted.zoom_factor(), rel=0.05)
    assert _space(qtbot, window) == "last hanging step"
    _space(qtbot, window, shift=True)  # Shift+Space: back to the CC pair magnified
    assert hanging.layout_mode == Layout.CC
    window.close()


def test_a_step_needing_a_prior_is_skipped_with_a_line(qtbot, tmp_path):
    from app.settings import AppSettings
    from app.ui.workstation.hanging import Layout
    from app.ui.workstation.hanging_steps_panel import NO_PRIOR_LINE
    from inference.intake.views import View

    current = write_exam(tmp_path / "alone" / "now", "20260110")
    window = _window(qtbot, AppSettings(auto_run=False))
    _open(qtbot, window, current, with_prior=False)
    window.hanging.set_layout(Layout.MLO)
    line = _space(qtbot, window)
    assert window.hanging.layout_mode == Layout.FOUR
    assert NO_PRIOR_LINE in line and NO_PRIOR_LINE in window.statusBar().currentMessage()
    # the prior slots say there is no prior study, not "no R-CC image"
    assert window.hanging.prior_views[View.R_CC].empty.text() == "No prior study"
    window.close()


def test_a_custom_sequence_from_preferences_is_used(qtbot, tmp_path):
    from app.settings import AppSettings
    from app.ui.workstation.hanging import Layout

    path = tmp_path / "mine.json"
    write_steps(path, (Step("right", label="right breast"), Step("left", label="left breast")))
    current = write_exam(tmp_path / "alone" / "now", "20260110")
    window = _window(qtbot, AppSettings(auto_run=False, hanging_steps=str(path)))
    _open(qtbot, window, current, with_prior=False)
    assert "right breast" in _space(qtbot, window)
    assert window.hanging.layout_mode == Layout.RIGHT
    _space(qtbot, window)
    assert window.hanging.layout_mode == Layout.LEFT
    window.close()


def test_a_bad_steps_file_is_named_and_the_default_used(qtbot, tmp_path):
    from app.settings import AppSettings
    from app.ui.workstation.hanging import Layout

    path = tmp_path / "broken steps.json"
    path.write_text("[{\"layout\": \"four\",", encoding="utf-8")
    current = write_exam(tmp_path / "alone" / "now", "20260110")
    window = _window(qtbot, AppSettings(auto_run=False, hanging_steps=str(path)))
    with qtbot.waitSignal(window.hanging_steps.stepped, timeout=60_000) as signal:
        window.open_exam(current)
    assert str(path) in signal.args[0] and "not valid JSON" in signal.args[0]
    assert str(path) in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.prior_worker is not None and not window.prior_worker.is_running(), timeout=60_000)
    _space(qtbot, window)
    assert window.hanging.layout_mode == Layout.FOUR  # the default's first step without a prior
    window.close()


def test_space_in_a_text_field_types_a_space(qtbot, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLineEdit

    from app.settings import AppSettings
    from app.ui.workstation.hanging import Layout

    window = _window(qtbot, AppSettings(auto_run=False))
    field = QLineEdit(window.statusBar())
    window.statusBar().addWidget(field)
    field.show()
    field.setFocus()
    qtbot.waitUntil(field.hasFocus, timeout=5000)
    window.hanging_steps.next_action.trigger()  # what the shortcut would do: nothing while typing
    qtbot.keyClick(field, Qt.Key.Key_Space)
    assert field.text() == " " and window.hanging.layout_mode == Layout.FOUR
    assert window.hanging_steps.cursor.index == -1
    window.close()
