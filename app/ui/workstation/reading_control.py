"""The reader's estimate: blinding until the first read is committed, the immutable first commit, time-stamped
amendments, and the reader's marks."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from app.model_table import BREAST_NAMES
from app.reading import AMENDED_AFTER_AI, change_text, read_disagreements
from app.study.store import CommittedReadError, ReaderMark
from app.ui.forms import keep_the_default_button
from inference.intake.views import View


COMMITTED_TEXT = "committed: this read is final (a later change is recorded beside it)"
PENDING_CHANGE = (f"Changed after your commit, not recorded yet: commit it (Ctrl+Enter) to record it as "
                  f"{AMENDED_AFTER_AI}; your first read stays.")


class ReadingControl:
    """The reader's part of the workstation: estimate, commit, amendments and marks."""

    def __init__(self, window) -> None:
        self.window = window
        self._proceed: Callable[[], None] | None = None  # what follows the open "Record your change?" question
        # the breasts whose model answer has been on screen during this exam's read (blind reading turned off and
        # on again, a result shown before the commit): a read committed later is no opinion formed without it
        self.seen_breasts: set[str] = set()
        # why the last commit was refused: kept under the form beside the draft's "saved" until the form changes
        # (the draft's delayed save replaced it, and the reader never saw why nothing was committed)
        self._commit_refusal = ""

    def refuse_commit(self, text: str) -> None:
        """Say why the read was not committed (or recorded); it stays until the reader changes the form."""
        self._commit_refusal = text
        self.window.scores.reader.saved_label.setText(text)

    def form_changed(self) -> None:
        """The reader changed the form: a refusal said for the form as it was is no longer the answer."""
        if not self._commit_refusal:
            return
        label = self.window.scores.reader.saved_label
        lines = [line for line in label.text().split("\n") if line != self._commit_refusal]
        self._commit_refusal = ""
        label.setText("\n".join(lines))

    def worked_on(self) -> bool:
        """The reader did something on the exam on screen: a read committed, a value in the form, or a mark
        (what keeps a worklist exam "in progress" once left; one only looked through is unread again)."""
        window = self.window
        return window.exam is not None and (window.committed or bool(window.marks) or any(
            read.says_something() for read in window.scores.reader.reads(False)))

    def model_hidden(self) -> bool:
        window = self.window
        return window.settings.blind_first and not window.committed

    def model_on_screen(self, breast: str) -> bool:
        """A model's answer on ``breast`` is shown now (blind reading off, or after the commit): a read made now
        is no opinion formed without the model. A result with nothing on that breast (no view analysed there) is
        no AI opinion of it."""
        window = self.window
        return window.result is not None and not self.model_hidden() and breast in window.result.breasts

    def ai_seen(self, breast: str) -> bool:
        """The model's answer on ``breast`` is on screen now or has been during this exam's read."""
        return self.model_on_screen(breast) or breast in self.seen_breasts

    def forget_exam(self) -> None:
        """Another exam (or none) is opening: what was seen was the last exam's."""
        self.seen_breasts.clear()
        self._commit_refusal = ""

    def restore_seen(self, reads: dict) -> None:
        """An exam opened from the store: the breasts its saved draft says the model was seen on (the draft
        keeps it, so that leaving the exam, or a restart, does not make such a read "before AI")."""
        self.seen_breasts = {side for side, read in reads.items() if read.ai_shown and not read.committed}

    def note_seen(self) -> None:
        """The model's answers on screen now, before the first commit, are seen for this exam's read."""
        window = self.window
        if window.exam is not None and not window.committed:
            self.seen_breasts |= {side for side in ("R", "L") if self.model_on_screen(side)}

    def apply_blind_state(self) -> None:
        window = self.window
        self.note_seen()
        hidden = self.model_hidden() and window.exam is not None  # no exam: nothing is hidden, nothing to say
        window.scores.set_model_hidden(hidden)
        window.gallery.setVisible(not hidden)
        window.regions_note_action.setVisible(not hidden)  # the rule of the model's regions: the model's, hidden
        window.overlay_control.apply_overlay_options()

    def _imaged_breasts(self) -> tuple[str, ...]:
        window = self.window
        sides = {v.laterality.value for v in window.exam.views} if window.exam is not None else set()
        return tuple(side for side in ("R", "L") if side in sides)

    def focus_form(self) -> None:
        """E: the keyboard to the estimate form, at the first breast without a malignancy answer (else the right
        breast's), its text selected (Tab from the images did not reach the form, and a digit typed then changed
        the layout)."""
        reader = self.window.scores.reader
        sides = tuple(side for side in ("R", "L") if reader.inputs[side].spin.isEnabled())
        if not reader.isEnabled() or not sides:
            return
        box = reader.inputs[next(iter(reader.unanswered(sides)), sides[0])].spin
        box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        box.selectAll()

    def commit_estimate(self, then: Callable[[], None] | None = None) -> bool:
        """Commit the reader's estimate; every imaged breast must be answered first (with the model hidden, the
        commit reveals it). ``then`` runs once it is committed, also after a "Commit anyway?" answered Yes."""
        window = self.window
        if window.exam is None:
            self.on_saved("No exam is open: nothing to commit.")
            return False
        refused = window.scores.reader.refused_entries()
        if refused:
            self.refuse_commit(
                f"Not committed: {'; '.join(refused)} is not a whole percentage from 0 to 100. Correct it, then commit.")
            return False
        # every imaged breast is answered before the first commit, the model hidden or not: a committed read
        # closes the exam as read, and a breast left blank was closed unassessed
        missing = [] if window.committed else window.scores.reader.unanswered(self._imaged_breasts())
        if missing:
            names = " and ".join("the right breast" if s == "R" else "the left breast" for s in missing)
            self.refuse_commit(
                f"Not committed: give a probability of malignancy for {names} first (0 % is an answer: set it)."
                + (" The model stays hidden." if self.model_hidden() else ""))
            return False
        reads = window.scores.reader.changed_since_commit() if window.committed else window.scores.reader.reads(True)
        reasons = [f"{BREAST_NAMES[read.breast]}: {reason}" for read in reads
                   for reason in read_disagreements(read.malignant, read.birads, read.recommendation)]
        if reasons:  # committed only on Yes (a read is final once committed)
            self._ask_commit_anyway(reasons, then)
            return False
        committed = self._commit_now()
        if committed and then is not None:
            then()
        return committed

    def _ask_commit_anyway(self, reasons: list[str], then: Callable[[], None] | None = None) -> None:
        window = self.window
        box = QMessageBox(QMessageBox.Icon.Question, "Commit anyway?",
                          "The parts of this read disagree:\n\n" + "\n".join(f"• {r}" for r in reasons)
                          + "\n\nCommit anyway?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, window)
        box.setObjectName("commitAnywayBox")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        keep_the_default_button(box)
        def answered(button) -> None:
            if box.standardButton(button) != QMessageBox.StandardButton.Yes:
                self.refuse_commit("Not committed: correct the read, then commit it.")
                return
            if self._commit_now() and then is not None:
                then()  # e.g. the leave that asked to record the change first

        box.buttonClicked.connect(answered)
        window.commit_anyway_box = box
        box.open()

    def _commit_now(self) -> bool:
        """The first commit is final (in the store too); a later commit records what changed since as a
        separate, time-stamped read amended after AI, beside it."""
        window = self.window
        if window.exam is None:
            return False
        if window.committed:
            return self._amend_reads()
        window._save_timer.stop()
        self._commit_refusal = ""
        shown = {side: self.ai_seen(side) for side in ("R", "L")}  # before the commit, which shows it
        self.save_reads(committed=True)
        window.committed = True
        now = time.time()
        window.scores.reader.set_first_reads({r.breast: dataclasses.replace(r, recorded_at=now, ai_shown=shown[r.breast])
                                            for r in window.scores.reader.reads(True)})
        self.apply_blind_state()
        window.keep_form_in_sight()  # the line under the form, on a small screen too
        self._keys_to_the_views()
        return True

    def _keys_to_the_views(self) -> None:
        """After the commit, the focus leaves the reader's form for the images: the view keys (H shows the maps)
        work at once; H was typed into the % box ("the letter h is not a percentage")."""
        window = self.window
        # the window's own focus child, not the application's: through "Commit anyway?" the box has the focus, and
        # gave it back to the % box as it closed; set while the box is up, it is what the window gets back
        if window.scores.reader.isAncestorOf(window.focusWidget()):
            window.hanging.setFocus()

    def _amend_reads(self) -> bool:
        window = self.window
        window._save_timer.stop()  # the debounced save of the edit would say "not recorded yet" after this
        changed = window.scores.reader.changed_since_commit()
        if not changed:
            # the confirmation stays said (a second Ctrl+Enter replaced it with this line alone)
            self.on_saved(f"Nothing changed since your commit; {COMMITTED_TEXT}")
            return False
        emptied = [r.breast for r in changed if r.malignant is None and r.breast in self._imaged_breasts()]
        if emptied:  # a box emptied (or half typed) after the commit is no answer: never an amendment to "none"
            names = " and ".join("the right breast" if s == "R" else "the left breast" for s in emptied)
            self.refuse_commit(f"Not recorded: give a probability of malignancy for {names} (an empty box is no "
                               "answer); your committed read stays as it was.")
            return False
        latest = {side: first.amendment or first for side, first in window.scores.reader.first_reads.items()}
        benign_emptied = [r.breast for r in changed if r.benign is None and r.breast in latest
                          and latest[r.breast].benign is not None]
        if benign_emptied:  # the benign box likewise: emptied to be retyped, it took the committed answer away
            names = " and ".join("the right breast" if s == "R" else "the left breast" for s in benign_emptied)
            self.refuse_commit(f"Not recorded: give a benign probability for {names} (an empty box is no answer; "
                               "0 % is one); your committed read stays as it was.")
            return False
        self._commit_refusal = ""
        now = time.time()
        window.scores.reader.add_amendments([dataclasses.replace(r, recorded_at=now) for r in changed])
        window.scores.refresh_compare()
        if window.store is None:
            return True
        if window.store.closed:
            self.on_saved("NOT saved: the store is closed")
            return True
        key = window.exam_key
        future = window.store.amend_reads(key, window._reader(), changed)  # the kept change goes with it (the
        # list's mark too, once the store said so: on_stored)
        future.add_done_callback(lambda f: window._saved_signal.saved.emit(
            f"saved as {AMENDED_AFTER_AI}; your first read stays as it was" if f.exception() is None
            else f"NOT saved: {f.exception()}", key))
        return True

    def save_reads(self, committed: bool) -> None:
        window = self.window
        if window.committed:  # the first commit is final: a later change is recorded when committed, as an amendment;
            # until then it is kept as a pending change (a crash lost it), never as a read
            changed = window.scores.reader.changed_since_commit()
            if window.store is not None and not window.store.closed and window.exam is not None:
                # what could be recorded: an emptied or refused box is no answer (kept, it came back as "—" and
                # "Record it" was refused)
                kept = [read for read in changed if read.malignant is not None]
                window.store.save_pending_change(window.exam_key, window._reader(), kept,
                                                 *window.worklist.current_location())
                window.worklist.mark_pending_change(bool(kept))  # the list says so (✎), also after a crash
            self.on_saved(PENDING_CHANGE if changed else "As committed.")
            return
        if window.store is None or window.exam is None:
            return
        if window.store.closed:
            self.on_saved("NOT saved: the store is closed")
            return
        key = window.exam_key
        reads = window.scores.reader.reads(committed)
        # whether the model was on screen before or when the read was committed (blind reading off); a draft keeps
        # it too (None: not seen so far), so that it holds when the exam is opened again
        reads = [dataclasses.replace(r, ai_shown=self.ai_seen(r.breast) if committed else (self.ai_seen(r.breast)
                                                                                          or None)) for r in reads]
        future = window.store.save_reads(key, window._reader(), reads)
        done = COMMITTED_TEXT if committed else "draft saved (not committed)"

        def answered(f) -> None:
            window._saved_signal.saved.emit(done if f.exception() is None else f"NOT saved: {f.exception()}", key)
            if isinstance(f.exception(), CommittedReadError):  # this window's state was stale: show the store's
                window._saved_signal.refused.emit(key)

        future.add_done_callback(answered)

    def reload_reads(self, key: str) -> None:
        """The store refused a read of exam ``key`` because a committed one is stored already (committed in
        another window, or before this window last loaded it): show what the store holds, read off the GUI
        thread, so that the hybrid and the reports never rest on a read that was not kept."""
        from app.ui.worker import Worker  # noqa: PLC0415

        window = self.window
        if window.store is None or key != window.exam_key:
            return
        generation = window._generation
        worker = Worker(_stored_reads, window.store, key, window._reader())
        worker.result.connect(lambda stored, g=generation: self._show_stored_reads(*stored, key, g))
        worker.error.connect(window._on_error)
        window._track(worker).start()

    def _show_stored_reads(self, reads: dict, marks: list, key: str, generation: int) -> None:
        window = self.window
        if key != window.exam_key or not window._current(generation):
            return
        window._save_timer.stop()
        window.committed = any(r.committed for r in reads.values())
        window.marks = list(marks)  # the marks the store holds, not a stale window's (never saved again here)
        for widget in window.hanging.views.values():
            widget.set_marks(window.marks)
        window.scores.reader.set_reads(reads)
        window.scores.refresh_compare()
        self.apply_blind_state()
        self.on_saved("NOT saved: a committed read of this exam is stored already (from another window?); it is "
                      "shown now, and a change to it is recorded as an amendment after AI.")

    def leave_or_ask(self, proceed: Callable[[], None], before: str = "leaving this exam",
                     stayed: str = "") -> bool:
        """True when the exam on screen may be left (or exported: ``before`` says which) now. With a change made
        after the commit and not yet recorded, asks first (record it as amended after AI, discard it, or stay)
        and calls ``proceed`` once it is recorded or discarded: leaving never drops the reader's change
        silently, and an export never shows the recorded read while another stands on screen unsaid. ``stayed``:
        the status line when the reader stays (Cancel), over what the caller said would follow the answer."""
        window = self.window
        reader = window.scores.reader
        if window.exam is not None and reader.refused_entries():
            return self._drop_or_stay(proceed, before, stayed)
        if window.exam is None or not window.committed or not reader.changed_since_commit():
            return True
        self._proceed = proceed  # asked again while the question is open: the latest wish is what follows it
        if window.pending_amendment_box is not None and window.pending_amendment_box.isVisible():
            return False
        exam = window.exam
        buttons = QMessageBox.StandardButton
        changes = "; ".join(f"{BREAST_NAMES[read.breast]} {change_text(recorded, read)}"
                            for read in reader.changed_since_commit()
                            if (recorded := self._recorded(read.breast)) is not None)
        box = QMessageBox(QMessageBox.Icon.Question, "Record your change?",
                          f"You changed your estimate after committing it ({changes or 'a breast'}), and the change is "
                          f"not recorded.\n\nBefore {before}: record it as {AMENDED_AFTER_AI} (your first read "
                          "stays), or discard it? Cancel stays here, the change still unrecorded.",
                          buttons.Save | buttons.Discard | buttons.Cancel, window)
        box.setObjectName("pendingAmendmentBox")
        box.button(buttons.Save).setText("Record it")
        box.setDefaultButton(buttons.Cancel)
        keep_the_default_button(box)

        def answered(button) -> None:
            which = box.standardButton(button)
            follow, self._proceed = self._proceed, None
            if window.exam is not exam:  # the exam asked about is no longer on screen: nothing to record here
                return
            if which == buttons.Save:  # recorded, then the leave (after "Commit anyway?" too, on its Yes)
                self.commit_estimate(then=follow)
                return
            if which == buttons.Discard:
                window._save_timer.stop()
                reader.set_reads(reader.first_reads)  # the form back to the latest recorded read
                if window.store is not None and not window.store.closed:
                    window.store.save_pending_change(window.exam_key, window._reader(), [])
                window.worklist.mark_pending_change(False)
                self.on_saved("Your change after the commit was discarded; the recorded read stays.")
            else:
                if stayed:
                    window.statusBar().showMessage(stayed, 15_000)
                return
            if follow is not None:
                follow()

        box.buttonClicked.connect(answered)
        window.pending_amendment_box = box
        box.open()
        return False

    def show_pending_change(self, reads: dict, pending: dict) -> None:
        """The reader's change after the commit that was kept, not recorded, when the app last stopped: in the form
        again, said so, to be recorded (Ctrl+Enter) or discarded as before."""
        reader = self.window.scores.reader
        reader.fill_form({side: pending.get(side) or read.amendment or read for side, read in reads.items()})
        self.on_saved(f"{PENDING_CHANGE} (Kept from before the app stopped.)")

    def _drop_or_stay(self, proceed: Callable[[], None], before: str, stayed: str = "") -> bool:
        """An entry the form refused ("2.5 %") is still in a box, or was cleared from it on leaving it: asks
        whether to drop it or stay and correct it (a radiologist left the exam with it, and came back to "—"; the
        study screen asked). A drop puts back the breast's recorded answer (none before the commit); ``proceed``
        follows it, and asks about a change after the commit in its turn."""
        window = self.window
        reader = window.scores.reader
        self._proceed = proceed
        if window.pending_amendment_box is not None and window.pending_amendment_box.isVisible():
            return False
        exam = window.exam
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Question, "Entry not taken",
                          f"{'; '.join(reader.refused_entries())}: not a whole percentage from 0 to 100, so it was "
                          f"not taken.\n\nBefore {before}: drop it, or stay to correct it?",
                          buttons.Discard | buttons.Cancel, window)
        box.setObjectName("refusedEntryBox")
        box.button(buttons.Discard).setText("Drop it")
        box.button(buttons.Cancel).setText("Stay and correct it")
        box.setDefaultButton(buttons.Cancel)
        keep_the_default_button(box)

        def answered(button) -> None:
            follow, self._proceed = self._proceed, None
            window.pending_amendment_box = None  # Qt hides the box after this: the leave that follows may ask anew
            if window.exam is not exam:
                return
            if box.standardButton(button) != buttons.Discard:  # stay: the keyboard to the entry to correct, once
                QTimer.singleShot(0, reader, reader.focus_refused_entry)  # the box is gone (it gives the focus back)
                if stayed:
                    window.statusBar().showMessage(stayed, 15_000)
                return
            reader.drop_refused_entries()
            if follow is not None:
                follow()

        box.buttonClicked.connect(answered)
        window.pending_amendment_box = box  # one question at a time
        box.open()
        return False

    def _recorded(self, breast: str):
        """The breast's latest recorded read: its amendment after AI, else its committed first read."""
        first = self.window.scores.reader.first_reads.get(breast)
        return None if first is None else (first.amendment or first)

    def on_saved(self, text: str) -> None:
        refusal = self.window.scores.reader.refusal_line()  # a draft saved later does not hide it
        lines = [self._commit_refusal] if self._commit_refusal and self._commit_refusal not in text else []
        lines += [text] + ([refusal] if refusal and refusal not in text else [])
        self.window.scores.reader.saved_label.setText("\n".join(lines))

    def on_stored(self, text: str, key: str) -> None:
        """The store's answer for the read of exam ``key``: under the form when that exam is still on screen,
        else on the status line naming it (a failure in a dialog: a read was not kept)."""
        window = self.window
        if key == window.exam_key:
            if text.startswith(f"saved as {AMENDED_AFTER_AI}"):  # recorded: the kept change went with it
                window.worklist.mark_pending_change(False)
            pending = window.committed and window.scores.reader.changed_since_commit()
            # the commit's "saved" arriving after a further change: the change still waits to be recorded
            self.on_saved(PENDING_CHANGE if pending and not text.startswith("NOT") else text)
            return
        line = f"the read of the exam you left: {text}"
        window.statusBar().showMessage(line, 15_000)
        if text.startswith("NOT saved"):
            box = QMessageBox(QMessageBox.Icon.Warning, "A read was not saved", line, QMessageBox.StandardButton.Ok,
                              window)
            box.setObjectName("readNotSavedBox")
            box.open()

    def add_mark(self, view: View, row: float, col: float, mark: ReaderMark | None = None) -> None:
        """A click in mark mode: ask what and how sure (unless ``mark`` is given), draw it, store it."""
        window = self.window
        if mark is None:
            from app.ui.workstation.mark_dialog import MarkDialog  # noqa: PLC0415

            dialog = MarkDialog(view.value, row, col, window)
            if not dialog.exec():
                return
            mark = dialog.mark()
        shown = window.committed or (window.result is not None and not self.model_hidden())
        if shown and not mark.after_ai:  # made with the model on screen: no part of the blind read
            mark = dataclasses.replace(mark, after_ai=True)
        window.marks.append(mark)
        self._marks_changed()

    def remove_last_mark(self) -> None:
        """Shift+K: take back the last mark, unless it belongs to the committed read (made before the model was
        shown, it is final as the read is: Shift+K after the commit had deleted it from the store and the
        report)."""
        window = self.window
        if not window.marks:
            return
        if window.committed and not window.marks[-1].after_ai:
            window.statusBar().showMessage("the marks of your committed read are final; only a mark made after the "
                                           "model was shown can be taken back", 8000)
            return
        window.marks.pop()
        self._marks_changed()

    def _marks_changed(self) -> None:
        window = self.window
        for widget in window.hanging.views.values():
            widget.set_marks(window.marks)
        if window.store is not None and window.exam is not None and not window.store.closed:
            key = window.exam_key
            future = window.store.save_marks(key, window._reader(), list(window.marks))

            def answered(f) -> None:  # a refusal (another window committed first) is said, and the store's shown
                if f.exception() is not None:
                    window._saved_signal.saved.emit(f"NOT saved: {f.exception()}", key)
                    window._saved_signal.refused.emit(key)

            future.add_done_callback(answered)


def _stored_reads(store, key: str, reader: str, *, progress, cancel) -> tuple[dict, list]:  # noqa: ARG001
    return store.load_reads(key, reader), store.load_marks(key, reader)
