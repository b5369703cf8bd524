"""The scored regions of each view at full resolution, with their scores and what the scores mean."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QTabWidget, QWidget

from app.overlay_images import OverlayImages, shown_thumbnail
from inference.intake.exam import Exam
from inference.results.exam_result import ExamResult
from inference.results.types import rank_order
from inference.intake.views import View

PATCH_ICON = 160
HANGING_ORDER = (View.R_CC, View.L_CC, View.R_MLO, View.L_MLO)
NOT_DRAWN = "(drawn only with 'all regions')"


def patch_pixmap(scaled: np.ndarray) -> QPixmap:
    """A uint8 thumbnail (grey, or RGB where a detection's outline is drawn on it) as a pixmap."""
    scaled = np.ascontiguousarray(scaled)
    fmt = QImage.Format.Format_RGB888 if scaled.ndim == 3 else QImage.Format.Format_Grayscale8
    image = QImage(scaled.data, scaled.shape[1], scaled.shape[0], scaled.strides[0], fmt)
    return QPixmap.fromImage(image.copy())


def region_icon(thumbnail: np.ndarray) -> QIcon:
    """The same pixels in every icon mode: a selected region is framed, never tinted over its pixels."""
    pixmap = patch_pixmap(thumbnail)
    icon = QIcon()
    for mode in (QIcon.Mode.Normal, QIcon.Mode.Selected, QIcon.Mode.Active):
        icon.addPixmap(pixmap, mode)
    return icon


class PatchGalleryWidget(QTabWidget):
    """One tab per analysed view; clicking a region asks the view to centre and zoom on it."""

    patchClicked = Signal(object, int)  # View, rank

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("patchGallery")
        self.lists: dict[View, QListWidget] = {}
        self.set_result(None)

    def set_result(self, result: ExamResult | None, overlays: OverlayImages | None = None,
                   entry_id: str | None = None, exam: Exam | None = None) -> None:
        while self.count():  # the pages go with their tabs (clear() keeps them: each exam's thumbnails stayed)
            page = self.widget(0)
            self.removeTab(0)
            page.deleteLater()
        self.lists.clear()
        if result is None:  # said, not an empty white box (while an exam loads or is analysed)
            note = QLabel("The model's regions appear here, each at full resolution, once the exam is analysed.")
            note.setObjectName("galleryEmpty")
            note.setWordWrap(True)
            note.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.addTab(note, "Regions")
            return
        entry = result.entry(entry_id)
        for view in HANGING_ORDER:
            if view not in result.views:
                continue
            entry_result = result.views[view].result(entry.id)
            if entry_result is None:  # no result on this view (not finite, or refused): no regions
                continue
            listing = QListWidget()
            listing.setObjectName(f"patches_{view.value}")
            listing.setViewMode(QListWidget.ViewMode.IconMode)
            listing.setIconSize(self._icon_size())
            listing.setResizeMode(QListWidget.ResizeMode.Adjust)
            listing.setMovement(QListWidget.Movement.Static)
            listing.setSpacing(4)
            listing.setStyleSheet("QListWidget::item:selected { background: transparent; border: 3px solid #ffd200; }")
            flipped = bool(entry_result.frame.record.get("flipped", False))
            image = exam.views.get(view) if exam is not None else None
            from app.cad_marks import RegionShown, breast_of, classify_regions, region_operating_point  # noqa: PLC0415

            # the screen's rule: a region it draws only with "all regions" says so here (a "#5" listed and no
            # box 5 on the image read as a region lost)
            verdicts, rule = classify_regions(entry_result.regions, region_operating_point(entry.members),
                                              breast_of(image))
            for region, verdict in [(r, v) for r, v in verdicts if v != RegionShown.OUTSIDE]:  # none in the air
                thumbnail = overlays.thumbnails.get((view, entry.id, region.rank)) if overlays else None
                if thumbnail is None:
                    thumbnail = shown_thumbnail(exam, view, region, flipped)
                below = verdict == RegionShown.BELOW
                item = QListWidgetItem(region_icon(thumbnail), region.caption() + (f"\n{NOT_DRAWN}" if below else ""))
                if below:
                    item.setForeground(QColor("#808080"))
                item.setData(Qt.ItemDataRole.UserRole, region.rank)
                probabilities = ""
                if region.probabilities:
                    probabilities = "; " + ", ".join(f"{k} {v:.2f}" for k, v in region.probabilities.items())
                size = f"{region.size[0]} x {region.size[1]} pixels at full resolution" if region.size else ""
                source = f"; from {region.source}" if region.source else ""
                item.setToolTip(f"{view.value} region {region.rank}: {region.kind} {region.score:.4f}{probabilities}"
                                f"; {size}{source}; ranks follow {rank_order(region.kind)}" + (f"; not drawn on the image by its rule ({rule}): "
                                                       "'all regions' shows it, dimmed" if below else ""))
                listing.addItem(item)
            if not listing.count():  # said, not an empty tab that reads as a region lost
                note = QListWidgetItem(f"No region of this model lies over the breast on {view.value}." if verdicts
                                       else f"This model gives no region on {view.value}.")
                note.setFlags(Qt.ItemFlag.NoItemFlags)
                listing.setViewMode(QListWidget.ViewMode.ListMode)
                listing.addItem(note)
            listing.itemClicked.connect(lambda item, v=view: self._clicked(v, item))
            self.lists[view] = listing
            self.addTab(listing, view.value)

    def _icon_size(self) -> QSize:
        """Thumbnails as large as a row of them fits the pane with its captions (up to ``PATCH_ICON``, at least
        64 pixels): on a 1000-pixel-high screen the captions ("#3 attention 0.162 …") were cut in half."""
        captions = 3 * self.fontMetrics().lineSpacing()  # two caption lines (three with "drawn only with …")
        room = self.height() - self.tabBar().sizeHint().height() - captions - 24  # margins, spacing, frame
        side = max(64, min(PATCH_ICON, room))
        return QSize(side, side)

    def resizeEvent(self, event):  # noqa: N802 - Qt override
        super().resizeEvent(event)
        size = self._icon_size()
        for listing in self.lists.values():
            if listing.iconSize() != size:
                listing.setIconSize(size)

    def _clicked(self, view: View, item: QListWidgetItem) -> None:
        rank = item.data(Qt.ItemDataRole.UserRole)
        if rank is not None:  # not the note of a view without regions
            self.patchClicked.emit(view, rank)

    def highlight(self, view: View, rank: int) -> None:
        listing = self.lists.get(view)
        if listing is None:
            return
        if rank == 0:
            listing.clearSelection()
            return
        self.setCurrentWidget(listing)
        for row in range(listing.count()):
            item = listing.item(row)
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) == rank)
