"""Export the open exam's report (PDF, PNG, JSON, DICOM SR and saliency SEG), optionally de-identified, in the
background."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QTextEdit,
    QWidget,
)

from app.report.content import COMMENTS_LEFT_OUT, ReportInput, exam_label
from app.report.export import export_report
from app.ui.forms import add_ok_cancel, folder_row
from inference.errors import MammoError
from inference.files import file_in_the_way


DICOM_SUFFIXES = ("_sr.dcm", "_seg.dcm", "_pdf.dcm")


@dataclass(frozen=True)
class ExportOutcome:
    """What an export wrote and, when it was to be sent, whether the PACS took the DICOM files."""

    paths: list[Path]
    sent_to: str = ""
    send_error: str = ""

    @property
    def dicom_files(self) -> list[Path]:
        return [p for p in self.paths if p.name.endswith(DICOM_SUFFIXES)]


def send_task(files: list[Path], address: str, ae_title: str, *, progress, cancel) -> str:  # noqa: ARG001
    """C-STORE or STOW-RS of ``files`` under the one sending rule (``app.pacs.send``: these bytes once per node;
    the records in the user's settings folder, never in the export folder); the node in words."""
    from app.pacs.nodes import node_of  # noqa: PLC0415
    from app.pacs.send import node_folder, send_once  # noqa: PLC0415
    from app.settings import config_dir, private_folder  # noqa: PLC0415

    node = node_of(address, ae_title)
    progress(f"sending {len(files)} file(s) to {node.describe()}", 0, 1)
    key = hashlib.sha1("\n".join(sorted(str(Path(p).resolve()) for p in files)).encode()).hexdigest()[:16]
    send_once(node, files, node_folder(private_folder(config_dir()), node) / f"{key}.json")
    return node.describe()


def export_task(report: ReportInput, folder: str, formats: list[str], page_size: str, send: tuple[str, str] | None = None,
                exam_key: str = "", *, progress, cancel) -> ExportOutcome:
    """The export; then, with ``send`` = (node address, our AE title), its SR, SEG and Encapsulated PDF to
    the PACS. A failed send is part of the outcome (the files stay, to be sent again), not an error.
    ``exam_key``: the files' name is claimed for this exam in ``folder`` (another exam of the same accession or
    folder name gets ``<name>-2`` …, as ``report`` does); a de-identified report's name is its own already."""
    from app.pacs.nodes import PacsError  # noqa: PLC0415

    if not formats:
        raise MammoError("no format chosen: tick at least one (PDF, PNG, JSON …)")
    in_the_way = file_in_the_way(folder)
    if in_the_way is not None:
        raise MammoError("is a file, not a folder: choose a folder for the report", in_the_way)
    progress("exporting the report", 0, 1)
    if exam_key and not report.deidentify and not report.file_name:
        from app.archive.unit import claim_label  # noqa: PLC0415
        report = dataclasses.replace(report, file_name=claim_label(Path(folder), exam_label(report), exam_key))
    paths = export_report(report, folder, formats, page_size)
    outcome = ExportOutcome(paths)
    if send is None or not outcome.dicom_files:
        return outcome
    try:
        sent_to = send_task(outcome.dicom_files, *send, progress=progress, cancel=cancel)
    except (PacsError, MammoError, OSError) as error:
        return ExportOutcome(paths, send_error=str(error))
    return ExportOutcome(paths, sent_to=sent_to)


class ExportDialog(QDialog):
    def __init__(self, default_folder: str, has_dicom: bool, parent: QWidget | None = None, withheld: bool = False,
                 send_to: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export report")
        self.folder = QLineEdit(default_folder)
        row = folder_row(self.folder, "Export to")
        self.formats = {name: QCheckBox(label) for name, label in (
            ("pdf", "PDF report"), ("png", "PNG figures"), ("json", "JSON data"), ("sr", "DICOM structured report"),
            ("seg", "DICOM saliency maps (Segmentation, one per view)"),
            ("epdf", "the PDF as DICOM Encapsulated PDF"))}
        for name in ("pdf", "png", "json"):
            self.formats[name].setChecked(True)
        for name in ("sr", "seg", "epdf"):
            self.formats[name].setEnabled(has_dicom)
            if not has_dicom:
                self.formats[name].setToolTip("needs DICOM source images and a model result that may be shown")
        self.send = QCheckBox(f"send the DICOM files (SR, SEG, Encapsulated PDF) to {send_to}" if send_to else
                              "send the DICOM files to the PACS (configure a node in Preferences)")
        self.send.setObjectName("exportSend")
        self.send.setEnabled(bool(send_to) and has_dicom)
        self.deidentify = QCheckBox("de-identify (no patient identifiers anywhere)")
        self.page_size = QComboBox()
        self.page_size.addItems(["A4", "Letter"])
        self.comments = QTextEdit()
        self.comments.setPlaceholderText("optional comments for the report")
        self.comments.setFixedHeight(70)
        form = QFormLayout(self)
        if withheld:
            note = QLabel("The model is hidden until you commit your estimate (blind first): the report holds your "
                          "reading and the images, not the model's result.")
            note.setObjectName("withheldNote")
            note.setWordWrap(True)
            form.addRow(note)
        form.addRow("Folder", row)
        for box in self.formats.values():
            form.addRow("", box)
        if not has_dicom:  # said, not only greyed out
            why = QLabel("The DICOM formats need DICOM source images (they refer to them) and a model result that "
                         "may be shown.")
            why.setObjectName("dicomFormatsNote")
            why.setWordWrap(True)
            form.addRow("", why)
        form.addRow("", self.send)
        form.addRow("", self.deidentify)
        form.addRow("Page size", self.page_size)
        form.addRow("Comments", self.comments)
        self.deidentify.toggled.connect(self._comments_for)
        self.problem = QLabel("")  # why OK did not export (no format, no folder, a file): said here
        self.problem.setObjectName("exportProblem")
        self.problem.setStyleSheet("color: #b00020; font-weight: bold;")
        self.problem.hide()
        form.addRow("", self.problem)
        add_ok_cancel(form, self)


    def _comments_for(self, deidentify: bool) -> None:
        """A de-identified export leaves the comments out (free text may name the patient): said here, and the
        box is closed to typing meanwhile; what was typed stays for an identified export."""
        self.comments.setEnabled(not deidentify)
        self.comments.setToolTip(f"Comments are {COMMENTS_LEFT_OUT.replace('this', 'a')}." if deidentify else "")
        self.comments.setPlaceholderText(f"comments are {COMMENTS_LEFT_OUT.replace('this', 'a')}" if deidentify
                                         else "optional comments for the report")

    def chosen_formats(self) -> list[str]:
        return [name for name, box in self.formats.items() if box.isChecked() and box.isEnabled()]

    def chosen_folder(self) -> str:
        """The folder as typed; a relative one is taken in the home folder (not wherever the program started).

        Raises:
            RuntimeError: a "~user" that names no user."""
        path = Path(self.folder.text().strip()).expanduser()
        return str(path if path.is_absolute() else Path.home() / path)

    def folder_problem(self) -> str:
        """Why the folder typed cannot take the export ("" when it can, as far as can be told before writing)."""
        if not self.folder.text().strip():
            return "Choose a folder."
        try:
            in_the_way = file_in_the_way(self.chosen_folder())
        except (RuntimeError, OSError) as error:  # "~nosuchuser", a folder we may not look into
            return f"{self.folder.text().strip()}: {error}"
        return f"{in_the_way} is a file, not a folder." if in_the_way is not None else ""

    def accept(self) -> None:  # noqa: D102 - Qt override: what cannot be exported is said, the dialog stays open
        problem = "Tick at least one format." if not self.chosen_formats() else self.folder_problem()
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        if not problem:
            super().accept()
