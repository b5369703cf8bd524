"""The workstation window: a shell holding the widgets and the state its controllers share.

The jobs live beside it, one controller each: ``exam_control`` (open, show, clear), ``analysis_control`` (models
and their analysis), ``priors_control``, ``reading_control`` (estimate, commit, amendments, marks),
``export_control``, ``settings_control`` (preferences, the Storage SCP), ``overlay_bar`` (what of a result is
drawn), ``status_bar`` and ``actions`` (menus, shortcuts, view tools);
their Qt-free tasks are in ``app/workstation.py``. The GUI thread never reads files, runs SQL reads or encodes
JSON: the exam, the stored reads and marks arrive from a background task, analyses (or restored results) and
their overlay pixels from another, and writes go through the store's writer thread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QImage, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.overlay_images import OverlayImages
from app.ui.forms import fit_to_screen
from app.pacs.inbox import InboxService
from app.settings import AppSettings
from app.study.store import ReaderMark, Store
from app.ui.errors import show_error
from app.ui.worker import Worker
from app.ui.workstation.actions import WorkstationActions
from app.ui.workstation.analysis_control import AnalysisControl
from app.ui.workstation.exam_control import ExamControl
from app.ui.workstation.export_control import ExportControl
from app.ui.workstation.hanging import HangingWidget
from app.ui.workstation.overlay_bar import OverlayControl, build_overlay_toolbar
from app.ui.workstation.patch_gallery import PatchGalleryWidget
from app.ui.workstation.settings_control import SettingsControl
from app.ui.workstation.status_bar import build_status_bar
from app.ui.workstation.priors_control import PriorsControl
from app.ui.workstation.reading_control import ReadingControl
from app.ui.workstation.score_panel import ScorePanelWidget, reader_title
from app.ui.workstation.view_widget import OverlayOptions
from app.workstation import PriorFound
from inference.intake.exam import Exam
from inference.intake.views import View
from inference.results.exam_result import ExamResult

if TYPE_CHECKING:
    from inference.weights import ModelGroup

logger = logging.getLogger(__name__)

class _SavedSignal(QObject):
    """Carries "saved" (and the exam key it is about) from the store's writer thread to the GUI thread (queued)."""

    saved = Signal(str, str)
    refused = Signal(str)  # the key of an exam whose read the store refused: a committed one is stored already


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
        # one controller per job; the window holds the state they share and the widgets they fill
        self.exams = ExamControl(self)  # opening, showing and clearing exams
        self.analyses = AnalysisControl(self)  # models and their analysis
        self.priors = PriorsControl(self)  # the patient's prior study and its analysis
        self.reading = ReadingControl(self)  # the reader's estimate, commit, amendments and marks
        self.exports = ExportControl(self)  # reports, DICOM results and sending them
        self.overlay_control = OverlayControl(self)  # what of a result is drawn
        self.preferences = SettingsControl(self)  # preferences, saved settings, the Storage SCP
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
        self._arrivals.arrived.connect(self.exams.show_arrived_view)
        self.prior: PriorFound | None = None
        self._unsent: list[Path] = []  # DICOM files of an export whose send failed
        self.prior_result: ExamResult | None = None
        self.prior_overlays: OverlayImages | None = None  # the prior's maps, for the model chosen
        self.prior_worker: Worker | None = None
        self.analysis_worker: Worker | None = None
        self.warm_worker: Worker | None = None  # the models loaded in the background once the window is up
        self.export_worker: Worker | None = None
        self._overlays_pending = False
        self.overlays_asked_while_loading = False  # H pressed with no exam on screen: the next exam's choice
        self.pending_amendment_box = None  # asked before leaving an exam with an unrecorded change
        # the exam just shown opened with a kept change (True) or without one (False); None: the same exam again
        self.opened_with_kept_change: bool | None = None
        self.session_only: dict[str, tuple] = {}  # setting -> (saved value, this session's command-line value)
        self._thread_done = False
        self._saved_signal = _SavedSignal()
        self._saved_signal.saved.connect(self.reading.on_stored)
        self._saved_signal.refused.connect(self.reading.reload_reads)
        self._save_timer = QTimer(self, singleShot=True, interval=400)
        self._save_timer.timeout.connect(lambda: self.reading.save_reads(committed=self.committed))
        self._class_boxes: dict[str, QCheckBox] = {}
        # which exam request is current: every worker result carries the generation it was asked for and is
        # dropped when another exam has been asked for (or the exam re-arranged) since
        self._generation = 0
        self._analysis_wanted = False  # an analysis to start once a stale one has ended
        self._analysis_force = False  # ... and whether it was asked to analyse again (not restore)
        self._workers: list[Worker] = []  # every worker this window started, cancelled and awaited on close
        self._closed = False

        self.hanging = HangingWidget()
        self.scores = ScorePanelWidget()
        self.scores.reader.setEnabled(False)  # an estimate is of an exam: none is open yet
        self.scores.reader.setTitle(reader_title(self.settings.reader_name))
        self.gallery = PatchGalleryWidget()
        self.notes = QListWidget()
        self.notes.setObjectName("notesPanel")
        self.notes.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()

        # the panel scrolls as a whole where several models' columns, tables and notes outgrow the screen: it
        # never makes the window taller than the monitor
        scores_scroll = QScrollArea()
        scores_scroll.setObjectName("scoresScroll")
        scores_scroll.setWidgetResizable(True)
        scores_scroll.setFrameShape(QFrame.Shape.NoFrame)
        scores_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scores_scroll.setWidget(self.scores)
        self.scores_scroll = scores_scroll
        # never narrower than the panel's form: the reader's answers are never cut off (the images give way)
        scores_scroll.setMinimumWidth(self.scores.minimumSizeHint().width()
                                      + scores_scroll.verticalScrollBar().sizeHint().width())
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(scores_scroll)
        side.addWidget(self.gallery)
        side.addWidget(self.notes)
        side.setSizes([730, 210, 60])  # the notes pane grows when dragged: at 1000 pixels the hybrid table fits
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
        build_status_bar(self)
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
        self.hanging.layoutChanged.connect(lambda _name: self.cursor_label.clear())  # a pixel of a view gone
        for widget in self.hanging.views.values():
            widget.cursorInfo.connect(self.cursor_label.setText)
            widget.patchHovered.connect(self.gallery.highlight)
            widget.markRequested.connect(self.reading.add_mark)
            widget.lateralityConfirmed.connect(self.exams.confirm_laterality)
            widget.lateralityMoveRequested.connect(self.exams.move_laterality)
        self.gallery.patchClicked.connect(self.overlay_control.zoom_to_patch)
        self.scores.reader.changed.connect(self._save_timer.start)
        self.scores.reader.changed.connect(self.reading.form_changed)
        self.scores.reader.committed.connect(self.reading.commit_estimate)
        self.analyses.update_model_banner()
        self.preferences.apply_scp()
        fit_to_screen(self, 1600, 1000)

    # ------------------------------------------------------------------------------------------- building

    def _configured_models(self) -> str:
        from app.demo import demo_model_path  # noqa: PLC0415

        if self.settings.model_path:
            return self.settings.model_path
        demo = demo_model_path()
        return str(demo) if demo is not None else ""

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

    # --------------------------------------------------------------------------------------- exam / model

    def _reader(self) -> str:
        return self.settings.reader_name or "reader"

    def _track(self, worker: Worker) -> Worker:
        """Remember a started worker, so that closing the window cancels and waits for it."""
        self._workers = [w for w in self._workers if w.is_running()] + [worker]
        return worker

    def _current(self, generation: int) -> bool:
        """True while the exam a worker was started for is still the one asked for."""
        return generation == self._generation

    @property
    def scp(self):
        """Our running Storage SCP, or None."""
        return self.inbox.scp

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

    # -------------------------------------------------------------------- the window's API (scripts, tests)

    def open_exam(self, source) -> None:
        """Open an exam (a folder, files, a PACS study address, or DEMO_EXAM); see ExamControl."""
        self.exams.open_exam(source)

    def keep_form_in_sight(self) -> None:
        """Scroll the side panel, once its layout has settled, so that the reader's form and the line under it
        ("committed: this read is final") are on screen: at 1280 × 800 the line fell below the fold, and the reader
        could not see that the commit had worked."""
        QTimer.singleShot(50, self, lambda: self.scores_scroll.ensureWidgetVisible(
            self.scores.reader.saved_label, 0, 2 * self.scores.reader.saved_label.height()))

    def clear_exam(self) -> None:
        self.exams.clear_exam()

    def open_from_pacs(self) -> None:
        self.exams.open_from_pacs()

    def use_models(self, models, label: str = "<in memory>") -> None:
        self.analyses.use_models(models, label)

    def start_analysis(self, force: bool = False) -> None:
        self.analyses.start_analysis(force)

    def cancel_analysis(self) -> None:
        self.analyses.cancel_analysis()

    def model_hidden(self) -> bool:
        return self.reading.model_hidden()

    def commit_estimate(self) -> bool:
        return self.reading.commit_estimate()

    def add_mark(self, view: View, row: float, col: float, mark: ReaderMark | None = None) -> None:
        self.reading.add_mark(view, row, col, mark)

    def overlay_options(self) -> OverlayOptions:
        return self.overlay_control.overlay_options()

    def export(self, folder: str, formats: list[str], deidentify: bool, page_size: str = "A4", comments: str = "",
               send: bool = False) -> Worker:
        return self.exports.export(folder, formats, deidentify, page_size, comments, send)

    def retry_send(self) -> Worker | None:
        return self.exports.retry_send()

    def apply_settings(self, settings: AppSettings) -> None:
        self.preferences.apply_settings(settings)

    def closeEvent(self, event):  # noqa: N802 - Qt override
        if not self.reading.leave_or_ask(self.close):  # a change after the commit not yet recorded: asked first
            event.ignore()
            return
        # a study reading with answers not committed asks first too (this window stays open meanwhile, and
        # closes once they are recorded or discarded)
        for window in [w for w in self.study_menu.windows if w.isVisible()]:
            asks = getattr(window, "leave_or_ask", None)
            if asks is not None and not asks(self.close):
                event.ignore()
                return
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
            self.reading.save_reads(committed=self.committed)
        self._generation += 1  # nothing a worker hands back after this is applied
        self._closed = True
        running = [w for w in self._workers if w.is_running()]
        for worker in running:  # cancel them all first, then wait: they end in parallel
            worker.cancel()
        for worker in running:
            worker.wait(60_000)
        super().closeEvent(event)


def grab_png(widget: QWidget, path: str | Path) -> None:
    """Render a widget (offscreen too) to a PNG file, its folder made when missing (as ``--out`` folders are)."""
    image: QImage = widget.grab().toImage()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"could not write the screenshot to {path} ({error.strerror or error})") from error
    if not image.save(str(path)):
        raise OSError(f"could not write the screenshot to {path}")

