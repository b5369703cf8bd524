"""The reader's mark: what was seen at a point, and how sure the reader is."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QFormLayout, QLabel, QSpinBox, QWidget

from app.study.store import MARK_LABELS, ReaderMark
from app.ui.forms import add_ok_cancel


class MarkDialog(QDialog):
    def __init__(self, view: str, row: float, col: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("markDialog")
        self.setWindowTitle(f"Mark on {view}")
        self._where = (view, row, col)
        self.label = QComboBox()
        self.label.addItems(MARK_LABELS)
        self.confidence = QSpinBox()
        self.confidence.setRange(1, 5)
        self.confidence.setValue(3)
        self.confidence.setSuffix(" / 5")
        form = QFormLayout(self)
        # said in the dialog too: a title bar is not always drawn (no window manager, a kiosk session)
        breast = "right" if view.startswith("R") else "left" if view.startswith("L") else ""
        self.where = QLabel(f"{view}" + (f" ({breast} breast)" if breast else ""))
        self.where.setObjectName("markWhere")
        form.addRow("On", self.where)
        form.addRow("Finding", self.label)
        form.addRow("Confidence", self.confidence)
        add_ok_cancel(form, self)

    def mark(self) -> ReaderMark:
        view, row, col = self._where
        return ReaderMark(view, row, col, self.label.currentText(), self.confidence.value())
