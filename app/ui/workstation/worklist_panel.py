"""The worklist in the workstation: a panel listing the batch, Next / Previous / Next unread keys, flags,
reading time, and the prefetch of the next exams.

Keys: Ctrl+Right next exam, Ctrl+Left previous, Ctrl+Shift+Right next unread, Ctrl+L back to the list,
Ctrl+F flag / unflag, F5 reload the list. Prefetch: while an exam is read, the next ``prefetch_exams`` not yet
read are loaded and analysed on one background thread at the lowest priority, only while the exam on screen has
no load or analysis of its own running; each is the same stored result the window restores
(``analyse_or_restore``).
Every prefetched payload carries the worklist it was asked for and is dropped when another worklist is open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHeaderView,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.errors import user_message
from app.worklist import ReadState, Worklist, WorklistItem, models_differ_note, source_fingerprint
from app.ui.worker import Worker

if TYPE_CHECKING:
    from app.ui.workstation.main_window import MainWindow
    from app.workstation import AnalysisOutcome, LoadedExam

logger = logging.getLogger(__name__)

PENDING_IN_LIST = ("Your change after the commit is kept, not recorded: open the exam to record it (amended after AI) "
                   "or discard it; your committed read stands until then")
STATE_MARKS = {ReadState.UNREAD: "", ReadState.IN_PROGRESS: "…", ReadState.READ: "✓", ReadState.FLAGGED: "⚑"}


@dataclass(frozen=True)
class Prefetched:
    """An exam loaded (and, with a model, analysed) ahead of the reader; ``nbytes`` is what it holds."""

    loaded: LoadedExam
    outcome: AnalysisOutcome | None
    nbytes: int
    analysed_with: tuple[str, str, str] = ("", "", "")  # (models, device, mode) of ``outcome``
    fingerprint: tuple | None = None  # its files as they were before it was loaded (app.worklist.source_fingerprint)


BANK_SECONDS = 15  # how often the running reading time goes to the store


def _minutes(seconds: float) -> str:
    """m:ss, or nothing before the first second."""
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}" if whole else ""


def exam_source(item: WorklistItem, ae_title: str):
    """What ``open_exam`` takes for a worklist exam: a path, its files, or a PACS study address."""
    from app.pacs.nodes import is_pacs_address, parse_study  # noqa: PLC0415

    if item.files:
        return list(item.files)
    return parse_study(item.location, ae_title) if is_pacs_address(item.location) else Path(item.location)


def _held_bytes(loaded, outcome) -> int:
    total = sum(image.pixels.nbytes for image in loaded.exam.views.values())
    if outcome is not None:  # the drawn textures, and the maps they were made from (about as large)
        total += 2 * outcome.overlays.nbytes
    return total


def _prefetch_task(source, store, reader: str, model_path: str, groups, device: str, mode: str, *, progress,
                   cancel, loaded_to=None) -> Prefetched:
    """Load the exam as the window does (handing it to ``loaded_to`` at once: a reader who arrives while it
    is analysed sees its pixels), then restore or analyse it as the window does (one results path)."""
    from app.background import yielding_to_the_window  # noqa: PLC0415
    from app.workstation import analysis_task, load_exam_task  # noqa: PLC0415

    with yielding_to_the_window():  # the window keeps a core for its painting
        fingerprint = source_fingerprint(source)  # before loading: a change while it loads is caught too
        loaded = load_exam_task(source, store, reader, progress=progress, cancel=cancel)
        if loaded_to is not None:
            loaded_to((loaded, fingerprint))
        outcome = None
        if model_path and not cancel():
            outcome = analysis_task(loaded.exam, model_path, groups, device, mode, store, False, progress=progress,
                                    cancel=cancel)
    return Prefetched(loaded, outcome, _held_bytes(loaded, outcome), (model_path, device, mode), fingerprint)


def _fingerprint_task(source, *, progress, cancel) -> tuple | None:  # noqa: ARG001
    return source_fingerprint(source)


def _reader_states_task(worklist: Worklist, store, reader: str, *, progress, cancel) -> Worklist:  # noqa: ARG001
    """The same exams with ``reader``'s states (another reader took the workstation)."""
    other = Worklist.of_items([entry.item for entry in worklist.entries], store, reader, worklist.clock)
    other.batch_models = worklist.batch_models
    return other


def _open_task(source: str, store, reader: str, dates: str, ae_title: str, *, progress,
               cancel) -> Worklist:  # noqa: ARG001
    progress("reading the worklist", 0, 1)
    return Worklist.open(source, store=store, reader=reader, dates=dates, ae_title=ae_title)


class KeyboardRowOutline(QStyledItemDelegate):
    """Outlines the row the arrow keys are on while the list has the focus. The rows are never selected (only the
    exam on screen is highlighted), and Qt's focus frame round one cell was too faint to follow (a radiologist
    reading by keyboard lost it); Enter opens the outlined row."""

    def __init__(self, table: QTableWidget) -> None:
        super().__init__(table)
        self._table = table
        table.installEventFilter(self)  # the outline comes and goes with the focus, and follows the current row
        table.selectionModel().currentRowChanged.connect(lambda *_: table.viewport().update())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._table:  # not the delegate's own filter, which takes what it watches for an editor
            if event.type() in (QEvent.Type.FocusIn, QEvent.Type.FocusOut):
                self._table.viewport().update()
            return False
        return super().eventFilter(watched, event)

    def outlined_row(self) -> int:
        """The row drawn outlined now, or -1."""
        return self._table.currentIndex().row() if self._table.hasFocus() else -1

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        plain = QStyleOptionViewItem(option)
        plain.state &= ~QStyle.StateFlag.State_HasFocus  # the row's outline instead of one cell's frame
        super().paint(painter, plain, index)
        if index.row() != self.outlined_row():
            return
        palette = self._table.palette()
        on_screen = self._table.item(index.row(), 0) is not None and \
            self._table.item(index.row(), 0).background().color() == palette.highlight().color()
        painter.save()  # on the highlighted row (the exam on screen) in the text's colour, else the highlight's
        painter.setPen(QPen(palette.color(QPalette.ColorRole.HighlightedText if on_screen
                                          else QPalette.ColorRole.Highlight), 2))
        rect = option.rect.adjusted(1, 1, -1, -1)
        painter.drawLine(rect.topLeft(), rect.topRight())
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        if index.column() == 0:
            painter.drawLine(rect.topLeft(), rect.bottomLeft())
        if index.column() == self._table.columnCount() - 1:
            painter.drawLine(rect.topRight(), rect.bottomRight())
        painter.restore()


class WorklistPanel(QDockWidget):
    """The list: one row per exam with its state and the reading time; double-click opens one."""

    chosen = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__("Worklist", parent)
        self.setObjectName("worklistPanel")
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("worklistTable")
        self.table.setTabKeyNavigation(False)  # Tab leaves the list for the reader's form (arrows move in it)
        self.table.setHorizontalHeaderLabels(["Exam", "State", "Time"])
        header = self.table.horizontalHeader()  # state and time always whole; the exam's name takes the rest
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long exam name keeps its end
        self.table.setWordWrap(False)  # one line a row: "⚠ exam11" was broken over two in a narrow panel
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # the exam on screen alone is highlighted (drawn in show_worklist), never a row merely clicked: a click
        # highlighted another patient's row while this one stayed open, and a read went to the one on screen;
        # Qt's selection also kept every row visited with Ctrl+Right. Double-click or Enter opens a row.
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemActivated.connect(lambda item: self.chosen.emit(item.row()))  # double-click and Enter
        self.table.setItemDelegate(KeyboardRowOutline(self.table))
        self.models_note = QLabel("")  # a batch output analysed with other models than those on screen
        self.models_note.setObjectName("worklistModelsNote")
        self.models_note.setWordWrap(True)
        self.models_note.setStyleSheet("color: #9a5a00;")
        self.models_note.hide()
        self.pending_note = QLabel("")  # exams with the reader's change after the commit kept, not recorded
        self.pending_note.setObjectName("worklistPendingNote")
        self.pending_note.setWordWrap(True)
        self.pending_note.setStyleSheet("color: #9a5a00;")
        self.pending_note.hide()
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.models_note)
        layout.addWidget(self.pending_note)
        layout.addWidget(self.table)
        self.setWidget(holder)

    def show_models_note(self, note: str) -> None:
        self.models_note.setText(note)
        self.models_note.setVisible(bool(note))

    def show_time(self, worklist: Worklist) -> None:
        """The reading time of the exam on screen, its clock running (the list showed it only on leaving)."""
        row = worklist.current
        item = self.table.item(row, 2) if 0 <= row < self.table.rowCount() else None
        if item is not None:
            item.setText(_minutes(worklist.seconds_on(row)))

    def show_worklist(self, worklist: Worklist) -> None:
        self.table.setRowCount(len(worklist))
        palette = self.table.palette()
        for row, entry in enumerate(worklist.entries):
            if entry.problem:
                state = "⚠ not opened"
            elif entry.changed and entry.state == ReadState.IN_PROGRESS:
                state = "↻ changed"  # since read (the tooltip says it whole; the exam's name keeps the room)
            elif entry.pending_change:
                state = "✎ not recorded"  # a change after the commit, kept (the tooltip says it whole)
            else:
                state = f"{STATE_MARKS[entry.state]} {entry.state.value}"
            name = ("⚠ " if entry.item.note else "") + entry.item.exam_id  # the batch could not analyse it
            cells = (name, state, _minutes(worklist.seconds_on(row)))
            tips = [f"Not opened ({entry.state.value}): {entry.problem}" if entry.problem else "",
                    "Listed read before, but its files are not the ones read (another exam in its place, or a "
                    "retaken view): read it again" if entry.changed and entry.state == ReadState.IN_PROGRESS else "",
                    f"{PENDING_IN_LIST}" if entry.pending_change else "",
                    f"{entry.item.note[0].upper()}{entry.item.note[1:]}" if entry.item.note else ""]
            for column, text in enumerate(cells):
                item = self.table.item(row, column)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, column, item)
                item.setText(text)
                item.setToolTip("\n".join(t for t in tips if t))
                font = item.font()
                font.setBold(row == worklist.current)
                item.setFont(font)
                on_screen = row == worklist.current
                item.setBackground(palette.highlight() if on_screen else QBrush())
                item.setForeground(palette.highlightedText() if on_screen else QBrush())
        if 0 <= worklist.current < len(worklist):
            self.table.scrollToItem(self.table.item(worklist.current, 0))
        pending = [entry.item.exam_id for entry in worklist.entries if entry.pending_change]
        self.pending_note.setText(
            f"✎ {len(pending)} exam(s) with your change after the commit kept, not recorded: "
            f"{', '.join(pending[:3])}{' …' if len(pending) > 3 else ''}. Open each to record it or discard it."
            if pending else "")  # after a crash nothing else pointed to them (the list calls them read)
        self.pending_note.setVisible(bool(pending))
        counts = worklist.counts()
        self.setWindowTitle(f"Worklist — {counts[ReadState.READ]}/{len(worklist)} read, "
                            f"{counts[ReadState.FLAGGED]} flagged")


class WorklistController(QObject):
    """The worklist's part of the window: menu, panel, keys, reading states and prefetch."""

    worklistOpened = Signal()
    arrived = Signal(int, bool)  # the worklist index shown, whether its AI result came with the pixels
    prefetchDone = Signal(int)  # a worklist index now held in memory
    _loadedEarly = Signal(object)  # (worklist, index, LoadedExam, fingerprint) from the prefetch thread, queued

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.worklist: Worklist | None = None
        self._shown_location = ""  # the worklist location of the exam on screen ("" when not the list's)
        self._source: tuple[str | Path, str] | None = None  # (source, dates) the list was read from: F5
        self.prefetched: dict[int, Prefetched] = {}
        self.prefetch_worker: Worker | None = None
        self._prefetching: tuple[Worklist, int] | None = None  # the worklist and index a prefetch runs for
        self._prefetch_serial = 0  # numbers each prefetch
        self._visited_prefetches: set[int] = set()  # prefetches whose exam the reader came to while they ran
        # a go_to under way, and the row a key pressed meanwhile asked for: clearing the screen syncs with the
        # display, which delivers queued input too, and a go_to inside a go_to left one row's patient on screen
        # under another row
        self._moving, self._then = False, None
        self._heading: int | None = None  # the row a move under way (or queued) goes to: the next key's start
        self._unloadable: set[int] = set()  # this worklist's exams whose prefetch failed: not tried again ahead
        self._awaiting: tuple[int, int] | None = None  # (index, window generation) shown when its prefetch ends
        self._opening: Worker | None = None
        self.opening_own_exam = False  # a worklist exam being opened (any other open steps out of the list)
        self._loading: tuple[Worklist, int] | None = None  # the worklist exam whose own load runs
        # the exam being prefetched, loaded (with its files' fingerprint before), its analysis still running
        self._early: dict[int, tuple[LoadedExam, tuple | None]] = {}
        self._checking: tuple[int, int] | None = None  # (index, generation) whose early exam's files are checked
        self._held_result: tuple | None = None  # the prefetch's result, come during that check
        self._ended_while_checking = False  # its prefetch ended (failed, cancelled) during that check
        self._loadedEarly.connect(self._on_loaded_early)
        self.panel = WorklistPanel(window)
        self.panel.chosen.connect(self.go_to)
        self._time_timer = QTimer(self)  # the exam on screen's reading time, as it runs
        self._time_timer.setInterval(1000)
        self._time_timer.timeout.connect(self._show_time)
        self._time_timer.start()
        self._bank_timer = QTimer(self)  # the reading time kept in the store as it runs (on its writer thread)
        self._bank_timer.setInterval(BANK_SECONDS * 1000)
        self._bank_timer.timeout.connect(lambda: self.worklist.bank_time() if self.worklist is not None
                                         and not self.window._closed else None)
        self._bank_timer.start()
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.panel)
        self.panel.hide()
        menu = window.menuBar().addMenu("&Worklist")
        window.add_action(menu, "Open worklist…", "Ctrl+Shift+W", self._choose, "openWorklist")
        window.add_action(menu, "Open worklist from a case or exam list…", None, self._choose_list,
                          "openWorklistList")
        window.add_action(menu, "Worklist from the PACS (MG studies by date)…", None, self._choose_from_pacs,
                          "pacsWorklist")
        self.next_action = window.add_action(menu, "Next exam", "Ctrl+Right", self.next, "nextExam")
        self.previous_action = window.add_action(menu, "Previous exam", "Ctrl+Left", self.previous, "previousExam")
        window.add_action(menu, "Next unread exam", "Ctrl+Shift+Right", lambda: self.next(unread=True), "nextUnread")
        window.add_action(menu, "Back to the list", "Ctrl+L", self.show_list, "backToList")
        self.reload_action = window.add_action(menu, "Reload the worklist", "F5", self.reload, "reloadWorklist")
        window.add_action(menu, "Flag / unflag this exam", "Ctrl+F", self.toggle_flag, "flagExam")
        window.analysisFinished.connect(self.schedule_prefetch)
        window.analysisFinished.connect(self._say_models)
        window.examShown.connect(self._say_models)  # never the last exam's line over another exam or list
        self.worklistOpened.connect(self._say_models)
        window.examShown.connect(self._on_exam_shown)
        window.analysisFailed.connect(lambda _error: self.schedule_prefetch())
        window.loadFailed.connect(self._on_load_failed)

    def _say_models(self) -> None:
        """A batch's triage computed with other models than the exam on screen: said above the list."""
        if self.worklist is not None and not self.window._closed:
            self.panel.show_models_note(models_differ_note(self.worklist, self.window.result))

    def _show_time(self) -> None:
        if self.worklist is not None and self.panel.isVisible() and not self.window._closed:
            self.panel.show_time(self.worklist)

    # ------------------------------------------------------------------------------------------- opening

    def _choose(self) -> None:
        from PySide6.QtWidgets import QFileDialog  # noqa: PLC0415

        folder = QFileDialog.getExistingDirectory(self.window, "Open a worklist: a folder of exam folders or a "
                                                  "batch output folder")
        if folder:
            self.open_source(folder)

    def _choose_list(self) -> None:
        from PySide6.QtWidgets import QFileDialog  # noqa: PLC0415

        path, _ = QFileDialog.getOpenFileName(self.window, "Open a worklist: a case list (CSV: case_id, exam) or an "
                                              "exam list (one exam per line)", "",
                                              "Case or exam lists (*.csv *.txt *.lst);;All files (*)")
        if path:
            self.open_source(path)

    def _choose_from_pacs(self) -> None:
        """The PACS node of the preferences: its MG studies of a day or a range of dates."""
        from PySide6.QtWidgets import QInputDialog, QMessageBox  # noqa: PLC0415

        node = self.window.settings.pacs_node.strip()
        if not node:
            QMessageBox.information(self.window, "Worklist from the PACS", "No PACS node is set: give one in "
                                    "Preferences (dimse://AET@HOST:PORT or dicomweb+http(s)://HOST:PORT/PREFIX).")
            return
        dates, ok = QInputDialog.getText(self.window, "Worklist from the PACS",
                                         f"MG studies on {node}, dated (today, YYYYMMDD or FROM-TO):", text="today")
        if ok:
            self.open_source(node, dates or "today")

    def reload(self) -> Worker | None:
        """The worklist's source read again (a batch run again since, exams added to the folder, the day's PACS
        studies): its states from the store, and the exam on screen kept when it is still listed."""
        if self._source is None:
            self.window.statusBar().showMessage("No worklist is open.", 5000)
            return None
        if self._opening_on_screen():
            self.window.statusBar().showMessage("The exam on screen is still opening: read the worklist again (F5) "
                                                "once it is shown.", 8000)
            return None
        return self.open_source(*self._source, keep_current=True)

    def _opening_on_screen(self) -> bool:
        """The exam on screen is still being loaded, or waits on what its prefetch loads and analyses."""
        load = self.window.load_worker
        return self._awaiting is not None or self._checking is not None or (load is not None and load.is_running())

    def open_source(self, source: str | Path, dates: str = "today", keep_current: bool = False) -> Worker:
        """Read the worklist in the background, then open its first exam not yet read (``dates``: a PACS
        query's; ``keep_current``: a reload, which stays on the exam on screen when it is still listed)."""
        worker = Worker(_open_task, str(source), self.window.store, self.window._reader(), dates,
                        self.window.settings.ae_title)
        status = self.window.statusBar()
        status.showMessage(f"reading the worklist {source}…")  # a PACS query may take a while
        worker.finished.connect(lambda: status.clearMessage() if status.currentMessage().startswith(
            "reading the worklist") else None)
        worker.result.connect(lambda worklist: self._opened(worklist, (source, dates), keep_current))
        worker.error.connect(self.window._on_error)
        self._opening = self.window._track(worker).start()
        return worker

    def _opened(self, worklist: Worklist, source: tuple[str | Path, str], reload: bool) -> None:
        self._source = source  # F5 reads again what is on screen, not a source that failed to open
        if reload:
            self._reloaded(worklist)
        else:
            self.set_worklist(worklist)

    def _reloaded(self, worklist: Worklist) -> None:
        """The list read again: on the exam on screen when it is still in it (its clock running on), else as a
        newly opened list."""
        if self._opening_on_screen():  # the reader moved on while it was read: what is on screen comes first
            self.window.statusBar().showMessage("the worklist was not read again: an exam was opening; press F5 "
                                                "again", 8000)
            return
        old = self.worklist
        on_screen = old.item.location if old is not None and old.item is not None else None
        index = next((i for i, e in enumerate(worklist.entries) if e.item.location == on_screen), None)
        if old is None or index is None or old.reader != worklist.reader:
            self.set_worklist(worklist)
            return
        mine = old.entries[old.current]  # the visit under way: its state and time as this window has them
        entry = worklist.entries[index]
        # the files on screen are those this visit's list found (a commit records their digest); files changed
        # since make it "changed since read" now
        moved = None not in (mine.digest, entry.digest) and mine.digest != entry.digest
        entry.state, entry.reading_seconds = mine.state, mine.reading_seconds
        entry.changed, entry.digest = mine.changed or moved, mine.digest
        if moved and entry.state == ReadState.READ:
            entry.state = ReadState.IN_PROGRESS
        worklist.current, worklist._started = index, old._started
        worklist._state_before = old._state_before
        worklist.batch_models = worklist.batch_models or old.batch_models
        self._drop_prefetch()  # held by the old list's row numbers (nothing on screen waits on it: checked above)
        self.worklist = worklist
        self.panel.show_worklist(worklist)
        self._say_models()
        self.window.statusBar().showMessage(f"worklist read again: {len(worklist)} exams", 5000)
        self.schedule_prefetch()

    def set_worklist(self, worklist: Worklist, start: bool = True) -> None:
        if not self.window.reading.leave_or_ask(lambda: self.set_worklist(worklist, start)):
            return
        old = self.worklist
        if old is not None and old is not worklist and old.item is not None:
            # the exam on screen is left as any other way: read when committed, its reading time kept
            left = old.entries[old.current]
            old.leave(**self._left_as())
            old.current = -1
            for entry in worklist.entries:  # the new list read the store before this leave was written
                if entry.item.location == left.item.location and worklist.reader == old.reader:
                    entry.state, entry.reading_seconds = left.state, left.reading_seconds
        self._drop_prefetch()
        self.worklist = worklist
        self.panel.show()
        self.panel.show_worklist(worklist)
        self.worklistOpened.emit()
        pending = [i for i, entry in enumerate(worklist.entries) if entry.pending_change]  # the panel says them
        if start and len(worklist):
            # a change kept unrecorded first (work left half done on an exam); then the first exam not yet dealt
            # with; flagged ones (set aside for review) only when nothing else is left
            states = [e.state for e in worklist.entries]
            first = pending[0] if pending else next(
                (i for i, state in enumerate(states) if state in (ReadState.UNREAD, ReadState.IN_PROGRESS)),
                next((i for i, state in enumerate(states) if state == ReadState.FLAGGED), 0))
            self.go_to(first)

    # ---------------------------------------------------------------------------------------------- moving

    def step_out(self) -> None:
        """An exam opened from elsewhere: the worklist's exam is left (its reading time stops; it is read when
        its read was committed) and the list shows none as current."""
        if self.opening_own_exam or self.worklist is None or self.worklist.item is None:
            return
        self.worklist.step_out(**self._left_as())
        self._drop_prefetch()
        self.panel.show_worklist(self.worklist)

    def _left_as(self) -> dict[str, bool]:
        """How the exam on screen is left (:meth:`Worklist.leave`): its read committed, and whether anything was
        done on it (an exam only looked through is unread again)."""
        window = self.window
        return {"committed": window.committed and window.exam is not None, "worked_on": window.reading.worked_on()}

    def _open(self, source) -> None:
        """Open a worklist exam (not a step out of the list)."""
        if self.worklist is not None:
            self._loading = (self.worklist, self.worklist.current)
        self.opening_own_exam = True
        try:
            self.window.open_exam(source)
        finally:
            self.opening_own_exam = False

    def _no_worklist(self) -> bool:
        if self.worklist is None:
            self.window.statusBar().showMessage("no worklist open: Worklist ▸ Open worklist… (Ctrl+Shift+W)", 5000)
        return self.worklist is None

    def next(self, unread: bool = False) -> None:
        if self._no_worklist():
            return
        index = self.worklist.next_index(unread_only=unread, after=self._heading)
        if index is None:
            self.window.statusBar().showMessage("no unread exam left in the worklist" if unread else
                                                "this is the last exam of the worklist", 5000)
            return
        self.go_to(index)

    def previous(self) -> None:
        if self._no_worklist():
            return
        index = self.worklist.previous_index(before=self._heading)
        if index is None:
            self.window.statusBar().showMessage("this is the first exam of the worklist", 5000)
            return
        self.go_to(index)

    def show_list(self) -> None:
        self.panel.show()
        self.panel.raise_()
        self.panel.table.setFocus()

    def toggle_flag(self) -> None:
        if self.worklist is None or self.worklist.item is None:
            return
        state = self.worklist.toggle_flag()
        self.panel.show_worklist(self.worklist)
        self.window.statusBar().showMessage(f"exam {state.value}", 3000)

    def go_to(self, index: int) -> None:
        """Leave the exam on screen (its reading time and state saved) and show ``index``: at once when it was
        prefetched, when its prefetch ends when one is running for it, else loaded now. Asked for while another
        go_to runs (a key delivered while the screen is cleared), it follows that one; the next keys count from
        the row it goes to (three quick Ctrl+Left/Right counted each from the row of the move under way, and the
        reader ended on another exam than the keys add up to)."""
        self._heading = index
        if self._moving:
            self._then = index
            return
        self._moving = True
        try:
            self._go_to(index)
        finally:
            self._moving = False
        if self._then is not None:
            then, self._then = self._then, None
            # unless a later key has moved on meanwhile (its own go_to ran first)
            QTimer.singleShot(0, self, lambda: self.go_to(then) if self._heading == then else None)
        else:
            self._heading = None

    def _go_to(self, index: int) -> None:
        worklist = self.worklist
        if worklist is None or not 0 <= index < len(worklist):
            return
        if not self.window.reading.leave_or_ask(lambda: self.go_to(index)):
            return
        left_as = self._left_as()
        self._loading = None
        self._checking, self._held_result, self._ended_while_checking = None, None, False
        item = worklist.move_to(index, **left_as)
        self.panel.show_worklist(worklist)
        if self._awaiting is not None:  # leaving the exam whose prefetch still runs: what it loaded is stale now
            self._awaiting = None
            if self.prefetch_worker is not None and self.prefetch_worker.is_running():
                self.prefetch_worker.cancel()
        if self._runs_for(worklist, index) and index not in self.prefetched:
            self.window.clear_exam()  # its prefetch goes on as this exam's own load and analysis
            # clearing syncs with the display, which delivers what is queued: the reader's next key (a go_to of
            # its own, already done) and the prefetch's result and end (the exam was then awaited for ever)
            if self.worklist is not worklist or worklist.current != index:
                return
        ready = self.prefetched.pop(index, None)
        if ready is not None:
            if ready.fingerprint is None:
                self._show_prefetched(index, ready)
            else:
                self._check_then_show(index, ready, exam_source(item, self.window.settings.ae_title))
            return
        if self._runs_for(worklist, index):
            self._visited_prefetches.add(self._prefetch_serial)  # what it loads is this visit's, not to keep
            early = self._early.pop(index, None)
            self.window.hanging.set_loading()
            self.window.scores.set_status("Loading the exam…")
            self._awaiting = (index, self.window._generation)
            self._show_waiting()
            if early is not None:  # loaded already: the pixels once its files are seen unchanged since
                self._check_early(index, early, exam_source(item, self.window.settings.ae_title))
            return
        self._awaiting = None
        if self.prefetch_worker is not None and self.prefetch_worker.is_running():
            self.prefetch_worker.cancel()  # the exam on screen comes first
        self._open(exam_source(item, self.window.settings.ae_title))
        self.arrived.emit(index, False)

    def _check_early(self, index: int, early: tuple[LoadedExam, tuple | None], source) -> None:
        """The exam on screen was loaded by its prefetch, whose analysis still runs: its pixels are shown once
        its files are seen unchanged since (a slow analysis kept them a while); what the prefetch hands over
        meanwhile waits for the check (``_on_prefetched``, ``_on_prefetch_finished``)."""
        loaded, fingerprint = early
        generation = self.window._generation
        self._checking = (index, generation)
        worker = Worker(_fingerprint_task, source)
        worker.result.connect(lambda now: self._on_early_checked(fingerprint is None or now == fingerprint, index,
                                                                 loaded, generation, source))
        worker.error.connect(lambda _error: self._on_early_checked(False, index, loaded, generation, source))
        self.window._track(worker).start()

    def _on_early_checked(self, same: bool, index: int, loaded: LoadedExam, generation: int, source) -> None:
        if self._checking != (index, generation):
            return  # the reader moved on meanwhile
        held, ended = self._held_result, self._ended_while_checking
        self._checking, self._held_result, self._ended_while_checking = None, None, False
        window = self.window
        if window._closed or self._awaiting != (index, generation) or not window._current(generation):
            return
        if not same:
            self._awaiting = None
            if self.prefetch_worker is not None and self.prefetch_worker.is_running():
                self.prefetch_worker.cancel()
            logger.info("worklist exam %d changed on disk while it was loaded ahead: loaded again", index + 1)
            self._open(source)
            window.statusBar().showMessage("this exam's files changed since it was loaded ahead: loaded again", 8000)
            self.arrived.emit(index, False)
            return
        if held is not None:  # the prefetch ended during the check: taken as it would have been
            self._on_prefetched(*held)
            return
        window.exams.show_exam(loaded, analyse=False)
        if ended:  # the prefetch failed or was cancelled: the pixels are here, its own analysis now
            self._awaiting = None
            window.analyses.start_analysis()
        else:
            self._awaiting = (index, window._generation)
            self._show_waiting()
        self.arrived.emit(index, False)

    def _show_prefetched(self, index: int, ready: Prefetched) -> None:
        outcome = self._usable_outcome(ready)
        self.window.exams.open_prefetched(ready.loaded, outcome)
        self.arrived.emit(index, outcome is not None)

    def _check_then_show(self, index: int, ready: Prefetched, source) -> None:
        """Show an exam loaded ahead once its files are seen unchanged since (read off the GUI thread, a few
        milliseconds); changed, it is loaded again. Shown as it was, a folder refilled meanwhile showed the
        previous patient's images under this row, and a study still arriving showed two views of four."""
        window, worklist = self.window, self.worklist
        window.clear_exam()  # nothing of the exam left stays on screen meanwhile
        if self.worklist is not worklist or worklist.current != index:
            return  # the reader's next key, delivered while the screen was cleared, has moved on already
        window.hanging.set_loading()
        window.scores.set_status("Loading the exam…")
        generation = window._generation
        worker = Worker(_fingerprint_task, source)
        worker.result.connect(lambda now: self._on_checked(now, index, ready, worklist, generation, source))
        worker.error.connect(lambda _error: self._on_checked(None, index, ready, worklist, generation, source))
        window._track(worker).start()

    def _on_checked(self, now: tuple | None, index: int, ready: Prefetched, worklist: Worklist, generation: int,
                    source) -> None:
        window = self.window
        moved_on = self.worklist is not worklist or worklist.current != index or not window._current(generation)
        if window._closed or moved_on:
            return  # the reader moved on meanwhile
        if now is not None and now == ready.fingerprint:
            self._show_prefetched(index, ready)
            return
        logger.info("worklist exam %d changed on disk since it was loaded ahead: loaded again", index + 1)
        self._open(source)
        window.statusBar().showMessage("this exam's files changed since it was loaded ahead: loaded again", 8000)
        self.arrived.emit(index, False)

    def loading_current(self) -> bool:
        """Whether the load in flight is the worklist's exam on screen (its failure is said in the list)."""
        worklist, loading = self.worklist, self._loading
        return (worklist is not None and loading is not None and loading[0] is worklist
                and loading[1] == worklist.current)

    def _on_load_failed(self, error: BaseException) -> None:
        """The worklist exam on screen could not be opened: not left "in progress" with its time counted; the
        list says so beside it (the window has shown the message)."""
        worklist = self.worklist
        if not self.loading_current():
            return  # an exam from elsewhere, or one the reader has left
        self._loading = None
        worklist.could_not_open(user_message(error)[1])
        self.panel.show_worklist(worklist)
        state = worklist.entries[worklist.current].state.value
        self.window.statusBar().showMessage(f"exam {worklist.current + 1} of the worklist could not be opened: it "
                                            f"stays {state}, and no reading time is counted", 8000)
        load = self.window.load_worker  # its thread may still be stopping: the next exams load once it has
        if load is not None and load.is_running():
            load.finished.connect(self.schedule_prefetch)
        else:
            self.schedule_prefetch()

    def _on_exam_shown(self) -> None:
        # a list's exam is shown only by the list's own move (File ▸ Open steps out of the list first)
        item = self.worklist.item if self.worklist is not None else None
        self._shown_location = item.location if item is not None else ""
        if self.window.opened_with_kept_change is not None:
            self.mark_pending_change(self.window.opened_with_kept_change)
        if self.worklist is None:
            return
        window = self.window
        if self.worklist.item is not None and not window.committed and self.worklist.to_read_again():
            self.panel.show_worklist(self.worklist)  # listed read, these images have no read (the notes say why)
        if not (window.settings.auto_run and window.model_path) or window.result is not None:
            self.schedule_prefetch()  # no analysis of its own will run: the next ones may load now

    # -------------------------------------------------------------------------------------------- prefetch

    def _usable_outcome(self, value: Prefetched) -> AnalysisOutcome | None:
        """The prefetch's analysis when it was made with the models, device and mode the window uses now (the
        preferences may have changed since it started)."""
        settings = self.window.settings
        if value.outcome is None or value.analysed_with != (self.window.model_path, settings.device, settings.mode):
            return None
        return value.outcome

    def _show_waiting(self) -> None:
        """The exam on screen is being loaded or analysed by its prefetch: said, as its own analysis would be."""
        window = self.window
        window.analyses.show_busy("analysing (begun ahead)…" if window.settings.auto_run and window.model_path
                                  else "loading…")

    def cancel_awaited(self) -> bool:
        """Cancel (Esc) while the exam on screen waits for its prefetch's analysis: it stops, and nothing of it is
        kept (the pixels stay; Ctrl+R analyses it again). False when nothing is awaited (or no pixels yet)."""
        if self._awaiting is None or self.window.exam is None or not self.window._current(self._awaiting[1]):
            return False
        self._awaiting = None
        self._visited_prefetches.add(self._prefetch_serial)
        if self.prefetch_worker is not None and self.prefetch_worker.is_running():
            self.prefetch_worker.cancel()
        self.window.analyses.reset_progress()
        self.window.analyses.say_cancelled()
        return True

    def change_reader(self) -> None:
        """Preferences name another reader: the exam on screen is left as the previous reader's and shown again
        with the new reader's reads and marks; a worklist's states are the new reader's (read off the GUI
        thread), and nothing held ahead (loaded with the previous reader's reads) is kept."""
        window = self.window
        self._drop_prefetch()
        old = self.worklist
        if old is None or old.item is None:  # an exam opened from elsewhere (or being loaded): opened again
            window.exams.reopen()
            if old is None:
                return
        else:
            old.leave(**self._left_as())
            window.clear_exam()  # shown again, the new reader's, once the list's states are read
        index, old.current = old.current, -1
        worker = Worker(_reader_states_task, old, window.store, window._reader())
        worker.result.connect(lambda worklist: self._for_new_reader(worklist, old, index))
        worker.error.connect(window._on_error)
        window._track(worker).start()

    def _for_new_reader(self, worklist: Worklist, old: Worklist, index: int) -> None:
        if self.worklist is not old or self.window._closed:
            return  # another worklist was opened meanwhile
        self.set_worklist(worklist, start=False)
        if 0 <= index < len(worklist):
            self.go_to(index)

    def forget_analyses(self) -> None:
        """The models, device or mode changed: the exams held ahead were analysed otherwise; they are loaded and
        analysed again (a running prefetch's result is checked when it ends)."""
        self.prefetched.clear()
        if not self.window._closed:
            self.schedule_prefetch()

    def _runs_for(self, worklist: Worklist, index: int) -> bool:
        """Whether the running prefetch is of ``worklist``'s exam ``index``."""
        running = self.prefetch_worker is not None and self.prefetch_worker.is_running()
        return running and self._prefetching is not None and self._prefetching[0] is worklist \
            and self._prefetching[1] == index

    def _drop_prefetch(self) -> None:
        self.prefetched.clear()
        self._checking, self._held_result, self._ended_while_checking = None, None, False
        self._unloadable.clear()
        self._early.clear()  # keyed by index: another worklist's rows have the same numbers
        self._awaiting = None
        if self.prefetch_worker is not None and self.prefetch_worker.is_running():
            self.prefetch_worker.cancel()

    def pause_prefetch(self) -> None:
        """The window loads an exam of its own: a running prefetch stops (unless the reader waits on it); the
        next one starts once that exam is analysed."""
        if self._awaiting is None and self.prefetch_worker is not None and self.prefetch_worker.is_running():
            self.prefetch_worker.cancel()

    def held_bytes(self) -> int:
        return sum(p.nbytes for p in self.prefetched.values())

    def schedule_prefetch(self) -> None:
        """Start the next prefetch when nothing of the exam on screen is running (one at a time)."""
        window, worklist = self.window, self.worklist
        if worklist is None or window._closed:
            return
        wanted = worklist.upcoming(max(int(window.settings.prefetch_exams), 0))
        for index in [i for i in self.prefetched if i not in wanted]:  # memory: only the next N are held
            del self.prefetched[index]
        if self.prefetch_worker is not None and self.prefetch_worker.is_running():
            return
        for busy in (window.load_worker, window.analysis_worker):
            if busy is not None and busy.is_running():
                return
        todo = [i for i in wanted if i not in self.prefetched and i not in self._unloadable]
        if not todo:
            return
        index = todo[0]
        item = worklist.entries[index].item
        cached = window._groups if window._groups_key == (window.model_path,) else None
        model_path = window.model_path if window.settings.auto_run else ""
        worker = Worker(_prefetch_task, exam_source(item, window.settings.ae_title), window.store,
                        window._reader(), model_path, cached, window.settings.device, window.settings.mode,
                        loaded_to=lambda early, i=index, w=worklist: self._loadedEarly.emit((w, i, *early)))
        self._prefetch_serial += 1
        serial = self._prefetch_serial
        worker.result.connect(lambda value, i=index, w=worklist: self._on_prefetched(value, i, w, serial))
        worker.error.connect(lambda error, i=index, w=worklist: self._on_prefetch_failed(error, i, w))
        worker.finished.connect(lambda i=index, w=worklist: self._on_prefetch_finished(i, w))
        self._prefetching = (worklist, index)
        self.prefetch_worker = window._track(worker).start(background=True)

    def _on_prefetched(self, value: Prefetched, index: int, worklist: Worklist, serial: int = 0) -> None:
        if worklist is not self.worklist or self.window._closed:
            return  # another worklist since: dropped
        window = self.window
        if self._usable_outcome(value) is not None and window._groups is None and window.model_path:
            window._groups, window._groups_key = value.outcome.groups, (window.model_path,)
        self._early.pop(index, None)
        if self._awaiting is not None and self._checking == (index, self._awaiting[1]):
            self._held_result = (value, index, worklist, serial)  # the exam's files are being checked
            return
        if self._awaiting is not None and self._awaiting[0] == index:
            _index, generation = self._awaiting
            self._awaiting = None
            if not window._current(generation):
                return  # the reader moved on again
            window.analyses.reset_progress()
            outcome = self._usable_outcome(value)
            if window.exam is None:  # the reader arrived before its pixels
                window.exams.open_prefetched(value.loaded, outcome)
                self.arrived.emit(index, False)
            elif outcome is not None:
                window.exams.apply_prefetched_result(outcome, generation)
            elif window.settings.auto_run and window.model_path:
                window.analyses.start_analysis()  # analysed with other models: this exam's own now
            return
        if serial in self._visited_prefetches:
            self._visited_prefetches.discard(serial)
            logger.info("the prefetch of worklist exam %d ended after the reader had been there: dropped", index + 1)
            return  # its reads and marks were loaded before the reader's visit changed them
        self.prefetched[index] = value
        mb = self.held_bytes() / 2**20
        window.statusBar().showMessage(f"prefetched {len(self.prefetched)} exam(s) ahead ({mb:.0f} MB held)", 3000)
        self.prefetchDone.emit(index)

    def _on_prefetch_failed(self, error: BaseException, index: int, worklist: Worklist) -> None:
        """Not tried again ahead of the reader (it was started again at once, without end); the reader who
        goes to it gets the load's own message."""
        logger.info("prefetch of worklist exam %d failed: %s", index + 1, type(error).__name__)
        if worklist is self.worklist:
            self._unloadable.add(index)

    def _on_loaded_early(self, payload) -> None:
        worklist, index, loaded, fingerprint = payload
        if worklist is not self.worklist or self.window._closed:
            return
        if self._awaiting is not None and self._awaiting[0] == index and self.window.exam is None:
            _index, generation = self._awaiting
            if self.window._current(generation) and self._checking is None:  # the reader waits on it: the pixels
                # once its files are seen unchanged since it began (a view that came while it loaded was missing)
                item = worklist.entries[index].item
                self._check_early(index, (loaded, fingerprint), exam_source(item, self.window.settings.ae_title))
            return
        self._early[index] = (loaded, fingerprint)

    def _on_prefetch_finished(self, index: int, worklist: Worklist) -> None:
        if self._prefetching is not None and self._prefetching[0] is worklist and self._prefetching[1] == index:
            self._prefetching = None
        if worklist is not self.worklist:  # another worklist's: nothing of it is used; the next may start
            if not self.window._closed:
                self.schedule_prefetch()
            return
        self._early.pop(index, None)
        if self._awaiting is not None and self._checking == (index, self._awaiting[1]):
            self._ended_while_checking = True  # the check of its files decides (_on_early_checked)
            return
        if self._awaiting is not None and self._awaiting[0] == index and self.worklist is not None:
            # its prefetch failed or was cancelled: load it the ordinary way
            awaited, generation = self._awaiting
            self._awaiting = None
            if self.window._current(generation):
                self.window.analyses.reset_progress()
                if self.window.exam is not None:  # its pixels are on screen already: only its analysis is missing
                    self.window.analyses.start_analysis()
                else:
                    item = self.worklist.entries[awaited].item
                    self._open(exam_source(item, self.window.settings.ae_title))
                    self.arrived.emit(awaited, False)
            return
        if not self.window._closed:
            self.schedule_prefetch()

    def current_location(self) -> tuple[str, str | None]:
        """The worklist location of the exam on screen ("" when it is not one of the list's) and its files'
        digest when the list was read (None: not known). Kept from when it was shown: while the next exam loads,
        the list's current one is already that next exam."""
        shown = self._shown_entries()
        return (self._shown_location, shown[0].digest) if shown else ("", None)

    def mark_pending_change(self, kept: bool) -> None:
        """The exam on screen has (``kept``) or no longer has a change after the commit kept unrecorded: the
        list's row says so."""
        rows = [entry for entry in self._shown_entries() if entry.pending_change != kept]
        for entry in rows:
            entry.pending_change = kept
        if rows and not self.window._closed:
            self.panel.show_worklist(self.worklist)

    def _shown_entries(self) -> list:
        """The list's rows of the exam on screen (none when it is not one of the list's)."""
        if self.worklist is None or not self._shown_location:
            return []
        return [entry for entry in self.worklist.entries if entry.item.location == self._shown_location]

    def leave(self) -> None:
        """The window closes: the current exam's reading time is saved."""
        if self.worklist is not None and self.worklist.item is not None:
            self.worklist.leave(**self._left_as())
