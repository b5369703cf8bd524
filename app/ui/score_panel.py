"""Scores: the model's (per view, breast, exam), the reader's estimate per breast, and the hybrid.

The hybrid is the mean of the reader's and the model's probability of malignancy (the GMIC reader
study's human-machine hybrid). In blind-first reading the model's numbers stay hidden until the reader
commits an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.study.store import BreastRead
from inference.pipeline import ExamResult
from inference.views import Laterality, View

BIRADS = ["", "0", "1", "2", "3", "4A", "4B", "4C", "5", "6"]
BREAST_NAMES = {"R": "Right breast", "L": "Left breast"}


def hybrid(reader: float | None, model: float | None) -> float | None:
    """Mean of reader and model probability; None unless both exist."""
    if reader is None or model is None:
        return None
    return (reader + model) / 2.0


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


@dataclass
class BreastInput:
    slider: QSlider
    spin: QSpinBox
    benign: QDoubleSpinBox
    birads: QComboBox


class ReaderPanel(QGroupBox):
    """Per breast: probability of malignancy 0–100 % (slider + spin box), optional benign %, BI-RADS."""

    changed = Signal()
    committed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Reader's estimate", parent)
        self.setObjectName("readerPanel")
        self.inputs: dict[str, BreastInput] = {}
        grid = QGridLayout(self)
        grid.addWidget(QLabel("malignant %"), 0, 1)
        grid.addWidget(QLabel("benign %"), 0, 3)
        grid.addWidget(QLabel("BI-RADS"), 0, 4)
        for row, side in enumerate(("R", "L"), start=1):
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setObjectName(f"readerSlider_{side}")
            spin = QSpinBox()
            spin.setRange(-1, 100)  # -1: not given yet, shown as "—" (0 % is an answer, not a default)
            spin.setSpecialValueText("—")
            spin.setValue(-1)
            spin.setSuffix(" %")
            spin.setObjectName(f"readerSpin_{side}")
            benign = QDoubleSpinBox()
            benign.setRange(-1, 100)
            benign.setSpecialValueText("—")
            benign.setValue(-1)
            benign.setDecimals(0)
            birads = QComboBox()
            birads.addItems(BIRADS)
            slider.valueChanged.connect(spin.setValue)
            slider.sliderPressed.connect(lambda s=side: self._slider_pressed(s))
            spin.valueChanged.connect(lambda v, s=side: self._spin_changed(s, v))
            benign.valueChanged.connect(lambda _v: self.changed.emit())
            birads.currentIndexChanged.connect(lambda _v: self.changed.emit())
            grid.addWidget(QLabel(BREAST_NAMES[side]), row, 0)
            grid.addWidget(slider, row, 1)
            grid.addWidget(spin, row, 2)
            grid.addWidget(benign, row, 3)
            grid.addWidget(birads, row, 4)
            self.inputs[side] = BreastInput(slider, spin, benign, birads)
        self.commit_button = QPushButton("Commit estimate  (Ctrl+Enter)")
        self.commit_button.setObjectName("commitButton")
        self.commit_button.clicked.connect(self.committed.emit)
        grid.addWidget(self.commit_button, 3, 0, 1, 5)
        self.saved_label = QLabel("")
        self.saved_label.setObjectName("savedLabel")
        grid.addWidget(self.saved_label, 4, 0, 1, 5)

    def _slider_pressed(self, side: str) -> None:
        entry = self.inputs[side]
        if entry.spin.value() < 0:  # a press on the slider gives its value, 0 included
            entry.spin.setValue(entry.slider.value())

    def _spin_changed(self, side: str, value: int) -> None:
        slider = self.inputs[side].slider
        slider.blockSignals(True)
        slider.setValue(max(value, 0))
        slider.blockSignals(False)
        self.changed.emit()

    def value(self, side: str) -> float | None:
        value = self.inputs[side].spin.value()
        return None if value < 0 else value / 100.0

    def reads(self, committed: bool) -> list[BreastRead]:
        out = []
        for side, entry in self.inputs.items():
            benign = entry.benign.value()
            out.append(
                BreastRead(
                    breast=side,
                    malignant=self.value(side),
                    benign=None if benign < 0 else benign / 100.0,
                    birads=entry.birads.currentText(),
                    committed=committed,
                )
            )
        return out

    def set_reads(self, reads: dict[str, BreastRead]) -> None:
        for side, entry in self.inputs.items():
            read = reads.get(side)
            given = read is not None and read.malignant is not None
            entry.spin.blockSignals(True)
            entry.slider.blockSignals(True)
            value = int(round(100 * read.malignant)) if given else -1
            entry.spin.setValue(value)
            entry.slider.setValue(max(value, 0))
            entry.spin.blockSignals(False)
            entry.slider.blockSignals(False)
            entry.benign.blockSignals(True)
            entry.birads.blockSignals(True)
            entry.benign.setValue(-1 if read is None or read.benign is None else 100 * read.benign)
            entry.birads.setCurrentText(read.birads if read else "")
            entry.benign.blockSignals(False)
            entry.birads.blockSignals(False)


class ScorePanelWidget(QWidget):
    """Model scores table, reader panel, and the reader | model | hybrid comparison."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scorePanel")
        self.result: ExamResult | None = None
        self.model_hidden = False
        layout = QVBoxLayout(self)
        self.model_box = QGroupBox("Model")
        model_layout = QVBoxLayout(self.model_box)
        self.details = QCheckBox("show global / local outputs")
        self.details.toggled.connect(self._fill_model_table)
        self.model_table = QTableWidget(0, 3)
        self.model_table.setObjectName("modelTable")
        self.model_table.verticalHeader().hide()
        self.model_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.model_table.setMinimumHeight(250)
        self.model_status = QLabel("No analysis yet.")
        self.model_status.setWordWrap(True)
        model_layout.addWidget(self.model_status)
        model_layout.addWidget(self.model_table)
        model_layout.addWidget(self.details)
        self.hidden_label = QLabel("Model hidden until you commit your estimate (blind reading).")
        self.hidden_label.setObjectName("blindNotice")
        self.hidden_label.setWordWrap(True)
        self.hidden_label.setStyleSheet("color: #c08020; font-weight: bold;")
        self.hidden_label.hide()
        self.reader = ReaderPanel()
        self.compare = QTableWidget(2, 4)
        self.compare.setObjectName("hybridTable")
        self.compare.setHorizontalHeaderLabels(["breast", "reader", "model", "hybrid"])
        self.compare.verticalHeader().hide()
        self.compare.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.compare.setMinimumHeight(95)
        layout.addWidget(self.model_box)
        layout.addWidget(self.hidden_label)
        layout.addWidget(self.reader)
        compare_box = QGroupBox("Probability of malignancy: reader | model | hybrid (mean)")
        QVBoxLayout(compare_box).addWidget(self.compare)
        layout.addWidget(compare_box)
        layout.addStretch(1)
        self.reader.changed.connect(self.refresh_compare)
        self.refresh_compare()

    def set_model_hidden(self, hidden: bool) -> None:
        self.model_hidden = hidden
        self.model_box.setVisible(not hidden)
        self.hidden_label.setVisible(hidden)
        self.refresh_compare()

    def set_status(self, text: str) -> None:
        self.model_status.setText(text)

    def set_result(self, result: ExamResult | None) -> None:
        self.result = result
        self._fill_model_table()
        self.refresh_compare()

    def model_malignant(self, side: str) -> float | None:
        if self.result is None or Laterality(side) not in self.result.breasts:
            return None
        return float(self.result.breasts[Laterality(side)].probabilities[1])

    def _fill_model_table(self) -> None:
        result = self.result
        extra = self.details.isChecked()
        headers = ["", "benign", "malignant"] + (["global b/m", "local b/m"] if extra else [])
        self.model_table.setColumnCount(len(headers))
        self.model_table.setHorizontalHeaderLabels(headers)
        rows: list[list[str]] = []
        if result is not None:
            ensemble = len(result.provenance.models) > 1
            for view in (View.R_CC, View.L_CC, View.R_MLO, View.L_MLO):
                if view not in result.views:
                    continue
                r = result.views[view]
                spread = f" ±{100 * r.spread[1]:.1f}" if ensemble else ""
                row = [view.value, percent(r.probabilities[0]), percent(r.probabilities[1]) + spread]
                if extra:
                    row += [f"{100 * r.y_global[0]:.1f} / {100 * r.y_global[1]:.1f}",
                            f"{100 * r.y_local[0]:.1f} / {100 * r.y_local[1]:.1f}"]
                rows.append(row)
            for side in (Laterality.RIGHT, Laterality.LEFT):
                if side in result.breasts:
                    b = result.breasts[side]
                    rows.append([BREAST_NAMES[side.value], percent(b.probabilities[0]), percent(b.probabilities[1])]
                                + (["", ""] if extra else []))
            rows.append(["Exam (max)", percent(result.probabilities[0]), percent(result.probabilities[1])]
                        + (["", ""] if extra else []))
        self.model_table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.model_table.setItem(i, j, QTableWidgetItem(text))
        self.model_table.resizeColumnsToContents()

    def refresh_compare(self) -> None:
        for i, side in enumerate(("R", "L")):
            reader = self.reader.value(side)
            model = None if self.model_hidden else self.model_malignant(side)
            cells = [BREAST_NAMES[side], percent(reader), "hidden" if self.model_hidden else percent(model),
                     percent(hybrid(reader, model))]
            for j, text in enumerate(cells):
                self.compare.setItem(i, j, QTableWidgetItem(text))
        self.compare.resizeColumnsToContents()
