"""Open a study from the PACS: a keyboard-driven search (patient ID, name, accession, study dates, MG only
by default), the answers newest first, Enter opens the chosen study. The search runs on the one worker; the
retrieval runs in the main window's exam loader (progress in the status bar, Esc cancels)."""

from __future__ import annotations

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.dates import dicom_date
from app.pacs.nodes import PacsError, RemoteNode, StudyAddress, node_of
from app.pacs.query import StudyQuery, StudyRecord
from app.ui.pacs.study_table import StudyTable
from app.ui.worker import Worker
from inference.errors import MammoError

COLUMNS = ("Patient", "Patient ID", "Date", "Accession", "Views", "Modalities", "Images", "Description")


def _search_task(node: RemoteNode, query: StudyQuery, *, progress, cancel) -> list[StudyRecord]:  # noqa: ARG001
    from app.pacs.retrieve import find_studies  # noqa: PLC0415

    progress(f"searching {node.describe()}", 0, 1)
    return find_studies(node, query)


def _echo_task(node: RemoteNode, *, progress, cancel) -> str:  # noqa: ARG001
    from app.pacs.retrieve import echo  # noqa: PLC0415

    echo(node)
    return f"{node.describe()} answers ({'C-ECHO' if node.protocol == 'dimse' else 'QIDO-RS'})"


class PacsDialog(QDialog):
    """Emits ``studyChosen(StudyAddress)`` and closes when the user opens a study."""

    studyChosen = Signal(object)

    def __init__(self, node_address: str, ae_title: str, parent: QWidget | None = None,
                 named: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(parent)
        self.setObjectName("pacsDialog")
        self.setWindowTitle("Open from PACS")
        self.resize(900, 520)
        self.records: list[StudyRecord] = []
        self.worker: Worker | None = None
        self.node_edit = QLineEdit(node_address)
        self.node_edit.setObjectName("pacsNode")
        self.node_choice = QComboBox()
        self.node_choice.setObjectName("pacsNodeChoice")
        for name, address in named:
            self.node_choice.addItem(name, address)
        self.node_choice.setVisible(bool(named))
        self.node_choice.activated.connect(lambda index: self.node_edit.setText(self.node_choice.itemData(index)))
        self.node_edit.setPlaceholderText("dimse://CALLED_AET@HOST:PORT or dicomweb+https://HOST:PORT/PREFIX")
        self.ae_edit = QLineEdit(ae_title)
        self.ae_edit.setObjectName("pacsAeTitle")
        self.ae_edit.setMaxLength(16)
        self.patient_id = QLineEdit()
        self.patient_id.setObjectName("pacsPatientId")
        self.patient_name = QLineEdit()
        self.patient_name.setObjectName("pacsPatientName")
        self.patient_name.setPlaceholderText("Family^Given; * matches any characters")
        self.accession = QLineEdit()
        self.accession.setObjectName("pacsAccession")
        self.use_dates = QCheckBox("study date from")
        self.use_dates.setObjectName("pacsUseDates")
        self.date_from = QDateEdit(QDate.currentDate().addYears(-3))
        self.date_to = QDateEdit(QDate.currentDate())
        for edit in (self.date_from, self.date_to):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setCalendarPopup(True)
        self.mg_only = QCheckBox("MG studies only")
        self.mg_only.setObjectName("pacsMgOnly")
        self.mg_only.setChecked(True)
        self.search_button = QPushButton("Search")
        self.search_button.setObjectName("pacsSearch")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.test_button = QPushButton("Test")
        self.test_button.setObjectName("pacsTest")
        self.test_button.clicked.connect(self.test_node)
        self.status = QLabel("Enter searches; Enter on a study opens it.")
        self.status.setObjectName("pacsStatus")
        self.status.setWordWrap(True)
        self.table = StudyTable(COLUMNS, "pacsResults")
        self.table.opened.connect(self.open_selected)

        node_row = QHBoxLayout()
        node_row.addWidget(self.node_choice)
        node_row.addWidget(self.node_edit, 1)
        node_row.addWidget(QLabel("our AE title"))
        node_row.addWidget(self.ae_edit)
        node_row.addWidget(self.test_button)
        dates = QHBoxLayout()
        dates.addWidget(self.use_dates)
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        dates.addStretch(1)
        dates.addWidget(self.mg_only)
        dates.addWidget(self.search_button)
        form = QFormLayout()
        form.addRow("PACS", node_row)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Accession", self.accession)
        form.addRow("", dates)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        for edit in (self.patient_id, self.patient_name, self.accession, self.node_edit):
            edit.returnPressed.connect(self.search)
        self.records_node: RemoteNode | None = None
        self.records_address: tuple[str, str] | None = None
        self._serial = 0  # bumped when the list is cleared: a late answer of an earlier search is dropped
        self.node_edit.textChanged.connect(lambda _text: self.clear_results())  # another server: not its studies

    # ----------------------------------------------------------------------------------------- actions

    def query(self) -> StudyQuery:
        dates = ("", "")
        if self.use_dates.isChecked():
            dates = (self.date_from.date().toString("yyyyMMdd"), self.date_to.date().toString("yyyyMMdd"))
        return StudyQuery(patient_id=self.patient_id.text().strip(), patient_name=self.patient_name.text().strip(),
                          accession=self.accession.text().strip(), date_from=dates[0], date_to=dates[1],
                          modality="MG" if self.mg_only.isChecked() else "")

    def _node(self) -> RemoteNode | None:
        if not self.node_edit.text().strip():
            self.status.setText("No PACS given: type its address" + (", or pick one of the nodes named in Preferences"
                                                                     if not self.node_choice.isHidden() else ""))
            return None
        try:
            return node_of(self.node_edit.text(), self.ae_edit.text())
        except MammoError as error:
            self.status.setText(str(error))
            return None

    def _run(self, task, *args, on_result) -> None:
        if self.worker is not None and self.worker.is_running():
            return
        self.search_button.setEnabled(False)
        self.test_button.setEnabled(False)
        self.worker = Worker(task, *args)
        self.worker.progress.connect(lambda stage, done, total: self.status.setText(f"{stage}…"))
        self.worker.result.connect(on_result)
        self.worker.error.connect(self._failed)
        self.worker.finished.connect(lambda: (self.search_button.setEnabled(True), self.test_button.setEnabled(True)))
        self.worker.start()

    def search(self) -> None:
        if self.worker is not None and self.worker.is_running():
            self.status.setText("A search or test is running: wait for its answer")
            return
        node = self._node()
        if node is None:
            return
        if self.use_dates.isChecked() and self.date_from.date() > self.date_to.date():
            self.status.setText("The 'from' date is after the 'to' date: no study can match")
            return
        self.clear_results()  # a failed search never leaves another search's (another server's) studies to open
        serial, address = self._serial, (self.node_edit.text().strip(), self.ae_edit.text().strip())
        self._run(_search_task, node, self.query(),
                  on_result=lambda records: self.show_records(records, node, address) if serial == self._serial else None)

    def clear_results(self) -> None:
        """No studies listed; an answer still on its way (from the server searched before) is dropped."""
        self._serial += 1
        if self.records:
            self.status.setText("")
        self.records, self.records_node, self.records_address = [], None, None
        self.table.set_rows([])

    def test_node(self) -> None:
        node = self._node()
        if node is not None:
            self._run(_echo_task, node, on_result=self.status.setText)

    def _failed(self, error: BaseException) -> None:
        self.status.setText(str(error) if isinstance(error, (PacsError, MammoError)) else
                            f"the search failed: {type(error).__name__}: {error}")

    def show_records(self, records: list[StudyRecord], node: RemoteNode | None = None,
                     address: tuple[str, str] | None = None) -> None:
        """The studies a search of ``node`` found (opened from that node, whatever the address field says now;
        ``address``: its address and our AE title as typed, what Preferences keep once one is opened)."""
        self.records, self.records_node, self.records_address = list(records), node, address
        self.table.set_rows([(r.patient_name.replace("^", " ").strip(), r.patient_id, dicom_date(r.date), r.accession,
                              " ".join(r.views) if r.views else "—", " ".join(r.modalities),
                              "" if r.instances is None else str(r.instances), r.description) for r in self.records])
        if self.records:
            where = f" on {node.describe()}" if node is not None else ""
            self.status.setText(f"{len(self.records)} stud{'y' if len(self.records) == 1 else 'ies'}{where}, newest "
                                "first; Enter opens the selected one")
        else:
            self.status.setText("No study matches" + (" (MG studies only)" if self.mg_only.isChecked() else ""))

    def open_selected(self) -> None:
        row = self.table.currentRow()
        node = self.records_node or self._node()
        if node is None or not 0 <= row < len(self.records):
            return
        self.studyChosen.emit(StudyAddress(node, self.records[row].study_uid))
        self.accept()
