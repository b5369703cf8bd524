"""The inbox of our Storage SCP: the studies pushed to the workstation (or moved to it), newest first;
Enter opens one through the usual intake. The list is read on the worker (one header per study)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget

from app.dates import dicom_date
from app.ui.pacs.study_table import StudyTable
from app.ui.worker import Worker

COLUMNS = ("Patient", "Patient ID", "Date", "Accession", "Images")


def _list_task(inbox: Path, *, progress, cancel):  # noqa: ARG001
    from app.pacs.scp import received_studies  # noqa: PLC0415

    return received_studies(inbox)


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
        self.table = StudyTable(COLUMNS, "inboxStudies")
        self.table.opened.connect(self.open_selected)
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
        self.table.set_rows([(s.patient_name.replace("^", " ").strip(), s.patient_id, dicom_date(s.date), s.accession,
                              str(s.images)) for s in self.studies])
        self.status.setText(f"{self._listening}; {len(self.studies)} received stud"
                            f"{'y' if len(self.studies) == 1 else 'ies'}" + ("; Enter opens the selected one"
                                                                             if self.studies else ""))

    def open_selected(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.studies):
            self.studyChosen.emit(self.studies[row].folder)
            self.accept()
