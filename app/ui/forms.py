"""Small pieces shared by the screens and dialogs."""

from __future__ import annotations

import re
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QRect, Qt
from PySide6.QtGui import QGuiApplication, QValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QStyle,
    QStyleOptionSlider,
    QStylePainter,
)


def browse_row(edit: QLineEdit, button_text: str, browse) -> QHBoxLayout:
    """A path field with its button ("Folder…", "File…"), which calls ``browse``."""
    button = QPushButton(button_text)
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit)
    row.addWidget(button)
    return row


def folder_row(edit: QLineEdit, title: str) -> QHBoxLayout:
    """A line edit with a "Folder…" button that fills it from a folder chooser."""

    def browse() -> None:
        folder = QFileDialog.getExistingDirectory(edit, title)
        if folder:
            edit.setText(folder)

    return browse_row(edit, "Folder…", browse)


def fit_to_screen(window, width: int, height: int, room: QRect | None = None) -> None:
    """Size a top-level window ``width`` × ``height``, within the screen's room (``room``, else the window's
    screen's available geometry): at 1280 × 800 the study's reading screen opened 1600 × 1000, its answers and
    buttons past the screen's edge. Headless (the offscreen platform, no real screen) the size is as asked:
    screenshots keep theirs."""
    if room is None:
        if QGuiApplication.platformName() == "offscreen":
            window.resize(width, height)
            return
        room = window.screen().availableGeometry()
    window.resize(min(width, room.width()), min(height, room.height()))
    if room.width() < width or room.height() < height:
        window.move(room.topLeft())  # the frame's corner on the screen, not past it


ARROW_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp,
              Qt.Key.Key_PageDown)


class _ArrowsStayOff(QObject):
    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        return event.type() == QEvent.Type.KeyPress and event.key() in ARROW_KEYS


def keep_the_default_button(box) -> None:
    """A question about the reader's work (record, drop, commit anyway) keeps the keyboard on its default button:
    Ctrl+Right pressed again (the next exam, impatiently) moved the focus to Discard, and Return then discarded a
    change after the commit (a radiologist's re-test). The arrow and page keys do nothing there; Tab still goes
    from button to button, and each button's click is as before."""
    keys = _ArrowsStayOff(box)
    for widget in (box, *box.buttons()):
        widget.installEventFilter(keys)


def add_ok_cancel(form: QFormLayout, dialog: QDialog) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)


class _WheelOnlyWhenFocused:
    """An answer in a scrolling panel: the wheel scrolls the panel unless the input has the keyboard focus
    (clicked or tabbed into), so scrolling past it never changes the reader's answer."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel gives no focus

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()  # on to the panel, which scrolls


def typed_here(event) -> bool:
    """Whether a key is typing (a character or Space, with Shift at most) rather than a command: a list box
    with the focus keeps it from the window's one-key shortcuts."""
    commands = (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                | Qt.KeyboardModifier.MetaModifier)
    return not event.modifiers() & commands and (event.key() == Qt.Key.Key_Space or event.text().isprintable()
                                                  and bool(event.text().strip()))


class TypingComboBox(QComboBox):
    """A list box that chooses by typing: "4" then "B" picks BI-RADS 4B, "b" picks biopsy, Space opens the list.
    Qt lets a window's one-key shortcuts take a key before a list box sees it (a line edit claims its keys, a
    list box does not): typing "4" into BI-RADS switched the layout and "b" hid the benign map."""

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and typed_here(event):
            event.accept()  # the key press comes to the box
            return True
        return super().event(event)


def _bare_escape(event) -> bool:
    return event.key() == Qt.Key.Key_Escape and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier


class _EscapeLeavesTheAnswer:
    """Esc in an answer leaves it, and is never the window's Esc (Cancel analysis): a radiologist's Esc in a
    percentage box, to undo what was typed, cancelled the AI analysis without a sign but the status line. A number
    box first puts back the value it had when it took the focus (Esc undoes the edit, as in a spreadsheet's cell);
    a list box keeps its choice. With the focus elsewhere, Esc is the window's again. Enter in a number box goes
    on to the next answer, as Tab does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._on_entry = None

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and _bare_escape(event):
            event.accept()  # the key press comes to the answer
            return True
        return super().event(event)

    def focusInEvent(self, event) -> None:  # noqa: N802 - Qt override
        # the focus back from a dialog or a list's popup is no new entry: Esc still undoes what was typed before
        if self._on_entry is None or event.reason() not in (Qt.FocusReason.ActiveWindowFocusReason,
                                                            Qt.FocusReason.PopupFocusReason):
            self._on_entry = self.value() if hasattr(self, "value") else None
        super().focusInEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and hasattr(self, "value") and not (
                event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            # on to the next answer, as Tab: Qt's Enter selected the text, and "20", Enter, "3" answered 3 %
            event.accept()
            self.focusNextPrevChild(True)
            return
        if _bare_escape(event):
            if self._on_entry is not None and (self.value() != self._on_entry or not self.hasAcceptableInput()):
                self.setValue(self._on_entry)  # typed text that is no value included ("2.5"): it is undone too
            event.accept()
            self.clearFocus()
            return
        super().keyPressEvent(event)


class AnswerComboBox(_EscapeLeavesTheAnswer, _WheelOnlyWhenFocused, TypingComboBox):
    pass


PAGE_KEYS = (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)
# the Ctrl keys a number box keeps (select, copy, paste, cut, undo, redo, delete a word); every other Ctrl key is
# the window's: Ctrl+E (export) moved the cursor to the line's end, and Ctrl+Left / Right moved it by words
EDITING_KEYS = (Qt.Key.Key_A, Qt.Key.Key_C, Qt.Key.Key_V, Qt.Key.Key_X, Qt.Key.Key_Z, Qt.Key.Key_Y,
                Qt.Key.Key_Backspace, Qt.Key.Key_Delete, Qt.Key.Key_Insert)


ZOOM_KEYS = (Qt.Key.Key_Plus, Qt.Key.Key_Equal, Qt.Key.Key_Minus)  # a percentage is never signed


def for_the_window(key, modifiers) -> bool:
    """Whether a number box leaves this key to the window's shortcuts: its Ctrl keys but the editing ones (on
    X11 the line edit claims Ctrl+E, the export, as "end of line"), PgUp / PgDown, and + / = / - (the zoom)."""
    if modifiers & Qt.KeyboardModifier.ControlModifier:
        return key not in EDITING_KEYS
    bare = not modifiers & ~(Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier)
    return bare and (key in ZOOM_KEYS or key in PAGE_KEYS and not modifiers & Qt.KeyboardModifier.ShiftModifier)


class _NextExamKeysPassThrough:
    """A number box leaves Ctrl+Left / Ctrl+Right (word moves, useless in a number), its other Ctrl keys but the
    editing ones (Ctrl+E, the export, moved the cursor to the end) and PgUp / PgDown to the window: the
    worklist's and the study's Previous / Next right after typing a value. A spin box steps by ten on PgUp /
    PgDown: the reading screen's "Next (PgDown)" raised the answer typed from 70 % to 80 % and stayed."""

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and for_the_window(event.key(), event.modifiers()):
            event.ignore()  # not the box's: the shortcut fires
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() in PAGE_KEYS:  # no shortcut took it: never a step of the answer
            event.ignore()
            return
        super().keyPressEvent(event)


_WHOLE = re.compile(r"\+?[0-9]{1,6}")  # ASCII digits: Qt dropped a full-width "５" without a sign
_DECIMAL = re.compile(r"\+?(?:[0-9]{1,6}(?:[.,][0-9]*)?|[.,][0-9]+)")  # "," or "." as the mark, whatever the locale
# the keyboard leaves the box for a moment and comes back to it: another window (Alt+Tab), a popup, the menu bar
_FOCUS_COMES_BACK = (Qt.FocusReason.ActiveWindowFocusReason, Qt.FocusReason.PopupFocusReason,
                     Qt.FocusReason.MenuBarFocusReason)


class _UnfinishedIsNoAnswer:
    """A box whose lowest value means "not given" (its special text "—"): text that is no value (emptied, a
    lone "-", past the range) is no answer. Qt keeps the last valid value behind such text and puts it back when
    the box loses the focus: an aided answer cleared to be retyped was committed as the unaided value it
    started from. :meth:`answer` is None for it, and leaving the box shows "—".

    Whatever is typed stays on screen as typed, and anything but a number the box holds is no answer: Qt refused
    the keystroke without a sign, so "150" showed "15 %", "2.5" and ".5" "25 %" and "5 %", "1e2" "12 %", "1５"
    "1 %" — values the reader never meant, and committed so. :meth:`past_range` names such an entry, and goes on
    naming it after the box is left (which clears it and tells ``on_refused``) until the box is edited or set
    again: clicking Commit takes the focus first, and the commit still refuses it."""

    on_refused: Callable[[str], None] | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refused: str | None = None
        self.lineEdit().textEdited.connect(self._edited)
        self.valueChanged.connect(self._value_changed)

    def _edited(self, _text: str) -> None:
        self._refused = None

    def _value_changed(self, _value) -> None:
        # a value set by the arrows, the keys or the wheel (Qt's own setValue, not this class's): the refused
        # entry is gone, and the commit refused a "7.5 %" the box no longer showed (a coordinator's re-test)
        if self.hasAcceptableInput():
            self._refused = None

    def setValue(self, value) -> None:  # noqa: N802 - Qt override: a value set anew is no refused entry
        self._refused = None
        super().setValue(value)

    def answer(self) -> float | None:
        """The value given, or None (not given, or text that is no value)."""
        if not self.hasAcceptableInput() or self.value() <= self.minimum():
            return None
        return self.value()

    def validate(self, text: str, pos: int):
        state, shown, cursor = super().validate(text, pos)
        if self._outside(shown) is not None:  # Qt's Invalid dropped the key; its Acceptable took "5." for 5
            state = QValidator.State.Intermediate  # shown as typed, and no answer
        return state, shown, cursor

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        if self._outside(self.text()) is not None:  # Up on "2.5 %" made it "2 %" without a word: retyped instead
            return
        super().stepBy(steps)

    def past_range(self) -> str | None:
        """What was typed that is no number the box holds ("150 %", "2.5 %" in a box of whole numbers, "1e2 %"),
        while it is in the box or since it was cleared from it on leaving (until the box is edited or set); else
        None."""
        return self._outside(self.text()) or self._refused

    def _outside(self, text: str) -> str | None:
        raw = text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip()
        raw = raw.removesuffix("%").rstrip()  # a "%" typed after the number is the box's own: Qt drops it
        if not raw or raw in "+-" or raw == self.specialValueText():  # emptied, a lone sign, not given: no
            return None  # answer, nothing refused
        number = _WHOLE if self._whole_numbers() else _DECIMAL
        if number.fullmatch(raw) and float(raw.replace(",", ".")) <= self.maximum():
            return None
        return f"{raw}{self.suffix()}"

    def _whole_numbers(self) -> bool:
        decimals = getattr(self, "decimals", None)
        return decimals is None or decimals() == 0

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        # a digit typed into "—" replaces it: clicked into (the cursor after the dash), the digits were refused
        # ("—3" is no number) without a sign, and the reader's first answer was lost on Tab
        if self.value() <= self.minimum() and self.text() == self.specialValueText() and event.text()[:1] in (
                "0123456789.,"):
            self.lineEdit().selectAll()
        letter = event.text()
        if len(letter) == 1 and letter.isalpha() and self.on_refused is not None and not event.modifiers() & (
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
            # Qt drops the letter without a sign: "4o" (for 40) stood as "4 %" and was committed so
            self.on_refused(f'the letter "{letter}"')
        super().keyPressEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.reason() in _FOCUS_COMES_BACK and self._outside(self.text()) is not None:
            # Alt+Tab, a menu: a refused entry stays as typed, to correct on return (an emptied box is left as
            # on any leave: its "—" and its slider agree)
            typed = self.lineEdit().text()
            super().focusOutEvent(event)  # Qt's own makes "2.5 %" the last value it took ("2 %")
            if self.lineEdit().text() != typed:
                self.lineEdit().setText(typed)
            return
        if not self.hasAcceptableInput():
            refused = self._outside(self.text())
            self.setValue(self.minimum())
            self._refused = refused
            if refused is not None and self.on_refused is not None:
                self.on_refused(refused)
        super().focusOutEvent(event)


class AnswerSpinBox(_EscapeLeavesTheAnswer, _NextExamKeysPassThrough, _WheelOnlyWhenFocused, QSpinBox):
    pass


class AnswerDoubleSpinBox(_EscapeLeavesTheAnswer, _NextExamKeysPassThrough, _WheelOnlyWhenFocused, QDoubleSpinBox):
    pass


class PercentAnswerBox(_UnfinishedIsNoAnswer, AnswerSpinBox):
    """A percentage answer, "—" until given (0 % is an answer)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setRange(-1, 100)  # -1: not given yet, shown as "—"
        self.setSpecialValueText("—")
        self.setValue(-1)
        self.setSuffix(" %")


class PercentAnswerDoubleBox(_UnfinishedIsNoAnswer, AnswerDoubleSpinBox):
    """A percentage answer in whole percent, "—" until given."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setRange(-1, 100)
        self.setSpecialValueText("—")
        self.setValue(-1)
        self.setDecimals(0)
        self.setSuffix(" %")


class AnswerSlider(_WheelOnlyWhenFocused, QSlider):
    """A slider beside its number box (``typing_goes_to``): it is left out of the Tab order (Tab goes from one
    answer's box to the next), and a digit typed while it has the focus (clicked) goes to its box: it fired the
    window's layout shortcut "5" instead of answering 5 %."""

    typing_goes_to: QSpinBox | QDoubleSpinBox | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._unanswered = True
        self.setAccessibleDescription("no answer yet")

    def set_unanswered(self, unanswered: bool) -> None:
        """No answer yet: the groove is drawn without its handle (a handle at the left end reads as 0 %)."""
        if unanswered != self._unanswered:
            self._unanswered = unanswered
            self.setAccessibleDescription("no answer yet" if unanswered else "")
            self.update()

    def unanswered(self) -> bool:
        return self._unanswered

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        """A press on the groove sets the value under it (Qt's moved one page, 10 %, towards it: a click at 80 % on
        an unanswered slider answered 10 %, a review), then drags as a press on the handle does."""
        if event.button() == Qt.MouseButton.LeftButton:
            option = QStyleOptionSlider()
            self.initStyleOption(option)
            style = self.style()
            handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle,
                                          self)
            where = event.position().toPoint()
            if self._unanswered or not handle.contains(where):
                groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                              QStyle.SubControl.SC_SliderGroove, self)
                if self.orientation() == Qt.Orientation.Horizontal:
                    span, at = groove.width() - handle.width(), where.x() - groove.x() - handle.width() // 2
                else:
                    span, at = groove.height() - handle.height(), where.y() - groove.y() - handle.height() // 2
                self.setValue(QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), at, max(span, 1),
                                                             option.upsideDown))
        super().mousePressEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not self._unanswered:
            super().paintEvent(event)
            return
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        option.subControls = QStyle.SubControl.SC_SliderGroove
        QStylePainter(self).drawComplexControl(QStyle.ComplexControl.CC_Slider, option)

    def _typing(self, event) -> bool:
        return self.typing_goes_to is not None and event.text()[:1].isdigit() and not event.modifiers() & (
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and self._typing(event):
            event.accept()  # the digit is an answer here, not the window's shortcut
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._typing(event):
            box = self.typing_goes_to
            box.setFocus(Qt.FocusReason.OtherFocusReason)
            box.lineEdit().selectAll()  # the answer typed anew, as when the box is tabbed into
            box.keyPressEvent(event)
            return
        super().keyPressEvent(event)
