"""The screening hanging: R-CC | L-CC above R-MLO | L-MLO, right views on the left half, back to back.

Layouts: four views, CC pair, MLO pair, right (CC + MLO), left (CC + MLO), and any single view
(double-click toggles). Zoom/pan can be linked across the two views of a row: since they hang back to
back, the link shares the distance from the chest wall and the height, not raw pixel coordinates.
"""

from __future__ import annotations

from enum import StrEnum

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from inference.exam import Exam
from inference.pipeline import ExamResult
from inference.views import View
from app.ui.view_widget import MammoViewWidget

GRID = {View.R_CC: (0, 0), View.L_CC: (0, 1), View.R_MLO: (1, 0), View.L_MLO: (1, 1)}
PARTNER = {View.R_CC: View.L_CC, View.L_CC: View.R_CC, View.R_MLO: View.L_MLO, View.L_MLO: View.R_MLO}


class Layout(StrEnum):
    FOUR = "four views"
    CC = "CC pair"
    MLO = "MLO pair"
    RIGHT = "right CC + MLO"
    LEFT = "left CC + MLO"
    SINGLE = "single view"


LAYOUT_VIEWS = {
    Layout.FOUR: (View.R_CC, View.L_CC, View.R_MLO, View.L_MLO),
    Layout.CC: (View.R_CC, View.L_CC),
    Layout.MLO: (View.R_MLO, View.L_MLO),
    Layout.RIGHT: (View.R_CC, View.R_MLO),
    Layout.LEFT: (View.L_CC, View.L_MLO),
}


class HangingWidget(QWidget):
    """Four :class:`MammoViewWidget` slots in the standard screening hanging."""

    layoutChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hanging")
        self.views = {view: MammoViewWidget(view) for view in GRID}
        self.linked = True
        self.layout_mode = Layout.FOUR
        self.single: View | None = None
        self._previous_layout = Layout.FOUR
        self._syncing = False
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(3)
        for view, (row, col) in GRID.items():
            grid.addWidget(self.views[view], row, col)
            widget = self.views[view]
            widget.doubleClicked.connect(self.toggle_single)
            widget.rangeChangedByUser.connect(self._on_user_range)
        self.setStyleSheet("background: #101010;")

    def resizeEvent(self, event):  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.fit_same_scale()

    def set_exam(self, exam: Exam | None) -> None:
        for view, widget in self.views.items():
            widget.set_image(exam.views.get(view) if exam is not None else None)
        self.fit_same_scale()

    def set_result(self, result: ExamResult | None) -> None:
        for view, widget in self.views.items():
            widget.set_result(result.views.get(view) if result is not None else None)

    def visible_views(self) -> tuple[View, ...]:
        if self.layout_mode == Layout.SINGLE and self.single is not None:
            return (self.single,)
        return LAYOUT_VIEWS[self.layout_mode]

    def set_layout(self, mode: Layout, single: View | None = None) -> None:
        self.layout_mode = mode
        self.single = single if mode == Layout.SINGLE else None
        shown = self.visible_views()
        for view, widget in self.views.items():
            widget.setVisible(view in shown)
        self.fit_same_scale()
        self.layoutChanged.emit(mode.value if mode != Layout.SINGLE else f"{single.value} alone")

    def toggle_single(self, view: View) -> None:
        if self.layout_mode == Layout.SINGLE:
            self.set_layout(self._previous_layout)
        else:
            self._previous_layout = self.layout_mode
            self.set_layout(Layout.SINGLE, view)

    def fit_same_scale(self) -> None:
        """Fit every shown image at one physical scale: the largest extent of the shown views."""
        shown = [self.views[v] for v in self.visible_views() if self.views[v].image is not None]
        if not shown:
            return
        height = max(w.physical_size()[0] for w in shown)
        width = max(w.physical_size()[1] for w in shown)
        self._syncing = True
        try:
            for widget in shown:
                widget.show_extent(height, width)
        finally:
            self._syncing = False

    def reset(self) -> None:
        for widget in self.views.values():
            if widget.image is not None:
                widget.apply_preset(0 if widget.image.windows else -1)
                if widget._user_invert:
                    widget.toggle_invert()
        self.fit_same_scale()

    def set_linked(self, on: bool) -> None:
        self.linked = on

    def _on_user_range(self, view: View) -> None:
        if not self.linked or self._syncing:
            return
        partner = self.views[PARTNER[view]]
        source = self.views[view]
        if partner.image is None or source.image is None:
            return
        self._syncing = True
        try:
            partner.set_distance_range(*source.distance_range_from_wall())
        finally:
            self._syncing = False
