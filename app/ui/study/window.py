"""Reader-study screens: the blinded reading screen, and the coordinator's results.

The reading screen is the viewer with the per-breast estimate: no identifiers (the exam is de-identified
and named "case k of n"), no ground truth, no notes. In the sequential design the first (unaided) answer
is committed and locked before the AI is shown; the aided answer is then recorded. In the crossover design
each reading shows the AI or not as the plan says, a reading never shows the other session's answer, and
session 2 stays closed (no images) until the washout has passed. Commits go through the store's writer
thread; "saved" appears when the read is durable.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.model_table import model_percent
from app.reading import read_disagreements
from app.ui.forms import fit_to_screen, keep_the_default_button
from app.study.blinding import scrub
from app.study.design import Design
from app.study.reading_screen import CaseState, OpenedReading, case_identifiers, load_case
from app.study.store import ReaderMark
from app.ui.errors import show_error, user_message
from app.ui.workstation.hanging import HangingWidget
from app.ui.workstation.view_widget import OverlayOptions, ToolMode
from app.ui.workstation.score_panel import ReaderPanel
from app.ui.worker import Worker
from inference.intake.exam import Exam

logger = logging.getLogger(__name__)
ASK_BOTH = "Give a probability for both breasts (0 is a valid answer: set it)."


class _CommitSignal(QObject):
    done = Signal(str, str, object)  # case_id, step, error or None


class _MarkKeysThrough(QObject):
    """A text field takes every printable key before a window's shortcut (it accepts the ShortcutOverride): with
    each reading beginning in the probability field, K and Shift+K did nothing until the reader clicked away.
    A number field has no use for them: they go to the shortcuts."""

    KEYS = {Qt.Key.Key_K}

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        from PySide6.QtCore import QEvent  # noqa: PLC0415

        if event.type() == QEvent.Type.ShortcutOverride and event.key() in self.KEYS and not (
                event.modifiers() & ~Qt.KeyboardModifier.ShiftModifier):
            event.ignore()
            return True
        return False


class StudyReadingWindow(QMainWindow):
    """One reader's session. Keys: Ctrl+Enter commit, Ctrl+Shift+A show AI, PgDown next, PgUp previous."""

    caseShown = Signal(str)
    committed = Signal(str, str)  # case_id, modality

    def __init__(self, opened: OpenedReading) -> None:
        """``opened``: the session read off the GUI thread (:func:`app.study.reading_screen.open_reading`)."""
        super().__init__()
        self.setObjectName("studyReadingWindow")
        self.session = opened.session
        self.store = self.session.store
        self.info = opened.info
        self.position = opened.position
        reader = self.session.reader
        self.exam: Exam | None = None
        self.state: CaseState | None = None
        self.marks: list[ReaderMark] = []
        self._pending: tuple | None = None
        self._carried_marks: list = []  # the unaided marks an aided read starts from (sequential design)
        self._carried_at: int | None = None  # the position they were carried into the aided read at
        self._focused_for: tuple | None = None  # the reading (position, step) the form was last given focus for
        self._baseline: tuple | None = None  # the form's answers as last filled: a difference is unrecorded
        self._after_commit = None  # what to do once the commit now running is durable (leave after "Record")
        self._committing = False  # a commit is on its way to the store
        self._unreadable = False  # this case's images could not be opened: the reader may go on past it
        self._skipped: set[int] = set()  # positions gone past unread because they could not be opened
        self.leave_box: QMessageBox | None = None
        self.loader: Worker | None = None
        self._signal = _CommitSignal()
        self._signal.done.connect(self._on_commit_done)

        self.header = QLabel()
        self.header.setObjectName("studyHeader")
        self.header.setStyleSheet("font: bold 14px; padding: 4px;")
        self.hanging = HangingWidget(blinded=True)  # the corner text is "case k of n", never the exam's
        self.reader_panel = ReaderPanel(study=True)  # what a study read stores: malignant % and BI-RADS
        self.reader_panel.changed.connect(self._answers_changed)
        self._keys_through = _MarkKeysThrough(self)  # K and Shift+K work with the focus in the form too
        for breast in self.reader_panel.inputs.values():
            breast.spin.installEventFilter(self._keys_through)
            breast.spin.lineEdit().installEventFilter(self._keys_through)
        self.reader_panel.commit_button.hide()
        self.locked_label = QLabel("")
        self.locked_label.setObjectName("lockedLabel")
        self.locked_label.setWordWrap(True)
        self.ai_box = QGroupBox("AI")
        self.ai_box.setObjectName("aiBox")
        self.ai_label = QLabel("")
        QVBoxLayout(self.ai_box).addWidget(self.ai_label)
        self.commit_button = QPushButton("Commit  (Ctrl+Enter)")
        self.commit_button.setObjectName("studyCommit")
        self.reveal_button = QPushButton("Show AI  (Ctrl+Shift+A)")
        self.reveal_button.setObjectName("revealButton")
        self.previous_button = QPushButton("◀ Previous  (PgUp)")
        self.next_button = QPushButton("Next ▶  (PgDown)")
        self.next_button.setObjectName("nextButton")
        self.close_button = QPushButton("Finish for now  (your place is kept)")
        self.close_button.setObjectName("finishButton")
        self.close_button.clicked.connect(self.close)
        self.mark_button = QPushButton("Mark a finding  (K)")
        self.mark_button.setCheckable(True)
        self.mark_button.setObjectName("studyMarkButton")
        self.mark_button.toggled.connect(self._set_mark_tool)
        self.status_label = QLabel("")
        self.status_label.setObjectName("studyStatus")
        self.status_label.setWordWrap(True)
        self.notice = QLabel("")  # in place of the images when there is nothing to read now
        self.notice.setObjectName("studyNotice")
        self.notice.setWordWrap(True)
        self.notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.notice.setStyleSheet("font-size: 18px; color: #ddd; background: #111; padding: 40px;")
        self.notice.hide()
        for button, slot in ((self.commit_button, self.commit), (self.reveal_button, self.reveal),
                             (self.previous_button, self.previous_case), (self.next_button, self.next_case)):
            button.clicked.connect(slot)
        for text, key, slot in (("Commit", "Ctrl+Return", self.commit), ("Show AI", "Ctrl+Shift+A", self.reveal),
                                ("Next case", "PgDown", self.next_case), ("Previous case", "PgUp", self.previous_case),
                                ("Mark a finding", "K", self._toggle_mark_tool),
                                ("Remove my last mark", "Shift+K", self.remove_last_mark)):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(slot)
            self.addAction(action)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.reader_panel)
        side_layout.addWidget(self.locked_label)
        side_layout.addWidget(self.ai_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button)
        side_layout.addWidget(self.commit_button)
        side_layout.addWidget(self.reveal_button)
        side_layout.addLayout(buttons)
        side_layout.addWidget(self.mark_button)
        side_layout.addWidget(self.status_label)
        side_layout.addWidget(self.close_button)
        side_layout.addStretch(1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        images = QWidget()
        images_layout = QVBoxLayout(images)
        images_layout.setContentsMargins(0, 0, 0, 0)
        images_layout.addWidget(self.hanging)
        images_layout.addWidget(self.notice)
        splitter.addWidget(images)
        splitter.addWidget(side)
        splitter.setSizes([1150, 420])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.header)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.setWindowTitle(f"Mammo Reader — study {self.info['name']} — {reader}")
        fit_to_screen(self, 1600, 1000)
        for widget in self.hanging.views.values():
            widget.markRequested.connect(self._on_mark_requested)
        if self.position is None:
            self._show_finished()
        else:
            self.state = opened.state
            self.show_case(self.position)

    # ------------------------------------------------------------------------------------------ state

    @property
    def case_id(self) -> str:
        return self.session.order[self.position]

    def current_step(self) -> str:
        """What the reader does now on this reading: 'unaided', 'reveal', 'aided', 'concurrent', 'done', or
        'washout' (a crossover's second session, not open yet)."""
        if self.state is None or self.state.position != self.position:
            return "loading"
        reads, design = self.state.reads, self.session.design
        if design == Design.CROSSOVER:
            modality = self.session.modality_at(self.position)
            if modality in reads:
                return "done"
            return modality if self.state.open else "washout"
        if design == Design.CONCURRENT:
            return "done" if "concurrent" in reads else "concurrent"
        if "unaided" not in reads:
            return "unaided"
        if design == Design.UNAIDED:
            return "done"
        if not self.state.revealed:
            return "reveal"
        return "done" if "aided" in reads else "aided"

    def show_case(self, position: int) -> None:
        self.position = position
        case = self.session.case_at(position)
        training = "  (training case — not scored)" if case.training else ""
        session = f"session {case.session} of {case.sessions} — " if case.sessions > 1 else ""
        label = f"case {case.position + 1} of {case.total}"
        # who is reading, on the screen itself (it was in the window title only: two readers at one workstation)
        self.header.setText(f"{self.info['name']} — reader {self.session.reader} — {session}{label}{training}")
        self.setWindowTitle(f"Mammo Reader — study {self.info['name']} — {self.session.reader} — {label}")
        self.hanging.set_case_label(label)
        focused = self.focusWidget()
        if focused is not None and self.reader_panel.isAncestorOf(focused):
            focused.clearFocus()  # a box left now says its refusal now, and the line goes with the case (it was
            # said on the next case's committed form, as if of its answers)
        self.reader_panel.saved_label.setText("")  # a refusal said of the last case's form is not this case's
        self.exam = None
        self._set_marks([])
        self._carried_marks, self._carried_at = [], None
        self._unreadable = False
        self._baseline = None
        self.hanging.set_loading()
        self.hanging.set_result(None)
        if self.state is not None and self.state.position == position and self.current_step() == "washout":
            self._show_washout()
            return
        self._show_notice("")
        self.status_label.setText("loading…")
        self.loader = Worker(load_case, self.session, position)
        self.loader.result.connect(self._on_loaded)
        self.loader.error.connect(lambda error, at=position: self._on_load_failed(error, at))
        self.loader.start()
        self._refresh()

    def _on_loaded(self, state: CaseState) -> None:
        if state.position != self.position:
            return  # the reader moved on meanwhile
        self.state = state
        if self.current_step() == "washout":
            self._show_washout()
            return
        self.exam = state.exam
        self.hanging.set_exam_window(state.window, linked=True)  # the workstation's one window for the exam
        self.hanging.set_exam(state.exam)
        self._set_marks(self.marks)  # the new images wiped the views' marks: a carried mark must stay in sight
        step = self.current_step()
        if step in ("unaided", "aided", "concurrent"):
            self.session.shown(self.case_id, step)
        self._refresh()
        self.status_label.setText("")
        self.caseShown.emit(self.case_id)

    def _on_load_failed(self, error: BaseException, position: int) -> None:
        """The case cannot be shown: say so in place of the images (blinded) and let the reader go on. A late
        failure of a case the reader has left is not shown (it would name that case on this one)."""
        if position != self.position:
            logger.info("a case the reader left could not be loaded")
            return
        self._unreadable = True
        _, text = user_message(error)
        self.status_label.setText("")
        self._show_notice(f"The images of this case cannot be opened:\n{self._blinded(text)}\n\nTell the study "
                          "coordinator. Nothing is recorded for this case; Next (PgDown) goes on to the next one.")
        self._show_blinded_error(error)
        self._refresh()
        if position + 1 == len(self.session.order):  # the last case: nothing to go on to, the reading is over
            self._skipped.add(position)
            self._show_finished()

    def _blinded(self, text: str, extra: tuple[str, ...] = ()) -> str:
        """``text`` without anything that names the current case outside the study (its ID, path, files)."""
        identifiers = case_identifiers(self.session, self.position) if self.position is not None else set()
        return scrub(text, identifiers | set(extra))

    def _show_blinded_error(self, error: BaseException, extra: tuple[str, ...] = ()) -> None:
        """An error dialog that names the case as "case k of n", never by its ID, folder or files."""
        if self.position is None:
            show_error(self, error)
            return
        title, text = user_message(error)
        case = self.session.case_at(self.position)
        box = QMessageBox(QMessageBox.Icon.Warning, title,
                          f"Case {case.position + 1} of {case.total}: {self._blinded(text, extra)}",
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        logger.warning("shown to the study reader: %s", type(error).__name__)
        box.open()

    def _show_washout(self) -> None:
        self.exam = None
        self.hanging.set_exam(None)
        ends = self.state.washout_ends if self.state is not None else None
        self.status_label.setText("")
        days = self.session.washout_days
        if ends is None:  # a session-1 case is not read (its images could not be opened): no washout has begun
            skipped = sum(self.session.session_of(p) == 1 for p in self._skipped)
            why = (f"{skipped} of its cases could not be opened and {'is' if skipped == 1 else 'are'} not read"
                   if skipped else
                   "some of its cases are not read")
            self.header.setText(f"{self.info['name']}: session 1 is not complete.")
            self.setWindowTitle(f"Mammo Reader — study {self.info['name']} — {self.session.reader} — session 1 "
                                "not complete")
            self._show_notice(
                f"Session 1 is not complete: {why}; tell the study coordinator.\n\nSession 2 opens {days} days "
                "after your last session-1 reading, once every session-1 case is read (they are offered again when "
                "you reopen the study).\n\nYou can close this window: your place is kept.")
        else:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(ends))
            self.header.setText(f"{self.info['name']}: session 1 is complete. Thank you.")
            self.setWindowTitle(f"Mammo Reader — study {self.info['name']} — {self.session.reader} — session 1 "
                                "complete")
            self._show_notice(
                f"Session 1 is complete.\n\nSession 2 opens on {when}, {days} days after your last session-1 "
                "reading (the washout between the two readings of each case).\n\n"
                "You can close this window: your place is kept.")
        self._refresh()

    def _show_notice(self, text: str) -> None:
        """A message in place of the images (empty text: the images)."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self.hanging.setVisible(not text)
        self.reader_panel.setVisible(not text)

    def _shows_ai(self, step: str) -> bool:
        design = self.session.design
        if design == Design.CROSSOVER:
            return step != "washout" and self.session.modality_at(self.position) == "concurrent"
        return step in ("aided", "concurrent") or (step == "done" and design != Design.UNAIDED)

    def _refresh(self) -> None:
        step = self.current_step()
        reads = self.state.reads if self.state is not None and self.state.position == self.position else {}
        if self.session.design == Design.CROSSOVER:  # a reading never shows the other session's answer
            modality = self.session.modality_at(self.position)
            reads = {modality: reads[modality]} if modality in reads else {}
        show_ai = self._shows_ai(step)
        result = self.state.result if (show_ai and self.state is not None) else None
        if self.exam is not None:
            overlays = self.state.overlays if result is not None else None
            self.hanging.set_result(result, None, overlays)
            classes = frozenset(result.entries[0].classes) if result is not None else frozenset()
            self.hanging.set_overlay_options(OverlayOptions(visible=show_ai, classes=classes))
        self.ai_box.setVisible(show_ai)
        if result is not None:
            entry = result.entries[0]
            lines = []
            for side in ("R", "L"):
                scores = result.breasts[side].entries.get(entry.id) if side in result.breasts else None
                if scores is not None:
                    value = scores.malignant if scores.malignant is not None else None
                    # as the workstation and the reports write a model's score ("< 0.1 %", not "0.0 %": no
                    # certainty; a coordinator's re-test)
                    text = f"malignant {model_percent(value, entry)}" if value is not None else ", ".join(
                        f"{c} {model_percent(p, entry)}" for c, p in scores.probabilities.items())
                    # "(CC only)": a breast scored from one view says so, as the workstation and the reports do
                    name = f"{'Right' if side == 'R' else 'Left'} breast {scores.one_view_note}".rstrip()
                    lines.append(f"{name}: {text}")
            self.ai_label.setText("\n".join(lines))
        elif show_ai:
            self.ai_label.setText("No AI result is stored for this case.")
        editable = self._editable()
        self.reader_panel.setEnabled(editable)
        self.commit_button.setEnabled(editable)
        if not editable:
            self.mark_button.setChecked(False)  # the tool does not stay on into a reading that takes no mark
            # the form, disabled, loses the focus: the reading returned to begins in the form again (back to a
            # committed case and forward, the keys typed went nowhere until the field was clicked)
            self._focused_for = None
        self.mark_button.setEnabled(editable)
        if editable and self.exam is not None and self._focused_for != (self.position, step):
            # each reading begins in the form (it took five or six Tabs through the views to reach it)
            self._focused_for = (self.position, step)
            self.reader_panel.inputs["R"].spin.setFocus()
            self.reader_panel.inputs["R"].spin.selectAll()
        self.reveal_button.setVisible(self.session.design == Design.SEQUENTIAL)
        self.reveal_button.setEnabled(step == "reveal")
        self.next_button.setEnabled((step == "done" or self._unreadable) and self.position + 1 < len(self.session.order))
        self.previous_button.setEnabled(self._may_go_back())
        categories = self.state.birads if self.state is not None and self.state.position == self.position else {}
        unaided = reads.get("unaided")
        if unaided and self.session.design == Design.SEQUENTIAL:
            first = categories.get("unaided", {})
            self.locked_label.setText("Unaided read (locked): " + ", ".join(
                f"{name} {100 * unaided[b]:.0f} %" + (f" BI-RADS {first[b]}" if first.get(b) else "")
                for b, name in (("R", "right"), ("L", "left"))))
        else:
            self.locked_label.setText("")
        shown = next((m for m in (step, "aided", "concurrent", "unaided") if reads.get(m)), None)
        if step == "aided" and not reads.get("aided"):
            shown = "unaided" if unaided else None  # start the aided read from the reader's own first answer
        if step == "unaided" or step == "concurrent":
            shown = None
        from app.study.store import BreastRead  # noqa: PLC0415

        values, given = (reads.get(shown) or {}), categories.get(shown, {}) if shown else {}
        self.reader_panel.set_reads({b: BreastRead(b, v, birads=given.get(b, "")) for b, v in values.items()})
        self._baseline = self._answers()
        if step == "aided" and shown == "unaided" and self._carried_at != self.position and self.state is not None:
            self._carried_at = self.position
            # the aided read starts from the whole unaided answer, its marks too (they were dropped: an aided
            # read committed without them said "no finding" where the reader had marked one)
            self._set_marks(list(self.state.marks.get("unaided", [])))
            self._carried_marks = list(self.marks)
        if step in ("done", "reveal") and shown and self.state is not None and self.state.position == self.position:
            # a finished case, and a committed unaided read waiting for Show AI, show the committed read's marks
            # with its answers (the reader saw the answers but not the finding marked: the marks came back only
            # with the AI); drawn only: this reading takes no mark
            for widget in self.hanging.views.values():
                widget.set_marks(list(self.state.marks.get(shown, [])))

    def _set_mark_tool(self, on: bool) -> None:
        for widget in self.hanging.views.values():
            widget.set_tool(ToolMode.MARK if on else ToolMode.PAN)

    def _answers_changed(self) -> None:
        """The request for both breasts goes once both are given (it stayed on screen after they were), and a
        refusal of an entry once no box holds one (it stayed after the box was corrected: a re-test)."""
        if self.status_label.text() == ASK_BOTH and all(self.reader_panel.value(s) is not None for s in ("L", "R")):
            self.status_label.setText("")
        if self.status_label.text().startswith("Not committed: ") and "whole percentage" in self.status_label.text() \
                and not self.reader_panel.refused_entries():
            self.status_label.setText("")

    def _toggle_mark_tool(self) -> None:
        """K: the mark tool, on a reading that takes answers only (a disabled button still toggles in code: K
        opened the mark dialog on a committed reading and drew a mark that was never stored)."""
        if self.mark_button.isEnabled():
            self.mark_button.toggle()

    def _editable(self) -> bool:
        return self.current_step() in ("unaided", "aided", "concurrent") and not self._unreadable

    def _on_mark_requested(self, view, row: float, col: float) -> None:
        from app.ui.workstation.mark_dialog import MarkDialog  # noqa: PLC0415

        if not self._editable():
            return

        dialog = MarkDialog(view.value, row, col, self)
        if dialog.exec():
            self.add_mark(dialog.mark())

    def add_mark(self, mark: ReaderMark) -> None:
        """A mark of this reading; it is committed with the read (and is final then)."""
        self._set_marks([*self.marks, mark])

    def remove_last_mark(self) -> None:
        """Take back the last mark of this reading (before it is committed; after, it is final)."""
        if self.marks and self._editable():
            self._set_marks(self.marks[:-1])
            self.status_label.setText("last mark removed")

    def _set_marks(self, marks: list[ReaderMark]) -> None:
        """This reading's marks, drawn (a committed reading's marks are not drawn on the next one)."""
        self.marks = list(marks)
        for widget in self.hanging.views.values():
            widget.set_marks(self.marks)

    def _answers(self) -> tuple:
        return tuple((self.reader_panel.value(side), self.reader_panel.inputs[side].birads.currentText())
                     for side in ("L", "R"))

    def unrecorded(self) -> bool:
        """Answers or marks given on this reading and not committed yet."""
        if not self._editable():
            return False
        marks_changed = self.marks != (self._carried_marks if self.current_step() == "aided" else [])
        # an entry refused ("2.5 %") is an answer given and not recorded: leaving dropped it without a question
        return (marks_changed or bool(self.reader_panel.refused_entries())
                or (self._baseline is not None and self._answers() != self._baseline))

    def leave_or_ask(self, then) -> bool:
        """True when the reader may leave this reading now; else asks "Record / Discard / Stay" and calls
        ``then`` once the answer is recorded (durable) or discarded."""
        if not self.unrecorded():
            return True
        if self.leave_box is not None and self.leave_box.isVisible():
            return False
        box = QMessageBox(QMessageBox.Icon.Question, "Record your answers?",
                          "This reading's answers are not committed yet.", QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("studyLeaveBox")
        record = box.addButton("Record them", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard them", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Stay", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(record)
        keep_the_default_button(box)
        position = self.position

        def answered(button) -> None:
            if self.position != position:
                return  # asked about another reading
            if button is record:
                self.commit(then=then)
            elif button is discard:
                self._set_marks([])
                self._baseline = self._answers()
                then()

        box.buttonClicked.connect(answered)
        self.leave_box = box
        box.open()
        return False

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not self.leave_or_ask(self.close):
            event.ignore()
            return
        super().closeEvent(event)

    # ------------------------------------------------------------------------------------------ actions

    def commit(self, *, confirmed: bool = False, then=None) -> None:
        """Commit this reading (asking first when its malignant % and BI-RADS disagree, as the workstation
        does); ``then`` runs once it is durable."""
        step = self.current_step()
        if self._committing:  # Ctrl+Enter again, or "Record them" while this reading's commit is on its way
            if then is not None and self._after_commit is None:
                self._after_commit = then
            return
        if not self._editable() or not self.commit_button.isEnabled():
            return
        refused = self.reader_panel.refused_entries()
        if refused:
            self.status_label.setText(f"Not committed: {'; '.join(refused)} is not a whole percentage from 0 to 100.")
            return
        values = {side: self.reader_panel.value(side) for side in ("L", "R")}
        if any(v is None for v in values.values()):
            self.status_label.setText(ASK_BOTH)
            return
        birads = {side: self.reader_panel.inputs[side].birads.currentText() for side in ("L", "R")}
        reasons = [f"{'Right' if side == 'R' else 'Left'} breast: {reason}" for side in ("R", "L")
                   for reason in read_disagreements(values[side], birads[side])]
        if reasons and not confirmed:
            self._ask_commit_anyway(reasons, then)
            return
        self.commit_button.setEnabled(False)
        self.status_label.setText("saving…")
        case_id = self.case_id
        future = self.session.commit(case_id, step, values, birads, marks=list(self.marks))
        self._pending = (case_id, step, values, birads, list(self.marks))
        self._after_commit = then
        self._committing = True
        future.add_done_callback(lambda f: self._signal.done.emit(case_id, step, f.exception()))

    def _ask_commit_anyway(self, reasons: list[str], then) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Commit anyway?",
                          "The parts of this read disagree:\n\n" + "\n".join(f"• {r}" for r in reasons)
                          + "\n\nCommit anyway?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("commitAnywayBox")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        keep_the_default_button(box)
        position = self.position

        def answered(button) -> None:
            if self.position != position:
                return
            if box.standardButton(button) == QMessageBox.StandardButton.Yes:
                self.commit(confirmed=True, then=then)
            else:
                self.status_label.setText("Not committed: correct the read, then commit it.")

        box.buttonClicked.connect(answered)
        self.commit_anyway_box = box
        box.open()

    def reveal(self) -> None:
        if self.current_step() != "reveal":
            return
        case_id = self.case_id
        future = self.session.reveal(case_id)
        future.add_done_callback(lambda f: self._signal.done.emit(case_id, "reveal", f.exception()))

    def _on_commit_done(self, case_id: str, step: str, error) -> None:
        then, self._after_commit = (self._after_commit, None) if step != "reveal" else (None, self._after_commit)
        if step != "reveal":
            self._committing = False
        if error is not None:
            if isinstance(error, sqlite3.IntegrityError) and case_id == self.case_id:
                # the reader's typed answer is not stored: say why (another window of this reader got there first)
                error = sqlite3.IntegrityError(f"{error}: the study already holds another state of this reading "
                                               "(another window or session of yours?); what it holds is shown, "
                                               "and the answer typed here is not recorded")
            self.status_label.setText(f"NOT saved: {self._blinded(str(error), (case_id,))}")
            self._show_blinded_error(error, (case_id,))
            if isinstance(error, sqlite3.IntegrityError) and case_id == self.case_id:
                self.show_case(self.position)  # the store holds another state (another window): show what it holds
            else:  # e.g. a full disk: the answers stay in the form, to commit again
                self.commit_button.setEnabled(self.current_step() in ("unaided", "aided", "concurrent"))
            return
        self.status_label.setText("saved" if step != "reveal" else "AI shown; your first answer is locked")
        if case_id != self.case_id or self.state is None:
            return
        # what was just made durable, without reading it back on the GUI thread
        if step == "reveal":
            self.state = replace(self.state, revealed=True)
            self.session.shown(case_id, "aided")
        else:
            pending = self._pending if self._pending and self._pending[:2] == (case_id, step) else None
            values, birads, marks = (pending[2], pending[3], pending[4]) if pending else ({}, {}, [])
            self.state = replace(self.state, reads={**self.state.reads, step: dict(values)},
                                 birads={**self.state.birads, step: dict(birads)},
                                 marks={**self.state.marks, step: list(marks)})
            self._set_marks([])
            self.mark_button.setChecked(False)
            self.committed.emit(case_id, step)
        self._refresh()
        if then is not None:
            then()
        elif step != "reveal" and self.current_step() == "done" and self.position + 1 == len(self.session.order):
            self._show_finished()  # the last reading of the study

    def next_case(self) -> None:
        if self.next_button.isEnabled() and self.leave_or_ask(self.next_case):
            if self._unreadable:
                self._skipped.add(self.position)
            self.state = None
            self.show_case(self.position + 1)

    def _may_go_back(self) -> bool:
        """Back within the current session only: session 1's readings are not revisited in session 2."""
        return self.position > 0 and self.session.session_of(self.position - 1) == self.session.session_of(self.position)

    def previous_case(self) -> None:
        if self._may_go_back() and self.leave_or_ask(self.previous_case):
            self.state = None
            self.show_case(self.position - 1)

    def _show_finished(self) -> None:
        if self._skipped:
            self.header.setText(f"{self.info['name']}: every case that could be opened is read. Thank you.")
            self._show_notice(f"{len(self._skipped)} case(s) could not be opened and are not read; tell the study "
                              "coordinator (they are offered again when you reopen the study).\n\nEvery other case "
                              "is read. Thank you. You can close this window.")
        else:
            self.header.setText(f"{self.info['name']}: all cases are read. Thank you.")
            self._show_notice("All cases of this study are read.\n\nThank you. You can close this window.")
        self.setWindowTitle(f"Mammo Reader — study {self.info['name']} — {self.session.reader} — all cases read")
        for button in (self.commit_button, self.reveal_button, self.next_button, self.previous_button,
                       self.mark_button):
            button.setEnabled(False)
        # nothing of the last case stays on screen: its locked answer, the form's values, "saved"
        self.locked_label.setText("")
        self.status_label.setText("")
        self.reader_panel.fill_form({})
        self.reader_panel.saved_label.setText("")
        self.reader_panel.setEnabled(False)
        self.close_button.setText("Close")
        self.ai_box.hide()
