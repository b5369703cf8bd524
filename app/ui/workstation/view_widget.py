"""One view slot of the hanging: the image, window/level, zoom/pan, heat layers, regions, and the reader's
tools (magnifier, ruler, marks, cross-reference band).

Coordinates: the image item's local frame is the ORIGINAL image frame of the view (x = column, y = row,
pixel (i, j) covering [j, j+1) x [i, i+1)). An image stored mirrored is shown mirrored back by the image
item's transform; every overlay is a child of the image item, so it follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (QGraphicsLineItem, QGraphicsRectItem, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
                               QWidget)

from app.colours import class_colour, layer_lut
from app.overlay_images import Texture
from app.ui.workstation.display_image import DisplayImageItem
from app.ui.workstation.view_tools import (
    MAGNIFICATIONS,
    BandItem,
    LinkedCursorItem,
    MarkItem,
    RegionBoxItem,
    detection_outline,
    RulerItem,
    magnified,
    region_label,
    unanalysed_items,
)


def detection_text(region) -> str:
    """A detection's class (its first word: 'benign', 'malignant') and score, for its label on screen."""
    name = (region.kind.removesuffix(" detection").split() or [""])[0]
    return f"{name} {100 * region.score:.0f}%"
from inference.intake.breast_geometry import BreastAxis, breast_axis
from inference.intake.exam import DisplayWindow, ViewImage
from inference.results.exam_result import EntryViewResult
from inference.intake.views import Laterality, View

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


class ToolMode:
    PAN = "pan"
    RULER = "ruler"
    MARK = "mark"


class ReadingViewBox(pg.ViewBox):
    """Left-drag pans (or measures, in ruler mode), wheel zooms, right-drag windows (horizontal = width,
    vertical = level); a click in mark mode places a mark."""

    windowDragged = Signal(float, float)
    doubleClicked = Signal()
    rulerDragged = Signal(object, object, bool)  # start, current (scene points), finished
    markClicked = Signal(object)  # scene point

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.setMouseMode(pg.ViewBox.PanMode)
        self.tool = ToolMode.PAN

    def mouseDragEvent(self, event, axis=None):  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.RightButton:
            event.accept()
            delta = event.screenPos() - event.lastScreenPos()
            self.windowDragged.emit(float(delta.x()), float(delta.y()))
            return
        if event.button() == Qt.MouseButton.LeftButton and self.tool == ToolMode.RULER:
            event.accept()
            self.rulerDragged.emit(event.buttonDownScenePos(), event.scenePos(), event.isFinish())
            return
        super().mouseDragEvent(event, axis)

    def mouseClickEvent(self, event):  # noqa: N802 - Qt override
        if event.double() and event.button() == Qt.MouseButton.LeftButton:
            event.accept()
            self.doubleClicked.emit()
            return
        if event.button() == Qt.MouseButton.LeftButton and self.tool == ToolMode.MARK:
            event.accept()
            self.markClicked.emit(event.scenePos())
            return
        super().mouseClickEvent(event)


@dataclass
class WindowState:
    center: float
    width: float
    name: str = ""


@dataclass(frozen=True)
class OverlayOptions:
    """What of a result is drawn: the heat layers of ``classes`` (the layer called ``layer``, or each class's
    primary one), the regions, and the opacity; ``visible`` hides everything (blind reading, H)."""

    visible: bool = True
    classes: frozenset[str] = field(default_factory=frozenset)
    layer: str | None = None
    regions: bool = True
    opacity: float = 0.45
    all_regions: bool = False  # also the regions below the operating point, dimmed


class LateralityBanner(QWidget):
    """The loud warning on a slot whose image faces like the other breast, with the two ways out."""

    confirmed = Signal()
    moved = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("lateralityBanner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet("#lateralityBanner { background: rgba(170, 0, 0, 230); } "
                           "QLabel { color: white; background: transparent; font: bold 12px; } "
                           "QPushButton { color: #101010; background: #f2f2f2; border: 1px solid #600; "
                           "font: bold 11px; padding: 3px 8px; }")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.confirm_button = QPushButton("Confirm: stored mirrored")
        self.move_button = QPushButton("Move")
        self.confirm_button.clicked.connect(self.confirmed.emit)
        self.move_button.clicked.connect(self.moved.emit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.confirm_button)
        buttons.addWidget(self.move_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        self.style_shown = self.styleSheet()
        for button in (self.confirm_button, self.move_button):
            policy = button.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # the room a banner keeps in the partner slot has its buttons' height
            button.setSizePolicy(policy)
        self.hide()

    def show_warning(self, text: str) -> None:
        """The warning with its two ways out (``text`` empty: none)."""
        self.setStyleSheet(self.style_shown)
        self.text.setText(text)
        for button in (self.confirm_button, self.move_button):
            button.show()
        self.setVisible(bool(text))

    def keep_room_for(self, text: str) -> None:
        """Blank room of the height the partner slot's banner takes (its own ``text``), so that the pair's images
        stay level: a banner above R CC alone pushed it down beside L CC (nipples 100 px apart)."""
        self.setStyleSheet("#lateralityBanner { background: transparent; } QLabel { color: transparent; "
                           "background: transparent; font: bold 12px; }")
        self.text.setText(text)
        for button in (self.confirm_button, self.move_button):
            button.hide()
        self.setVisible(bool(text))


LEADER_GAP = 6.0  # screen pixels between a label and its box beyond which a leader line joins them


def _gap(a: QRectF, b: QRectF) -> float:
    return max(b.left() - a.right(), a.left() - b.right(), b.top() - a.bottom(), a.top() - b.bottom(), 0.0)


def _nearest(rect: QRectF, point: QPointF) -> QPointF:
    return QPointF(min(max(point.x(), rect.left()), rect.right()), min(max(point.y(), rect.top()), rect.bottom()))


class MammoViewWidget(QWidget):
    """One view: shows a ViewImage, optionally with one model entry's overlays, and the reading tools.

    Signals:
        doubleClicked(View): toggle single-view.
        cursorInfo(str): position and value under the cursor.
        rangeChangedByUser(View): the user zoomed or panned (for linked views).
        patchHovered(View, int): rank of the hovered region box (0 = none).
        pointed(View, row, col): the cursor's place in the image (for the cross-reference).
        markRequested(View, row, col): a click in mark mode.
        lateralityConfirmed(View), lateralityMoveRequested(View): the banner's buttons.
    """

    doubleClicked = Signal(object)
    cursorInfo = Signal(str)
    rangeChangedByUser = Signal(object)
    patchHovered = Signal(object, int)
    viewportResized = Signal()  # the image's room changed (a window resize, a laterality warning shown)
    pointed = Signal(object, float, float)
    pointerLeft = Signal()  # the pointer left the view: what followed it elsewhere goes
    markRequested = Signal(object, float, float)
    lateralityConfirmed = Signal(object)
    lateralityMoveRequested = Signal(object)
    windowDraggedTo = Signal(object, float, float)  # this view, centre, width: the reader's right-drag

    def __init__(self, view: View, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        # the exam's one auto window and drag step (app.exam_window), computed off the GUI thread; None:
        # this view's own auto window and a drag proportional to the window's width
        self.exam_window = None
        self.setObjectName(f"view_{view.value}")
        self.image: ViewImage | None = None
        self.result: EntryViewResult | None = None
        self.regions_note = ""  # by which rule the regions drawn were chosen (app.cad_marks)
        self.window = WindowState(0.0, 1.0)
        self.study_text: list[str] = []
        self._rendered = False  # the image item shows a VOI-rendered [0, 1] image, not the stored pixels
        self._user_invert = False
        self._preset_index = -1
        self._heat_items: dict[int, pg.ImageItem] = {}
        self._boxes: list[RegionBoxItem] = []
        self._outlines: list = []  # detections' mask outlines (Mask R-CNN), QGraphicsPathItems
        self._unanalysed: list = []  # the image outside the model's window, where breast tissue lies there
        self._labels: list[pg.TextItem] = []
        self._leaders: list[QGraphicsLineItem] = []  # a line from a label set apart (in a cluster) to its box
        self._rulers: list[RulerItem] = []
        self._active_ruler: RulerItem | None = None
        self._marks: list[MarkItem] = []
        self._options = OverlayOptions()
        self._magnifier_on = False
        self._lens_at: tuple | None = None  # where the lens was last drawn: (widget point, image centre, size)
        self.magnification = 2
        # the extent a layout asked for and its shared scale (mm per screen pixel), kept while not zoomed
        self._fit: tuple[float, float, float | None] | None = None
        self._axis: BreastAxis | None = None

        self.graphics = pg.GraphicsView()
        # off the Tab chain: a view takes no typing, and its focus was invisible (Tab from the tool bar stopped
        # on four views before the reader's form); a click still gives it the focus
        self.graphics.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.graphics.setBackground("k")
        self.viewbox = ReadingViewBox()
        self.graphics.setCentralItem(self.viewbox)
        self.image_item = DisplayImageItem()
        # overlays are children of the image: clip them to it (the model window's padding is not image)
        self.image_item.setFlag(self.image_item.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.viewbox.addItem(self.image_item)
        # the regions' labels: in the image's frame but not clipped to it (a label wider than a narrow breast
        # image, or flipped to stay in the viewport, goes on over the background); the viewport still clips
        self.label_layer = QGraphicsRectItem(self.viewbox.childGroup)
        self.label_layer.setPen(Qt.PenStyle.NoPen)
        self.label_layer.setZValue(self.image_item.zValue() + 1)
        self.band = BandItem(self.image_item)
        self.linked_cursor = LinkedCursorItem(self.image_item)
        self.viewbox.windowDragged.connect(self._on_window_drag)
        self.viewbox.doubleClicked.connect(lambda: self.doubleClicked.emit(self.view))
        self.viewbox.sigRangeChangedManually.connect(self._on_user_range)
        self.viewbox.sigRangeChanged.connect(lambda *_: self._update_readout())
        self.viewbox.sigRangeChanged.connect(lambda *_: self.clamp_labels())
        self.viewbox.sigResized.connect(self._refit)
        self.viewbox.rulerDragged.connect(self._on_ruler)
        self.viewbox.markClicked.connect(self._on_mark_click)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.graphics)

        self.marker = QLabel(self.graphics)
        self.marker.setObjectName("orientationMarker")
        # the labels over the image keep a dark box of their own: over an inverted (white) background too
        self.marker.setStyleSheet("color: #f0f0f0; font: bold 15px; background: rgba(0,0,0,150); padding: 1px 3px;")
        self.prior_slot = False  # a slot of the prior exam: its marker says PRIOR, large and coloured
        self.corner = QLabel(self.graphics)
        self.corner.setObjectName("cornerText")
        self.corner.setStyleSheet("color: #e8e8e8; font: 11px; background: rgba(0,0,0,150); padding: 1px 3px;")
        self.corner_text_shown = True  # T hides the study lines (the view's name stays): at 1280 × 800 they lay
        # over breast tissue and a region's box
        self.readout = QLabel(self.graphics)
        self._readout_parts: list[str] = []  # the readout's parts, laid out in lines by _place_labels
        self.readout.setObjectName("windowReadout")
        self.readout.setStyleSheet("color: #e8e8e8; font: 11px; background: rgba(0,0,0,170); padding: 1px 3px;")
        self.badge = QLabel(self.graphics)
        self.badge.setObjectName("notesBadge")
        self.badge.setStyleSheet("color: #101010; background: #e0b050; font: bold 11px; padding: 1px 4px;")
        self.badge.hide()
        self.empty = QLabel(f"No {view.value} image in this exam", self.graphics)
        self.empty.setObjectName("emptySlot")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)  # an unreadable slot says why, in a sentence
        self.empty.setStyleSheet("color: #8a8a8a; font: 15px; border: 1px dashed #555;")
        self.magnifier = QLabel(self.graphics)
        self.magnifier.setObjectName("magnifier")
        self.magnifier.setStyleSheet("border: 2px solid #c0c0c0; background: black;")
        # the lens sits on the cursor: the mouse goes through it to the image under it
        self.magnifier.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.magnifier.hide()
        self.magnifier_caption = QLabel(self.graphics)
        self.magnifier_caption.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.magnifier_caption.setStyleSheet("color: #e0e0e0; background: rgba(0,0,0,160); font: 10px; padding: 1px;")
        self.magnifier_caption.hide()
        # above the image, never over it: the slot's image is fitted to the room left below the warning
        self.banner = LateralityBanner(self)
        layout.insertWidget(0, self.banner)
        self.banner.confirmed.connect(lambda: self.lateralityConfirmed.emit(self.view))
        self.banner.moved.connect(lambda: self.lateralityMoveRequested.emit(self.view))
        self._update_marker()

    # ---------------------------------------------------------------------------------------------- content

    @property
    def faces_left_on_screen(self) -> bool:
        """Right views hang with the nipple to the left (chest wall at the middle of the screen)."""
        return self.view.laterality == Laterality.RIGHT

    def set_loading(self, text: str = "Loading images…") -> None:
        """Before the images arrive: the slot says so, not 'no image'."""
        self.set_image(None)
        self.empty.setText(text)

    def set_image(self, image: ViewImage | None, study_text: list[str] | None = None,
                  laterality_warning: str = "", unreadable: str = "", file_window: bool = True,
                  partner_warning: str = "") -> None:
        """Show ``image``; an empty slot says why: no such image, or ``unreadable`` ("file: reason").
        ``file_window`` False starts it on the auto window even where its file gives one (another view of the
        study has none: the views are drawn alike, or an asymmetry could be the windows')."""
        self.image = image
        self.file_window = file_window
        self._user_invert = False  # another image starts as its file says: an invert carried the last patient's over
        self.result = None
        self.study_text = list(study_text or [])
        self._clear_overlays()
        self.clear_rulers()
        self.set_marks([])
        self.band.hide_band()
        self.linked_cursor.hide()
        self.empty.setText(f"{self.view.value} unreadable: {unreadable}" if unreadable
                           else f"No {self.view.value} image in this exam")
        self.empty.setVisible(image is None)
        self._axis = None
        if image is None:
            self.image_item.clear()
            # the whole view repainted: the cleared image's old area is not all redrawn by itself, and the
            # last exam's pixels stayed around the empty slot's text
            self.graphics.viewport().update()
            self.badge.hide()
            self.banner.hide()
            self._update_marker()
            return
        self.image_item.setImage(image.pixels, autoLevels=False)
        self._rendered = False
        transform = QTransform()
        if image.horizontal_flip:  # stored mirrored: mirror back for the standard hanging
            transform.translate(image.pixels.shape[1], 0)
            transform.scale(-1, 1)
        self.image_item.setTransform(transform)
        self.label_layer.setTransform(transform)
        if image.pixel_spacing:
            self.viewbox.setAspectLocked(True, ratio=image.pixel_spacing[0] / image.pixel_spacing[1])
        self._preset_index = self.first_preset()
        self.apply_preset(self._preset_index)
        notes = list(image.warnings)
        self.badge.setText(f"⚠ {len(notes)} note{'s' if len(notes) != 1 else ''}")
        self.badge.setToolTip("\n".join(notes))
        self.badge.setVisible(bool(notes))
        self.set_laterality_warning(laterality_warning, partner_warning)
        self._update_marker()
        self.reset_view()

    def show_empty(self, text: str) -> None:
        """An empty slot saying ``text`` (e.g. why the exam could not be opened)."""
        self.set_image(None, self.study_text)
        self.empty.setText(text)

    def mark_as_prior(self) -> None:
        """This slot shows the prior exam: "PRIOR" in the marker, amber and larger than the current's label,
        so that a prior is never read as the current exam."""
        self.prior_slot = True
        self.marker.setStyleSheet("color: #ffb020; font: bold 20px; background: rgba(0,0,0,140); padding: 1px 4px;")
        self._update_marker()

    def magnify(self, factor: float) -> None:
        """Zoom ``factor`` times about the image's centre (a hanging step's "quadrant" zoom); ends the fit."""
        if self.image is None or factor <= 0:
            return
        (x0, x1), (y0, y1) = self.item_range()
        centre = self.image_item.mapRectToParent(self.image_item.boundingRect()).center()
        half_w, half_h = (x1 - x0) / (2 * factor), (y1 - y0) / (2 * factor)
        self._fit = None
        self.viewbox.setRange(xRange=(centre.x() - half_w, centre.x() + half_w),
                              yRange=(centre.y() - half_h, centre.y() + half_h), padding=0.0)

    def set_laterality_warning(self, text: str, partner_warning: str = "") -> None:
        """The slot's laterality warning; without one, room for the partner slot's (``partner_warning``), so that
        the pair hangs level."""
        other = self.view.other_side
        self.banner.move_button.setText(f"Move to {other.value}")
        if text:
            self.banner.show_warning(text)
        else:
            self.banner.keep_room_for(partner_warning)
        self._place_labels()

    def _update_marker(self) -> None:
        side = "R" if self.view.laterality == Laterality.RIGHT else "L"
        text = f"{side} {self.view.projection.value}"
        if self.image is not None and self.image.view_label and self.image.view_label not in ("CC", "MLO"):
            text += f"  ({self.image.view_label})"
        if self.prior_slot:
            text = f"PRIOR  {text}"
        self.marker.setText(text)
        self.marker.adjustSize()
        self.corner.setText("\n".join(self.study_text))
        self.corner.adjustSize()
        self._update_readout()
        self._place_labels()

    def resizeEvent(self, event):  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._place_labels()

    def _place_labels(self) -> None:
        size = self.graphics.size()
        outer_left = self.faces_left_on_screen  # text sits on the outer (nipple) side, away from the midline
        top = 6
        for label, y in ((self.marker, top), (self.corner, top + self.marker.height() + 2)):
            x = 8 if outer_left else size.width() - label.width() - 8
            label.move(max(0, x), y)
        # the readout on one line where it fits the view, else broken at its separators (at 1280 × 800 it ran
        # past the view's edge, "… zoom 0.0")
        lines, metrics, room = [], self.readout.fontMetrics(), max(40, size.width() - 16)
        for part in self._readout_parts:
            if lines and metrics.horizontalAdvance(f"{lines[-1]}  · {part}") <= room:
                lines[-1] = f"{lines[-1]}  · {part}"
            else:
                lines.append(part)
        self.readout.setText("\n".join(lines))
        self.readout.adjustSize()
        x = 8 if outer_left else size.width() - self.readout.width() - 8
        self.readout.move(max(0, x), max(0, size.height() - self.readout.height() - 6))
        self.badge.adjustSize()
        x = size.width() - self.badge.width() - 8 if outer_left else 8
        y = max(0, size.height() - self.badge.height() - 6)
        if self.readout.isVisible() and self.readout.geometry().intersects(
                QRect(max(0, x), y, self.badge.width(), self.badge.height())):
            y = max(0, self.readout.y() - self.badge.height() - 4)  # above the readout, never over it
        self.badge.move(max(0, x), y)
        self.empty.setGeometry(10, 32, max(10, size.width() - 20), max(10, size.height() - 42))
        self.corner.setVisible(self.corner_text_shown)
        for label in (self.marker, self.corner):
            label.raise_()

    def set_corner_text_shown(self, shown: bool) -> None:
        """Show or hide the study lines (date, accession, patient) under the view's name, which always shows."""
        self.corner_text_shown = shown
        self.corner.setVisible(shown)
        self._lay_out_region_labels()  # a region's label may take the corner's place now

    # ------------------------------------------------------------------------------------------ geometry

    def chest_wall_x(self) -> float:
        """The x of the chest-wall edge in the item frame (after any mirroring)."""
        if self.image is None:
            return 0.0
        width = self.image.pixels.shape[1]
        # standard storage: L views have the chest wall at x = 0, R views at x = width
        return float(width) if self.view.laterality == Laterality.RIGHT else 0.0

    def physical_size(self) -> tuple[float, float]:
        """(height, width) in mm (or pixels when the spacing is unknown)."""
        if self.image is None:
            return (0.0, 0.0)
        h, w = self.image.pixels.shape
        sy, sx = self.image.pixel_spacing or (1.0, 1.0)
        return (h * sy, w * sx)

    def show_extent(self, height_mm: float, width_mm: float, mm_per_screen_pixel: float | None = None) -> None:
        """Fit ``height_mm`` x ``width_mm`` (the largest image of the row) into the viewport at one scale,
        anchored at the top and at the chest wall, so that a row's two views meet back to back; at
        ``mm_per_screen_pixel`` where the hanging gives one (the scale of its most cramped slot, so that every
        view shows at one physical scale), never larger than this viewport allows. The fit is kept (applied
        again when the viewport changes size) until the user zooms or pans."""
        self._fit = (height_mm, width_mm, mm_per_screen_pixel)
        self._apply_fit()

    @property
    def fitted(self) -> bool:
        """Whether the view shows the layout's fit (not a zoom or pan of the reader's or a hanging step's)."""
        return self._fit is not None

    def scale_to_fit(self, height_mm: float, width_mm: float) -> float:
        """The mm per screen pixel that fits ``height_mm`` x ``width_mm`` into this viewport."""
        view_w, view_h = max(self.viewbox.width(), 1.0), max(self.viewbox.height(), 1.0)
        return max(height_mm / view_h, width_mm / view_w)

    def _apply_fit(self) -> None:
        if self.image is None or self._fit is None:
            return
        height_mm, width_mm, shared = self._fit
        sy, sx = self.image.pixel_spacing or (1.0, 1.0)
        view_w, view_h = max(self.viewbox.width(), 1.0), max(self.viewbox.height(), 1.0)
        mm_per_screen_pixel = max(self.scale_to_fit(height_mm, width_mm), shared or 0.0)
        rows, cols = view_h * mm_per_screen_pixel / sy, view_w * mm_per_screen_pixel / sx
        wall = self.chest_wall_x()
        x0, x1 = (wall - cols, wall) if self.view.laterality == Laterality.RIGHT else (wall, wall + cols)
        self.viewbox.setRange(xRange=(x0, x1), yRange=(0, rows), padding=0.0)

    def _refit(self, *_args) -> None:
        self._apply_fit()
        self._place_labels()
        self._lay_out_region_labels()  # beside their boxes, off the corner texts just moved
        self.viewportResized.emit()

    def _on_user_range(self, *_args) -> None:
        self._fit = None  # the reader took over the zoom: layouts no longer refit this view
        self.rangeChangedByUser.emit(self.view)

    def reset_view(self) -> None:
        if self.image is None:
            return
        h, w = self.physical_size()
        self.show_extent(h, w)

    def item_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        return (x0, x1), (y0, y1)

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel (1.0 = native resolution)."""
        if self.image is None:
            return 1.0
        (x0, x1), _ = self.item_range()
        return max(self.viewbox.width(), 1.0) / max(x1 - x0, 1e-9)

    def distance_range_from_wall(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Visible x range as distances (mm) outward from the chest wall, and the y range (mm); a row's two
        views hang back to back, so linking them means sharing these, not raw x."""
        (x0, x1), (y0, y1) = self.item_range()
        sy, sx = (self.image.pixel_spacing if self.image and self.image.pixel_spacing else (1.0, 1.0))
        wall = self.chest_wall_x()
        sign = -1.0 if self.view.laterality == Laterality.RIGHT else 1.0
        d0, d1 = sorted(((x0 - wall) * sign * sx, (x1 - wall) * sign * sx))
        return (d0, d1), (y0 * sy, y1 * sy)

    def set_distance_range(self, xd: tuple[float, float], ymm: tuple[float, float]) -> None:
        if self.image is None:
            return
        sy, sx = self.image.pixel_spacing or (1.0, 1.0)
        wall = self.chest_wall_x()
        if self.view.laterality == Laterality.RIGHT:
            x0, x1 = wall - xd[1] / sx, wall - xd[0] / sx
        else:
            x0, x1 = wall + xd[0] / sx, wall + xd[1] / sx
        self._fit = None
        self.viewbox.setRange(xRange=(x0, x1), yRange=(ymm[0] / sy, ymm[1] / sy), padding=0.0)

    def zoom_by(self, factor: float) -> None:
        """Zoom about the chest wall's edge, at the height of the view's centre (the keyboard's + and -): the
        breast hangs against the chest wall, and zooming about the pane's centre pushed it out past the divider
        (both CC views black at 0.34×). Linked views zoomed alike stay linked: their shared distances from the
        chest wall scale about 0."""
        if self.image is None:
            return
        (x0, x1), (y0, y1) = self.item_range()
        wall, cy = self.chest_wall_x(), (y0 + y1) / 2
        self._fit = None
        self.viewbox.setRange(xRange=(wall - (wall - x0) / factor, wall + (x1 - wall) / factor),
                              yRange=(cy - (cy - y0) / factor, cy + (y1 - cy) / factor), padding=0.0)

    def zoom_to_box(self, box: tuple[float, float, float, float], margin: float = 1.0) -> None:
        """Centre and zoom on a (top, left, bottom, right) box of the original frame."""
        top, left, bottom, right = box
        corners = [self.image_item.mapToParent(QPointF(x, y)) for x, y in ((left, top), (right, bottom))]
        xs, ys = sorted(c.x() for c in corners), sorted(c.y() for c in corners)
        mx, my = (xs[1] - xs[0]) * margin, (ys[1] - ys[0]) * margin
        self._fit = None
        self.viewbox.setRange(xRange=(xs[0] - mx, xs[1] + mx), yRange=(ys[0] - my, ys[1] + my), padding=0.0)
        self.rangeChangedByUser.emit(self.view)

    # ------------------------------------------------------------------------------------ window / level

    def presets(self) -> list[DisplayWindow]:
        if self.image is None:
            return []
        auto = self.exam_window.window if self.exam_window is not None else self.image.auto_window()
        return list(self.image.windows) + [auto]

    def first_preset(self) -> int:
        """The window a view starts on: the file's first, or the auto window (none in the file, or not every
        view of the study has one)."""
        return 0 if self.image is not None and self.image.windows and self.file_window else -1

    def apply_preset(self, index: int) -> None:
        """Apply the file's window ``index`` (or the auto window for -1 or past the end)."""
        if self.image is None:
            return
        presets = self.presets()
        window = presets[index] if 0 <= index < len(presets) else presets[-1]
        self._preset_index = index if 0 <= index < len(presets) else len(presets) - 1
        name = window.explanation or ("VOI LUT" if self.image.voi_lut_dataset is not None else "")
        if window.function in ("SIGMOID",) or (self.image.voi_lut_dataset is not None and index == 0):
            shown = self.image.display_image(None if self.image.voi_lut_dataset is not None else window)
            if self.image.invert_display:  # display_image already inverted; keep the LUT plain
                shown = 1.0 - shown
            self.image_item.setImage(shown, autoLevels=False)
            self._rendered = True
            self.window = WindowState(0.5, 1.0, name or window.function.lower())
        else:
            self.image_item.setImage(self.image.pixels, autoLevels=False)
            self._rendered = False
            self.window = WindowState(window.center, window.width, name)
        self._apply_window()

    def cycle_preset(self) -> None:
        self.apply_preset((self._preset_index + 1) % max(1, len(self.presets())))

    def auto_window(self) -> None:
        self.apply_preset(len(self.presets()) - 1)

    def set_window(self, center: float, width: float, name: str = "manual") -> None:
        self.window = WindowState(center, max(width, 1e-6), name)
        self._apply_window()

    def toggle_invert(self) -> None:
        self.set_invert(not self._user_invert)

    def set_invert(self, on: bool) -> None:
        """The reader's own invert (on top of what the file says), on or off."""
        self._user_invert = on
        self._apply_window()

    @property
    def user_inverted(self) -> bool:
        return self._user_invert

    @property
    def inverted(self) -> bool:
        """True when low values are drawn white on screen."""
        return bool(self.image is not None and self.image.invert_display) != self._user_invert

    def _apply_window(self) -> None:
        low = self.window.center - self.window.width / 2
        high = self.window.center + self.window.width / 2
        self.image_item.setLevels((low, high))
        ramp = np.arange(256, dtype=np.uint8)
        # a rendered image is already inverted where the file says so: only the reader's own invert remains
        invert = self._user_invert if self._rendered else self.inverted
        self.image_item.setLookupTable(ramp[::-1] if invert else ramp)
        self._update_readout()
        if self.magnifier.isVisible() and self._lens_at is not None:  # the lens shows the new window too (it
            self.update_magnifier(*self._lens_at)  # kept the pixels of before; a right-drag redraws it each step)

    def _on_window_drag(self, dx: float, dy: float) -> None:
        """Right-drag: horizontal changes the width, vertical the level, continuously from where they are.
        A VOI-rendered preset (SIGMOID, VOI LUT) is first replaced by the stored pixels under the auto window,
        since those curves have no width or centre to adjust."""
        if self.image is None:
            return
        self._unrender()
        if self.exam_window is not None:  # the same drag moves as far through the values on every image
            step = self.exam_window.drag_step
            self.set_window(self.window.center + dy * step, max(self.window.width + dx * step, 1.0))
        else:
            span = max(self.window.width, 1.0)
            self.set_window(self.window.center + dy * span / 200.0, self.window.width * (1.0 + dx / 200.0))
        self.windowDraggedTo.emit(self.view, self.window.center, self.window.width)

    def _unrender(self) -> None:
        """Back to the stored pixels under the auto window (a VOI-rendered preset has no width or centre)."""
        if self._rendered:
            self.image_item.setImage(self.image.pixels, autoLevels=False)
            self._rendered = False
            auto = self.presets()[-1]
            self.window = WindowState(auto.center, auto.width, "manual")

    def follow_window(self, center: float, width: float) -> None:
        """Take the window another view of the exam was dragged to (linked window/level)."""
        if self.image is None:
            return
        self._unrender()
        self.set_window(center, width, "linked")

    def _update_readout(self) -> None:
        if self.image is None:
            self.readout.hide()
            return
        if self._rendered:
            parts = [f"{self.window.name or 'VOI'} (rendered)"]
        else:
            parts = [f"W {self.window.width:.0f}  L {self.window.center:.0f}"]
            if self.window.name:
                parts.append(self.window.name)
        parts.append(f"zoom {self.zoom_factor():.2f}×")
        if self.inverted != bool(self.image.invert_display):
            parts.append("inverted")
        self._readout_parts = parts
        self.readout.show()
        self._place_labels()

    # ---------------------------------------------------------------------------------------------- overlays

    def _remove(self, item) -> None:
        item.setParentItem(None)
        if item.scene() is not None:
            item.scene().removeItem(item)

    def _clear_overlays(self) -> None:
        for item in (list(self._heat_items.values()) + self._boxes + self._labels + self._outlines + self._leaders
                     + self._unanalysed):
            self._remove(item)
        self._unanalysed.clear()
        self._leaders.clear()
        self._heat_items.clear()
        self._boxes.clear()
        self._labels.clear()
        self._outlines.clear()

    def set_result(self, result: EntryViewResult | None, textures: dict[int, Texture] | None = None,
                   classes: tuple[str, ...] = (), operating_point: float | None = None) -> None:
        """Draw one entry's overlays; ``textures`` (layer index -> Texture) are prepared off the GUI thread.
        Regions by ``app.cad_marks``: those reaching ``operating_point`` (the top ones without one), never
        one lying mostly outside the breast; the others dimmed, shown with "all regions"."""
        self._clear_overlays()
        self.result = result
        self.regions_note = ""
        if result is None or self.image is None:
            return
        from app.overlay_images import layer_texture  # noqa: PLC0415

        for index, layer in enumerate(result.layers):
            texture = (textures or {}).get(index) or layer_texture(layer)
            item = pg.ImageItem(texture.values, levels=(0, 255), autoDownsample=True)
            item.setLookupTable(layer_lut(layer.colormap, class_colour(layer.class_name or "", classes)))
            item.setParentItem(self.image_item)
            a = texture.to_original
            # texture pixel (x = col, y = row) -> original (x, y): Qt's QTransform(m11, m12, m21, m22, dx, dy)
            item.setTransform(QTransform(a[1, 1], a[0, 1], a[1, 0], a[0, 0], a[1, 2], a[0, 2]))
            item.setZValue(10)
            self._heat_items[index] = item
        from app.cad_marks import (  # noqa: PLC0415
            RegionShown,
            analysed_window,
            breast_of,
            classify_regions,
            mask_outline,
            unanalysed_centre,
        )

        tissue = breast_of(self.image)
        window = analysed_window(result.frame, tissue)
        if window is not None:  # where a map stops short of the breast: not analysed, and drawn so
            self._unanalysed = unanalysed_items(window, tissue.shape)
            for item in self._unanalysed:
                item.setParentItem(self.image_item)
                item.setZValue(15)  # over the maps, under the regions
            row, col = unanalysed_centre(window, tissue)
            # the words run from their point into the image: centred on a band by the chest wall, which meets
            # the view's edge at the midline, half of them were cut off ("not analy")
            screen_left = (col < tissue.shape[1] / 2) != bool(self.image.horizontal_flip)
            label = pg.TextItem("not analysed", color=(235, 235, 235), anchor=(0.0 if screen_left else 1.0, 0.5))
            label.setParentItem(self.label_layer)
            label.setPos(self.label_layer.mapFromItem(self.image_item, QPointF(col, row)))
            label.setZValue(15)
            self._unanalysed.append(label)
        verdicts, self.regions_note = classify_regions(result.regions, operating_point, tissue)
        drawn = [(region, verdict) for region, verdict in verdicts if verdict != RegionShown.OUTSIDE]
        # a detection's label says its class and score; drawn dimmed, "all regions", only its rank: dozens of
        # "benign 6%" overprinted. Placed on screen beside its box by _lay_out_region_labels, at every zoom.
        labels = [region_label(r.rank, detection_text(r) if r.mask is not None and v == RegionShown.SHOWN else "")
                  for r, v in drawn]
        polygons = [mask_outline(r.mask) if r.mask is not None else None for r, _v in drawn]
        for (region, verdict), label, polygon in zip(drawn, labels, polygons, strict=True):
            top, left, bottom, right = region.box_original
            tooltip = region.caption() + (f" (from {region.source})" if region.source else "")
            if verdict == RegionShown.BELOW:
                tooltip += f" — {verdict.value}"
            box = RegionBoxItem(QRectF(left, top, right - left, bottom - top), region.rank, self._on_box_hover, tooltip)
            box.setParentItem(self.image_item)
            box.setZValue(20)
            box.below = verdict == RegionShown.BELOW
            self._boxes.append(box)
            if region.mask is not None:  # a detection: the outline of its mask, where the finding is
                outline = detection_outline(polygon, tooltip)
                outline.setParentItem(self.image_item)
                outline.setZValue(19)
                outline.below = box.below
                self._outlines.append(outline)
            label.below = box.below
            label.setAnchor((0, 0))  # the text is drawn unmirrored: its top left at the place's
            label.setParentItem(self.label_layer)
            label.setZValue(21)
            self._labels.append(label)
        self._refresh_overlay_visibility()  # which are drawn, then where their labels go (marks unchanged)

    def _on_box_hover(self, rank: int) -> None:
        self.patchHovered.emit(self.view, rank)

    def highlight_patch(self, rank: int) -> None:
        for box in self._boxes:
            box.set_highlight(box.rank == rank)

    def set_overlay_options(self, options: OverlayOptions) -> None:
        self._options = options
        self._refresh_overlay_visibility()

    def _refresh_overlay_visibility(self) -> None:
        options = self._options
        layers = self.result.layers if self.result is not None else ()
        for index, item in self._heat_items.items():
            layer = layers[index]
            chosen = layer.name == options.layer if options.layer else layer.primary
            item.setVisible(options.visible and chosen and (layer.class_name in options.classes
                                                             or layer.class_name is None))
            item.setOpacity(options.opacity)
        for item in self._unanalysed:
            item.setVisible(options.visible)
        for item in self._boxes + self._labels + self._outlines:
            below = getattr(item, "below", False)
            item.setVisible(options.visible and options.regions and (options.all_regions or not below))
            item.setOpacity(0.35 if below else 1.0)
        self._lay_out_region_labels()  # a label is drawn only where its box is on screen

    def _lay_out_region_labels(self) -> None:
        """Each drawn region's label beside its box, in viewport pixels (``app.cad_marks.place_labels``:
        touching the box, over no box, apart from each other, off the view's corner texts and notes badge,
        inside the viewport, over the image where a place there is free), laid out again at every zoom
        and pan: a label placed in image pixels drifted from its box as the view zoomed, and went off screen
        when zoomed to it. A label whose box is drawn but off screen is hidden."""
        for leader in self._leaders:
            self._remove(leader)
        self._leaders.clear()
        if self.image is None or not self._labels:
            return
        from app.cad_marks import Rect, place_labels  # noqa: PLC0415

        self.viewbox.updateMatrix()  # pyqtgraph applies a new range lazily, at the next paint
        to_viewport = self.graphics.viewportTransform()
        viewport = self.graphics.viewport()
        room = QRectF(0, 0, viewport.width(), viewport.height())
        image = to_viewport.mapRect(self.image_item.sceneBoundingRect())
        shown = []
        for box, label in zip(self._boxes, self._labels, strict=True):
            rect = to_viewport.mapRect(box.mapRectToScene(box.rect()))
            label.setVisible(box.isVisible() and rect.intersects(room))
            if label.isVisible():
                shown.append((label, rect, label.boundingRect()))  # screen pixels: a text item ignores the zoom
        if not shown:
            return
        shown.sort(key=lambda item: item[0].below)  # the dimmed ones ("all regions") take the places left
        reserved = []
        for text in (self.marker, self.corner, self.readout, self.badge):  # the view's own texts stay readable
            if not text.isHidden() and text.text():
                corner = viewport.mapFrom(self.graphics, text.geometry().topLeft())
                reserved.append(Rect(corner.x() - 2, corner.y() - 2, text.width() + 4, text.height() + 4))
        for words in self._unanalysed[2:]:  # "not analysed" stays readable too
            if words.isVisible():
                place = to_viewport.mapRect(words.mapRectToScene(words.boundingRect()))
                reserved.append(Rect(place.left(), place.top(), place.width(), place.height()))
        places = place_labels([Rect(r.left(), r.top(), r.width(), r.height()) for _l, r, _s in shown], (0.0, 0.0),
                              nipple_left=self.faces_left_on_screen, bounds=(room.width(), room.height()),
                              reserved=reserved, sizes=[(size.width(), size.height()) for _l, _r, size in shown],
                              within=Rect(image.left(), image.top(), image.width(), image.height()))
        to_scene, _ = to_viewport.inverted()
        for (label, box, size), place in zip(shown, places, strict=True):
            label.setPos(self.label_layer.mapFromScene(to_scene.map(QPointF(place.x, place.y))))
            placed = QRectF(place.x, place.y, size.width(), size.height())
            if _gap(placed, box) > LEADER_GAP:  # set apart in a cluster: a thin line says whose label it is
                self._lead(label, placed, box, to_scene)

    def _lead(self, label: pg.TextItem, placed: QRectF, box: QRectF, to_scene) -> None:
        """A line, in the label's colour, from the label's edge to the nearest point of its box (viewport
        pixels in, drawn in the label layer)."""
        start = _nearest(placed, box.center())
        end = _nearest(box, start)
        line = QGraphicsLineItem(QLineF(self.label_layer.mapFromScene(to_scene.map(start)),
                                        self.label_layer.mapFromScene(to_scene.map(end))))
        pen = QPen(label.color)
        pen.setCosmetic(True)
        line.setPen(pen)
        line.setParentItem(self.label_layer)
        line.setZValue(20.5)
        line.setOpacity(label.opacity())
        self._leaders.append(line)

    def heatmap_item(self, class_name: str, layer: str | None = None) -> pg.ImageItem | None:
        """The drawn item of a class's primary layer (or of the layer called ``layer``)."""
        if self.result is None:
            return None
        for index, candidate in enumerate(self.result.layers):
            if candidate.class_name == class_name and (candidate.name == layer if layer else candidate.primary):
                return self._heat_items.get(index)
        return None

    def patch_boxes(self) -> list[RegionBoxItem]:
        return list(self._boxes)

    def detection_outlines(self) -> list:
        """The drawn outlines of the detections' masks (empty for families without instance masks)."""
        return list(self._outlines)

    # ------------------------------------------------------------------------------------ tools

    def set_tool(self, tool: str) -> None:
        self.viewbox.tool = tool

    def _on_ruler(self, start, current, finished: bool) -> None:
        if self.image is None:
            return
        # on the image: the line is drawn only there (the image clips it), and a length measured out to the
        # cursor beside the image matched no line on screen (207 mm written beside a 70 mm line)
        a, b = (self._on_image(self.image_item.mapFromScene(point)) for point in (start, current))
        if self._active_ruler is None:
            self._active_ruler = RulerItem(self.image_item, a, self.image.pixel_spacing, self.label_layer)
            self._rulers.append(self._active_ruler)
        self._active_ruler.update(b)
        self.clamp_label(self._active_ruler.label, b)
        if finished:
            self._active_ruler = None

    def _on_image(self, point: QPointF) -> QPointF:
        """``point`` (image item frame) moved onto the image's pixels where it lies beyond them."""
        rows, cols = self.image.pixels.shape[:2]
        return QPointF(min(max(point.x(), 0.0), float(cols)), min(max(point.y(), 0.0), float(rows)))

    def clamp_label(self, label: pg.TextItem, at: QPointF | None = None, prefer: tuple[int, int] = (0, 1)) -> None:
        """Anchor a label at ``at`` (image item frame; its own position by default) on its preferred side
        (``prefer``: the anchor, (0, 1) above right of the point), or on another side of the point where the
        preferred one would cut it at the viewport's edge or lay it over the view's own texts (the marker, the
        study lines, the window/level readout, the notes badge: a measurement ending near a corner hid them)."""
        at = label.pos() if at is None else at
        point = self.item_to_widget(at.x(), at.y())
        rect = label.boundingRect()  # screen pixels: a text item ignores the view's zoom
        slack = 2.0  # pixels of rounding: a label placed flush with an image at the viewport's edge stays put
        room = QRectF(-slack, -slack, self.graphics.width() + 2 * slack, self.graphics.height() + 2 * slack)
        offset = self.graphics.viewport().pos()  # the texts lie on the view, the point on its viewport
        texts = [QRectF(text.geometry()).translated(-offset.x(), -offset.y())
                 for text in (self.marker, self.corner, self.readout, self.badge) if not text.isHidden() and text.text()]

        def placed(anchor: tuple[int, int]) -> QRectF:
            return QRectF(point.x() - anchor[0] * rect.width(), point.y() - anchor[1] * rect.height(),
                          rect.width(), rect.height())

        ax, ay = prefer
        sides = [(ax, ay), (1 - ax, ay), (ax, 1 - ay), (1 - ax, 1 - ay)]
        inside = [side for side in sides if room.contains(placed(side))]
        clear = [side for side in inside if not any(placed(side).intersects(text) for text in texts)]
        if clear or inside:
            label.setAnchor((clear or inside)[0])
            return
        # wider or taller than the room left on every side: flipped only where the preferred side cuts it
        point_x, point_y = point.x(), point.y()
        if ax == 0 and point_x + rect.width() > self.graphics.width() + slack:
            ax = 1
        elif ax == 1 and point_x - rect.width() < -slack:
            ax = 0
        if ay == 1 and point_y - rect.height() < -slack:
            ay = 0
        elif ay == 0 and point_y + rect.height() > self.graphics.height() + slack:
            ay = 1
        label.setAnchor((ax, ay))

    def clamp_labels(self) -> None:
        """Every label drawn on the image (region numbers, the reader's marks, measurements) kept inside the
        viewport after a zoom or pan."""
        if self.image is None:
            return
        self._lay_out_region_labels()
        for mark in self._marks:
            self.clamp_label(mark.label)
        for ruler in self._rulers:
            self.clamp_label(ruler.label)

    def rulers(self) -> list[RulerItem]:
        return list(self._rulers)

    def clear_rulers(self) -> None:
        for ruler in self._rulers:
            ruler.remove()
        self._rulers.clear()
        self._active_ruler = None

    def _on_mark_click(self, scene_pos) -> None:
        if self.image is None:
            return
        local = self.image_item.mapFromScene(scene_pos)
        h, w = self.image.pixels.shape
        if 0 <= local.y() < h and 0 <= local.x() < w:
            self.markRequested.emit(self.view, float(local.y()), float(local.x()))

    def set_marks(self, marks: list) -> None:
        """Draw the reader's marks (objects with row, col, label, confidence) of this view."""
        for item in self._marks:
            item.remove()
        self._marks = [MarkItem(self.image_item, m.row, m.col, f"{m.label} ({m.confidence}/5)"
                                + (", after AI" if getattr(m, "after_ai", False) else ""), self.label_layer)
                       for m in marks
                       if m.view == self.view.value] if self.image is not None else []
        for mark in self._marks:  # the regions' labels stay where they are
            self.clamp_label(mark.label)

    def breast_axis(self) -> BreastAxis | None:
        if self.image is None:
            return None
        if self._axis is None:
            faces_right = (self.view.laterality == Laterality.LEFT) != self.image.horizontal_flip
            self._axis = breast_axis(self.image.breast(), faces_right, self.image.pixel_spacing)
        return self._axis

    def show_band(self, band: tuple[float, float, float] | None) -> None:
        if band is None or self.image is None:
            self.band.hide_band()
            return
        self.band.show_band(*band, float(self.image.pixels.shape[0]))

    # ------------------------------------------------------------------------------------ cursor, magnifier

    def show_linked_cursor(self, point: tuple[float, float] | None, approximate: bool = False) -> None:
        """Mark (row, col) as where the linked view's cursor is; None hides the mark."""
        if point is None or self.image is None:
            self.linked_cursor.hide()
            return
        self.linked_cursor.show_at(point[0], point[1], approximate)

    def magnify_at(self, point: tuple[float, float] | None, magnification: int) -> None:
        """The lens over (row, col), as if the cursor were there (the linked view's lens follows the reader's)."""
        if point is None or self.image is None:
            self.set_magnifier(False)
            return
        self.magnification = magnification
        at = self.item_to_widget(point[1], point[0])
        self.update_magnifier(at, point)

    def item_to_widget(self, x: float, y: float) -> QPoint:
        self.viewbox.updateMatrix()  # pyqtgraph applies a new range lazily, at the next paint
        scene = self.image_item.mapToScene(QPointF(x, y))
        return self.graphics.mapFromScene(scene)

    def set_magnifier(self, on: bool) -> None:
        self._magnifier_on = on
        if not on:
            self.hide_lens()

    def hide_lens(self) -> None:
        """The lens taken down (the magnifier stays on: it comes back where the cursor moves next)."""
        self.magnifier.hide()
        self.magnifier_caption.hide()

    def cycle_magnification(self) -> int:
        self.magnification = MAGNIFICATIONS[(MAGNIFICATIONS.index(self.magnification) + 1) % len(MAGNIFICATIONS)]
        return self.magnification

    def leaveEvent(self, event):  # noqa: N802 - Qt override
        # the readout said a pixel of a view the pointer had left (one no longer on screen, the gallery under it),
        # and the lens stayed where the pointer had left, going stale (the magnifier stays on: it comes back here)
        self.cursorInfo.emit("")
        self.hide_lens()
        self.pointerLeft.emit()
        super().leaveEvent(event)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.image is None:
            return
        local = self.image_item.mapFromScene(scene_pos)
        col, row = int(np.floor(local.x())), int(np.floor(local.y()))
        h, w = self.image.pixels.shape
        if 0 <= row < h and 0 <= col < w:
            value = self.image.pixels[row, col]
            self.cursorInfo.emit(f"{self.view.value}  row {row}  col {col}  value {value:g}")
            self.pointed.emit(self.view, float(local.y()), float(local.x()))
        else:  # beside the image: no pixel, and no readout of the last one
            self.cursorInfo.emit("")
        if self._magnifier_on:
            self.update_magnifier(self.graphics.mapFromScene(scene_pos), (float(local.y()), float(local.x())))

    def magnifier_picture(self, centre: tuple[float, float], size: int = 240) -> np.ndarray:
        """What the magnifier shows around ``centre`` (row, col) at the current magnification and window."""
        displayed = self.image_item.image
        low, high = self.image_item.getLevels()
        invert = self._user_invert if self._rendered else self.inverted
        return magnified(displayed, centre, (float(low), float(high)), invert, bool(self.image.horizontal_flip),
                         size, self.magnification)

    def update_magnifier(self, at: QPoint, centre: tuple[float, float], size: int = 240) -> None:
        self._lens_at = (at, centre, size)
        picture = self.magnifier_picture(centre, size)
        image = QImage(picture.data, picture.shape[1], picture.shape[0], picture.strides[0],
                       QImage.Format.Format_Grayscale8)
        self.magnifier.setPixmap(QPixmap.fromImage(image.copy()))
        self.magnifier.resize(size + 4, size + 4)
        # centred on the cursor, as a loupe is held over the film (it may reach past the viewport's edge)
        self.magnifier.move(at.x() - self.magnifier.width() // 2, at.y() - self.magnifier.height() // 2)
        self.magnifier.show()
        self.magnifier_caption.setText(f"×{self.magnification} native")
        self.magnifier_caption.adjustSize()
        self.magnifier_caption.move(self.magnifier.x() + 4, self.magnifier.y() + 4)
        self.magnifier_caption.show()
        self.magnifier_caption.raise_()
