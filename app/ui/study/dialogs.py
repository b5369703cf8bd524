"""Study dialogs for the workstation's Study menu: create a study, pick a study (and a reader) to read or
to see its results. The work itself (creating, scoring, reading, analysing) lives in ``app/study``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from app.study.design import DEFAULT_WASHOUT_DAYS, Design
from app.study.localisation import ScoringRule
from app.study.reading_screen import StudyOverview
from app.ui.forms import add_ok_cancel, browse_row

DESIGN_HELP = {
    Design.UNAIDED: "readers alone, no AI",
    Design.SEQUENTIAL: "unaided read committed and locked, then the AI is shown and an aided read recorded",
    Design.CONCURRENT: "the AI is shown from the start",
    Design.CROSSOVER: "two sessions: each case once unaided and once with the AI, a washout between them",
}


@dataclass(frozen=True)
class NewStudy:
    name: str
    case_list: str
    readers: tuple[str, ...]
    design: Design
    seed: int
    washout_days: int
    lesions: str = ""  # a localisation (FROC) study's lesion list CSV (app/study/lesions.py), "" for none
    distance_mm: float | None = None  # with lesions: the acceptance distance (None: the default)


class NewStudyDialog(QDialog):
    """Name, case list CSV, readers, design, seed, (crossover) the washout and (a localisation study) the lesion
    list with its acceptance distance."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("newStudyDialog")
        self.setWindowTitle("New reader study")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. pilot 2026")
        self.case_list = QLineEdit()
        self.case_list.setPlaceholderText("CSV: case_id, exam, truth_left, truth_right[, notes, training]")
        row = browse_row(self.case_list, "File…", self._browse)
        self.readers = QLineEdit()
        self.readers.setPlaceholderText("comma-separated, e.g. R1, R2, R3")
        self.design = QComboBox()
        for design in Design:
            self.design.addItem(f"{design.value} — {DESIGN_HELP[design]}", design)
        self.design.setCurrentIndex(list(Design).index(Design.SEQUENTIAL))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.washout = QSpinBox()
        self.washout.setRange(0, 365)
        self.washout.setSuffix(" days")
        self.design.currentIndexChanged.connect(self._design_changed)
        self._design_changed()
        self.lesions = QLineEdit()
        self.lesions.setObjectName("lesionList")
        self.lesions.setPlaceholderText("optional, a localisation (FROC) study: case_id, breast, view, mask or row/col")
        self.lesions.setToolTip("where each case's lesions are: one row per lesion per view (case_id, breast, view, "
                                "mask or row, col and radius_mm, weight, lesion; or seg: a DICOM Segmentation); "
                                "marks are then scored against them (FROC, wAFROC). Lesions can also be drawn case "
                                "by case (Study → Draw a case's lesions…)")
        lesion_row = browse_row(self.lesions, "File…", self._browse_lesions)
        self.distance = QDoubleSpinBox()
        self.distance.setObjectName("acceptanceDistance")
        self.distance.setRange(0.0, 100.0)
        self.distance.setDecimals(1)
        self.distance.setSuffix(" mm")
        self.distance.setValue(ScoringRule().distance_mm)
        self.distance.setToolTip("a mark within this distance of a lesion's centre localises it (a mark inside the "
                                 "lesion's outline always does)")
        self.lesions.textChanged.connect(lambda text: self.distance.setEnabled(bool(text.strip())))
        self.distance.setEnabled(False)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Case list", row)
        form.addRow("Readers", self.readers)
        form.addRow("Design", self.design)
        form.addRow("Seed (reading orders)", self.seed)
        form.addRow("Washout", self.washout)
        form.addRow("Lesion list", lesion_row)
        form.addRow("A mark localises within", self.distance)
        add_ok_cancel(form, self)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Case list", "", "CSV files (*.csv)")
        if path:
            self.case_list.setText(path)

    def _browse_lesions(self) -> None:
        start = str(Path(self.case_list.text().strip()).parent) if self.case_list.text().strip() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Lesion list", start, "CSV files (*.csv)")
        if path:
            self.lesions.setText(path)

    def _design_changed(self) -> None:
        crossover = self.design.currentData() == Design.CROSSOVER
        self.washout.setEnabled(crossover)
        if not crossover:
            self.washout.setValue(0)
        elif self.washout.value() == 0:
            self.washout.setValue(DEFAULT_WASHOUT_DAYS)

    def set_values(self, study: NewStudy) -> None:
        """The form as it was (after a refusal: the coordinator corrects it instead of typing it all again)."""
        self.name.setText(study.name)
        self.case_list.setText(study.case_list)
        self.readers.setText(", ".join(study.readers))
        self.design.setCurrentIndex(list(Design).index(study.design))
        self.seed.setValue(study.seed)
        self.washout.setValue(study.washout_days)
        self.lesions.setText(study.lesions)
        self.distance.setValue(ScoringRule().distance_mm if study.distance_mm is None else study.distance_mm)

    def values(self) -> NewStudy:
        readers = tuple(r.strip() for r in self.readers.text().split(",") if r.strip())
        lesions = self.lesions.text().strip()
        return NewStudy(self.name.text().strip(), self.case_list.text().strip(), readers, self.design.currentData(),
                        self.seed.value(), self.washout.value(), lesions,
                        self.distance.value() if lesions else None)


class ChooseStudyDialog(QDialog):
    """Pick a study, and for reading also the reader; shows each reader's progress."""

    def __init__(self, overview: StudyOverview, *, with_reader: bool, parent: QWidget | None = None) -> None:
        """``overview``: the studies and their progress, read off the GUI thread (``study_overview``)."""
        super().__init__(parent)
        self.setObjectName("chooseStudyDialog")
        self.setWindowTitle("Read a study" if with_reader else "Study results")
        self.overview = overview
        self.studies = overview.studies
        self.study = QComboBox()
        for info in self.studies:
            self.study.addItem(f"{info['name']} ({info['design'].value}, {len(info['readers'])} readers)", info["study_id"])
        self.reader = QComboBox()
        self.level = QComboBox()
        self.level.addItems(["breast", "exam"])
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("studyProgress")
        self.progress_label.setWordWrap(True)
        form = QFormLayout(self)
        if not self.studies:
            form.addRow(QLabel("No study yet: create one with Study → New study…"))
        form.addRow("Study", self.study)
        if with_reader:
            form.addRow("Reader", self.reader)
        else:
            self.reader.hide()
            form.addRow("Unit", self.level)
        form.addRow("Progress", self.progress_label)
        add_ok_cancel(form, self)
        self.study.currentIndexChanged.connect(self._study_changed)
        self._study_changed()

    def _study_changed(self) -> None:
        self.reader.clear()
        study_id = self.study.currentData()
        if study_id is None:
            return
        info = next(i for i in self.studies if i["study_id"] == study_id)
        self.reader.addItems(info["readers"])
        lines = []
        for row in self.overview.progress.get(study_id, []):
            session = f", session {row['session']}" if row["sessions"] > 1 else ""
            waiting = "" if row["open"] or row["done"] == row["total"] else " (not open yet)"
            begun = f", {row['started']} begun" if row.get("started") else ""
            lines.append(f"{row['reader']}{session}: {row['done']} of {row['total']}{begun}{waiting}")
        self.progress_label.setText("\n".join(lines))
        self.adjustSize()  # another study's progress may take more lines (a crossover's two sessions per reader)

    def chosen(self) -> tuple[int | None, str]:
        return self.study.currentData(), self.reader.currentText()
