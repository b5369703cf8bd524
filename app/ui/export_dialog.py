"""Export the open exam's report (PDF, PNG, JSON, DICOM SR and saliency SEG), optionally de-identified, in the
background."""

from __future__ import annotations

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

from app.report.content import ReportInput
from app.report.export import export_report
from app.ui.forms import add_ok_cancel, folder_row


def export_task(report: ReportInput, folder: str, formats: list[str], page_size: str, *, progress, cancel) -> list[Path]:
    progress("exporting the report", 0, 1)
    return export_report(report, folder, formats, page_size)


class ExportDialog(QDialog):
    def __init__(self, default_folder: str, has_dicom: bool, parent: QWidget | None = None, withheld: bool = False) -> None:
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
        form.addRow("", self.deidentify)
        form.addRow("Page size", self.page_size)
        form.addRow("Comments", self.comments)
        add_ok_cancel(form, self)


    def chosen_formats(self) -> list[str]:
        return [name for name, box in self.formats.items() if box.isChecked() and box.isEnabled()]
