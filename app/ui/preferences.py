"""Preferences: model folder or file, device, exact/fast mode, auto-run, blind-first reading."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from app.settings import AppSettings
from app.ui.forms import add_ok_cancel, folder_row


class PreferencesDialog(QDialog):
    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self._settings = settings
        self.model_path = QLineEdit(settings.model_path)
        self.model_path.setPlaceholderText("folder with sample_model_1.p … sample_model_5.p, or one checkpoint")
        row = folder_row(self.model_path, "Model folder")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setCurrentText(settings.device)
        self.mode = QComboBox()
        self.mode.addItems(["exact", "fast"])
        self.mode.setCurrentText(settings.mode)
        self.auto_run = QCheckBox("analyse automatically when an exam opens")
        self.auto_run.setChecked(settings.auto_run)
        self.blind = QCheckBox("blind first: hide the model until I commit my estimate")
        self.blind.setChecked(settings.blind_first)
        self.reader = QLineEdit(settings.reader_name)
        form = QFormLayout(self)
        form.addRow("Model", row)
        form.addRow("", QLabel("auto = the GPU (CUDA) when present, else the CPU"))
        form.addRow("Device", self.device)
        form.addRow("Mode", self.mode)
        form.addRow("", self.auto_run)
        form.addRow("", self.blind)
        form.addRow("Reader name", self.reader)
        add_ok_cancel(form, self)


    def settings(self) -> AppSettings:
        return dataclasses.replace(
            self._settings,
            model_path=self.model_path.text().strip(),
            device=self.device.currentText(),
            mode=self.mode.currentText(),
            auto_run=self.auto_run.isChecked(),
            blind_first=self.blind.isChecked(),
            reader_name=self.reader.text().strip(),
        )
