"""The one place that turns exceptions into messages a radiologist can act on."""

from __future__ import annotations

import logging
import sqlite3

from PySide6.QtWidgets import QMessageBox, QWidget

from app.study.errors import StudyError
from inference.errors import MammoError

logger = logging.getLogger(__name__)


def user_message(error: BaseException) -> tuple[str, str]:
    """(title, text) for an exception: typed input errors speak for themselves; others are bugs."""
    if isinstance(error, StudyError):
        return "Reader study", str(error)
    if isinstance(error, MammoError):
        return "Cannot use this input", str(error)
    if isinstance(error, sqlite3.IntegrityError):  # the store's triggers refuse what the study design forbids
        return "Not allowed by the study design", str(error)
    if isinstance(error, sqlite3.OperationalError) and "full" in str(error):
        return "Disk full", f"Nothing more can be saved: {error}. Free some space; committed reads are safe."
    if isinstance(error, MemoryError):
        return "Out of memory", "The computer ran out of memory. Close other programs and try again."
    if isinstance(error, OSError):
        return "File problem", f"{error.strerror or error} ({error.filename or 'no file name'})"
    return "Unexpected error", (
        f"An unexpected error occurred ({type(error).__name__}: {error}). "
        "Please report it; the exam itself was not changed."
    )


def show_error(parent: QWidget | None, error: BaseException) -> QMessageBox:
    """Show ``error`` in a dialog (never logs identifiers: only the type goes to the log); returns the dialog,
    open (not modal to the event loop: its ``finished`` says when it is closed)."""
    title, text = user_message(error)
    logger.warning("shown to the user: %s", type(error).__name__)
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorDialog")
    box.open()
    return box
