"""Opening an exam (a folder, files, the demo, a PACS study, a worklist's prefetch), showing it view by view and
clearing everything of the previous one first."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from app.pacs.nodes import StudyAddress
from app.ui.pacs.dialog import PacsDialog
from app.ui.worker import Worker
from app.ui.workstation.analysis_control import NO_MODEL_TEXT
from app.ui.workstation.hanging import Layout
from app.ui.workstation.reading_control import COMMITTED_TEXT
from app.workstation import AnalysisOutcome, LoadedExam, load_exam_task
from inference.intake.exam import Exam
from inference.intake.views import View

logger = logging.getLogger(__name__)


class ExamControl:
    """The window's exams: every request has a generation; a result of an older one is dropped."""

    def __init__(self, window) -> None:
        self.window = window
        self.last_folder = ""  # where File ▸ Open starts
        self.source = None  # what open_exam was last asked to open

    def choose_exam(self) -> None:
        """File ▸ Open: the chooser starts beside the exam on screen (else where the last one was chosen)."""
        exam = self.window.exam
        if exam is not None and exam.source is not None:
            self.last_folder = str(Path(exam.source).parent)
        folder = QFileDialog.getExistingDirectory(self.window, "Open exam folder", self.last_folder)
        if folder:
            self.last_folder = str(Path(folder).parent)
            self.open_exam(folder)

    def clear_exam(self) -> None:
        """Everything of the exam on screen goes, at once: tables, hybrid box, gallery, overlays, marks, the
        estimate form, corner text, notes, the prior; its workers are cancelled and their late results dropped."""
        window = self.window
        window._generation += 1
        window._analysis_wanted = window._analysis_force = False
        window.analyses.cancel_analysis()
        window.analyses.reset_progress()  # the last exam's progress (or its wait for the models) is not this one's
        if window.prior_worker is not None and window.prior_worker.is_running():
            window.prior_worker.cancel()
        if window._save_timer.isActive():  # the previous exam's pending edit is saved under its own key
            window._save_timer.stop()
            window.reading.save_reads(committed=window.committed)
        window.exam, window.exam_key = None, ""
        window.overlays_asked_while_loading = False  # a key pressed from now on is for the exam that comes next
        window.result, window.overlays, window.restored = None, None, False
        window.prior, window.prior_result, window.prior_overlays = None, None, None
        window.priors.fill_menu(None)  # the last patient's earlier studies leave the menu with them
        window._overlays_pending = False  # the last exam's drawing steps stop (``draw_result``)
        window.committed = False
        window.reading.forget_exam()
        window.marks = []
        window.hanging.set_prior(None)
        window.hanging.set_exam(None)
        # the next exam is on its way (every caller loads or shows one next): painted at once below, the slots said
        # "No R-CC image in this exam" for an exam that has one (a radiologist's screenshots)
        window.hanging.set_loading()
        window.hanging.set_exam_window(None, linked=window.settings.link_window)
        window.gallery.set_result(None)
        window.scores.set_result(None)
        window.scores.set_status("")  # "Analysed: …" was the previous exam's
        window.scores.set_prior_text("")
        refused = window.scores.reader.refused_entries()  # left in the box: not taken, said once more
        window.scores.reader.set_reads({})
        window.scores.reader.saved_label.setText("")
        window.scores.reader.setEnabled(False)  # no exam, no estimate: typed values went nowhere
        window.notes.clear()
        window.statusBar().clearMessage()  # e.g. the previous patient's "no prior study" line
        if refused:
            window.statusBar().showMessage(f"the exam you left: {'; '.join(refused)} was not taken (not a whole "
                                           "percentage from 0 to 100)", 15_000)
        window.cursor_label.setText("")  # the last pixel read out was the previous exam's
        window.setWindowTitle("Mammo Reader")
        window.reading.apply_blind_state()
        # painted now, the whole window: the item views paint their cleared contents later than the rest, and on
        # an X server the previous patient's notes stayed beside the next one's "Loading images…" slots (seen
        # within 0.1 s of Ctrl+Right, until the next exam's own notes came)
        window.repaint()
        QGuiApplication.sync()  # and on the screen before the GUI thread goes on

    def open_exam(self, source) -> None:
        """Load in the background; the slots say "loading" until the images arrive. The exam shown before is
        cleared first, so nothing of it stays on screen if this one fails."""
        if not self.window.reading.leave_or_ask(lambda: self.open_exam(source)):
            return
        window = self.window
        self.source = source
        window.worklist.step_out()  # an exam from elsewhere: the worklist's clock stops (not for its own exams)
        self.clear_exam()
        window.worklist.pause_prefetch()  # this exam's load and analysis first; prefetch resumes after them
        generation = window._generation
        window.stage_label.setText("loading images…")
        window.hanging.set_loading()
        window.scores.set_status("Loading the exam…")
        window.load_worker = Worker(load_exam_task, source, window.store, window._reader(),
                                  arrived=lambda image, g=generation: window._arrivals.arrived.emit((g, image)))
        window.load_worker.result.connect(lambda loaded, g=generation: self.show_exam(loaded) if window._current(g) else None)
        window.load_worker.error.connect(lambda error, g=generation: self._on_load_error(error) if window._current(g) else None)
        if isinstance(source, StudyAddress):  # a retrieve: its progress, and Esc / Cancel stop it
            window.analyses.show_busy()
            window.load_worker.progress.connect(
                lambda stage, done, total, g=generation: window.stage_label.setText(stage) if window._current(g) else None)
            window.load_worker.cancelled.connect(  # late, after another exam was asked for: not about that one
                lambda g=generation: self._on_load_cancelled() if window._current(g) else None)
        window.load_worker.finished.connect(lambda g=generation: self._on_load_finished(g))
        window._track(window.load_worker).start()

    def reopen(self) -> None:
        """Open again the exam opened last, when it is on screen or being loaded (another reader now: their
        reads and marks; a load started for the previous reader is cancelled)."""
        window = self.window
        loading = window.load_worker is not None and window.load_worker.is_running()
        if self.source is not None and (window.exam is not None or loading):
            self.open_exam(self.source)

    def open_prefetched(self, loaded: LoadedExam, outcome: AnalysisOutcome | None) -> None:
        """Show an exam the worklist loaded (and analysed) in the background: pixels at once, the result with
        them; blind first hides it as it hides any result until the reader commits."""
        self.clear_exam()
        self.show_exam(loaded, analyse=outcome is None)
        if outcome is not None:
            self.apply_prefetched_result(outcome, self.window._generation)

    def apply_prefetched_result(self, outcome: AnalysisOutcome, generation: int) -> None:
        """The background analysis of the exam on screen (asked for as ``generation``), as if its own."""
        if not self.window.model_path or not self.window._current(generation):
            return
        self.window.analyses.on_result(outcome, (self.window.model_path,), generation)
        self.window._thread_done = True  # no thread of the window runs for it: analysisFinished once its overlays are drawn
        self.window.analyses.maybe_finished()

    def open_from_pacs(self) -> None:
        """File → Open from PACS: search, then the chosen study is retrieved by the exam loader."""
        window = self.window
        dialog = PacsDialog(window.settings.pacs_node, window.settings.ae_title, window, named=window.settings.pacs_nodes)

        def chosen(address: StudyAddress) -> None:
            # the address the study was listed from (the field may have been edited since), kept as the PACS
            node, ae = dialog.records_address or (dialog.node_edit.text().strip(), dialog.ae_edit.text().strip())
            ae = ae or "MAMMOREADER"
            if (node, ae) != (window.settings.pacs_node, window.settings.ae_title):
                window.apply_settings(dataclasses.replace(window.settings, pacs_node=node, ae_title=ae))
            self.open_exam(address)

        dialog.studyChosen.connect(chosen)
        window.pacs_dialog = dialog
        dialog.open()

    def show_arrived_view(self, arrival) -> None:
        """A view of a study being retrieved, shown in its slot before the whole exam has arrived."""
        window = self.window
        generation, image = arrival
        if not window._current(generation) or window.exam is not None:
            return  # late: the exam is shown, the retrieve was cancelled, or another exam was asked for
        widget = window.hanging.views.get(image.view)
        if widget is not None:
            widget.set_image(image, ["retrieving…"], "")
            window.hanging.fit_same_scale()
        window.viewArrived.emit(image.view.value)

    def _on_load_finished(self, generation: int) -> None:
        window = self.window
        if window._closed:
            return
        newer = window.load_worker
        if not window._current(generation) and newer is not None and newer.is_running():
            return  # an earlier load ended late: the one running now shows (and ends) its own progress
        window.stage_label.setText("")
        if window.analysis_worker is None or not window.analysis_worker.is_running():
            window.progress.hide()
            window.cancel_button.hide()

    def _on_load_cancelled(self) -> None:
        window = self.window
        window.hanging.set_exam(None)
        window.scores.set_status("Retrieve cancelled; nothing of it was kept.")

    def _on_load_error(self, error: BaseException) -> None:
        window = self.window
        window.hanging.set_exam(None)
        for widget in window.hanging.views.values():  # what went wrong stays on screen after the dialog
            widget.show_empty(f"Not opened: {error}")
        window.notes.clear()
        window.notes.addItem(f"⚠ Not opened: {error}")
        if window.worklist.loading_current():  # the list, the slots and the notes say it: no box to dismiss
            logger.warning("a worklist exam could not be opened: %s", type(error).__name__)  # as show_error logs
            window.scores.set_status(f"Problem: {error}")  # before Ctrl+Right takes the reader on
        else:
            window._on_error(error)
        window.loadFailed.emit(error)

    def show_exam(self, loaded: LoadedExam, analyse: bool = True) -> None:
        exam = loaded.exam
        self.window._generation += 1  # an analysis of what was shown before (another arrangement) is dropped
        self.window._analysis_wanted = self.window._analysis_force = False
        if self.window.analysis_worker is not None and self.window.analysis_worker.is_running():
            self.window.analysis_worker.cancel()
        self.window.analyses.reset_progress()  # this exam's own analysis shows its progress when it starts
        another = loaded.key != self.window.exam_key
        if another and self.window.hanging.layout_mode != Layout.FOUR:
            # each exam begins at the four screening views: one view left enlarged (double-click) or a layout of
            # some views carried over to the next patient and hid the others
            self.window.hanging.set_layout(Layout.FOUR)
        self.window.exam, self.window.exam_key = exam, loaded.key
        self.window.result, self.window.overlays, self.window.restored = None, None, False
        if another and not self.window.overlays_asked_while_loading:
            # (after the exam left is gone: the switch's handlers act on what is on screen) the maps on demand (H)
            # per exam, as Preferences say: H pressed on one patient drew the next one's maps the moment its read
            # was committed, unasked; H pressed while this exam loaded is this exam's (it was lost)
            self.window.overlays_box.setChecked(self.window.settings.show_overlays)
        self.window.overlays_asked_while_loading = False
        self.window.committed = any(r.committed for r in loaded.reads.values())
        self.window.marks = list(loaded.marks)
        self.window.hanging.set_exam_window(loaded.window, linked=self.window.settings.link_window)
        self.window.hanging.set_exam(exam)
        self.window.hanging.set_result(None)
        for widget in self.window.hanging.views.values():
            widget.set_marks(self.window.marks)
        self.window.gallery.set_result(None)
        self.window.scores.set_result(None)
        title = exam.exam_id or (exam.source.name if exam.source else "exam")
        self.window.setWindowTitle(f"Mammo Reader — {title}")
        self.window.scores.reader.set_reads(loaded.reads)
        if another:  # from the store (an image confirmed or moved shows the same exam again: its form as it is)
            self.window.scores.reader.saved_label.setText(stored_read_status(loaded.reads, self.window._reader()))
            self.window.reading.restore_seen(loaded.reads)
            if loaded.pending and self.window.committed:  # the change not recorded when the app last stopped
                self.window.reading.show_pending_change(loaded.reads, loaded.pending)
        # the list's mark follows what the exam shown holds (a mark on a folder refilled with another exam goes),
        # once the list knows which row is on screen (examShown)
        self.window.opened_with_kept_change = bool(loaded.pending) and self.window.committed if another else None
        self.window.scores.reader.setEnabled(True)
        self.window.scores.refresh_compare()
        self.window.reading.apply_blind_state()
        self._fill_notes()
        if self.window.model_path:
            self.window.scores.set_status("Images loaded.")
        else:
            self.window.scores.set_no_result(NO_MODEL_TEXT)
        # the pixels painted now, before the prior search and the analysis start beside the GUI thread: with
        # them running, the four first renders shared the cores (and the interpreter) and stalled the window. The
        # whole window: the hanging alone showed the new patient's pixels beside the panels the previous exam
        # had left on screen (its notes, seen for 0.3 s on a loaded machine) until the next paint
        self.window.repaint()
        self.window.priors.find_priors(exam)
        if analyse and self.window.settings.auto_run and self.window.model_path:
            self.window.analyses.start_analysis()
        self.window.examShown.emit()

    def _fill_notes(self) -> None:
        """Every intake note in one panel (never drawn over the images), laterality warnings first."""
        window = self.window
        window.notes.clear()
        if window.exam is None:
            return
        for view in window.exam.laterality_conflicts:
            window.notes.addItem(f"⚠⚠ {window.exam.laterality_message(view)}")
        for note in window.exam.warnings:
            window.notes.addItem(f"⚠ {note}")
        for view, image in window.exam.views.items():
            for note in image.warnings:
                window.notes.addItem(f"⚠ {view.value}: {note}")
        if not window.notes.count():
            window.notes.addItem("No intake notes.")

    def _replace_exam(self, exam: Exam, moved: dict[View, View] | None = None) -> None:
        """The reader confirmed or moved an image (``moved``: slot before -> slot now): show the exam as it is
        now and analyse it again. Marks are on an image's own pixels, so they go with it to its new slot."""
        window = self.window
        reader = window.scores.reader
        if moved and any(View(m.view) in moved for m in window.marks):
            window.marks = [dataclasses.replace(m, view=moved[View(m.view)].value) if View(m.view) in moved else m
                            for m in window.marks]
            if window.store is not None and window.exam_key and not window.store.closed:
                window.store.save_marks(window.exam_key, window._reader(), list(window.marks))
        form = {r.breast: r for r in reader.reads(True)}
        pending = bool(window.committed and reader.changed_since_commit())  # changed after the commit, unrecorded
        if moved and window.reading.seen_breasts:  # what was seen on one side now shows the other: both count
            window.reading.seen_breasts = {"R", "L"}
        self.show_exam(LoadedExam(exam, window.exam_key, reader.stored_reads(window.committed), window.marks,
                                  window.hanging.exam_window))
        if pending:  # still in the form, still to be recorded (or discarded) by the reader
            reader.fill_form(form)
            window.reading.save_reads(committed=True)

    def confirm_laterality(self, view: View) -> None:
        window = self.window
        if window.exam is not None:
            self._replace_exam(window.exam.confirm_orientation(view))

    def move_laterality(self, view: View) -> None:
        window = self.window
        if window.exam is not None:
            target = view.other_side
            moved = {view: target, **({target: view} if target in window.exam.views else {})}
            self._replace_exam(window.exam.move_view(view, target), moved)


def stored_read_status(reads: dict, reader: str) -> str:
    """The line under the form for a read opened from the store: a committed one says so, by whom and when (a
    reopened exam showed a filled, editable form and nothing else), a draft that it is one."""
    committed = [read.recorded_at for read in reads.values() if read.committed]
    if committed:
        times = [at for at in committed if at]
        when = f" at {time.strftime('%Y-%m-%d %H:%M', time.localtime(max(times)))}" if times else ""
        return f"{COMMITTED_TEXT}; committed by {reader}{when}"
    if any(read.malignant is not None or read.birads or read.recommendation for read in reads.values()):
        return "draft restored (not committed)"
    return ""
