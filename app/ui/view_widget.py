"""One view slot of the hanging: the image, window/level, zoom/pan, heatmaps, patch boxes, markers.

Coordinates: the image item's local frame is the ORIGINAL image frame of the view (x = column,
y = row, pixel (i, j) covering [j, j+1) x [i, i+1)). An image stored mirrored is shown mirrored back
by the image item's transform; every overlay is a child of the image item, so it follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPen, QTransform
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QVBoxLayout, QWidget

from inference.exam import DisplayWindow, ViewImage
from app.ui.overlay_images import CLASS_COLOURS, HEATMAP_UPSAMPLE, heatmap_rgba, smooth_heatmap
from inference.pipeline import ViewResult
from inference.views import Laterality, View

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

PATCH_PEN = QColor(255, 210, 0)


class ReadingViewBox(pg.ViewBox):
    """Left-drag pans, wheel zooms, right-drag windows (horizontal = width, vertical = level)."""

    windowDragged = Signal(float, float)
    doubleClicked = Signal()

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.setMouseMode(pg.ViewBox.PanMode)

    def mouseDragEvent(self, event, axis=None):  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.RightButton:
            event.accept()
            delta = event.screenPos() - event.lastScreenPos()
            self.windowDragged.emit(float(delta.x()), float(delta.y()))
            return
        super().mouseDragEvent(event, axis)

    def mouseClickEvent(self, event):  # noqa: N802 - Qt override
        if event.double() and event.button() == Qt.MouseButton.LeftButton:
            event.accept()
            self.doubleClicked.emit()
            return
        super().mouseClickEvent(event)


class PatchBoxItem(QGraphicsRectItem):
    """A retrieved patch drawn on the image; reports hovering."""

    def __init__(self, rect: QRectF, rank: int, on_hover) -> None:
        super().__init__(rect)
        self.rank = rank
        self._on_hover = on_hover
        self.setAcceptHoverEvents(True)
        self.set_highlight(False)

    def set_highlight(self, on: bool) -> None:
        pen = QPen(QColor(255, 255, 255) if on else PATCH_PEN)
        pen.setCosmetic(True)
        pen.setWidthF(3.0 if on else 1.6)
        self.setPen(pen)

    def hoverEnterEvent(self, event):  # noqa: N802 - Qt override
        self.set_highlight(True)
        self._on_hover(self.rank)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):  # noqa: N802 - Qt override
        self.set_highlight(False)
        self._on_hover(0)
        super().hoverLeaveEvent(event)


@dataclass
class WindowState:
    center: float
    width: float


class MammoViewWidget(QWidget):
    """One view: shows a ViewImage, optionally with a ViewResult's overlays.

    Signals:
        doubleClicked(View): toggle single-view.
        cursorInfo(str): position and value under the cursor.
        rangeChangedByUser(View): the user zoomed or panned (for linked views).
        patchHovered(View, int): rank of the hovered patch box (0 = none).
    """

    doubleClicked = Signal(object)
    cursorInfo = Signal(str)
    rangeChangedByUser = Signal(object)
    patchHovered = Signal(object, int)

    def __init__(self, view: View, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.setObjectName(f"view_{view.value}")
        self.image: ViewImage | None = None
        self.result: ViewResult | None = None
        self.window = WindowState(0.0, 1.0)
        self._user_invert = False
        self._preset_index = -1
        self._heat_items: dict[int, pg.ImageItem] = {}
        self._boxes: list[PatchBoxItem] = []
        self._labels: list[pg.TextItem] = []
        self._class_visible = {0: True, 1: True}
        self._overlays_visible = True
        self._patches_visible = True
        self._opacity = 0.45
        self._magnifier_on = False

        self.graphics = pg.GraphicsView()
        self.graphics.setBackground("k")
        self.viewbox = ReadingViewBox()
        self.graphics.setCentralItem(self.viewbox)
        self.image_item = pg.ImageItem(autoDownsample=True)
        # overlays are children of the image: clip them to it (the model window's padding is not image)
        self.image_item.setFlag(self.image_item.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.viewbox.addItem(self.image_item)
        self.viewbox.windowDragged.connect(self._on_window_drag)
        self.viewbox.doubleClicked.connect(lambda: self.doubleClicked.emit(self.view))
        self.viewbox.sigRangeChangedManually.connect(lambda *_: self.rangeChangedByUser.emit(self.view))
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.graphics)

        self.marker = QLabel(self.graphics)
        self.marker.setObjectName("orientationMarker")
        self.marker.setStyleSheet("color: #f0f0f0; font: bold 15px; background: transparent;")
        self.notes = QLabel(self.graphics)
        self.notes.setObjectName("warningsLabel")
        self.notes.setStyleSheet("color: #e0b050; font: 11px; background: rgba(0,0,0,120); padding: 2px;")
        self.notes.setWordWrap(True)
        self.empty = QLabel(f"No {view.value} image in this exam", self.graphics)
        self.empty.setObjectName("emptySlot")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #8a8a8a; font: 15px; border: 1px dashed #555;")
        self.magnifier = QLabel(self.graphics)
        self.magnifier.setObjectName("magnifier")
        self.magnifier.setStyleSheet("border: 2px solid #c0c0c0; background: black;")
        self.magnifier.hide()
        self._update_marker()

    # ---------------------------------------------------------------------------------------------- content

    @property
    def faces_left_on_screen(self) -> bool:
        """Right views hang with the nipple to the left (chest wall at the middle of the screen)."""
        return self.view.laterality == Laterality.RIGHT

    def set_image(self, image: ViewImage | None) -> None:
        self.image = image
        self.result = None
        self._clear_overlays()
        self.empty.setVisible(image is None)
        if image is None:
            self.image_item.clear()
            self.notes.hide()
            return
        self.image_item.setImage(image.pixels, autoLevels=False)
        transform = QTransform()
        if image.horizontal_flip:  # stored mirrored: mirror back for the standard hanging
            transform.translate(image.pixels.shape[1], 0)
            transform.scale(-1, 1)
        self.image_item.setTransform(transform)
        if image.pixel_spacing:
            self.viewbox.setAspectLocked(True, ratio=image.pixel_spacing[0] / image.pixel_spacing[1])
        self._preset_index = 0 if image.windows else -1
        self.apply_preset(self._preset_index)
        notes = list(image.warnings)
        self.notes.setText("\n".join(f"⚠ {n}" for n in notes))
        self.notes.setToolTip("\n".join(notes))
        self.notes.setVisible(bool(notes))
        self._update_marker()
        self.reset_view()

    def _update_marker(self) -> None:
        side = "R" if self.view.laterality == Laterality.RIGHT else "L"
        text = f"{side} {self.view.projection.value}"
        if self.image is not None and self.image.view_label and self.image.view_label not in ("CC", "MLO"):
            text += f"  ({self.image.view_label})"
        self.marker.setText(text)
        self.marker.adjustSize()
        self._place_labels()

    def resizeEvent(self, event):  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._place_labels()

    def _place_labels(self) -> None:
        size = self.graphics.size()
        # the marker sits on the outer (nipple) side, away from the chest wall in the middle
        x = 8 if self.faces_left_on_screen else size.width() - self.marker.width() - 8
        self.marker.move(max(0, x), 6)
        self.notes.setFixedWidth(max(120, min(360, size.width() - 16)))
        self.notes.adjustSize()
        self.notes.move(8, max(0, size.height() - self.notes.height() - 6))
        self.empty.setGeometry(10, 32, max(10, size.width() - 20), max(10, size.height() - 42))
        self.marker.raise_()

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

    def show_extent(self, height_mm: float, width_mm: float) -> None:
        """Fit ``height_mm`` x ``width_mm`` (the largest image of the row) into the viewport at one scale,
        anchored at the top and at the chest wall, so that a row's two views meet back to back."""
        if self.image is None:
            return
        sy, sx = self.image.pixel_spacing or (1.0, 1.0)
        view_w, view_h = max(self.viewbox.width(), 1.0), max(self.viewbox.height(), 1.0)
        mm_per_screen_pixel = max(height_mm / view_h, width_mm / view_w)
        rows, cols = view_h * mm_per_screen_pixel / sy, view_w * mm_per_screen_pixel / sx
        wall = self.chest_wall_x()
        x0, x1 = (wall - cols, wall) if self.view.laterality == Laterality.RIGHT else (wall, wall + cols)
        self.viewbox.setRange(xRange=(x0, x1), yRange=(0, rows), padding=0.0)

    def reset_view(self) -> None:
        if self.image is None:
            return
        h, w = self.physical_size()
        self.show_extent(h, w)

    def item_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        return (x0, x1), (y0, y1)

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
        self.viewbox.setRange(xRange=(x0, x1), yRange=(ymm[0] / sy, ymm[1] / sy), padding=0.0)

    def zoom_to_box(self, box: tuple[float, float, float, float], margin: float = 1.0) -> None:
        """Centre and zoom on a (top, left, bottom, right) box of the original frame."""
        top, left, bottom, right = box
        corners = [self.image_item.mapToParent(QPointF(x, y)) for x, y in ((left, top), (right, bottom))]
        xs, ys = sorted(c.x() for c in corners), sorted(c.y() for c in corners)
        mx, my = (xs[1] - xs[0]) * margin, (ys[1] - ys[0]) * margin
        self.viewbox.setRange(xRange=(xs[0] - mx, xs[1] + mx), yRange=(ys[0] - my, ys[1] + my), padding=0.0)
        self.rangeChangedByUser.emit(self.view)

    # ------------------------------------------------------------------------------------ window / level

    def presets(self) -> list[DisplayWindow]:
        if self.image is None:
            return []
        return list(self.image.windows) + [self.image.auto_window()]

    def apply_preset(self, index: int) -> None:
        """Apply the file's window ``index`` (or the auto window for -1 or past the end)."""
        if self.image is None:
            return
        presets = self.presets()
        window = presets[index] if 0 <= index < len(presets) else presets[-1]
        self._preset_index = index if 0 <= index < len(presets) else len(presets) - 1
        if window.function in ("SIGMOID",) or (self.image.voi_lut_dataset is not None and index == 0):
            shown = self.image.display_image(None if self.image.voi_lut_dataset is not None else window)
            if self.image.invert_display:  # display_image already inverted; keep the LUT plain
                shown = 1.0 - shown
            self.image_item.setImage(shown, autoLevels=False)
            self.window = WindowState(0.5, 1.0)
        else:
            self.image_item.setImage(self.image.pixels, autoLevels=False)
            self.window = WindowState(window.center, window.width)
        self._apply_window()

    def cycle_preset(self) -> None:
        self.apply_preset((self._preset_index + 1) % max(1, len(self.presets())))

    def auto_window(self) -> None:
        self.apply_preset(len(self.presets()) - 1)

    def set_window(self, center: float, width: float) -> None:
        self.window = WindowState(center, max(width, 1e-6))
        self._apply_window()

    def toggle_invert(self) -> None:
        self._user_invert = not self._user_invert
        self._apply_window()

    @property
    def inverted(self) -> bool:
        """True when low values are drawn white on screen."""
        return bool(self.image is not None and self.image.invert_display) != self._user_invert

    def _apply_window(self) -> None:
        low = self.window.center - self.window.width / 2
        high = self.window.center + self.window.width / 2
        self.image_item.setLevels((low, high))
        ramp = np.arange(256, dtype=np.uint8)
        self.image_item.setLookupTable(ramp[::-1] if self.inverted else ramp)

    def _on_window_drag(self, dx: float, dy: float) -> None:
        if self.image is None:
            return
        if self.image_item.image is not self.image.pixels:
            self.image_item.setImage(self.image.pixels, autoLevels=False)
            auto = self.image.auto_window()
            self.window = WindowState(auto.center, auto.width)
        span = max(self.window.width, 1.0)
        self.set_window(self.window.center + dy * span / 200.0, self.window.width * (1.0 + dx / 200.0))

    # ---------------------------------------------------------------------------------------------- overlays

    def _clear_overlays(self) -> None:
        for item in list(self._heat_items.values()) + self._boxes + self._labels:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)
        self._heat_items.clear()
        self._boxes.clear()
        self._labels.clear()

    def set_result(self, result: ViewResult | None, heatmaps: dict[int, np.ndarray] | None = None) -> None:
        """Draw ``result``'s overlays; ``heatmaps`` (class -> RGBA) may be precomputed off the GUI thread."""
        self._clear_overlays()
        self.result = result
        if result is None or self.image is None:
            return
        mapping = result.mapping
        affine = mapping.input_to_original_affine()
        for class_index, colour in CLASS_COLOURS.items():
            h, w = result.saliency[class_index].shape
            rgba = heatmaps.get(class_index) if heatmaps else None
            if rgba is None:
                rgba = heatmap_rgba(smooth_heatmap(result.saliency[class_index]), colour)
            item = pg.ImageItem(rgba)
            item.setParentItem(self.image_item)
            cell_h = mapping.input_shape[0] / (h * HEATMAP_UPSAMPLE)
            cell_w = mapping.input_shape[1] / (w * HEATMAP_UPSAMPLE)
            # heatmap pixel (x=j, y=i) -> input (row i*cell_h, col j*cell_w) -> original through the affine
            item.setTransform(
                QTransform(affine[1, 1] * cell_w, 0.0, 0.0, affine[0, 0] * cell_h, affine[1, 2], affine[0, 2])
            )
            item.setZValue(10)
            self._heat_items[class_index] = item
        for patch in result.patches:
            top, left, bottom, right = patch.box_original
            box = PatchBoxItem(QRectF(left, top, right - left, bottom - top), patch.rank, self._on_box_hover)
            box.setParentItem(self.image_item)
            box.setZValue(20)
            self._boxes.append(box)
            label = pg.TextItem(f"{patch.rank}  {patch.attention:.2f}", color=PATCH_PEN, anchor=(0, 0))
            label.setFont(QFont("Sans", 9, QFont.Weight.Bold))
            label.setParentItem(self.image_item)
            # inside the box, at its top-left corner as seen on screen
            label.setPos(right if self.image.horizontal_flip else left, max(top, 0.0))
            label.setZValue(21)
            self._labels.append(label)
        self._refresh_overlay_visibility()

    def _on_box_hover(self, rank: int) -> None:
        self.patchHovered.emit(self.view, rank)

    def highlight_patch(self, rank: int) -> None:
        for box in self._boxes:
            box.set_highlight(box.rank == rank)

    def set_overlay_options(
        self, *, benign: bool, malignant: bool, visible: bool, patches: bool, opacity: float
    ) -> None:
        self._class_visible = {0: benign, 1: malignant}
        self._overlays_visible = visible
        self._patches_visible = patches
        self._opacity = opacity
        self._refresh_overlay_visibility()

    def _refresh_overlay_visibility(self) -> None:
        for class_index, item in self._heat_items.items():
            item.setVisible(self._overlays_visible and self._class_visible[class_index])
            item.setOpacity(self._opacity)
        for item in self._boxes + self._labels:
            item.setVisible(self._overlays_visible and self._patches_visible)

    def heatmap_item(self, class_index: int) -> pg.ImageItem | None:
        return self._heat_items.get(class_index)

    def patch_boxes(self) -> list[PatchBoxItem]:
        return list(self._boxes)

    # ------------------------------------------------------------------------------------ cursor, magnifier

    def item_to_widget(self, x: float, y: float) -> QPoint:
        self.viewbox.updateMatrix()  # pyqtgraph applies a new range lazily, at the next paint
        scene = self.image_item.mapToScene(QPointF(x, y))
        return self.graphics.mapFromScene(scene)

    def set_magnifier(self, on: bool) -> None:
        self._magnifier_on = on
        if not on:
            self.magnifier.hide()

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.image is None:
            return
        local = self.image_item.mapFromScene(scene_pos)
        col, row = int(np.floor(local.x())), int(np.floor(local.y()))
        h, w = self.image.pixels.shape
        if 0 <= row < h and 0 <= col < w:
            value = self.image.pixels[row, col]
            self.cursorInfo.emit(f"{self.view.value}  row {row}  col {col}  value {value:g}")
        if self._magnifier_on:
            self._update_magnifier(self.graphics.mapFromScene(scene_pos))

    def _update_magnifier(self, at: QPoint) -> None:
        radius, zoom = 60, 3
        self.magnifier.hide()
        grab = self.graphics.grab(QRect(at.x() - radius, at.y() - radius, 2 * radius, 2 * radius))
        self.magnifier.setPixmap(grab.scaled(2 * radius * zoom, 2 * radius * zoom))
        self.magnifier.resize(2 * radius * zoom, 2 * radius * zoom)
        x = at.x() + 20 if at.x() + 20 + self.magnifier.width() < self.graphics.width() else at.x() - 20 - self.magnifier.width()
        self.magnifier.move(max(0, x), max(0, at.y() - self.magnifier.height() // 2))
        self.magnifier.show()
