"""Space / Shift+Space: step through the hanging-protocol steps (app.hanging_steps) of the reader's Preferences.

The steps are read from the Preferences' file each time an exam is shown (so an edited file counts at the next
exam); a file that cannot be read is said on the status line, naming it, and the default sequence is used.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QPlainTextEdit, QTextEdit

from app.hanging_steps import DEFAULT_STEPS, HangingStepsError, Step, StepCursor, read_steps
from app.ui.workstation.hanging import Layout

STEP_LAYOUTS = {"four": Layout.FOUR, "cc": Layout.CC, "mlo": Layout.MLO, "right": Layout.RIGHT, "left": Layout.LEFT,
                "prior-cc": Layout.PRIOR_CC, "prior-mlo": Layout.PRIOR_MLO}
QUADRANT_FACTOR = 2.0
NO_PRIOR_LINE = "no prior study: step skipped"
# where a typed Space belongs to the field, not to the hanging
TEXT_FIELDS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox, QComboBox)


class HangingStepsController(QObject):
    """The window's step keys and where the reader is in the sequence (back to the start at each exam)."""

    stepped = Signal(str)  # the line shown for the step (its label, or why it was skipped)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.steps: tuple[Step, ...] = DEFAULT_STEPS
        self.cursor = StepCursor(self.steps)
        self.error = ""
        menu = window.view_menu
        self.next_action = window.add_action(menu, "Next hanging step", "Space", lambda: self.step(True), "nextStep")
        self.previous_action = window.add_action(menu, "Previous hanging step", "Shift+Space",
                                                 lambda: self.step(False), "previousStep")
        window.examShown.connect(self.restart)
        self.restart()

    def restart(self) -> None:
        """Read the sequence of the Preferences again and stand before its first step."""
        self.error = ""
        try:
            self.steps = read_steps(self.window.settings.hanging_steps)
        except HangingStepsError as error:
            self.steps = DEFAULT_STEPS
            self.error = f"hanging steps: {error} — the default steps are used"
            self.window.statusBar().showMessage(self.error, 20_000)
            self.stepped.emit(self.error)
        self.cursor = StepCursor(self.steps)

    def step(self, forward: bool = True) -> None:
        focus = QApplication.focusWidget()
        if isinstance(focus, TEXT_FIELDS):
            return  # the reader is typing
        has_prior = self.window.prior is not None
        step, skipped = self.cursor.move(forward, has_prior)
        lines = [NO_PRIOR_LINE] if skipped else []
        if step is None:
            lines.append("last hanging step" if forward else "first hanging step")
        else:
            self.show(step)
            position = f"step {self.cursor.index + 1}/{len(self.steps)}: {step.title}"
            lines.insert(0, position)
        line = " · ".join(lines)
        self.window.statusBar().showMessage(line, 8000)
        self.stepped.emit(line)

    def show(self, step: Step) -> None:
        hanging = self.window.hanging
        hanging.set_layout(STEP_LAYOUTS[step.layout])
        if step.zoom == "quadrant":
            # after the layout's own refit (queued to run once the new geometry has reached the views)
            QTimer.singleShot(0, hanging, lambda: self._magnify(STEP_LAYOUTS[step.layout]))

    def _magnify(self, layout: Layout) -> None:
        hanging = self.window.hanging
        if hanging.layout_mode != layout:
            return  # the reader moved on meanwhile
        widgets = [hanging.views[v] for v in hanging.visible_views()]
        widgets += [hanging.prior_views[v] for v in hanging.visible_views() if layout in (Layout.PRIOR_CC, Layout.PRIOR_MLO)]
        for widget in widgets:
            widget.magnify(QUADRANT_FACTOR)
