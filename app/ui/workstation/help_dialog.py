"""Help: the keyboard shortcuts, generated from the window's own actions so the list cannot go stale."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

MOUSE = [
    ("Wheel", "zoom"),
    ("Left drag", "pan"),
    ("Right drag", "window (left/right: width, up/down: level)"),
    ("Double-click", "one view full screen / back"),
    ("Hover a patch box", "highlight it in the gallery"),
    ("Click a gallery patch", "centre and zoom on it"),
]
SHORTCUTS = MOUSE


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard and mouse")
        rows = [
            (" or ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()), action.text())
            for action in parent.actions()
            if not action.shortcut().isEmpty() and not action.objectName().startswith("toggleClass")
        ]
        # one row for the nine class keys (nine rows "Map of class N" said little), after the named maps' keys
        at = next((i + 1 for i, (_key, text) in enumerate(rows) if text == "Malignant map"), len(rows))
        rows[at:at] = [("Alt+1 … Alt+9", "Map of the model's 1st … 9th class (its classes, in the tool bar's order)")]
        rows += MOUSE
        table = QTableWidget(len(rows), 2)
        table.setObjectName("shortcutsTable")
        table.setTabKeyNavigation(False)
        table.setHorizontalHeaderLabels(["key", "action"])
        table.verticalHeader().hide()
        for i, (key, text) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(key))
            table.setItem(i, 1, QTableWidgetItem(text))
        # the keys as wide as the widest, the actions in what is left, wrapped (a long one was cut and needed a
        # sideways scroll)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.setWordWrap(True)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # a wrapped one too
        # every row at once where the screen is tall enough (a 1440-pixel monitor scrolled a 660-pixel list)
        screen = parent.screen().availableGeometry() if parent.screen() is not None else None
        wanted = table.horizontalHeader().height() + sum(table.sizeHintForRow(i) for i in range(len(rows))) + 90
        self.resize(600, max(480, min(wanted, int(screen.height() * 0.9)) if screen is not None else 660))
        self.table = table
