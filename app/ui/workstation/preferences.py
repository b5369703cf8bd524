"""Preferences: models, device, exact/fast mode, auto-run, the reading defaults (blind first, maps on
demand), and the PACS node with its Test button."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.settings import RANGES, AppSettings
from app.ui.forms import folder_row


class PreferencesDialog(QDialog):
    """``in_use``: the models the window uses now (shown, so that OK never silently drops them)."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None, in_use: str = "",
                 in_use_is_demo: bool = False, session_only: dict[str, tuple] | None = None) -> None:
        """``session_only``: setting -> (saved value, this session's command-line value), said in the dialog:
        the values shown are this session's, and only one changed here is saved."""
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
        self.prefetch = QSpinBox()
        self.prefetch.setObjectName("prefsPrefetch")
        self.prefetch.setRange(*RANGES["prefetch_exams"])
        self.prefetch.setValue(int(settings.prefetch_exams))
        self.prefetch.setSuffix(" next exams prefetched (each ~60-250 MB of memory; 0 = off)")
        self.link_window = QCheckBox("one window/level for all views of the exam (compare left with right)")
        self.link_window.setObjectName("prefsLinkWindow")
        self.link_window.setChecked(settings.link_window)
        self.hanging_steps = QLineEdit(settings.hanging_steps)
        self.hanging_steps.setObjectName("prefsHangingSteps")
        self.hanging_steps.setPlaceholderText("empty: the default screening steps; or a JSON file of steps "
                                              "(Help → User guide, the workstation)")
        steps_button = QPushButton("File…")
        steps_button.clicked.connect(self._choose_steps_file)
        steps_row = QHBoxLayout()
        steps_row.addWidget(self.hanging_steps, 1)
        steps_row.addWidget(steps_button)
        self.nodes = QTableWidget(0, 2)
        self.nodes.setObjectName("prefsPacsNodes")
        self.nodes.setHorizontalHeaderLabels(["Name", "Address: dimse://CALLED_AET@HOST:PORT or dicomweb+https://HOST/PREFIX"])
        self.nodes.horizontalHeader().setStretchLastSection(True)
        self.nodes.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.nodes.setFixedHeight(110)
        named = list(settings.pacs_nodes) or ([("PACS", settings.pacs_node)] if settings.pacs_node else [])
        for name, address in named:
            self.add_node(name, address)
        self.ae_title = QLineEdit(settings.ae_title)
        self.ae_title.setObjectName("prefsAeTitle")
        self.ae_title.setMaxLength(16)
        buttons = QHBoxLayout()
        for text, slot, name in (("Add", lambda: self.add_node("", ""), "prefsPacsAdd"),
                                 ("Remove", self.remove_node, "prefsPacsRemove"),
                                 ("Test", self.test_node, "prefsPacsTest"),
                                 ("Password…", self.set_password, "prefsPacsPassword")):
            button = QPushButton(text)
            button.setObjectName(name)
            button.clicked.connect(slot)
            buttons.addWidget(button)
            if name == "prefsPacsTest":
                self.test_button = button
        buttons.addStretch(1)
        buttons.addWidget(QLabel("our AE title"))
        buttons.addWidget(self.ae_title)
        from app.pacs.credentials import where_kept  # noqa: PLC0415

        self._credentials_file = settings.credentials_file
        kept = where_kept(settings.credentials_file)
        self.test_result = QLabel("DICOMweb passwords (Password…) are kept " + ("" if kept.startswith("nowhere") else "in ")
                                  + kept + ", never in the "
                                  "settings; MAMMO_DICOMWEB_USER / MAMMO_DICOMWEB_PASSWORD (or MAMMO_DICOMWEB_TOKEN) "
                                  "in the environment override them. The first node is the default.")
        self.test_result.setObjectName("prefsPacsTestResult")
        self.test_result.setWordWrap(True)
        self._test_worker = None
        self.scp_enabled = QCheckBox("receive studies pushed to this workstation (Storage SCP, our AE title) on port")
        self.scp_enabled.setObjectName("prefsScpEnabled")
        self.scp_enabled.setChecked(settings.scp_enabled)
        self.scp_port = QSpinBox()
        self.scp_port.setObjectName("prefsScpPort")
        self.scp_port.setRange(*RANGES["scp_port"])
        self.scp_port.setValue(settings.scp_port)
        scp_row = QHBoxLayout()
        scp_row.addWidget(self.scp_enabled)
        scp_row.addWidget(self.scp_port)
        scp_row.addWidget(QLabel("on"))
        self.scp_bind = QLineEdit(settings.scp_bind)
        self.scp_bind.setObjectName("prefsScpBind")
        self.scp_bind.setMaximumWidth(140)
        self.scp_bind.setMinimumWidth(self.scp_bind.fontMetrics().horizontalAdvance("255.255.255.255") + 16)
        scp_row.addWidget(self.scp_bind)
        scp_row.addStretch(1)
        # the same allow-list and limits as ``serve`` (app/pacs/scp.py)
        self.scp_allowed = QLineEdit(", ".join(settings.scp_allowed))
        self.scp_allowed.setObjectName("prefsScpAllowed")
        self.scp_allowed.setPlaceholderText("e.g. PACS@10.0.0.5, MODALITY1")
        self.scp_max_mb, self.scp_quota_gb = QSpinBox(), QSpinBox()
        self.scp_max_mb.setObjectName("prefsScpMaxMb")
        self.scp_max_mb.setRange(*RANGES["scp_max_instance_mb"])
        self.scp_max_mb.setValue(int(settings.scp_max_instance_mb))
        self.scp_max_mb.setSuffix(" MB per instance")
        self.scp_quota_gb.setObjectName("prefsScpQuotaGb")
        self.scp_quota_gb.setRange(*RANGES["scp_quota_gb"])
        self.scp_quota_gb.setValue(max(1, int(settings.scp_quota_gb)))
        self.scp_quota_gb.setSuffix(" GB in all")
        limits_row = QHBoxLayout()
        limits_row.addWidget(self.scp_allowed, 1)
        limits_row.addWidget(self.scp_max_mb)
        limits_row.addWidget(self.scp_quota_gb)
        self.scp_note = QLabel("Only the senders listed are let in (AE_TITLE or AE_TITLE@HOST, comma-separated); "
                               "with none listed, nobody is. 127.0.0.1 receives from this machine only: name a LAN "
                               "address to receive from the network.")
        self.scp_note.setObjectName("prefsScpNote")
        self.scp_note.setWordWrap(True)
        fields = QWidget()  # scrolls where the screen is short; OK and Cancel stay in sight below it (at
        form = QFormLayout(fields)  # 1280 × 800 they were cut off at the screen's bottom edge)
        form.addRow("Models", row)
        form.addRow("", self.in_use)
        form.addRow("", QLabel("auto = the GPU (CUDA) when present, else the CPU"))
        form.addRow("Device", self.device)
        form.addRow("Mode", self.mode)
        form.addRow("", self.auto_run)
        form.addRow("", self.blind)
        form.addRow("", self.show_overlays)
        form.addRow("Reader name", self.reader)
        form.addRow("Worklist", self.prefetch)
        form.addRow("", self.link_window)
        form.addRow("Hanging steps (Space)", steps_row)
        form.addRow("PACS nodes", self.nodes)
        form.addRow("", buttons)
        form.addRow("", self.test_result)
        form.addRow("", scp_row)
        form.addRow("Allowed senders", limits_row)
        form.addRow("", self.scp_note)
        if session_only:
            options = ", ".join(f"{key.replace('_', ' ')} {session} (saved: {saved or '—'})"
                                for key, (saved, session) in session_only.items())
            self.session_note = QLabel(f"From the command line, for this session only: {options}. A value changed "
                                       "here is saved.")
            self.session_note.setObjectName("prefsSessionNote")
            self.session_note.setWordWrap(True)
            form.addRow("", self.session_note)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(fields)
        buttons_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons_box.accepted.connect(self.accept)
        buttons_box.rejected.connect(self.reject)
        outer = QVBoxLayout(self)
        outer.addWidget(scroll, 1)
        outer.addWidget(buttons_box)
        # its own size, not Qt's default of at most two thirds of the screen, which clipped the wrapped notes;
        # within the screen's room less a title bar's height
        room = (parent.screen() if parent is not None else self.screen()).availableGeometry()
        hint = fields.sizeHint()
        width = hint.width() + scroll.verticalScrollBar().sizeHint().width() + 24
        height = hint.height() + buttons_box.sizeHint().height() + 40
        self.resize(min(width, room.width()), min(height, room.height() - 40))

    def _choose_steps_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Hanging steps", "", "JSON (*.json)")
        if path:
            self.hanging_steps.setText(path)

    def add_node(self, name: str, address: str) -> None:
        row = self.nodes.rowCount()
        self.nodes.insertRow(row)
        self.nodes.setItem(row, 0, QTableWidgetItem(name))
        self.nodes.setItem(row, 1, QTableWidgetItem(address))

    def remove_node(self) -> None:
        if self.nodes.currentRow() >= 0:
            self.nodes.removeRow(self.nodes.currentRow())

    def named_nodes(self) -> tuple[tuple[str, str], ...]:
        rows = []
        for row in range(self.nodes.rowCount()):
            name, address = (self.nodes.item(row, c).text().strip() if self.nodes.item(row, c) else "" for c in (0, 1))
            if address:
                rows.append((name or address, address))
        return tuple(rows)

    def _selected(self):
        from app.pacs.nodes import node_of  # noqa: PLC0415
        from inference.errors import MammoError  # noqa: PLC0415

        row = max(self.nodes.currentRow(), 0)
        item = self.nodes.item(row, 1)
        try:
            return node_of(item.text() if item else "", self.ae_title.text())
        except MammoError as error:
            self.test_result.setText(str(error))
            return None

    def test_node(self) -> None:
        """C-ECHO (DIMSE) or a one-study QIDO-RS search (DICOMweb) of the selected node, in the background."""
        from app.ui.pacs.dialog import _echo_task  # noqa: PLC0415
        from app.ui.worker import Worker  # noqa: PLC0415

        node = self._selected()
        if node is None:
            return
        self.test_button.setEnabled(False)
        self.test_result.setText(f"testing {node.describe()}…")
        self._test_worker = Worker(_echo_task, node)
        self._test_worker.result.connect(self.test_result.setText)
        self._test_worker.error.connect(lambda error: self.test_result.setText(str(error)))
        self._test_worker.finished.connect(lambda: self.test_button.setEnabled(True))
        self._test_worker.start()

    def set_password(self) -> None:
        """The user name and password of the selected DICOMweb node, into the credential store."""
        from app.pacs.credentials import credentials_file, save_credentials, system_store, where_kept  # noqa: PLC0415
        from inference.errors import MammoError  # noqa: PLC0415

        node = self._selected()
        if node is None:  # _selected said why (a damaged credentials file among the reasons)
            return
        if node.protocol != "dicomweb":
            self.test_result.setText("a password is for a DICOMweb node (DIMSE uses AE titles)")
            return
        user, ok = QInputDialog.getText(self, "DICOMweb user", f"user for {node.describe()}", text=node.username)
        if not ok:
            return
        password, ok = QInputDialog.getText(self, "DICOMweb password", f"password for {user}",
                                            QLineEdit.EchoMode.Password)
        if not ok:
            return
        if system_store() is None and not self._credentials_file:
            self._credentials_file = self.agree_to_plain_file(credentials_file())
            if not self._credentials_file:
                self.test_result.setText(f"not saved for {node.describe()}: {where_kept()}; or set "
                                         "MAMMO_DICOMWEB_USER / MAMMO_DICOMWEB_PASSWORD in the environment")
                return
        try:
            kept = save_credentials(node.describe(), user, password, file_agreed=self._credentials_file)
        except MammoError as error:  # the plain file cannot be read: nothing was written over it
            self.test_result.setText(f"not saved for {node.describe()}: {error}")
            return
        self.test_result.setText(f"saved for {node.describe()} in {kept}")

    def agree_to_plain_file(self, path) -> bool:
        """Ask once whether a password may go to a plain file (no system credential store on this computer)."""
        answer = QMessageBox.question(
            self, "No credential store",
            "This computer has no system credential store (Keychain, Credential Locker, Secret Service, KWallet).\n"
            f"Keep DICOMweb passwords in a plain file readable only by you?\n{path}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

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
            pacs_nodes=self.named_nodes(),
            pacs_node=(self.named_nodes()[0][1] if self.named_nodes() else ""),
            ae_title=self.ae_title.text().strip() or "MAMMOREADER",
            scp_enabled=self.scp_enabled.isChecked(),
            scp_port=self.scp_port.value(),
            scp_bind=self.scp_bind.text().strip() or "127.0.0.1",
            scp_allowed=tuple(e.strip() for e in self.scp_allowed.text().split(",") if e.strip()),
            scp_max_instance_mb=self.scp_max_mb.value(),
            scp_quota_gb=float(self.scp_quota_gb.value()),
            credentials_file=self._credentials_file,
            prefetch_exams=self.prefetch.value(),
            link_window=self.link_window.isChecked(),
            hanging_steps=self.hanging_steps.text().strip(),
        )
