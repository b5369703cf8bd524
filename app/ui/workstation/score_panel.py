"""Scores: each model's (per view, breast, exam), the reader's estimate per breast, and the hybrid.

Every table comes from the result's own entries and classes: a three-class family shows three columns, a
family without a malignancy rule shows its classes and no P(malignant) or hybrid. The hybrid is the mean of
the reader's and a model's probability of malignancy (the GMIC reader study's human-machine hybrid),
the model's calibrated when it has a calibration (the site's, else its card's; the box says which). In
blind-first reading the models' numbers stay hidden until the reader commits an estimate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.model_comparison import comparison_columns, short_labels, unique_labels
from app.model_table import BREAST_NAMES, BREAST_RULE, entry_rows, model_percent
from app.ui.forms import AnswerComboBox, AnswerSlider, PercentAnswerBox, PercentAnswerDoubleBox
from app.reading import (
    AI_SHOWN, AMENDED_AFTER_AI, BIRADS_CATEGORIES, amendment_cell, amendment_text, breast_models, hybrid_basis,
    named_hybrid_basis, percent)
from app.ui.workstation.reliability_chart import ReliabilityChart, reliability_of
from app.study.store import BreastRead
from inference.evaluation.calibration import calibration_note
from inference.results.exam_result import ExamResult
from inference.intake.views import Laterality

BIRADS = ["", *BIRADS_CATEGORIES]
DENSITY = ["", "a", "b", "c", "d"]
RECOMMENDATIONS = ["", "routine screening", "short-interval follow-up", "additional imaging", "biopsy"]


@dataclass
class BreastInput:
    slider: QSlider
    spin: PercentAnswerBox
    benign: PercentAnswerDoubleBox
    birads: QComboBox
    density: QComboBox
    recommendation: QComboBox


HIDDEN_TEXT = "Model hidden until you commit your estimate (blind reading)."
NO_RESULT_TEXT = "No model result for this exam: {reason}. Your estimate is read unaided."
QWIDGETSIZE_MAX = (1 << 24) - 1  # Qt's "no maximum"
COMPARE_TITLE = "Probability of malignancy: reader | model | hybrid (mean)"
FINDINGS_ONLY_TITLE = "Probability of malignancy: reader (no model gives one)"


READER_TITLE = "Reader's estimate"


def reader_title(name: str) -> str:
    """The form's title names whose read it records: on a shared workstation a read committed "by reader" said
    nobody's name (a hands-on review); without one, where to give it."""
    if name:
        return f"{READER_TITLE} — {name}"
    return f"{READER_TITLE} — recorded as \"reader\" (give your name in Preferences)"


class ReaderPanel(QGroupBox):
    """Per breast: probability of malignancy 0–100 % (slider + spin box), optional benign %, BI-RADS
    assessment, breast density and recommendation."""

    changed = Signal()
    committed = Signal()

    def __init__(self, parent: QWidget | None = None, *, study: bool = False) -> None:
        """``study``: the reader-study form, which asks only what a study read stores (malignant % and
        BI-RADS); the other answers are not offered there."""
        super().__init__(READER_TITLE, parent)
        self.setObjectName("readerPanel")
        self.inputs: dict[str, BreastInput] = {}
        grid = QGridLayout(self)
        headers = {}
        for column, title in ((1, "malignant %"), (3, "benign %"), (4, "BI-RADS"), (5, "density")):
            headers[title] = QLabel(title)
            grid.addWidget(headers[title], 0, column)
        row = 1
        for side in ("R", "L"):
            slider = AnswerSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setObjectName(f"readerSlider_{side}")
            spin = PercentAnswerBox()  # "—" until given (0 % is an answer, not a default)
            slider.typing_goes_to = spin  # a digit typed on the slider is the answer, not a layout shortcut
            spin.setObjectName(f"readerSpin_{side}")
            benign = PercentAnswerDoubleBox()
            birads, density, recommendation = AnswerComboBox(), AnswerComboBox(), AnswerComboBox()
            birads.addItems(BIRADS)
            density.addItems(DENSITY)
            recommendation.addItems(RECOMMENDATIONS)
            recommendation.setObjectName(f"recommendation_{side}")
            slider.valueChanged.connect(spin.setValue)
            slider.sliderPressed.connect(lambda s=side: self._slider_pressed(s))
            spin.valueChanged.connect(lambda v, s=side: self._spin_changed(s, v))
            for box, what in ((spin, "malignant"), (benign, "benign")):
                box.on_refused = lambda text, s=side, w=what: self.saved_label.setText(
                    f"{BREAST_NAMES[s]}, {w}: {text} is not a whole percentage from 0 to 100; not taken.")
                # text that is no value (emptied, half typed, past 100) is no answer on screen, in the slider, the
                # hybrid and the saved draft: Qt had sent 15 on the way to "150" and kept it behind the text
                box.lineEdit().textEdited.connect(lambda _text, s=side: self._text_edited(s))
            for box in (benign,):
                box.valueChanged.connect(lambda _v: self.changed.emit())
            for box in (birads, density, recommendation):
                box.currentIndexChanged.connect(lambda _v: self.changed.emit())
            grid.addWidget(QLabel(BREAST_NAMES[side]), row, 0)
            grid.addWidget(slider, row, 1)
            grid.addWidget(spin, row, 2)
            grid.addWidget(benign, row, 3)
            grid.addWidget(birads, row, 4)
            grid.addWidget(density, row, 5)
            recommendation_label = QLabel("recommendation")
            grid.addWidget(recommendation_label, row + 1, 0)
            grid.addWidget(recommendation, row + 1, 1, 1, 5)
            self.inputs[side] = BreastInput(slider, spin, benign, birads, density, recommendation)
            if study:
                for widget in (benign, density, recommendation, recommendation_label):
                    widget.hide()
            row += 2
        if study:
            headers["benign %"].hide()
            headers["density"].hide()
        self.commit_button = QPushButton("Commit estimate  (Ctrl+Enter)")
        self.commit_button.setObjectName("commitButton")
        self.commit_button.clicked.connect(self.committed.emit)
        grid.addWidget(self.commit_button, row, 0, 1, 6)
        self.saved_label = QLabel("")
        self.saved_label.setObjectName("savedLabel")
        self.saved_label.setWordWrap(True)
        grid.addWidget(self.saved_label, row + 1, 0, 1, 6)
        # the committed first read of each breast (what the hybrid and the reports use), with its amendment
        self.first_reads: dict[str, BreastRead] = {}
        self.amendment_label = QLabel("")
        self.amendment_label.setObjectName("amendmentLabel")
        self.amendment_label.setWordWrap(True)
        self.amendment_label.hide()
        grid.addWidget(self.amendment_label, row + 2, 0, 1, 6)
        self.changed.connect(self._refusal_answered)

    def _refusal_answered(self) -> None:
        """A box's refused entry said beside the form ("…: 2.5 % is not a whole percentage …; not taken.") goes once
        no box holds one: it stayed on the study screen after the value was corrected and committed (a re-test)."""
        if self.saved_label.text().endswith("; not taken.") and not self.refused_entries():
            self.saved_label.setText("")

    def _slider_pressed(self, side: str) -> None:
        entry = self.inputs[side]
        if entry.spin.answer() is None:  # a press on the slider gives its value, 0 included
            entry.spin.setValue(entry.slider.value())

    def _text_edited(self, side: str) -> None:
        if self.inputs[side].spin.answer() is None:
            self._show_on_slider(side)
        self.changed.emit()

    def _show_on_slider(self, side: str) -> None:
        """The slider follows its box: the answer's position, or no handle while there is no answer (a handle at
        the left end read as an answer of 0 %)."""
        entry = self.inputs[side]
        answer = entry.spin.answer()
        blocked = entry.slider.blockSignals(True)
        entry.slider.setValue(0 if answer is None else answer)
        entry.slider.blockSignals(blocked)
        entry.slider.set_unanswered(answer is None)

    def refusal_line(self) -> str:
        """The line that names numbers past 0–100 % still refused ("" when none)."""
        refused = self.refused_entries()
        return f"{'; '.join(refused)}: not a whole percentage from 0 to 100, not taken." if refused else ""

    def _spin_changed(self, side: str, value: int) -> None:
        self._show_on_slider(side)
        self.changed.emit()

    def value(self, side: str) -> float | None:
        value = self.inputs[side].spin.answer()
        return None if value is None else value / 100.0

    def refused_entries(self) -> list[str]:
        """Numbers typed past 0–100 % and still in their box ("Right breast, malignant: 150 %"): no answer, and
        no commit may take them for one."""
        return [f"{BREAST_NAMES[side]}, {what}: {text}" for side, entry in self.inputs.items()
                for box, what in ((entry.spin, "malignant"), (entry.benign, "benign"))
                if (text := box.past_range()) is not None]

    def focus_refused_entry(self) -> None:
        """The keyboard to the first box whose entry was refused, its text selected: the reader stays to correct it
        (the line under the form names the entry, which leaving the box cleared)."""
        for entry in self.inputs.values():
            for box in (entry.spin, entry.benign):
                if box.past_range() is not None:
                    box.setFocus(Qt.FocusReason.OtherFocusReason)
                    box.selectAll()
                    return

    def drop_refused_entries(self) -> None:
        """Each refused entry's box back to the breast's latest recorded answer ("not given" before the commit),
        the entry no longer named (the reader chose to drop it): "—" over a committed 10 % was a change that could
        not be recorded."""
        for side, entry in self.inputs.items():
            first = self.first_reads.get(side)
            recorded = (first.amendment or first) if first is not None else None
            for box, value in ((entry.spin, recorded.malignant if recorded else None),
                               (entry.benign, recorded.benign if recorded else None)):
                if box.past_range() is not None:
                    box.setValue(box.minimum() if value is None else int(round(100 * value)))

    def unanswered(self, sides: tuple[str, ...] = ("R", "L")) -> list[str]:
        """The breasts among ``sides`` without a probability of malignancy."""
        return [side for side in sides if self.value(side) is None]

    def reads(self, committed: bool) -> list[BreastRead]:
        out = []
        for side, entry in self.inputs.items():
            benign = entry.benign.answer()
            out.append(BreastRead(
                breast=side, malignant=self.value(side), benign=None if benign is None else benign / 100.0,
                birads=entry.birads.currentText(), committed=committed, density=entry.density.currentText(),
                recommendation=entry.recommendation.currentText()))
        return out

    def hybrid_value(self, side: str) -> float | None:
        """The reader's probability the hybrid uses: the committed first read, never a later amendment."""
        first = self.first_reads.get(side)
        return first.malignant if first is not None else self.value(side)

    def stored_reads(self, committed: bool) -> dict[str, BreastRead]:
        """What the reports show: once committed, the first reads with their amendments; before, the form."""
        if committed and self.first_reads:
            return dict(self.first_reads)
        return {r.breast: r for r in self.reads(committed)}

    def changed_since_commit(self) -> list[BreastRead]:
        """The form's reads that differ from the breast's latest committed one (first read or amendment)."""
        out = []
        for read in self.reads(True):
            first = self.first_reads.get(read.breast)
            if first is not None and not read.same_answer(first.amendment or first):
                out.append(read)
        return out

    def set_first_reads(self, reads: dict[str, BreastRead]) -> None:
        """The committed first reads (with their amendments), as stored; the form is left as it is."""
        # right before left, as the form (the store gave them in its own order: the lines swapped after a restart)
        self.first_reads = {side: reads[side] for side in ("R", "L") if side in reads and reads[side].committed}
        lines = [f"{BREAST_NAMES[side]}: {amendment_text(read)} "
                 f"({'amended' if read.ai_shown else AMENDED_AFTER_AI} at "
                 f"{', '.join(_clock(a.recorded_at) for a in (*read.earlier_amendments, read.amendment))})"
                 for side, read in self.first_reads.items() if read.amendment is not None]
        shown = [BREAST_NAMES[side] for side, read in self.first_reads.items()
                 if read.ai_shown and read.malignant is not None]
        if lines:
            lines.append("The hybrid and the reports use the first read" + ("." if shown else ", before AI."))
        if shown:  # blind reading off: no opinion formed without the model, and the hybrid is not two of them
            lines.append(f"{' and '.join(shown)}: {AI_SHOWN}; the hybrid is not of two independent opinions.")
        self.amendment_label.setText("\n".join(lines))
        self.amendment_label.setVisible(bool(lines))

    def add_amendments(self, amendments: list[BreastRead]) -> None:
        """Attach amendments just stored: each becomes its breast's latest, the one before it an earlier one."""
        added = {}
        for a in amendments:
            first = added.get(a.breast) or self.first_reads.get(a.breast)
            if first is not None:
                earlier = first.earlier_amendments + ((first.amendment,) if first.amendment is not None else ())
                added[a.breast] = replace(first, amendment=a, earlier_amendments=earlier)
        self.set_first_reads({**self.first_reads, **added})

    def set_reads(self, reads: dict[str, BreastRead]) -> None:
        """Show stored reads: the form holds each breast's latest answer (its amendment after AI, if any)."""
        self.set_first_reads(reads)
        self.fill_form({side: read.amendment or read for side, read in reads.items()})

    def fill_form(self, reads: dict[str, BreastRead]) -> None:
        """The form's answers (breasts not in ``reads`` emptied); the committed reads are left as they are."""
        for side, entry in self.inputs.items():
            read = reads.get(side)
            given = read is not None and read.malignant is not None
            widgets = (entry.spin, entry.slider, entry.benign, entry.birads, entry.density, entry.recommendation)
            for widget in widgets:
                widget.blockSignals(True)
            value = int(round(100 * read.malignant)) if given else -1
            entry.spin.setValue(value)
            entry.benign.setValue(-1 if read is None or read.benign is None else 100 * read.benign)
            entry.birads.setCurrentText(read.birads if read else "")
            entry.density.setCurrentText(read.density if read else "")
            entry.recommendation.setCurrentText(read.recommendation if read else "")
            for widget in widgets:
                widget.blockSignals(False)
            self._show_on_slider(side)


def _clock(seconds: float | None) -> str:
    return "—" if seconds is None else time.strftime("%H:%M", time.localtime(seconds))


class _PanelTable(QTableWidget):
    """A table of the side panel, shown whole in height (the panel scrolls, not the table): the mouse wheel
    scrolls the panel. Qt turned it on such a table into a sideways scroll, which hid the rows' names
    ("breast" / "east") under a reader scrolling down; a sideways wheel (a touchpad) still scrolls it."""

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.angleDelta().x() == 0:
            event.ignore()  # on to the panel
            return
        super().wheelEvent(event)


def _table(name: str) -> QTableWidget:
    table = _PanelTable(0, 0)
    table.setObjectName(name)
    table.verticalHeader().hide()
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setTabKeyNavigation(False)  # Tab leaves the table (arrows move in it): it trapped the keyboard
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


def _fill(table: QTableWidget, headers: list[str], rows: list[list[str]]) -> None:
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setRowCount(len(rows))
    for i, row in enumerate(rows):
        for j, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)  # a cell cut at the panel's edge ("… threshold (0.40)") is whole on hover
            table.setItem(i, j, item)
    # every row shown (the panel scrolls, not the table), with room for a horizontal scroll bar too, so that a
    # wide table never hides its last row behind one
    table.resizeRowsToContents()
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setFixedHeight(table.horizontalHeader().sizeHint().height() + table.verticalHeader().length()
                         + table.horizontalScrollBar().sizeHint().height() + 2 * table.frameWidth() + 2)


class ScorePanelWidget(QWidget):
    """The reader panel, each model's table under it, and the reader | model | hybrid comparison."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scorePanel")
        self.result: ExamResult | None = None
        self.model_hidden = False
        self.no_result_reason: str | None = None  # why this exam has no model result at all (set_no_result)
        self.plain_hybrid = False  # the GMIC reader study's plain mean (a setting), not the calibrated hybrid
        layout = QVBoxLayout(self)
        self.model_box = QGroupBox("Models")
        model_layout = QVBoxLayout(self.model_box)
        self.model_status = QLabel("No analysis yet.")
        self.model_status.setObjectName("modelStatus")
        self.model_status.setWordWrap(True)
        self.details = QCheckBox("show details (family outputs, calibration)")
        self.details.toggled.connect(self._fill_model_tables)
        self.tables_holder = QWidget()
        self.tables_layout = QVBoxLayout(self.tables_holder)
        self.tables_layout.setContentsMargins(0, 0, 0, 0)
        self.tables_scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.tables_holder)
        scroll.setMinimumHeight(240)
        # models side by side: one column per model, no scrolling for up to four (shown for two or more)
        self.side_by_side = _table("modelsSideBySide")
        self.side_by_side.setWordWrap(True)
        self.side_by_side.setTextElideMode(Qt.TextElideMode.ElideNone)  # a word wider than its column breaks
        self.side_by_side.setStyleSheet("QTableWidget { font-size: 11px; }")  # four columns in a side panel
        self.side_by_side.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.side_by_side.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.side_by_side.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.side_by_side.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.side_by_side.hide()
        # the rows wrap to the columns' widths, known only once the table is laid out
        self.side_by_side.horizontalHeader().sectionResized.connect(lambda *_: self._fit_side_by_side())
        model_layout.addWidget(self.model_status)
        model_layout.addWidget(self.side_by_side)
        model_layout.addWidget(scroll)
        model_layout.addWidget(self.details)
        self.model_tables: dict[str, QTableWidget] = {}
        self.hidden_label = QLabel(HIDDEN_TEXT)
        self.hidden_label.setObjectName("blindNotice")
        self.hidden_label.setWordWrap(True)
        self.hidden_label.setStyleSheet("color: #c08020; font-weight: bold;")
        self.hidden_label.hide()
        self.reader = ReaderPanel()
        self.compare = _table("hybridTable")
        # the reader's own estimate first, the models under it: above it, the models' tables grew when the result
        # came (some 140 px, with its notes) and moved the form down under a radiologist's click, which then hit
        # the tables, and the digit typed next switched the layout
        layout.addWidget(self.reader)
        layout.addWidget(self.hidden_label)
        layout.addWidget(self.model_box)
        self.compare_box = QGroupBox(COMPARE_TITLE)
        compare_layout = QVBoxLayout(self.compare_box)
        compare_layout.addWidget(self.compare)
        self.hybrid_basis = QLabel("")  # what the hybrid is: calibrated on which data, or uncalibrated
        self.hybrid_basis.setObjectName("hybridBasis")
        self.hybrid_basis.setWordWrap(True)
        compare_layout.addWidget(self.hybrid_basis)
        layout.addWidget(self.compare_box)
        self.prior_label = QLabel("")
        self.prior_label.setObjectName("priorScores")
        self.prior_label.setWordWrap(True)
        self.prior_label.hide()
        self.prior_text = ""
        layout.addWidget(self.prior_label)
        layout.addStretch(1)
        self.reader.changed.connect(self.refresh_compare)
        self.refresh_compare()

    @property
    def model_table(self) -> QTableWidget | None:
        """The first entry's table."""
        return next(iter(self.model_tables.values()), None)

    def set_model_hidden(self, hidden: bool) -> None:
        self.model_hidden = hidden
        self._show_blind_state()

    def nothing_to_hide(self) -> str | None:
        """Why no model will answer on this exam (no model configured, the analysis failed or was cancelled, no
        view with a result); None while an answer exists on any view, counted or not (it stays hidden until the
        commit, also when a later analysis of the exam failed) or may still come. Said before the commit: it
        reveals no number, and the reader knows the read is unaided."""
        if self.result is not None and any(view.entries for view in self.result.views.values()):
            return None
        if self.no_result_reason:
            return self.no_result_reason
        if self.result is not None:
            return "no model has a result on any view of this exam (the notes say why)"
        return None

    def _show_blind_state(self) -> None:
        reason = self.nothing_to_hide() if self.model_hidden else None
        self.model_box.setVisible(not self.model_hidden)  # never while hidden: the reason is said below instead
        self.hidden_label.setText(HIDDEN_TEXT if reason is None else NO_RESULT_TEXT.format(reason=reason.rstrip(".")))
        self.hidden_label.setVisible(self.model_hidden)
        self.set_prior_text(self.prior_text)
        self.refresh_compare()

    def set_prior_text(self, text: str) -> None:
        """The prior exam's scores beside the current ones; hidden with the model (blind first)."""
        self.prior_text = text
        self.prior_label.setText(text)
        self.prior_label.setVisible(bool(text) and not self.model_hidden)

    def set_status(self, text: str) -> None:
        """What the models are doing (loading, analysing, done); any earlier "no result" is over."""
        self.model_status.setText(text)
        if self.no_result_reason is not None:
            self.no_result_reason = None
            self._show_blind_state()

    def set_no_result(self, reason: str) -> None:
        """This exam gets no model result (``reason``, shown in the model panel, also in blind reading)."""
        self.model_status.setText(reason)
        self.no_result_reason = reason
        self._show_blind_state()

    def set_result(self, result: ExamResult | None) -> None:
        self.result = result
        self._fill_model_tables()
        self._show_blind_state()

    def model_malignant(self, side: str, entry_id: str | None = None) -> float | None:
        if self.result is None or Laterality(side) not in self.result.breasts:
            return None
        entry = self.result.entry(entry_id)
        scores = self.result.breasts[Laterality(side)].entries.get(entry.id)
        return scores.malignant if scores is not None else None

    def _fill_model_tables(self) -> None:
        while self.tables_layout.count():
            item = self.tables_layout.takeAt(0)
            if item.widget() is not None:  # hidden now: deleted later, it stayed visible until then, and showed
                item.widget().hide()  # the exam left's hidden probabilities while the next one loaded
                item.widget().deleteLater()
        self.model_tables = {}
        self._fill_side_by_side()
        if self.result is None:
            return
        labels = unique_labels(self.result.entries)
        for entry in self.result.entries:
            title = QLabel(f"<b>{labels[entry.id]}</b> ({entry.family}, {len(entry.members)} model"
                           f"{'s' if len(entry.members) > 1 else ''})" + ("" if entry.has_malignancy else
                           " — findings only: no malignancy score, not used for the hybrid"))
            title.setWordWrap(True)
            self.tables_layout.addWidget(title)
            table = _table(f"modelTable_{entry.id}")
            _fill(table, *entry_rows(self.result, entry, self.details.isChecked()))
            table.setToolTip(BREAST_RULE)
            self.tables_layout.addWidget(table)
            self.model_tables[entry.id] = table
            if self.details.isChecked():
                note = QLabel(calibration_note(entry.members[0].calibration))
                note.setWordWrap(True)
                note.setObjectName(f"calibration_{entry.id}")
                self.tables_layout.addWidget(note)
                reliability = reliability_of(entry.members[0].calibration)
                if reliability is not None:
                    chart = ReliabilityChart(reliability)
                    chart.setObjectName(f"reliability_{entry.id}")
                    self.tables_layout.addWidget(chart)
        self.tables_layout.addStretch(1)
        # no taller than its tables: the room below them went to empty space, and the reader | model | hybrid
        # table under the estimate fell below the panel's fold at the default window size
        for index in range(self.tables_layout.count()):  # shown now (Qt would show them later), so that the
            widget = self.tables_layout.itemAt(index).widget()  # layout counts them in its size
            if widget is not None:
                widget.show()
        self.tables_layout.invalidate()
        needed = self.tables_layout.sizeHint().height() + 2 * self.tables_scroll.frameWidth()
        self.tables_scroll.setMinimumHeight(min(self._tables_cap, needed))
        self.tables_scroll.setMaximumHeight(needed if needed <= self._tables_cap else QWIDGETSIZE_MAX)

    def _fill_side_by_side(self) -> None:
        """One column per model, its label in the first row on lines (family / file / hash; in full in the
        tooltip): cells wrap, so that four models fit the panel's width without a scroll bar."""
        table = self.side_by_side
        entries = [e for e in (self.result.entries if self.result else ()) if e.has_malignancy]
        table.setVisible(len(entries) > 1)
        # with the columns above, the per-model tables are the details: they scroll in less room, so that the
        # panel still fits a 1000-pixel-high window
        self._tables_cap = 240 if len(entries) < 2 else 90
        self.tables_scroll.setMinimumHeight(self._tables_cap)
        self.tables_scroll.setMaximumHeight(QWIDGETSIZE_MAX)
        if len(entries) < 2:
            return
        headers, rows = comparison_columns(self.result)
        # the first row names the models, on lines (family / file / hash) that may break inside a file name
        breakable = [label.replace(" · ", "\n").replace("_", "_\u200b").replace(".", ".\u200b") for label in headers[1:]]
        _fill(table, headers, [["model", *breakable], *rows])
        table.horizontalHeader().hide()  # the labels are the first row: a header cannot wrap
        for column, label in enumerate(headers[1:], start=1):
            item = table.item(0, column)
            item.setToolTip(label)
            item.setData(Qt.ItemDataRole.UserRole, label)
            font = item.font()
            font.setBold(True)
            item.setFont(font)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self._fit_side_by_side()

    def _fit_side_by_side(self) -> None:
        table = self.side_by_side
        if not table.isVisible() and table.rowCount() == 0:
            return
        table.resizeRowsToContents()
        table.setFixedHeight(sum(table.rowHeight(i) for i in range(table.rowCount())) + 2 * table.frameWidth() + 2)

    def resizeEvent(self, event):  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self.side_by_side.isVisible():
            self._fit_side_by_side()  # the rows wrap to the new width

    def refresh_compare(self) -> None:
        entries = [e for e in (self.result.entries if self.result else ()) if e.has_malignancy]
        headers = ["breast", "reader"]
        labels = unique_labels(entries)  # two checkpoints never alike; in the headers' tooltips
        short = short_labels([(entry.id, entry.members) for entry in entries])
        tooltips = ["", ""]
        for entry in entries:
            name = short[entry.id] if len(entries) > 1 else "model"
            headers += [name, "hybrid" if len(entries) == 1 else f"hybrid ({short[entry.id]})"]
            tooltips += [labels[entry.id], f"the hybrid of the reader and {labels[entry.id]}"]
        if not entries:
            headers += ["model", "hybrid"]
        findings_only = bool(self.result and self.result.entries) and not entries
        self.compare_box.setTitle(FINDINGS_ONLY_TITLE if findings_only else COMPARE_TITLE)
        rows = []
        hidden = self.model_hidden and self.nothing_to_hide() is None  # an answer exists, not shown yet
        for side in ("R", "L"):
            reader = self.reader.hybrid_value(side)
            first = self.reader.first_reads.get(side)
            cells = [BREAST_NAMES[side], amendment_cell(first) if first is not None and first.amendment is not None
                     else percent(reader)]
            for part in breast_models(self.result, side, reader, self.plain_hybrid) or [None]:
                cells += ["hidden" if hidden else (model_percent(part.model, part.entry) if part else percent(None)),
                          "hidden" if hidden else percent(part.hybrid if part else None)]
            rows.append(cells)
        _fill(self.compare, headers, rows)
        for column, tooltip in enumerate(tooltips if entries else ()):
            self.compare.horizontalHeaderItem(column).setToolTip(tooltip)
        bases = [(short[entry.id] if len(entries) > 1 else "", hybrid_basis(entry, self.plain_hybrid))
                 for entry in entries]
        self.hybrid_basis.setText("" if self.model_hidden else
                                  "\n".join(named_hybrid_basis(name, text) if name else text for name, text in bases))

    def set_plain_hybrid(self, plain: bool) -> None:
        """Use the GMIC reader study's plain mean (for reproducing it) instead of the calibrated hybrid."""
        self.plain_hybrid = plain
        self.refresh_compare()
