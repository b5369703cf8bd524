"""The retrieved patches of each view at full resolution, with their attention weights."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QTabWidget, QWidget

from app.ui.overlay_images import OverlayImages, patch_thumbnail
from inference.pipeline import ExamResult
from inference.views import View

PATCH_ICON = 160


def patch_pixmap(scaled: np.ndarray) -> QPixmap:
    """A uint8 thumbnail (see ``overlay_images.patch_thumbnail``) as a pixmap."""
    image = QImage(scaled.data, scaled.shape[1], scaled.shape[0], scaled.strides[0], QImage.Format.Format_Grayscale8)
    return QPixmap.fromImage(image.copy())


class PatchGalleryWidget(QTabWidget):
    """One tab per analysed view; clicking a patch asks the view to centre and zoom on it."""

    patchClicked = Signal(object, int)  # View, rank

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("patchGallery")
        self.lists: dict[View, QListWidget] = {}

    def set_result(self, result: ExamResult | None, overlays: OverlayImages | None = None) -> None:
        self.clear()
        self.lists.clear()
        if result is None:
            return
        for view in (View.R_CC, View.L_CC, View.R_MLO, View.L_MLO):
            if view not in result.views:
                continue
            listing = QListWidget()
            listing.setObjectName(f"patches_{view.value}")
            listing.setViewMode(QListWidget.ViewMode.IconMode)
            listing.setIconSize(QSize(PATCH_ICON, PATCH_ICON))
            listing.setResizeMode(QListWidget.ResizeMode.Adjust)
            listing.setMovement(QListWidget.Movement.Static)
            listing.setSpacing(4)
            for patch in result.views[view].patches:
                thumbnail = overlays.thumbnails.get((view, patch.rank)) if overlays else None
                if thumbnail is None:
                    thumbnail = patch_thumbnail(patch.pixels, mirror=result.views[view].mapping.flipped)
                item = QListWidgetItem(QIcon(patch_pixmap(thumbnail)), f"#{patch.rank}  attention {patch.attention:.3f}")
                item.setData(Qt.ItemDataRole.UserRole, patch.rank)
                item.setToolTip(
                    f"patch {patch.rank} of {view.value}: attention {patch.attention:.4f}; "
                    "256 x 256 pixels at full resolution"
                )
                listing.addItem(item)
            listing.itemClicked.connect(lambda item, v=view: self.patchClicked.emit(v, item.data(Qt.ItemDataRole.UserRole)))
            self.lists[view] = listing
            self.addTab(listing, view.value)

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
