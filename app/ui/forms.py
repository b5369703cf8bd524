"""Small pieces shared by the screens and dialogs."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton


def folder_row(edit: QLineEdit, title: str) -> QHBoxLayout:
    """A line edit with a "Folder…" button that fills it from a folder chooser."""

    def browse() -> None:
        folder = QFileDialog.getExistingDirectory(edit, title)
        if folder:
            edit.setText(folder)

    button = QPushButton("Folder…")
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit)
    row.addWidget(button)
    return row


def dicom_date(text: str) -> str:
    """YYYYMMDD as YYYY-MM-DD (anything else as it is)."""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def add_ok_cancel(form: QFormLayout, dialog: QDialog) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
