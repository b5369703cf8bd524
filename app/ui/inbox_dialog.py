"""The inbox of our Storage SCP: the studies pushed to the workstation (or moved to it), newest first;
Enter opens one through the usual intake. The list is read on the worker (one header per study)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.worker import Worker

COLUMNS = ("Patient", "Patient ID", "Date", "Accession", "Images")


def _list_task(inbox: Path, *, progress, cancel):  # noqa: ARG001
    from app.pacs.scp import received_studies  # noqa: PLC0415

    return received_studies(inbox)


def inbox_folder() -> Path:
    from app.settings import config_dir  # noqa: PLC0415

    return config_dir() / "inbox"


class InboxDialog(QDialog):
    """Emits ``studyChosen(folder)`` and closes when the user opens a received study."""

    studyChosen = Signal(object)

    def __init__(self, inbox: Path, listening: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inboxDialog")
        self.setWindowTitle("Received studies")
        self.resize(760, 420)
        self.studies: list = []
        self.status = QLabel(f"{listening}; reading the inbox…")
        self.status.setObjectName("inboxStatus")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("inboxStudies")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _index: self.open_selected())
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        self._listening = listening
        self.worker = Worker(_list_task, inbox)
        self.worker.result.connect(self.show_studies)
        self.worker.error.connect(lambda error: self.status.setText(f"the inbox cannot be read: {error}"))
        self.worker.start()

    def show_studies(self, studies) -> None:
        self.studies = list(studies)
        self.table.setRowCount(len(self.studies))
        for row, study in enumerate(self.studies):
            date = QDate.fromString(study.date, "yyyyMMdd")
            values = (study.patient_name.replace("^", " ").strip(), study.patient_id,
                      date.toString("yyyy-MM-dd") if date.isValid() else study.date, study.accession, str(study.images))
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        if self.studies:
            self.table.selectRow(0)
            self.table.setFocus()
        self.status.setText(f"{self._listening}; {len(self.studies)} received stud"
                            f"{'y' if len(self.studies) == 1 else 'ies'}" + ("; Enter opens the selected one"
                                                                             if self.studies else ""))

    def open_selected(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.studies):
            self.studyChosen.emit(self.studies[row].folder)
            self.accept()

    def keyPressEvent(self, event):  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.table.hasFocus():
            self.open_selected()
            return
        super().keyPressEvent(event)
