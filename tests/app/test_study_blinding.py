"""The blinded study screen: nothing on it identifies the patient, the study or its date (a reader who sees
an accession number can look up the outcome). Corner text, window title, notes and dialogs say "case k of n"."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QGroupBox,
    QLabel,
    QListWidget,
    QMessageBox,
    QTableWidget,
    QWidget,
)

from app.study.blinding import blind_exam, scrub
from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.scores import compute_model_scores
from app.study.store import Store
from app.study.reading_screen import open_reading
from app.ui.study.window import StudyReadingWindow
from inference.intake.exam import load_exam
from tests.app.conftest import close_windows_then, synthetic_view
from tests.inference.intake.dicom_factory import PATIENT_ID, make_dataset, write

VIEWS = {"L-CC": (700, 250), "R-CC": (600, 500), "L-MLO": (800, 250), "R-MLO": (700, 500)}
ACCESSIONS = ("DEMO61122", "DEMO61123")
# identifiers in any form a reader could look up: accession, name, ID, birth date, study date in three
# formats, and the folders (named after the patient, as sites often do) and files
FORBIDDEN = (*ACCESSIONS, "Testpatient", PATIENT_ID, "19600101", "20240101", "2024-01-01", "01.01.2024",
             "20230215", "2023-02-15", "Smith_Jane", "MRN4711", "CASEID-")


def write_exam(folder, accession: str, date: str):
    folder.mkdir(parents=True)
    for view, lesion in VIEWS.items():
        # R-MLO stored mirrored: the laterality banner names the image
        ds = make_dataset(synthetic_view(view, lesion, mirrored=view == "R-MLO"), view)
        ds.AccessionNumber, ds.StudyDate = accession, date
        write(ds, folder, f"Testpatient_{accession}_{view}.dcm")


@pytest.fixture
def study(tmp_path, stub_model):
    folders = [tmp_path / "Smith_Jane_MRN4711" / f"{date}_{accession}"
               for accession, date in zip(ACCESSIONS, ("20240101", "20230215"), strict=True)]
    for folder, accession, date in zip(folders, ACCESSIONS, ("20240101", "20230215"), strict=True):
        write_exam(folder, accession, date)
    store = Store(tmp_path / "study.sqlite")
    entries = [CaseEntry(f"CASEID-{accession}", str(folder), "normal", "malignant")
               for folder, accession in zip(folders, ACCESSIONS, strict=True)]
    study_id = create_study(store, "pilot", Design.SEQUENTIAL, ["A"], entries, seed=2)
    compute_model_scores(store, study_id, [stub_model], device="cpu")
    yield store, study_id, folders
    close_windows_then(store)


def shown_texts(window: QWidget) -> list[str]:
    """Every text the study screen can show: title, labels (with tooltips), buttons, group boxes, list and
    table items, and every open dialog."""
    texts = [window.windowTitle()]
    for widget in window.findChildren(QWidget):
        texts.append(widget.toolTip())
        if isinstance(widget, QLabel):
            texts.append(widget.text())
        elif isinstance(widget, QAbstractButton):
            texts.append(widget.text())
        elif isinstance(widget, QGroupBox):
            texts.append(widget.title())
        elif isinstance(widget, QListWidget):
            texts += [widget.item(i).text() for i in range(widget.count())]
        elif isinstance(widget, QTableWidget):
            texts += [widget.item(i, j).text() for i in range(widget.rowCount()) for j in range(widget.columnCount())
                      if widget.item(i, j) is not None]
    for dialog in QApplication.topLevelWidgets():
        if isinstance(dialog, QMessageBox):
            texts += [dialog.windowTitle(), dialog.text(), dialog.informativeText(), dialog.detailedText()]
    return [t for t in texts if t]


def leaks(texts: list[str], folders) -> list[str]:
    words = [*FORBIDDEN, *(f.name for f in folders)]
    found = [t for t in texts for w in words if w.lower() in t.lower()]
    return found + [t for t in texts if re.search(r"\bAda\b|\bAcc\b", t)]


def test_the_study_screen_shows_case_k_of_n_and_no_identifier(qtbot, study):
    store, study_id, folders = study
    window = StudyReadingWindow(open_reading(store, study_id, "A"))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.exam is not None and window.status_label.text() == "", timeout=30_000)
    views = list(window.hanging.views.values())
    assert all(w.image is not None for w in views)
    assert [w.corner.text() for w in views] == ["case 1 of 2"] * 4  # the corner says which case, nothing else
    assert "case 1 of 2" in window.windowTitle() and "case 1 of 2" in window.header.text()
    banner = window.hanging.views[next(iter(window.exam.laterality_conflicts))].banner.text.text()
    assert "LATERALITY" in banner  # the laterality check still speaks, naming the image by its slot
    texts = shown_texts(window)
    assert not leaks(texts, folders), leaks(texts, folders)

    # the AI shown after the unaided read: still nothing
    window.reader_panel.inputs["R"].spin.setValue(20)
    window.reader_panel.inputs["L"].spin.setValue(10)
    with qtbot.waitSignal(window.committed, timeout=10_000):
        window.commit()
    window.reveal()
    qtbot.waitUntil(lambda: window.ai_box.isVisible(), timeout=10_000)
    assert not leaks(shown_texts(window), folders)

    # a case whose images have gone: the dialog names it "case 2 of 2", not by its ID, folder or files
    second = next(f for f in folders if f"CASEID-{f.name.split('_')[1]}" == window.session.order[1])
    shutil.rmtree(second)
    with qtbot.waitSignal(window.committed, timeout=10_000):
        window.commit()
    window.next_case()
    qtbot.waitUntil(lambda: any(isinstance(w, QMessageBox) and w.isVisible() for w in QApplication.topLevelWidgets()),
                    timeout=30_000)
    dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
    assert dialog.text().startswith("Case 2 of 2: ")
    texts = shown_texts(window)
    assert "all cases read" in window.windowTitle()  # the last case: the reading ends, the count said
    assert "1 case(s) could not be opened" in window.notice.text()
    assert not leaks(texts, folders), leaks(texts, folders)
    dialog.close()


def test_blind_exam_removes_identifiers_from_the_exam_and_its_notes(study):
    _, _, folders = study
    exam = load_exam(folders[0])
    assert exam.accession == ACCESSIONS[0] and exam.study_date == "20240101"  # the test's premise
    noted = dataclasses.replace(exam, warnings=(
        f"{folders[0]}/Testpatient_{ACCESSIONS[0]}_L-ML.dcm: not a screening view, kept aside",
        f"study of 2024-01-01 for Testpatient^Ada ({PATIENT_ID}), accession {ACCESSIONS[0]}",
        "two candidates for R-CC: Testpatient_x_R-CC.dcm was used"))
    blinded = blind_exam(noted, [f"CASEID-{ACCESSIONS[0]}", str(folders[0])])
    assert (blinded.accession, blinded.study_date, blinded.exam_id, blinded.source, blinded.labels) == ("", "", "", None, {})
    assert blinded.patient.name == "" and blinded.patient.patient_id == ""
    texts = [*blinded.warnings, *(w for image in blinded.views.values() for w in image.warnings),
             *(str(image.source) for image in blinded.views.values()),
             *(str(v) for image in blinded.views.values() for v in image.study.values()),
             *(blinded.laterality_message(v) for v in blinded.laterality_conflicts)]
    assert not leaks(texts, folders), leaks(texts, folders)
    assert "not a screening view, kept aside" in blinded.warnings[0]  # the note itself stays readable
    assert "PatientOrientation 'P\\L'" in " ".join(blinded.views[next(iter(blinded.laterality_conflicts))].warnings)
    assert scrub("case CASEID-X in /data/Smith_Jane/x", ["CASEID-X"]) == "case … in …"



def test_the_intake_s_own_words_survive_the_blinding(tmp_path):
    """A coordinator's test: the reader saw "view taken from PatientOrientation, not …" and "damaged or not a …":
    the intake wrote "A/B" pairs, which the blinding takes for paths. Its notes say "A or B" now."""
    from inference.intake.exam import load_exam, load_view
    from inference.errors import MammoError
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    ds = make_dataset(sample_pixels("L-CC"), laterality_keyword="", projection="", PatientOrientation=["A", "R"])
    image = load_view(write(ds, tmp_path, "RIGHT_MLO.dcm"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "0_L-CC.png").write_bytes(b"not an image")
    with pytest.raises(MammoError) as caught:
        load_exam(tmp_path / "junk")
    for note in [*image.warnings, caught.value.message]:
        assert scrub(note, []) == note, note

def test_a_case_that_cannot_be_opened_is_said_to_the_reader_without_the_patients_ids(tmp_path):
    """Seen by a privacy reviewer: the blinded reading screen's dialog said "Case 4 of 4: … the images belong to 2
    different patients …: patient PID000111 (PRIVHOSP): …; patient PID987654 (PRIVHOSP): …"."""
    from app.study.reading_screen import CaseUnreadable, load_case
    from app.study.sessions import ReadingSession
    from tests.inference.intake.dicom_factory import PATIENT_ID, make_dataset, sample_pixels, write

    folder = tmp_path / "two"
    folder.mkdir()
    write(make_dataset(sample_pixels("L-CC"), "L-CC", IssuerOfPatientID="PRIVHOSP"), folder, "a.dcm")
    write(make_dataset(sample_pixels("R-CC"), "R-CC", PatientID="PID000111", IssuerOfPatientID="PRIVHOSP"), folder,
          "b.dcm")
    store = Store(tmp_path / "s.sqlite")
    try:
        study = create_study(store, "s", Design.UNAIDED, ["A"], [CaseEntry("c1", str(folder), "malignant", "normal")])
        with pytest.raises(CaseUnreadable) as caught:
            load_case(ReadingSession(store, study, "A"), 0, progress=lambda *a: None, cancel=lambda: False)
    finally:
        store.close()
    said = str(caught.value)
    assert "the images belong to 2 different patients" in said
    assert "PID000111" not in said and PATIENT_ID not in said and "PRIVHOSP" not in said
