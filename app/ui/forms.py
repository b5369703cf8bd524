"""Small pieces shared by the screens and dialogs."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
)


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


def add_ok_cancel(form: QFormLayout, dialog: QDialog) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)


class _WheelOnlyWhenFocused:
    """An answer in a scrolling panel: the wheel scrolls the panel unless the input has the keyboard focus
    (clicked or tabbed into), so scrolling past it never changes the reader's answer."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel gives no focus

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()  # on to the panel, which scrolls


class AnswerComboBox(_WheelOnlyWhenFocused, QComboBox):
    pass


class _NextExamKeysPassThrough:
    """A number box leaves Ctrl+Left / Ctrl+Right (word moves, useless in a number) to the window: the
    worklist's Previous / Next right after typing a value."""

    def event(self, event) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride and event.modifiers() & Qt.KeyboardModifier.ControlModifier
                and event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right)):
            event.ignore()  # not the box's: the shortcut fires
            return True
        return super().event(event)


class AnswerSpinBox(_NextExamKeysPassThrough, _WheelOnlyWhenFocused, QSpinBox):
    pass


class AnswerDoubleSpinBox(_NextExamKeysPassThrough, _WheelOnlyWhenFocused, QDoubleSpinBox):
    pass


class AnswerSlider(_WheelOnlyWhenFocused, QSlider):
    pass
