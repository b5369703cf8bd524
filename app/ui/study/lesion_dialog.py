"""The coordinator draws a case's lesions in the study set-up: the case's views, a click-drag from a lesion's
centre to its edge draws a circle (its radius in mm from the view's pixel spacing), with a weight.

Loading the exam (and windowing it for display) and saving run off the GUI thread (:class:`Worker`); the
lesions go to the store through ``app.study.lesions`` (Qt-free)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.study.cases import CaseEntry
from app.study.lesions import DrawnLesion, circle_from_drag, drawn_lesions, save_drawn_lesions
from app.study.store import Store
from app.ui.errors import show_error
from app.ui.worker import Worker

DISPLAY_ROWS = 640  # a view is shown at most this tall: enough to place a circle, light to paint
VIEW_ORDER = ("R-CC", "L-CC", "R-MLO", "L-MLO")  # as a hanging protocol shows them


@dataclass(frozen=True)
class CaseView:
    """One view as the dialog shows it: ``display`` (h, w) uint8, windowed; ``step`` original image pixels
    per display pixel (row and col); ``spacing`` the original image's (row, col) mm per pixel, or None."""

    view: str
    display: np.ndarray
    step: float
    spacing: tuple[float, float] | None


def load_case_views(store: Store, study_id: int, case: CaseEntry, progress: Callable | None = None,
                    cancel: Callable | None = None) -> tuple[list[CaseView], list[DrawnLesion]]:
    """(the case's views ready to paint, its lesions drawn so far): runs on a worker thread."""
    from inference.intake.exam import load_exam  # noqa: PLC0415

    exam = load_exam(case.exam_path)
    views = []
    for view, image in exam.views.items():
        pixels = np.asarray(image.pixels, np.float32)
        step = max(1.0, pixels.shape[0] / DISPLAY_ROWS)
        small = pixels[::math.ceil(step), ::math.ceil(step)]
        low, high = np.percentile(small, (1, 99.5))
        scaled = np.clip((small - low) / max(high - low, 1e-6), 0, 1)
        if image.invert_display:
            scaled = 1.0 - scaled
        spacing = tuple(float(v) for v in image.pixel_spacing) if image.pixel_spacing else None
        views.append(CaseView(str(view), np.ascontiguousarray((scaled * 255).astype(np.uint8)), float(math.ceil(step)),
                              spacing))
    views.sort(key=lambda v: VIEW_ORDER.index(v.view) if v.view in VIEW_ORDER else len(VIEW_ORDER))
    return views, drawn_lesions(store, study_id, case.case_id)


class LesionCanvasWidget(QWidget):
    """One view with its circles; a press-drag-release from a centre to an edge emits ``drawn(view, start,
    end)`` in the view's original image pixels (row, col)."""

    drawn = Signal(str, tuple, tuple)

    def __init__(self, case_view: CaseView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.case_view = case_view
        data = case_view.display
        self._image = QImage(data.data, data.shape[1], data.shape[0], data.strides[0],
                             QImage.Format.Format_Grayscale8).copy()
        self.circles: list[tuple[tuple[float, float], float]] = []  # (centre, radius in mm)
        self._start: tuple[float, float] | None = None
        self._end: tuple[float, float] | None = None
        self.setMinimumSize(160, 200)
        self.setToolTip(f"{case_view.view}: drag from a lesion's centre to its edge")

    # image pixels <-> widget points: the display image fitted into the widget, aspect kept
    def _frame(self) -> tuple[float, float, float]:
        h, w = self.case_view.display.shape
        scale = min(self.width() / w, self.height() / h)
        return scale, (self.width() - w * scale) / 2, (self.height() - h * scale) / 2

    def image_point(self, point: QPointF) -> tuple[float, float]:
        scale, left, top = self._frame()
        step = self.case_view.step
        return ((point.y() - top) / scale * step, (point.x() - left) / scale * step)

    def widget_point(self, row: float, col: float) -> QPointF:
        scale, left, top = self._frame()
        step = self.case_view.step
        return QPointF(left + col / step * scale, top + row / step * scale)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton and self.case_view.spacing is not None:
            self._start = self._end = self.image_point(event.position())
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._start is not None:
            self._end = self.image_point(event.position())
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._start is None or event.button() != Qt.MouseButton.LeftButton:
            return
        start, end = self._start, self.image_point(event.position())
        self._start = self._end = None
        self.update()
        if start != end:
            self.drawn.emit(self.case_view.view, start, end)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        scale, left, top = self._frame()
        h, w = self.case_view.display.shape
        painter.drawImage(QRectF(left, top, w * scale, h * scale), self._image)
        spacing = self.case_view.spacing
        painter.setPen(QPen(QColor(255, 200, 0), 2))
        shown = list(self.circles)
        if self._start is not None and self._end is not None and spacing is not None:
            shown.append(circle_from_drag(self._start, self._end, spacing))
        for (row, col), radius_mm in shown:
            centre = self.widget_point(row, col)
            rx = radius_mm / spacing[1] / self.case_view.step * scale
            ry = radius_mm / spacing[0] / self.case_view.step * scale
            painter.drawEllipse(centre, rx, ry)
        painter.setPen(QColor(255, 255, 255))
        text = self.case_view.view + ("" if spacing is not None else " (no pixel spacing: cannot draw)")
        painter.drawText(6, 16, text)
        painter.end()


class LesionDialog(QDialog):
    """Draw one case's lesions (circles with a weight) and save them with the study."""

    saved = Signal(int)

    def __init__(self, store: Store, study_id: int, case: CaseEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.study_id, self.case = store, study_id, case
        self.setWindowTitle(f"Lesions of case {case.case_id}")
        self.lesions: list[DrawnLesion] = []
        self.canvases: dict[str, LesionCanvasWidget] = {}
        self.spacing: dict[str, tuple[float, float]] = {}
        self.worker: Worker | None = None
        layout = QVBoxLayout(self)
        self.status = QLabel("loading the case's images…")
        layout.addWidget(self.status)
        self.grid = QGridLayout()
        layout.addLayout(self.grid)
        form = QFormLayout()
        self.weight = QDoubleSpinBox()
        self.weight.setRange(0.0, 100.0)
        self.weight.setDecimals(2)
        self.weight.setSingleStep(0.1)
        self.weight.setSpecialValueText("equal")  # 0: no weight given, the case's lesions weigh the same
        form.addRow("Weight of the next lesion", self.weight)
        layout.addLayout(form)
        self.list = QListWidget()
        layout.addWidget(self.list)
        self.remove_button = QPushButton("Remove the selected lesion")
        self.remove_button.clicked.connect(self._remove_selected)
        layout.addWidget(self.remove_button)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
        layout.addWidget(self.buttons)
        self._run(Worker(load_case_views, store, study_id, case), self._on_loaded)

    def _run(self, worker: Worker, on_result: Callable) -> None:
        self.worker = worker
        worker.result.connect(on_result)
        worker.error.connect(self._on_error)
        worker.start()

    def _on_loaded(self, loaded: tuple[list[CaseView], list[DrawnLesion]]) -> None:
        views, lesions = loaded
        for index, case_view in enumerate(views):
            canvas = LesionCanvasWidget(case_view, self)
            canvas.drawn.connect(self.add_lesion)
            self.canvases[case_view.view] = canvas
            if case_view.spacing is not None:
                self.spacing[case_view.view] = case_view.spacing
            self.grid.addWidget(canvas, index // 2, index % 2)
        self.lesions = list(lesions)
        self.status.setText("Drag from a lesion's centre to its edge on a view to draw it as a circle.")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(True)
        self._refresh()

    def add_lesion(self, view: str, start: tuple[float, float], end: tuple[float, float]) -> DrawnLesion | None:
        """A circle on ``view`` from its centre ``start`` to its edge ``end`` (original image pixels, row and
        col), with the weight now set; None where the view has no pixel spacing or the circle no size."""
        spacing = self.spacing.get(view)
        if spacing is None:
            self.status.setText(f"{view} has no pixel spacing: a lesion's size in mm cannot be measured on it")
            return None
        centre, radius_mm = circle_from_drag(start, end, spacing)
        if radius_mm <= 0:
            return None
        lesion = DrawnLesion(view, centre, radius_mm, self.weight.value() or None)
        self.lesions.append(lesion)
        self._refresh()
        return lesion

    def _remove_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.lesions):
            del self.lesions[row]
            self._refresh()

    def _refresh(self) -> None:
        self.list.clear()
        for number, lesion in enumerate(self.lesions, start=1):
            weight = "equal weight" if lesion.weight is None else f"weight {lesion.weight:g}"
            self.list.addItem(f"D{number}: {lesion.view}, centre ({lesion.centre[0]:.0f}, {lesion.centre[1]:.0f}), "
                              f"radius {lesion.radius_mm:.1f} mm, {weight}")
        for view, canvas in self.canvases.items():
            canvas.circles = [(l.centre, l.radius_mm) for l in self.lesions if l.view == view]
            canvas.update()

    def save(self) -> None:
        """Save the case's drawn lesions off the GUI thread; the dialog closes when they are stored."""
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
        self.status.setText("saving…")
        self._run(Worker(save_drawn_lesions, self.store, self.study_id, self.case.case_id, tuple(self.lesions),
                         dict(self.spacing)), self._on_saved)

    def _on_saved(self, count: int) -> None:
        self.saved.emit(count)
        self.accept()

    def _on_error(self, error: BaseException) -> None:
        self.status.setText("")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(bool(self.canvases))
        show_error(self, error)
