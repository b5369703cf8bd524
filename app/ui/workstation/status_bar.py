"""The workstation's status bar."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton


def build_status_bar(window) -> None:
    """The status bar: cursor position, the stage of the work in progress, its progress, Cancel, the device."""
    status = window.statusBar()
    window.cursor_label = QLabel("")
    window.cursor_label.setObjectName("cursorLabel")
    window.stage_label = QLabel("")
    window.stage_label.setObjectName("stageLabel")
    window.progress = QProgressBar()
    window.progress.setObjectName("analysisProgress")
    window.progress.setFixedWidth(180)
    window.progress.hide()
    window.cancel_button = QPushButton("Cancel (Esc)")
    window.cancel_button.setObjectName("cancelButton")
    window.cancel_button.clicked.connect(window.analyses.cancel_analysis)
    window.cancel_button.hide()
    window.device_label = QLabel("")
    window.device_label.setObjectName("deviceLabel")
    status.addWidget(window.cursor_label, 1)
    status.addPermanentWidget(window.stage_label)
    status.addPermanentWidget(window.progress)
    status.addPermanentWidget(window.cancel_button)
    status.addPermanentWidget(window.device_label)
