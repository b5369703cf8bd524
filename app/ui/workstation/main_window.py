"""The workstation window: hanging, overlays, scores, regions, background analysis, reader estimate and marks.

The GUI thread never reads files, runs SQL reads or encodes JSON: the exam, the stored reads and marks
arrive from a background task, analyses (or restored results) and their overlay pixels from another, and
writes go through the store's writer thread.
"""

from __future__ import annotations

import dataclasses

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.colours import class_colour, layer_lut
from app.pacs.nodes import StudyAddress
from app.settings import AppSettings
from app.reading import AMENDED_AFTER_AI, read_disagreements
from app.study.store import ReaderMark, Store
from app.ui.errors import show_error
from app.ui.workstation.actions import WorkstationActions
from app.ui.workstation.hanging import HangingWidget
from app.ui.workstation.overlay_bar import build_overlay_toolbar
from app.overlay_images import OverlayImages
from app.ui.pacs.inbox_dialog import InboxDialog
from app.ui.pacs.dialog import PacsDialog
from app.ui.workstation.patch_gallery import PatchGalleryWidget
from app.ui.workstation.preferences import PreferencesDialog
from app.model_table import BREAST_NAMES
from app.ui.workstation.score_panel import ScorePanelWidget
from app.ui.workstation.view_widget import OverlayOptions
from app.ui.worker import Worker
from app.workstation import (AnalysisOutcome, LoadedExam, PriorFound, analysis_task, load_exam_task, prior_analysis_task,
                             priors_task, save_settings_task)
from app.pacs.inbox import InboxService, inbox_folder
from inference.errors import MammoError
from inference.intake.exam import Exam
from inference.results.exam_result import ExamResult
from inference.intake.views import Laterality, View

if TYPE_CHECKING:
    from inference.weights import ModelGroup

logger = logging.getLogger(__name__)

NO_MODEL_TEXT = (
    "No model configured — images can be read, but not analysed. To analyse, open Preferences (Ctrl+,) and "
    "choose a folder holding the published GMIC checkpoints (sample_model_1.p … sample_model_5.p, from "
    "github.com/nyukat/GMIC), a GLAM checkpoint, or another model checkpoint file."
)
DEMO_TEXT = "DEMO MODEL — trained on synthetic data only — NOT FOR CLINICAL USE"
CLASS_KEYS = {"benign": "B", "malignant": "M"}


def legend_pixmap(lut, width: int = 90, height: int = 12) -> QPixmap:
    """0 -> 1 of a heat layer as drawn: its (256, 4) RGBA lookup table over black."""
    pixmap = QPixmap(width, height)
    pixmap.fill(Qt.GlobalColor.black)
    painter = QPainter(pixmap)
    gradient = QLinearGradient(0, 0, width, 0)
    for index in range(0, 256, 15):
        red, green, blue, alpha = (int(v) for v in lut[index])
        gradient.setColorAt(index / 255, QColor(red, green, blue, alpha))
    red, green, blue, alpha = (int(v) for v in lut[255])
    gradient.setColorAt(1.0, QColor(red, green, blue, alpha))
    painter.fillRect(0, 0, width, height, gradient)
    painter.end()
    return pixmap


class _SavedSignal(QObject):
    """Carries "saved" from the store's writer thread to the GUI thread (queued)."""

    saved = Signal(str)


class _Arrivals(QObject):
    arrived = Signal(object)  # a ViewImage


class MainWindow(QMainWindow):
    """Mammo Reader's main window."""

    analysisFinished = Signal()
    analysisFailed = Signal(object)  # the exception
    examShown = Signal()
    priorShown = Signal()  # the prior exam is in the current-vs-prior layouts
    viewArrived = Signal(str)  # a view of a study being retrieved is shown
    exportFinished = Signal(str)  # the export's (and its send's) line
    priorAnalysed = Signal()
    loadFailed = Signal(object)

    def __init__(self, settings: AppSettings, store: Store | None = None, model_path: str | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("Mammo Reader")
        self.settings = settings
        self.store = store
        self.model_path = model_path if model_path is not None else self._configured_models()
        self.exam: Exam | None = None
        self.exam_key = ""
        self.result: ExamResult | None = None
        self.restored = False
        self.overlays: OverlayImages | None = None
        self.entry_id: str | None = None
        self.committed = False
        self.commit_anyway_box: QMessageBox | None = None  # "commit anyway?" for a read whose parts disagree
        self.marks: list[ReaderMark] = []
        self._groups: list[ModelGroup] | None = None
        self._groups_key: tuple | None = None
        self.load_worker: Worker | None = None
        self.inbox = InboxService()  # our Storage SCP, when Preferences turn it on
        self._arrivals = _Arrivals(self)  # views of a retrieve, as they arrive (queued to this thread)
        self._arrivals.arrived.connect(self._show_arrived_view)
        self.prior: PriorFound | None = None
        self._unsent: list[Path] = []  # DICOM files of an export whose send failed
        self.prior_result: ExamResult | None = None
        self.prior_worker: Worker | None = None
        self.analysis_worker: Worker | None = None
        self.export_worker: Worker | None = None
        self._overlays_pending = False
        self._thread_done = False
        self._saved_signal = _SavedSignal()
        self._saved_signal.saved.connect(self._on_saved)
        self._save_timer = QTimer(self, singleShot=True, interval=400)
        self._save_timer.timeout.connect(lambda: self._save_reads(committed=self.committed))
        self._class_boxes: dict[str, QCheckBox] = {}
        # which exam request is current: every worker result carries the generation it was asked for and is
        # dropped when another exam has been asked for (or the exam re-arranged) since
        self._generation = 0
        self._analysis_wanted = False  # an analysis to start once a stale one has ended
        self._workers: list[Worker] = []  # every worker this window started, cancelled and awaited on close
        self._closed = False

        self.hanging = HangingWidget()
        self.scores = ScorePanelWidget()
        self.gallery = PatchGalleryWidget()
        self.notes = QListWidget()
        self.notes.setObjectName("notesPanel")
        self.notes.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()

        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.scores)
        side.addWidget(self.gallery)
        side.addWidget(self.notes)
        side.setSizes([560, 300, 140])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.hanging)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([1100, 500])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        build_overlay_toolbar(self)
        self.entry_action.setVisible(False)
        self.entry_label_action.setVisible(False)
        self.layer_action.setVisible(False)
        self._build_status_bar()
        from app.pacs.credentials import PLAIN_HTTP_FLAG  # noqa: PLC0415
        from app.ui.log_notices import StatusLogNotices  # noqa: PLC0415

        self.security_notices = StatusLogNotices("app.pacs.credentials", PLAIN_HTTP_FLAG, self)
        self.security_notices.line.connect(lambda line: self.statusBar().showMessage(line, 30_000))
        self.security_notices.attach()
        self.menu_actions = WorkstationActions(self)
        self.menu_actions.build_menus()
        from app.ui.workstation.worklist_panel import WorklistController  # noqa: PLC0415

        self.worklist = WorklistController(self)  # the worklist's menu, panel, keys and prefetch
        from app.ui.workstation.hanging_steps_panel import HangingStepsController  # noqa: PLC0415

        self.hanging_steps = HangingStepsController(self)  # Space / Shift+Space: the hanging-protocol steps
        self.hanging.layoutChanged.connect(lambda name: self.statusBar().showMessage(f"layout: {name}", 2000))
        for widget in self.hanging.views.values():
            widget.cursorInfo.connect(self.cursor_label.setText)
            widget.patchHovered.connect(self.gallery.highlight)
            widget.markRequested.connect(self.add_mark)
            widget.lateralityConfirmed.connect(self.confirm_laterality)
            widget.lateralityMoveRequested.connect(self.move_laterality)
        self.gallery.patchClicked.connect(self.zoom_to_patch)
        self.scores.reader.changed.connect(self._save_timer.start)
        self.scores.reader.committed.connect(self.commit_estimate)
        self._update_model_banner()
        self.apply_scp()
        self.resize(1600, 1000)

    # ------------------------------------------------------------------------------------------- building

    def _configured_models(self) -> str:
        from app.demo import demo_model_path  # noqa: PLC0415

        if self.settings.model_path:
            return self.settings.model_path
        demo = demo_model_path()
        return str(demo) if demo is not None else ""

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

    # ------------------------------------------------------------------------------------------ overlays

    def _entry(self):
        return self.result.entry(self.entry_id) if self.result is not None else None

    def _rebuild_overlay_controls(self) -> None:
        """Entry chooser, layer chooser, class check boxes and legend from the result itself."""
        self.entry_combo.blockSignals(True)
        self.entry_combo.clear()
        from app.model_comparison import unique_labels  # noqa: PLC0415

        labels = unique_labels(self.result.entries) if self.result else {}
        for entry in self.result.entries if self.result else ():
            self.entry_combo.addItem(labels[entry.id], entry.id)  # family, checkpoint, short hash: never alike
        index = self.entry_combo.findData(self.entry_id)
        self.entry_combo.setCurrentIndex(max(index, 0))
        several = self.entry_combo.count() > 1  # a widget in a tool bar is shown and hidden by its action
        self.entry_action.setVisible(several)
        self.entry_label_action.setVisible(several)
        self.entry_combo.blockSignals(False)
        entry = self._entry()
        layers = ()
        if entry is not None:
            first = next((r.result(entry.id) for r in self.result.views.values() if r.result(entry.id)), None)
            if first is not None:
                layers = first.layers
        names = list(dict.fromkeys(layer.name for layer in layers))
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItem("main map", None)
        for name in names:
            self.layer_combo.addItem(name, name)
        self.layer_action.setVisible(len(names) > 1)
        self.layer_combo.blockSignals(False)
        while self.classes_layout.count():
            item = self.classes_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._class_boxes = {}
        mapped = {layer.class_name for layer in layers}
        from app.cad_marks import background_classes  # noqa: PLC0415

        members = self.hanging.members_by_entry.get(entry.id, entry.members) if entry else ()
        background = background_classes(entry.classes, members) if entry else frozenset()
        for number, name in enumerate(entry.classes if entry else (), start=1):
            if name not in mapped:  # a class without a map has nothing to switch
                continue
            key = CLASS_KEYS.get(name, f"Alt+{number}")
            box = QCheckBox(f"{name.replace('_', ' ')} ({key})")
            box.setObjectName(f"classBox_{name}")
            box.setChecked(name not in background)  # "no finding" painted over the breast says nothing
            box.toggled.connect(self._apply_overlay_options)
            legend = QLabel()
            legend.setPixmap(legend_pixmap(layer_lut("", class_colour(name, entry.classes))))
            legend.setToolTip(f"{name}: transparent at 0, full colour at 1")
            self.classes_layout.addWidget(box)
            self.classes_layout.addWidget(legend)
            self._class_boxes[name] = box
        for layer in {layer.name: layer for layer in layers if layer.class_name is None and layer.primary}.values():
            label = QLabel(layer.name)  # a map of no class (attention, saliency): its colour map, shown by H
            label.setObjectName(f"layerLegend_{layer.name}")
            legend = QLabel()
            legend.setPixmap(legend_pixmap(layer_lut(layer.colormap, (255, 255, 255))))
            from app.cad_marks import map_range  # noqa: PLC0415

            scale = map_range(members)
            legend.setToolTip(f"{layer.name}{' in ' + layer.colormap if layer.colormap else ''}, over the breast only; "
                              + (f"on the model's absolute scale: transparent at {scale[0]:g}, full colour at "
                                 f"{scale[1]:g}" if scale else "as the model gives it (no range in its metadata): "
                                 "transparent at 0, full colour at 1"))
            self.classes_layout.addWidget(label)
            self.classes_layout.addWidget(legend)

    def _toggle_class(self, name: str) -> None:
        if name in self._class_boxes:
            self._class_boxes[name].toggle()

    def _toggle_class_number(self, number: int) -> None:
        entry = self._entry()
        if entry is not None and number <= len(entry.classes):
            self._toggle_class(entry.classes[number - 1])

    def overlay_options(self) -> OverlayOptions:
        hidden_by_blind = self.model_hidden()
        return OverlayOptions(
            visible=self.overlays_box.isChecked() and not hidden_by_blind,
            classes=frozenset(name for name, box in self._class_boxes.items() if box.isChecked()),
            layer=self.layer_combo.currentData(),
            regions=self.patches_box.isChecked() and not hidden_by_blind,
            opacity=self.opacity_slider.value() / 100.0,
            all_regions=self.all_regions_box.isChecked(),
        )

    def _apply_overlay_options(self, *_args) -> None:
        self.hanging.set_overlay_options(self.overlay_options())

    def _on_entry_chosen(self, index: int) -> None:
        if self.result is None or index < 0:
            return
        self.entry_id = self.entry_combo.itemData(index)
        self._draw_result()

    def _next_entry(self) -> None:
        """Flip the drawn maps and regions to the next model, keeping the layout, zoom and window."""
        count = self.entry_combo.count()
        if count > 1:
            self.entry_combo.setCurrentIndex((self.entry_combo.currentIndex() + 1) % count)
            self.statusBar().showMessage(f"maps of {self.entry_combo.currentText()}", 3000)

    def _draw_result(self) -> None:
        """Draw the chosen entry's maps and regions, one view per event-loop turn (no stall)."""
        result, overlays, entry_id = self.result, self.overlays, self.entry_id
        self.hanging.members_by_entry = {g.id: tuple(m.identity for m in g.members) for g in self._groups or ()}
        self._rebuild_overlay_controls()
        steps = [(lambda v=v: self.hanging.set_view_result(result, v, entry_id, overlays)) for v in self.hanging.views]
        steps.append(lambda: self.gallery.set_result(result, overlays, entry_id, self.exam))
        steps.append(self._overlays_applied)
        self._overlays_pending = True
        self._run_steps(steps)

    def zoom_to_patch(self, view: View, rank: int) -> None:
        widget = self.hanging.views[view]
        if widget.result is None:
            return
        region = next(p for p in widget.result.regions if p.rank == rank)
        widget.zoom_to_box(region.box_original)
        widget.highlight_patch(rank)

    # --------------------------------------------------------------------------------------- exam / model

    @property
    def loaded_models(self) -> list[ModelGroup] | None:
        """The models already in memory (None until an analysis or ``use_models`` loaded them)."""
        return self._groups

    def use_models(self, models, label: str = "<in memory>") -> None:
        """Use already-loaded models (scripts, tests) instead of a model path."""
        from inference.pipeline import as_groups  # noqa: PLC0415

        self.model_path = label
        self._groups, self._groups_key = as_groups(models), (label,)
        self._update_model_banner()

    def _update_model_banner(self) -> None:
        groups = self._groups or []
        demo = any(m.identity.demo for g in groups for m in g.members) or self._model_is_demo()
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
        device = self.result.provenance.device if self.result else self.settings.device
        if groups:
            self.device_label.setText(f"{device} · " + ", ".join(g.label for g in groups))
        elif self.model_path:
            names = ", ".join(Path(p).name for p in self.model_path.split(os.pathsep))
            self.device_label.setText(f"{device} · model: {names}")
        else:
            self.device_label.setText("no model")

    def _model_is_demo(self) -> bool:
        from app.demo import demo_model_path  # noqa: PLC0415

        demo = demo_model_path()
        return demo is not None and self.model_path == str(demo)

    def _choose_exam(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open exam folder")
        if folder:
            self.open_exam(folder)

    def _reader(self) -> str:
        return self.settings.reader_name or "reader"

    def _track(self, worker: Worker) -> Worker:
        """Remember a started worker, so that closing the window cancels and waits for it."""
        self._workers = [w for w in self._workers if w.is_running()] + [worker]
        return worker

    def _current(self, generation: int) -> bool:
        """True while the exam a worker was started for is still the one asked for."""
        return generation == self._generation

    def clear_exam(self) -> None:
        """Everything of the exam on screen goes, at once: tables, hybrid box, gallery, overlays, marks, the
        estimate form, corner text, notes, the prior; its workers are cancelled and their late results dropped."""
        self._generation += 1
        self._analysis_wanted = False
        self.cancel_analysis()
        if self.prior_worker is not None and self.prior_worker.is_running():
            self.prior_worker.cancel()
        if self._save_timer.isActive():  # the previous exam's pending edit is saved under its own key
            self._save_timer.stop()
            self._save_reads(committed=self.committed)
        self.exam, self.exam_key = None, ""
        self.result, self.overlays, self.restored = None, None, False
        self.prior, self.prior_result = None, None
        self.committed = False
        self.marks = []
        self.hanging.set_prior(None)
        self.hanging.set_exam(None)
        self.hanging.set_exam_window(None, linked=self.settings.link_window)
        self.gallery.set_result(None)
        self.scores.set_result(None)
        self.scores.set_prior_text("")
        self.scores.reader.set_reads({})
        self.scores.reader.saved_label.setText("")
        self.notes.clear()
        self.statusBar().clearMessage()  # e.g. the previous patient's "no prior study" line
        self.setWindowTitle("Mammo Reader")
        self._apply_blind_state()

    def open_exam(self, source) -> None:
        """Load in the background; the slots say "loading" until the images arrive. The exam shown before is
        cleared first, so nothing of it stays on screen if this one fails."""
        self.clear_exam()
        self.worklist.pause_prefetch()  # this exam's load and analysis first; prefetch resumes after them
        generation = self._generation
        self.stage_label.setText("loading images…")
        self.hanging.set_loading()
        self.scores.set_status("Loading the exam…")
        self.load_worker = Worker(load_exam_task, source, self.store, self._reader(),
                                  arrived=lambda image, g=generation: self._arrivals.arrived.emit((g, image)))
        self.load_worker.result.connect(lambda loaded, g=generation: self.show_exam(loaded) if self._current(g) else None)
        self.load_worker.error.connect(lambda error, g=generation: self._on_load_error(error) if self._current(g) else None)
        if isinstance(source, StudyAddress):  # a retrieve: its progress, and Esc / Cancel stop it
            self.progress.setRange(0, 0)
            self.progress.show()
            self.cancel_button.show()
            self.load_worker.progress.connect(lambda stage, done, total: self.stage_label.setText(stage))
            self.load_worker.cancelled.connect(self._on_load_cancelled)
        self.load_worker.finished.connect(self._on_load_finished)
        self._track(self.load_worker).start()

    def open_prefetched(self, loaded: LoadedExam, outcome: AnalysisOutcome | None) -> None:
        """Show an exam the worklist loaded (and analysed) in the background: pixels at once, the result with
        them; blind first hides it as it hides any result until the reader commits."""
        self.clear_exam()
        self.show_exam(loaded, analyse=outcome is None)
        if outcome is not None:
            self.apply_prefetched_result(outcome, self._generation)

    def apply_prefetched_result(self, outcome: AnalysisOutcome, generation: int) -> None:
        """The background analysis of the exam on screen (asked for as ``generation``), as if its own."""
        if not self.model_path or not self._current(generation):
            return
        self._on_result(outcome, (self.model_path,), generation)
        self._thread_done = True  # no thread of the window runs for it: analysisFinished once its overlays are drawn
        self._maybe_finished()

    def open_from_pacs(self) -> None:
        """File → Open from PACS: search, then the chosen study is retrieved by the exam loader."""
        dialog = PacsDialog(self.settings.pacs_node, self.settings.ae_title, self, named=self.settings.pacs_nodes)

        def chosen(address: StudyAddress) -> None:
            node, ae = dialog.node_edit.text().strip(), dialog.ae_edit.text().strip() or "MAMMOREADER"
            if (node, ae) != (self.settings.pacs_node, self.settings.ae_title):
                self.apply_settings(dataclasses.replace(self.settings, pacs_node=node, ae_title=ae))
            self.open_exam(address)

        dialog.studyChosen.connect(chosen)
        self.pacs_dialog = dialog
        dialog.open()

    @property
    def scp(self):
        """Our running Storage SCP, or None."""
        return self.inbox.scp

    def open_inbox(self) -> None:
        """File → Received studies: what our Storage SCP received (see Preferences)."""
        dialog = InboxDialog(inbox_folder(), self.inbox.describe(self.settings), self)
        dialog.studyChosen.connect(self.open_exam)
        self.inbox_dialog = dialog
        dialog.open()

    def apply_scp(self) -> None:
        """Start, restart or stop our Storage SCP as the preferences say; a port in use is a message."""
        try:
            self.inbox.apply(self.settings)
        except MammoError as error:
            self._on_error(error)

    def _find_priors(self, exam: Exam) -> None:
        """In the background: the patient's most recent earlier study, for the current-vs-prior layouts."""
        self.prior, self.prior_result = None, None
        self.hanging.set_prior(None)
        self.scores.set_prior_text("")
        if self.prior_worker is not None and self.prior_worker.is_running():
            self.prior_worker.cancel()
        if not exam.patient.patient_id:
            return
        worker = Worker(priors_task, exam, self.settings.pacs_node, self.settings.ae_title)
        worker.result.connect(lambda found, e=exam: self._on_prior(found, e))
        worker.error.connect(lambda error, e=exam: self.statusBar().showMessage(f"priors: {error}", 10_000)
                             if e is self.exam else None)
        self.prior_worker = self._track(worker).start()

    def _on_prior(self, found: PriorFound | None, exam: Exam) -> None:
        if exam is not self.exam:
            return  # another exam has been opened since
        if found is None:
            self.statusBar().showMessage("no prior study of this patient was found", 5000)
            return
        self.prior = found
        self.hanging.set_prior(found.exam)
        date = found.exam.study_date
        shown = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else date
        self.statusBar().showMessage(f"prior: {shown} ({found.prior.where}; {found.earlier} earlier "
                                     f"stud{'y' if found.earlier == 1 else 'ies'}) — 6 / 7: current above prior", 10_000)
        self.priorShown.emit()
        self._analyse_prior()

    def _analyse_prior(self) -> None:
        """Once the models are loaded (by the current exam's analysis), the prior's scores."""
        if self.prior is None or self.prior_result is not None or self._groups is None:
            return
        if self.prior_worker is not None and self.prior_worker.is_running():
            return
        prior = self.prior
        worker = Worker(prior_analysis_task, prior.exam, self._groups, self.settings.device, self.settings.mode,
                        self.store)
        worker.result.connect(lambda result, p=prior: self._on_prior_result(result, p))
        worker.error.connect(lambda error, p=prior: self.scores.set_prior_text(f"Prior: the analysis failed ({error})")
                             if p is self.prior else None)
        self.prior_worker = self._track(worker).start()

    def _on_prior_result(self, result: ExamResult, prior: PriorFound) -> None:
        if prior is not self.prior:
            return
        self.prior_result = result
        date = prior.exam.study_date
        lines = [f"Prior {date[:4]}-{date[4:6]}-{date[6:8]}:" if len(date) == 8 else f"Prior {date}:"]
        for entry in result.entries:
            if not entry.malignancy:
                continue
            sides = []
            for side, name in (("R", "right"), ("L", "left")):
                breast = result.breasts.get(Laterality(side))
                scores = breast.entries.get(entry.id) if breast is not None else None
                value = scores.malignant if scores is not None else None
                sides.append(f"{name} {value:.2f}" if value is not None else f"{name} —")
            lines.append(f"{entry.label}: P(malignant) " + " · ".join(sides))
        if len(lines) == 1:
            lines.append("no model gives a probability of malignancy")
        self.scores.set_prior_text("\n".join(lines))
        self.priorAnalysed.emit()

    def _show_arrived_view(self, arrival) -> None:
        """A view of a study being retrieved, shown in its slot before the whole exam has arrived."""
        generation, image = arrival
        if not self._current(generation) or self.exam is not None:
            return  # late: the exam is shown, the retrieve was cancelled, or another exam was asked for
        widget = self.hanging.views.get(image.view)
        if widget is not None:
            widget.set_image(image, ["retrieving…"], "")
            self.hanging.fit_same_scale()
        self.viewArrived.emit(image.view.value)

    def _on_load_finished(self) -> None:
        if self._closed:
            return
        self.stage_label.setText("")
        if self.analysis_worker is None or not self.analysis_worker.is_running():
            self.progress.hide()
            self.cancel_button.hide()

    def _on_load_cancelled(self) -> None:
        self.hanging.set_exam(None)
        self.scores.set_status("Retrieve cancelled; nothing of it was kept.")

    def _on_load_error(self, error: BaseException) -> None:
        self.hanging.set_exam(None)
        self._on_error(error)
        self.loadFailed.emit(error)

    def show_exam(self, loaded: LoadedExam, analyse: bool = True) -> None:
        exam = loaded.exam
        self._generation += 1  # an analysis of what was shown before (another arrangement) is dropped
        self._analysis_wanted = False
        if self.analysis_worker is not None and self.analysis_worker.is_running():
            self.analysis_worker.cancel()
        self.exam, self.exam_key = exam, loaded.key
        self.result, self.overlays, self.restored = None, None, False
        self.committed = any(r.committed for r in loaded.reads.values())
        self.marks = list(loaded.marks)
        self.hanging.set_exam_window(loaded.window, linked=self.settings.link_window)
        self.hanging.set_exam(exam)
        self.hanging.set_result(None)
        for widget in self.hanging.views.values():
            widget.set_marks(self.marks)
        self.gallery.set_result(None)
        self.scores.set_result(None)
        title = exam.exam_id or (exam.source.name if exam.source else "exam")
        self.setWindowTitle(f"Mammo Reader — {title}")
        self.scores.reader.set_reads(loaded.reads)
        self.scores.refresh_compare()
        self._apply_blind_state()
        self._fill_notes()
        self.scores.set_status("Images loaded.")
        self._find_priors(exam)
        if analyse and self.settings.auto_run and self.model_path:
            self.start_analysis()
        self.examShown.emit()

    def _fill_notes(self) -> None:
        """Every intake note in one panel (never drawn over the images), laterality warnings first."""
        self.notes.clear()
        if self.exam is None:
            return
        for view in self.exam.laterality_conflicts:
            self.notes.addItem(f"⚠⚠ {self.exam.laterality_message(view)}")
        for note in self.exam.warnings:
            self.notes.addItem(f"⚠ {note}")
        for view, image in self.exam.views.items():
            for note in image.warnings:
                self.notes.addItem(f"⚠ {view.value}: {note}")
        if not self.notes.count():
            self.notes.addItem("No intake notes.")

    def rerun_analysis(self) -> None:
        """Ctrl+R: analyse; when the shown result was restored from the store, offer to analyse again."""
        if self.result is not None and self.restored:
            box = QMessageBox(QMessageBox.Icon.Question, "Analyse again?",
                              "The result shown was restored from an earlier analysis of these images with the same "
                              "models and mode. Analyse the exam again?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
            box.setObjectName("reanalyseDialog")
            box.buttonClicked.connect(lambda button: self.start_analysis(force=True)
                                      if box.standardButton(button) == QMessageBox.StandardButton.Yes else None)
            box.open()
            return
        self.start_analysis()

    def start_analysis(self, force: bool = False) -> None:
        if self.exam is None:
            return
        if not self.model_path:
            self.scores.set_status(NO_MODEL_TEXT)
            return
        if self.analysis_worker is not None and self.analysis_worker.is_running():
            self._analysis_wanted = True  # the running one belongs to an exam no longer shown: started after it
            return
        self._analysis_wanted = False
        generation = self._generation
        key = (self.model_path,)
        cached = self._groups if self._groups_key == key else None
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        self.stage_label.setText("starting analysis…")
        worker = Worker(analysis_task, self.exam, self.model_path, cached, self.settings.device, self.settings.mode,
                        self.store, force)
        worker.progress.connect(lambda *a, g=generation: self._on_progress(*a) if self._current(g) else None)
        worker.result.connect(lambda value, k=key, g=generation: self._on_result(value, k, g))
        worker.error.connect(lambda error, g=generation: self._on_analysis_error(error) if self._current(g) else None)
        worker.cancelled.connect(lambda g=generation: self.scores.set_status("Analysis cancelled.")
                                 if self._current(g) else None)
        worker.finished.connect(lambda g=generation: self._on_analysis_finished(g))
        self.analysis_worker = self._track(worker).start()

    def cancel_analysis(self) -> None:
        if self.load_worker is not None and self.load_worker.is_running():
            self.load_worker.cancel()  # a retrieve from the PACS polls it between instances
        if self.analysis_worker is not None and self.analysis_worker.is_running():
            self.analysis_worker.cancel()
            self.stage_label.setText("cancelling…")

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.stage_label.setText(stage)

    def _on_analysis_error(self, error: BaseException) -> None:
        self._on_error(error)
        self.analysisFailed.emit(error)

    def _on_result(self, outcome: AnalysisOutcome, key, generation: int) -> None:
        if key == (self.model_path,):
            self._groups, self._groups_key = outcome.groups, key  # the loaded models serve the next exam too
        if not self._current(generation):
            return  # the result of an exam no longer shown: never drawn
        QTimer.singleShot(0, self, self._analyse_prior)  # the prior's scores with the models now loaded
        self.result, self.restored, self.overlays = outcome.analysis.result, outcome.analysis.restored, outcome.overlays
        ids = [e.id for e in self.result.entries]
        self.entry_id = self.entry_id if self.entry_id in ids else ids[0]
        self.scores.set_result(self.result)
        self._draw_result()

    def _run_steps(self, steps: list) -> None:
        if not steps:
            return
        steps[0]()
        QTimer.singleShot(0, self, lambda: self._run_steps(steps[1:]))  # dropped if the window is gone

    def _overlays_applied(self) -> None:
        result = self.result
        self._overlays_pending = False
        notices = list(result.provenance.notices)
        origin = "Restored from the store" if self.restored else "Analysed"
        self.scores.set_status(
            f"{origin}: {result.provenance.device} ({result.provenance.mode.value} mode), "
            f"{len(result.provenance.models)} model(s)." + ("\n" + "\n".join(notices) if notices else ""))
        self._apply_overlay_options()
        self._apply_blind_state()
        self._update_model_banner()
        notes = sorted({w.regions_note for w in self.hanging.views.values() if w.regions_note})
        self.regions_note.setText(("  " + "; ".join(notes)) if notes else "")
        self._maybe_finished()

    def _on_analysis_finished(self, generation: int) -> None:
        if self._closed:
            return  # delivered after the window closed: its widgets may be gone
        if not self._current(generation):
            if self._analysis_wanted and self.exam is not None:  # the exam shown now waited for this stale one
                QTimer.singleShot(0, self, self.start_analysis)
            return
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

    def store_unavailable(self, error: BaseException) -> None:
        """The local store could not be opened (a full disk, a read-only config folder): the workstation
        still reads and analyses, and says plainly that nothing is saved."""
        where = os.environ.get("MAMMO_READER_HOME") or "~/.config/mammo-reader"
        text = (f"Readings are NOT saved in this session: the local database in {where} cannot be opened "
                f"({error}). Free disk space or check the folder, then restart.")
        self.scores.reader.saved_label.setText(text)
        self.statusBar().showMessage(text)
        logger.warning("%s", text)  # the folder and the database error: no patient data
        box = QMessageBox(QMessageBox.Icon.Warning, "Readings are not saved", text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("storeUnavailableDialog")
        box.open()

    def _on_error(self, error: BaseException) -> None:
        self.scores.set_status(f"Problem: {error}")
        show_error(self, error)

    # ------------------------------------------------------------------------------------------ laterality

    def _replace_exam(self, exam: Exam) -> None:
        """The reader confirmed or moved an image: show the exam as it is now and analyse it again."""
        self.show_exam(LoadedExam(exam, self.exam_key, self.scores.reader.stored_reads(self.committed), self.marks,
                                  self.hanging.exam_window))

    def confirm_laterality(self, view: View) -> None:
        if self.exam is not None:
            self._replace_exam(self.exam.confirm_orientation(view))

    def move_laterality(self, view: View) -> None:
        if self.exam is not None:
            target = View.of("L" if view.laterality == Laterality.RIGHT else "R", view.projection)
            self._replace_exam(self.exam.move_view(view, target))

    # ------------------------------------------------------------------------------------ reader estimate

    def model_hidden(self) -> bool:
        return self.settings.blind_first and not self.committed

    def _apply_blind_state(self) -> None:
        hidden = self.model_hidden()
        self.scores.set_model_hidden(hidden)
        self.gallery.setVisible(not hidden)
        self._apply_overlay_options()

    def _imaged_breasts(self) -> tuple[str, ...]:
        sides = {v.laterality.value for v in self.exam.views} if self.exam is not None else set()
        return tuple(side for side in ("R", "L") if side in sides)

    def commit_estimate(self) -> bool:
        """Commit the reader's estimate; with the model hidden (blind first) every imaged breast must be
        answered first, since the commit reveals the model."""
        if self.exam is None:
            return False
        missing = self.scores.reader.unanswered(self._imaged_breasts())
        if missing and self.model_hidden():
            names = " and ".join("the right breast" if s == "R" else "the left breast" for s in missing)
            self.scores.reader.saved_label.setText(f"Not committed: give a probability of malignancy for {names} "
                                                   "first (0 % is an answer: set it). The model stays hidden.")
            return False
        reads = self.scores.reader.changed_since_commit() if self.committed else self.scores.reader.reads(True)
        reasons = [f"{BREAST_NAMES[read.breast]}: {reason}" for read in reads
                   for reason in read_disagreements(read.malignant, read.birads, read.recommendation)]
        if reasons:  # committed only on Yes (a read is final once committed)
            self._ask_commit_anyway(reasons)
            return False
        return self._commit_now()

    def _ask_commit_anyway(self, reasons: list[str]) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Commit anyway?",
                          "The parts of this read disagree:\n\n" + "\n".join(f"• {r}" for r in reasons)
                          + "\n\nCommit anyway?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("commitAnywayBox")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.buttonClicked.connect(lambda button: self._commit_now()
                                  if box.standardButton(button) == QMessageBox.StandardButton.Yes else
                                  self._on_saved("Not committed: correct the read, then commit it."))
        self.commit_anyway_box = box
        box.open()

    def _commit_now(self) -> bool:
        """The first commit is final (in the store too); a later commit records what changed since as a
        separate, time-stamped read amended after AI, beside it."""
        if self.exam is None:
            return False
        if self.committed:
            return self._amend_reads()
        self._save_timer.stop()
        self._save_reads(committed=True)
        self.committed = True
        now = time.time()
        self.scores.reader.set_first_reads({r.breast: dataclasses.replace(r, recorded_at=now)
                                            for r in self.scores.reader.reads(True)})
        self._apply_blind_state()
        return True

    def _amend_reads(self) -> bool:
        changed = self.scores.reader.changed_since_commit()
        if not changed:
            self._on_saved("Nothing changed since your commit.")
            return False
        now = time.time()
        self.scores.reader.add_amendments([dataclasses.replace(r, recorded_at=now) for r in changed])
        self.scores.refresh_compare()
        if self.store is None:
            return True
        if self.store.closed:
            self._on_saved("NOT saved: the store is closed")
            return True
        future = self.store.amend_reads(self.exam_key, self._reader(), changed)
        future.add_done_callback(lambda f: self._saved_signal.saved.emit(
            f"saved as {AMENDED_AFTER_AI}; your first read stays as it was" if f.exception() is None
            else f"NOT saved: {f.exception()}"))
        return True

    def _save_reads(self, committed: bool) -> None:
        if self.committed:  # the first commit is final: a later change is saved when committed, as an amendment
            self._on_saved("Changed after your commit, not saved yet: commit it (Ctrl+Enter) to record it as "
                           f"{AMENDED_AFTER_AI}; your first read stays.")
            return
        if self.store is None or self.exam is None:
            return
        if self.store.closed:
            self._on_saved("NOT saved: the store is closed")
            return
        future = self.store.save_reads(self.exam_key, self._reader(), self.scores.reader.reads(committed))
        future.add_done_callback(
            lambda f: self._saved_signal.saved.emit("saved" if f.exception() is None else f"NOT saved: {f.exception()}")
        )

    def _on_saved(self, text: str) -> None:
        self.scores.reader.saved_label.setText(text)

    def add_mark(self, view: View, row: float, col: float, mark: ReaderMark | None = None) -> None:
        """A click in mark mode: ask what and how sure (unless ``mark`` is given), draw it, store it."""
        if mark is None:
            from app.ui.workstation.mark_dialog import MarkDialog  # noqa: PLC0415

            dialog = MarkDialog(view.value, row, col, self)
            if not dialog.exec():
                return
            mark = dialog.mark()
        self.marks.append(mark)
        self._marks_changed()

    def remove_last_mark(self) -> None:
        if self.marks:
            self.marks.pop()
            self._marks_changed()

    def _marks_changed(self) -> None:
        for widget in self.hanging.views.values():
            widget.set_marks(self.marks)
        if self.store is not None and self.exam is not None and not self.store.closed:
            self.store.save_marks(self.exam_key, self._reader(), list(self.marks))

    # ---------------------------------------------------------------------------------------------- export

    def report_input(self, deidentify: bool, comments: str = ""):
        """What an export may show: nothing of the model while it is hidden (blind first)."""
        from app.report.content import ReportInput  # noqa: PLC0415

        exam = self.exam.deidentify() if deidentify else self.exam
        hidden = self.model_hidden()
        return ReportInput(exam, None if hidden else self.result,
                           self.scores.reader.stored_reads(self.committed),
                           reader=self._reader(), comments=comments, deidentify=deidentify,
                           entry_id=self.entry_id, marks=tuple(self.marks),
                           model_withheld="the model is hidden until the reader commits (blind first)" if hidden and
                           self.result is not None else "")

    def open_export(self) -> None:
        if self.exam is None:
            return
        from app.ui.workstation.export_dialog import ExportDialog  # noqa: PLC0415

        has_dicom = all(img.sop_instance_uid for img in self.exam.views.values())
        dialog = ExportDialog(str(Path.home() / "mammo-reader-reports"),
                              has_dicom and self.result is not None and not self.model_hidden(), self,
                              withheld=self.model_hidden() and self.result is not None, send_to=self.settings.pacs_node)
        if dialog.exec():
            self.export(dialog.folder.text(), dialog.chosen_formats(), dialog.deidentify.isChecked(),
                        dialog.page_size.currentText(), dialog.comments.toPlainText(),
                        send=dialog.send.isChecked() and dialog.send.isEnabled())

    def export(self, folder: str, formats: list[str], deidentify: bool, page_size: str = "A4", comments: str = "",
               send: bool = False) -> Worker:
        """The export in the background; with ``send``, its DICOM files to the PACS node of Preferences."""
        from app.ui.workstation.export_dialog import export_task  # noqa: PLC0415

        target = (self.settings.pacs_node, self.settings.ae_title) if send and self.settings.pacs_node else None
        worker = self._track(Worker(export_task, self.report_input(deidentify, comments), folder, formats, page_size,
                                    target))
        worker.result.connect(lambda outcome: self._on_exported(outcome, folder))
        worker.error.connect(self._on_error)
        self.export_worker = worker.start()
        return worker

    def _on_exported(self, outcome, folder: str) -> None:
        line = f"exported {len(outcome.paths)} file(s) to {folder}"
        if outcome.sent_to:
            self._unsent = []
            line += f"; sent {len(outcome.dicom_files)} DICOM file(s) to {outcome.sent_to}"
        elif outcome.send_error:
            self._unsent = outcome.dicom_files
            line += (f"; NOT SENT: {outcome.send_error} — the files are kept; File → Send again retries")
        self.retry_send_action.setEnabled(bool(self._unsent))
        self.statusBar().showMessage(line, 30_000)
        self.exportFinished.emit(line)

    def retry_send(self) -> Worker | None:
        """File → Send again: the DICOM files of the export whose send failed, to the node of Preferences."""
        from app.ui.workstation.export_dialog import send_task  # noqa: PLC0415

        if not self._unsent or not self.settings.pacs_node:
            return None
        files = list(self._unsent)
        worker = self._track(Worker(send_task, files, self.settings.pacs_node, self.settings.ae_title))

        def sent(node: str) -> None:
            self._unsent = []
            self.retry_send_action.setEnabled(False)
            line = f"sent {len(files)} DICOM file(s) to {node}"
            self.statusBar().showMessage(line, 30_000)
            self.exportFinished.emit(line)

        def failed(error: BaseException) -> None:
            line = f"NOT SENT: {error} — the files are kept; File → Send again retries"
            self.statusBar().showMessage(line, 30_000)
            self.exportFinished.emit(line)

        worker.result.connect(sent)
        worker.error.connect(failed)
        self.send_worker = worker.start()
        return worker

    # ------------------------------------------------------------------------------------------ settings

    def models_in_use(self) -> tuple[str, bool]:
        """(what the window uses now, whether that is the built-in demo model)."""
        return self.model_path, self._model_is_demo()

    def open_preferences(self) -> None:
        in_use, demo = self.models_in_use()
        dialog = PreferencesDialog(self.settings, self, in_use=in_use, in_use_is_demo=demo)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def apply_settings(self, settings: AppSettings) -> None:
        """Take new preferences; an empty model field means the built-in demo model, never "none"."""
        models_changed = settings.model_path != self.settings.model_path
        self.settings = settings
        if models_changed:
            self.model_path = self._configured_models()
            self._groups, self._groups_key = None, None
        self.overlays_box.setChecked(settings.show_overlays or self.overlays_box.isChecked())
        self.hanging.set_exam_window(self.hanging.exam_window, linked=settings.link_window)
        saver = self._track(Worker(save_settings_task, settings))
        saver.error.connect(self._on_error)
        self._settings_worker = saver.start()
        self._update_model_banner()
        self._apply_blind_state()
        self.apply_scp()

    def closeEvent(self, event):  # noqa: N802 - Qt override
        self.security_notices.detach()
        self.worklist.leave()  # the reading time of the worklist exam on screen
        self.inbox.stop()
        for window in self.study_menu.windows:
            window.close()
        study_task = self.study_menu.worker
        if study_task is not None and study_task.is_running():
            study_task.cancel()
            study_task.wait(60_000)
        if self._save_timer.isActive():  # an edit still waiting for its debounced save is saved now
            self._save_timer.stop()
            self._save_reads(committed=self.committed)
        self._generation += 1  # nothing a worker hands back after this is applied
        self._closed = True
        running = [w for w in self._workers if w.is_running()]
        for worker in running:  # cancel them all first, then wait: they end in parallel
            worker.cancel()
        for worker in running:
            worker.wait(60_000)
        super().closeEvent(event)


def grab_png(widget: QWidget, path: str | Path) -> None:
    """Render a widget (offscreen too) to a PNG file."""
    image: QImage = widget.grab().toImage()
    if not image.save(str(path)):
        raise OSError(f"could not write the screenshot to {path}")

