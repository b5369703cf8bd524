"""Preferences: models, device, exact/fast mode, auto-run, and the reading defaults (blind first, maps on
demand)."""

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
    """``in_use``: the models the window uses now (shown, so that OK never silently drops them)."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None, in_use: str = "",
                 in_use_is_demo: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self._settings = settings
        self.model_path = QLineEdit(settings.model_path or ("" if in_use_is_demo else in_use))
        self.model_path.setObjectName("modelPath")
        self.model_path.setPlaceholderText("empty: the built-in demo model; or GMIC / GLAM checkpoints or folders "
                                           "(several separated by ':')")
        row = folder_row(self.model_path, "Model folder")
        self.in_use = QLabel(f"in use now: {in_use or 'no model'}" + (" (the built-in demo model)" if in_use_is_demo
                                                                       else ""))
        self.in_use.setObjectName("modelInUse")
        self.in_use.setWordWrap(True)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setCurrentText(settings.device)
        self.mode = QComboBox()
        self.mode.addItems(["exact", "fast"])
        self.mode.setCurrentText(settings.mode)
        self.auto_run = QCheckBox("analyse automatically when an exam opens")
        self.auto_run.setChecked(settings.auto_run)
        self.blind = QCheckBox("blind first: hide the model until I commit my estimate (recommended)")
        self.blind.setChecked(settings.blind_first)
        self.show_overlays = QCheckBox("show the maps as soon as the model is shown (else on demand with H)")
        self.show_overlays.setChecked(settings.show_overlays)
        self.reader = QLineEdit(settings.reader_name)
        form = QFormLayout(self)
        form.addRow("Models", row)
        form.addRow("", self.in_use)
        form.addRow("", QLabel("auto = the GPU (CUDA) when present, else the CPU"))
        form.addRow("Device", self.device)
        form.addRow("Mode", self.mode)
        form.addRow("", self.auto_run)
        form.addRow("", self.blind)
        form.addRow("", self.show_overlays)
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
            show_overlays=self.show_overlays.isChecked(),
            reader_name=self.reader.text().strip(),
        )
