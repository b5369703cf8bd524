"""The results screen of a localisation study draws its FROC and wAFROC curves (each modality, readers pooled);
an ROC study's screen has no such tab."""

from __future__ import annotations

import numpy as np
import pytest

from app.study.design import Design, create_study
from app.study.froc import froc_curve, froc_data_from_dict, wafroc_curve
from app.study.froc_study import stored_froc_data
from app.study.lesions import read_lesion_list, stored_lesion_truth, with_exam_spacing
from app.study.localisation import ScoringRule
from app.study.results import study_results
from app.study.store import Store
from app.ui.study.results import StudyResultsWindow
from tests.study.test_froc_lesions import CASES, LESION_ROWS, read_marks, write_lesions


@pytest.fixture
def localisation_study(tmp_path):
    lesions = read_lesion_list(write_lesions(tmp_path, LESION_ROWS))
    lesions = with_exam_spacing(lesions, CASES, spacing_of=lambda exam: {})  # the list's 0.1 mm
    store = Store(tmp_path / "s.sqlite")
    study = create_study(store, "loc", Design.SEQUENTIAL, ["A", "B"], CASES, lesions=lesions,
                         scoring=ScoringRule(distance_mm=5.0))
    create_study(store, "roc", Design.SEQUENTIAL, ["A", "B"], CASES)
    for reader in ("A", "B"):
        read_marks(store, study, reader)
        read_marks(store, study + 1, reader)
    yield store, study
    store.close()


def test_the_results_screen_draws_froc_and_wafroc_curves(qtbot, localisation_study):
    store, study = localisation_study
    results = study_results(store, study)
    window = StudyResultsWindow(results)
    qtbot.addWidget(window)
    window.show()
    assert window.findChild(type(window.plot), "frocPlot") is not None
    assert window.findChild(type(window.plot), "wafrocPlot") is not None
    assert set(window.froc_curves) == set(window.wafroc_curves) == {"aided", "unaided"}
    data = froc_data_from_dict(stored_froc_data(store, study, stored_lesion_truth(store, study))[0])
    for modality in ("aided", "unaided"):
        x, y = window.froc_curves[modality].getData()
        expected = froc_curve(data, modality)
        np.testing.assert_allclose(x, expected.x)
        np.testing.assert_allclose(y, expected.y)
        x, y = window.wafroc_curves[modality].getData()
        expected = wafroc_curve(data, modality)
        np.testing.assert_allclose(x, expected.x)
        np.testing.assert_allclose(y, expected.y)
    assert results.localisation.wafroc_mean["aided"] > results.localisation.wafroc_mean["unaided"]
    # six cases: the screen says the numbers are too few to conclude from
    assert any("too small" in note for note in results.localisation.cautions)


def test_an_roc_study_has_no_localisation_curves(qtbot, localisation_study):
    store, study = localisation_study
    results = study_results(store, study + 1)
    window = StudyResultsWindow(results)
    qtbot.addWidget(window)
    assert results.localisation is None and window.froc_curves == {}
    assert window.findChild(type(window.plot), "frocPlot") is None


def test_the_results_are_exported_off_the_gui_thread_and_a_bad_folder_is_a_message(qtbot, localisation_study,
                                                                                   tmp_path):
    store, study = localisation_study
    window = StudyResultsWindow(study_results(store, study))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.exported, timeout=30_000):
        window.export_to(str(tmp_path / "out"))
    assert any((tmp_path / "out").iterdir()) and "exported" in window.statusBar().currentMessage()
    (tmp_path / "file").write_text("not a folder")
    window.export_to(str(tmp_path / "file" / "out"))  # under a file: the folder cannot be made
    from PySide6.QtWidgets import QMessageBox

    qtbot.waitUntil(lambda: any(w.objectName() == "errorDialog" for w in window.findChildren(QMessageBox)),
                    timeout=30_000)
    box = next(w for w in window.findChildren(QMessageBox) if w.objectName() == "errorDialog")
    assert "could not be written" in box.text() and "file" in box.text()
    box.close()
