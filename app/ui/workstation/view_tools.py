"""The reading tools of a view, as pure numpy (the magnifier's pixels) and small graphics items (ruler,
reader's marks, cross-reference band, linked cursor, region boxes)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsPathItem, QGraphicsRectItem

from app.colours import MARK, REGION

MAGNIFICATIONS = (1, 2, 4)  # native pixels: x1 shows each image pixel as one screen pixel


def magnified(displayed: np.ndarray, centre: tuple[float, float], levels: tuple[float, float], inverted: bool,
              mirrored: bool, size: int, zoom: int) -> np.ndarray:
    """The magnifier's uint8 picture (size x size) around ``centre`` (row, col of the stored image).

    It samples the displayed array itself (the stored pixels, or the VOI-rendered image) at native
    resolution with the current window, then enlarges by ``zoom`` (bicubic, so edges stay smooth):
    it never enlarges screen pixels, which would show less than the image holds.
    """
    half = size / (2 * zoom)
    row, col = centre
    r0, c0 = int(math.floor(row - half)), int(math.floor(col - half))
    span = int(math.ceil(2 * half))
    h, w = displayed.shape[:2]
    patch = np.zeros((span, span), np.float32)
    sr, sc = slice(max(r0, 0), min(r0 + span, h)), slice(max(c0, 0), min(c0 + span, w))
    if sr.stop > sr.start and sc.stop > sc.start:
        patch[sr.start - r0: sr.stop - r0, sc.start - c0: sc.stop - c0] = displayed[sr, sc]
    low, high = levels
    scaled = np.clip((patch - low) / max(high - low, 1e-12), 0.0, 1.0)
    if inverted:
        scaled = 1.0 - scaled
    if mirrored:
        scaled = scaled[:, ::-1]
    picture = (scaled * 255).round().astype(np.uint8)
    if zoom > 1:
        picture = cv2.resize(picture, (span * zoom, span * zoom), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(picture[:size, :size])


def distance_text(start: QPointF, end: QPointF, spacing: tuple[float, float] | None) -> str:
    """A ruler's length: millimetres from the pixel spacing, or pixels when the file has none."""
    dx, dy = end.x() - start.x(), end.y() - start.y()
    if spacing:
        return f"{math.hypot(dy * spacing[0], dx * spacing[1]):.1f} mm"
    return f"{math.hypot(dx, dy):.0f} px (no spacing: pixels)"


def _pen(colour: tuple[int, int, int], width: float, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(QColor(*colour), width, style)
    pen.setCosmetic(True)
    return pen


class RulerItem:
    """A measured line with its length, in the image item's frame."""

    def __init__(self, parent, start: QPointF, spacing: tuple[float, float] | None, label_parent=None) -> None:
        """``label_parent``: the view's label layer (the image's frame, not clipped to it): a child of the image
        had its "mm" cut at the image's edge."""
        self.start, self.spacing = start, spacing
        self.line = QGraphicsLineItem(QLineF(start, start), parent)
        self.line.setPen(_pen((255, 255, 255), 2.0))
        self.line.setZValue(40)
        self.label = pg.TextItem("", color=(255, 255, 255), anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 160))
        self.label.setParentItem(label_parent if label_parent is not None else parent)
        self.label.setZValue(41)
        self.update(start)

    def update(self, end: QPointF) -> None:
        self.line.setLine(QLineF(self.start, end))
        self.label.setText(distance_text(self.start, end, self.spacing))
        self.label.setPos(end)

    def text(self) -> str:
        return self.label.toPlainText()

    def remove(self) -> None:
        for item in (self.line, self.label):
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)


class MarkItem:
    """The reader's mark: a cross with its label and confidence. The label goes on ``label_parent`` (the view's
    label layer, in the image's frame but not clipped to it): a child of the image was cut at the image's edge
    (":ifications (3/5)" beside a mark near it) instead of flipping at the viewport's."""

    def __init__(self, parent, row: float, col: float, text: str, label_parent=None) -> None:
        self.items = []
        size = 14.0
        for line in (QLineF(col - size, row, col + size, row), QLineF(col, row - size, col, row + size)):
            item = QGraphicsLineItem(line, parent)
            item.setPen(_pen(MARK, 2.0))
            item.setZValue(45)
            self.items.append(item)
        self.label = pg.TextItem(text, color=MARK, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
        self.label.setParentItem(label_parent if label_parent is not None else parent)
        self.label.setPos(col + size, row - size)
        self.label.setZValue(46)
        self.items.append(self.label)

    def remove(self) -> None:
        for item in self.items:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)


class BandItem(QGraphicsRectItem):
    """The cross-reference band: the columns of the other view at the same depth, over the whole height."""

    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.setPen(_pen((80, 220, 255), 1.0, Qt.PenStyle.DashLine))
        self.setBrush(QBrush(QColor(80, 220, 255, 45)))
        self.setZValue(30)
        self.centre = QGraphicsLineItem(parent)
        self.centre.setPen(_pen((80, 220, 255), 1.5))
        self.centre.setZValue(31)
        self.hide()

    def show_band(self, col_from: float, col_centre: float, col_to: float, height: float) -> None:
        self.setRect(QRectF(col_from, 0.0, col_to - col_from, height))
        self.centre.setLine(QLineF(col_centre, 0.0, col_centre, height))
        self.show()
        self.centre.show()

    def hide_band(self) -> None:
        self.hide()
        self.centre.hide()


class LinkedCursorItem(QGraphicsPathItem):
    """Where the cursor of the linked view lies in this one (a registered prior, or the current view from the
    prior's): a cross of constant size on screen, solid when the registration is good, dashed when it is only
    approximate."""

    def __init__(self, parent) -> None:
        super().__init__(parent)
        path = QPainterPath()
        for (x0, y0), (x1, y1) in (((-14, 0), (-4, 0)), ((4, 0), (14, 0)), ((0, -14), (0, -4)), ((0, 4), (0, 14))):
            path.moveTo(x0, y0)
            path.lineTo(x1, y1)
        self.setPath(path)
        self.setFlag(QGraphicsPathItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.setZValue(40)
        self.hide()

    def show_at(self, row: float, col: float, approximate: bool) -> None:
        self.setPen(_pen((255, 190, 60), 2.0, Qt.PenStyle.DashLine if approximate else Qt.PenStyle.SolidLine))
        self.setPos(QPointF(col, row))
        self.show()


def detection_outline(polygon, tooltip: str) -> QGraphicsPathItem:
    """The outline of a detection's instance mask (``app.cad_marks.mask_outline``: (k, 2) row, col, or None)
    in image coordinates (x = column, y = row), drawn with a cosmetic pen (the same width at every zoom) in
    the CAD marks' yellow."""
    path = QPainterPath()
    if polygon is not None:
        path.moveTo(QPointF(polygon[0, 1], polygon[0, 0]))
        for row, col in polygon[1:]:
            path.lineTo(QPointF(col, row))
        path.closeSubpath()
    item = QGraphicsPathItem(path)
    item.setPen(_pen(REGION, 2.2))
    item.setToolTip(tooltip)
    return item


NOT_ANALYSED_TIP = ("Not analysed: this part of the breast lies outside the model's input window; no map or region "
                    "here means not looked at, not nothing found")


def unanalysed_items(window: tuple[int, int, int, int], shape: tuple[int, int]) -> list:
    """The image outside the model's window (``app.cad_marks.analysed_window``: top, left, bottom, right) greyed
    over, with the window's edge dashed, in image coordinates (x = column, y = row)."""
    top, left, bottom, right = window
    outside = QPainterPath()
    outside.addRect(QRectF(0, 0, shape[1], shape[0]))
    inside = QPainterPath()
    inside.addRect(QRectF(left, top, right - left, bottom - top))
    shade = QGraphicsPathItem(outside.subtracted(inside))
    shade.setPen(Qt.PenStyle.NoPen)
    shade.setBrush(QBrush(QColor(40, 40, 60, 90)))  # a third: the tissue under it is to be read, unaided
    shade.setToolTip(NOT_ANALYSED_TIP)
    edge = QGraphicsRectItem(QRectF(left, top, right - left, bottom - top))
    edge.setPen(_pen((230, 230, 230), 1.5, Qt.PenStyle.DashLine))
    edge.setToolTip(NOT_ANALYSED_TIP)
    return [shade, edge]


class RegionBoxItem(QGraphicsRectItem):
    """A scored region drawn on the image; reports hovering."""

    def __init__(self, rect: QRectF, rank: int, on_hover, tooltip: str) -> None:
        super().__init__(rect)
        self.rank = rank
        self._on_hover = on_hover
        self.setAcceptHoverEvents(True)
        self.setToolTip(tooltip)
        self.set_highlight(False)

    def set_highlight(self, on: bool) -> None:
        self.setPen(_pen((255, 255, 255) if on else REGION, 3.0 if on else 1.6))

    def hoverEnterEvent(self, event):  # noqa: N802 - Qt override
        self.set_highlight(True)
        self._on_hover(self.rank)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):  # noqa: N802 - Qt override
        self.set_highlight(False)
        self._on_hover(0)
        super().hoverLeaveEvent(event)


def region_label(rank: int, text: str = "") -> pg.TextItem:
    """The number of a region on screen; a detection also says its class and score ("1 malignant 81%")."""
    # on a dark box of its own: readable over an inverted (white) image, and the outlines it lies over do
    # not cross its letters
    label = pg.TextItem(f"{rank} {text}".strip(), color=REGION, anchor=(0, 0), fill=(0, 0, 0, 150))
    label.setFont(QFont("Sans", 10, QFont.Weight.Bold))
    return label
