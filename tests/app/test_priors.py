"""Priors: the patient's earlier MG study found beside the current one, hung below it, analysed, and its
scores shown beside the current ones (hidden with the model while blind)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydicom.uid import generate_uid

from app.pacs.priors import find_priors
from inference.intake.exam import load_exam
from tests.helpers import synthetic_view
from tests.inference.intake.dicom_factory import make_dataset, write

VIEWS = {"L-CC": (700, 250), "R-CC": (600, 500), "L-MLO": (800, 250), "R-MLO": (700, 500)}


def write_exam(folder, date: str, patient: str = "PID-7", issuer: str = "", views=VIEWS, ml_for=None, shift=(0, 0),
               **header):
    """An exam of synthetic views; ``shift`` (rows, columns) moves every breast, as a positioning would."""
    folder.mkdir(parents=True, exist_ok=True)
    study = generate_uid()
    for view, lesion in views.items():
        projection = "ML" if ml_for == view else None
        pixels = synthetic_view(view, lesion)
        if shift != (0, 0):
            move = np.float32([[1, 0, shift[1]], [0, 1, shift[0]]])
            pixels = cv2.warpAffine(pixels, move, pixels.shape[::-1], flags=cv2.INTER_NEAREST)
        ds = make_dataset(pixels, view, projection=projection)
        ds.StudyInstanceUID, ds.StudyDate, ds.PatientID, ds.AccessionNumber = study, date, patient, f"A{date}"
        if issuer:
            ds.IssuerOfPatientID = issuer
        for keyword, value in header.items():
            setattr(ds, keyword, value)
        write(ds, folder, f"{view}.dcm")
    return folder


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "exams"
    current = write_exam(root / "now", "20260110", issuer="HOSP")
    write_exam(root / "2024", "20240105", issuer="HOSP")
    write_exam(root / "2025", "20250107", issuer="HOSP", ml_for="R-MLO")  # the prior has an ML, not an R-MLO
    write_exam(root / "later", "20260601", issuer="HOSP")  # after the current: not a prior
    write_exam(root / "other_issuer", "20250601", issuer="ELSEWHERE")  # another patient with the same ID
    write_exam(root / "other_patient", "20250801", patient="PID-8")
    return root, current


def test_find_priors_same_patient_and_issuer_earlier_newest_first(archive):
    root, current = archive
    priors = find_priors(load_exam(current), roots=[root])
    assert [(p.date, p.location.name, p.where) for p in priors] == [("20250107", "2025", "local"),
                                                                     ("20240105", "2024", "local")]
    assert find_priors(load_exam(current).deidentify(), roots=[root]) == []  # nothing ties it to a patient


def open_with_prior(qtbot, store_path, current, stub_model):
    """A blind-first window on ``current`` with the stub model, once its prior is hung and analysed."""
    from app.settings import AppSettings
    from app.study.store import Store
    from app.ui.workstation.main_window import MainWindow

    store = Store(store_path)
    window = MainWindow(AppSettings(blind_first=True), store)
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    window.use_models([stub_model])
    with qtbot.waitSignal(window.priorShown, timeout=60_000):
        window.open_exam(current)
    qtbot.waitUntil(lambda: window.prior_result is not None, timeout=120_000)
    return window, store


def test_the_prior_hangs_below_the_current_and_its_scores_show_beside(qtbot, archive, stub_model):
    from app.ui.workstation.hanging import Layout
    from inference.intake.views import View

    root, current = archive
    window, store = open_with_prior(qtbot, root.parent / "store.db", current, stub_model)
    hanging = window.hanging
    assert window.prior.exam.study_date == "20250107"
    from PySide6.QtGui import QAction

    window.findChild(QAction, "layout6").trigger()
    assert hanging.layout_mode == Layout.PRIOR_CC
    prior_cc = hanging.prior_views[View.R_CC]
    assert prior_cc.isVisible() and hanging.views[View.R_CC].isVisible() and not hanging.views[View.R_MLO].isVisible()
    assert prior_cc.study_text[0] == "2025-01-07"
    # "PRIOR" once, in the slot's amber marker; the corner names the study
    assert prior_cc.marker.text().startswith("PRIOR") and not any("PRIOR" in line for line in prior_cc.study_text)
    hanging.set_layout(Layout.PRIOR_MLO)
    # the prior's R-MLO slot takes its ML (the usual fallback), labelled as such
    assert hanging.prior_views[View.R_MLO].image is not None
    assert hanging.prior_views[View.R_MLO].image.view_label.startswith("ML")
    # one physical scale for current and prior
    shown = [hanging.views[View.R_MLO], hanging.prior_views[View.R_MLO]]
    assert len({round(w.physical_size()[0], 3) for w in shown}) == 1
    window.menu_actions.toggle_invert()  # the current above its prior, compared alike
    assert all(w.inverted for w in shown)
    window.menu_actions.toggle_invert()
    assert not any(w.inverted for w in shown)
    # blind first: the prior's model scores are hidden with the current ones, shown after the commit
    panel = window.scores
    assert not panel.prior_label.isVisible() and panel.prior_text.startswith("Prior 2025-01-07:")
    assert "P(malignant) right" in panel.prior_text
    assert __import__("re").search(r"right (\d+\.\d %|—) · left (\d+\.\d %|—)", panel.prior_text)  # as on screen
    for side in ("R", "L"):
        window.scores.reader.inputs[side].spin.setValue(20)
    assert window.commit_estimate()
    assert panel.prior_label.isVisible()
    window.close()
    store.close()


def test_a_registered_prior_follows_the_cursor_and_shows_its_maps_after_the_commit(qtbot, tmp_path, stub_model):
    """Issue 25: each prior view registered to its current view (SimpleITK): the cursor, the magnifier and the
    cross-reference follow into the prior (and back); another prior is chosen with Shift+P; the prior's maps are
    drawn for the model chosen, hidden while the reader has not committed."""
    from PySide6.QtGui import QAction
    from PySide6.QtTest import QTest

    from app.ui.workstation.hanging import Layout
    from inference.intake.views import View

    root = tmp_path / "exams"
    current = write_exam(root / "now", "20260110")
    write_exam(root / "2025", "20250107", shift=(50, -35))  # the breast 50 rows lower, 35 columns to the left
    write_exam(root / "2023", "20230105")
    window, store = open_with_prior(qtbot, tmp_path / "store.db", current, stub_model)
    hanging = window.hanging
    assert window.prior.exam.study_date == "20250107" and window.prior.earlier == 2
    assert not window.prior.registrations[View.R_CC].approximate
    window.findChild(QAction, "layout6").trigger()
    assert hanging.layout_mode == Layout.PRIOR_CC
    window.magnifier_action.trigger()
    current_cc, prior_cc = hanging.views[View.R_CC], hanging.prior_views[View.R_CC]

    def point_at(widget, row, col):
        """A real mouse move over the view, as the reader's hand makes it; (row, col) where it landed (a screen
        pixel covers about three image pixels at this zoom)."""
        at = widget.item_to_widget(col, row)
        QTest.mouseMove(widget.graphics.viewport(), at)
        qtbot.wait(20)
        landed = widget.image_item.mapFromScene(widget.graphics.mapToScene(at))
        return landed.y(), landed.x()

    def near(item, row, col, tolerance=2.0):
        return abs(item.pos().y() - row) < tolerance and abs(item.pos().x() - col) < tolerance

    row, col = point_at(current_cc, 600.5, 500.5)  # the current lesion's centre
    cross = prior_cc.linked_cursor
    assert cross.isVisible()
    assert near(cross, row + 50, col - 35)  # the same place in the moved prior: its lesion's centre
    assert prior_cc.magnifier.isVisible()  # the lens follows into the prior, over the same place
    lens = prior_cc.magnifier.geometry().center()
    expected = prior_cc.item_to_widget(cross.pos().x(), cross.pos().y())
    assert abs(lens.x() - expected.x()) <= 3 and abs(lens.y() - expected.y()) <= 3
    window.crossref_action.trigger()
    point_at(current_cc, 600.5, 520.5)  # elsewhere: a move to the same screen pixel is no move
    band = prior_cc.band.rect()
    assert prior_cc.band.isVisible() and band.left() <= 465.5 <= band.right()
    row, col = point_at(prior_cc, 650.5, 465.5)  # and back: the prior's point in the current view, the lens too
    back = current_cc.linked_cursor
    assert back.isVisible() and near(back, row - 50, col + 35)
    assert not cross.isVisible() and current_cc.magnifier.isVisible()  # the reader's cursor is in the prior now
    hanging.set_layout(Layout.FOUR)  # a followed cross or lens never stays behind in another layout
    assert not back.isVisible() and not prior_cc.magnifier.isVisible() and not current_cc.magnifier.isVisible()
    window.findChild(QAction, "layout6").trigger()
    point_at(current_cc, 600.5, 470.5)  # the lens follows into the prior again
    assert prior_cc.magnifier.isVisible()
    window.magnifier_action.trigger()  # G off: the prior's lens goes with the current one
    assert not prior_cc.magnifier.isVisible() and not current_cc.magnifier.isVisible()
    window.crossref_action.trigger()

    # the prior's maps: analysed with the current models, drawn for the model chosen, hidden while blind
    qtbot.waitUntil(lambda: prior_cc.result is not None, timeout=30_000)
    assert not prior_cc._options.visible and not prior_cc._options.regions
    for side in ("R", "L"):
        window.scores.reader.inputs[side].spin.setValue(20)
    assert window.commit_estimate()
    assert prior_cc._options.regions and current_cc._options.regions
    window.findChild(QAction, "toggleOverlays").trigger()  # H: the maps, on demand
    assert prior_cc._options == current_cc._options and prior_cc._options.visible
    heat = prior_cc.heatmap_item("malignant")
    assert heat is not None and heat.isVisible()

    # another prior: Shift+P, loaded and registered in the background
    menu = window.findChild(QAction, "nextPrior")
    with qtbot.waitSignal(window.priorShown, timeout=60_000):
        menu.trigger()
    assert window.prior.exam.study_date == "20230105" and prior_cc.study_text[0] == "2023-01-05"
    dates = [a.text().split()[0] for a in window.prior_menu.actions()]
    assert dates == ["2025-01-07", "2023-01-05"] and window.prior_menu.actions()[1].isChecked()
    qtbot.waitUntil(lambda: window.prior_result is not None, timeout=120_000)
    row, col = point_at(current_cc, 590.5, 480.5)
    assert near(cross, row, col)  # this prior lies as the current one
    window.close()
    store.close()


def test_the_prior_menu_forgets_the_last_patient_when_the_next_exam_fails(qtbot, archive, stub_model):
    root, current = archive
    window, store = open_with_prior(qtbot, root.parent / "store.db", current, stub_model)
    menu = window.prior_menu
    assert menu.isEnabled() and any("2025-01-07" in action.text() for action in menu.actions())
    broken = root.parent / "broken"
    broken.mkdir()
    (broken / "0_L-CC.png").write_bytes(b"\x89PNG broken")
    with qtbot.waitSignal(window.loadFailed, timeout=30_000):
        window.open_exam(broken)
    assert not menu.actions() and not menu.isEnabled()  # none of PID-7's studies left to click
    from PySide6.QtWidgets import QMessageBox

    for dialog in window.findChildren(QMessageBox):
        dialog.close()
    store.close()


@pytest.mark.parametrize("patient, issuer, date, says", [
    ("PID-8", "HOSP", "20250107", "not this patient's"),  # a mis-filed folder: another patient
    ("PID-7", "ELSEWHERE", "20250107", "not this patient's"),  # the same ID from another issuer
    ("PID-7", "HOSP", "20260601", "not before the current study"),  # not earlier
])
def test_a_loaded_prior_of_another_patient_or_not_earlier_is_refused(tmp_path, patient, issuer, date, says):
    """What the search found by one header (or a PACS answer) is checked again on the study actually loaded."""
    from app.pacs.priors import PriorStudy
    from app.workstation import prior_load_task
    from inference.errors import MammoError

    current = load_exam(write_exam(tmp_path / "now", "20260110", issuer="HOSP"))
    folder = write_exam(tmp_path / "filed_as_prior", date, patient=patient, issuer=issuer)
    study = PriorStudy("20250107", "1.2.3", "A1", "local", folder)
    with pytest.raises(MammoError, match=says) as raised:
        prior_load_task(current, study, (study,), progress=lambda *_: None, cancel=lambda: False)
    assert str(folder) in str(raised.value)
    good = write_exam(tmp_path / "true_prior", "20250107", issuer="HOSP")
    found = prior_load_task(current, PriorStudy("20250107", "", "", "local", good), (), progress=lambda *_: None,
                            cancel=lambda: False)
    assert found is not None and found.exam.patient.patient_id == "PID-7"


@pytest.mark.parametrize("header, says", [
    ({"PatientName": "JONES^MARY", "PatientBirthDate": "19751231"}, "another patient name"),
    ({"PatientBirthDate": "19751231"}, "another patient birth date"),
])
def test_a_prior_with_this_patient_s_id_but_another_name_or_birth_date_is_refused(tmp_path, header, says):
    """One ID given to two people (reused, mistyped): the other person's study was hung as this patient's PRIOR.
    A name written in another case is the same name."""
    from app.pacs.priors import PriorStudy
    from app.workstation import prior_load_task
    from inference.errors import MammoError

    current = load_exam(write_exam(tmp_path / "now", "20260110", issuer="HOSP"))
    folder = write_exam(tmp_path / "other_person", "20200101", issuer="HOSP", **header)
    study = PriorStudy("20200101", "", "", "local", folder)
    with pytest.raises(MammoError, match=says) as raised:
        prior_load_task(current, study, (study,), progress=lambda *_: None, cancel=lambda: False)
    assert str(folder) in str(raised.value) and "JONES" not in str(raised.value)
    same = write_exam(tmp_path / "same_person", "20200101", issuer="HOSP",
                      PatientName=str(current.patient.name).lower() + "^^")
    found = prior_load_task(current, PriorStudy("20200101", "", "", "local", same), (), progress=lambda *_: None,
                            cancel=lambda: False)
    assert found is not None


def test_shift_p_pressed_twice_while_loading_goes_two_priors_on(qtbot, archive, stub_model):
    """The second press counted from the prior still shown, not the one loading: it asked for the same study
    again. A cancelled load that still delivers is never shown."""
    root, current = archive
    window, store = open_with_prior(qtbot, root.parent / "store.db", current, stub_model)
    assert window.prior.prior.date == "20250107" and window.prior.earlier == 2
    window.priors.next_prior()  # 2024 asked for
    window.priors.next_prior()  # pressed again before it arrived: 2025 (after the oldest, the most recent)
    assert window.priors.requested.date == "20250107"
    qtbot.waitUntil(lambda: window.priors.requested is None, timeout=60_000)
    qtbot.wait(300)  # any late delivery of the cancelled 2024 load
    assert window.prior.prior.date == "20250107" and window.prior.exam.study_date == "20250107"
    store.close()


def test_a_study_refused_as_another_person_s_does_not_hide_the_patient_s_own_older_prior(tmp_path):
    """The most recent study found (this patient's ID, another name) was refused and nothing was shown: the
    patient's genuine 2024 prior was never tried. Now it is, and the refusal is kept to be said."""
    from app.workstation import priors_task

    root = tmp_path / "exams"
    current = load_exam(write_exam(root / "now", "20260110", issuer="HOSP"))
    write_exam(root / "2024", "20240105", issuer="HOSP")
    write_exam(root / "2025_other", "20250107", issuer="HOSP", PatientName="OMEGA^OLGA")
    found = priors_task(current, "", "", progress=lambda *_: None, cancel=lambda: False)
    assert found is not None and found.exam.study_date == "20240105"
    assert [study.date for study in found.studies] == ["20240105"]  # Shift+P never offers the refused one
    (refusal,) = found.refused
    assert "2025_other" in refusal and "another patient name" in refusal
