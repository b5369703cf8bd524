"""The image item a view draws a mammogram with: pyqtgraph's, its zoomed-out downsampling done by OpenCV.

pyqtgraph reduces an image to the screen's resolution with numpy means in float64 on the GUI thread: about
70 ms an axis for a 3328 × 2560 view, so a four-view exam of full-field images held the window 0.6 s at every
exam change. OpenCV's area interpolation computes the same block means, in the image's own type, in a few
milliseconds."""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg


class DisplayImageItem(pg.ImageItem):
    """``pg.ImageItem(autoDownsample=True)`` whose reduction runs in OpenCV (grey images of uint16, float32 and the
    other integer types the intake gives — int32 after a rescale slope — reduced as float32, as pyqtgraph's own
    float means are; for uint8, pyqtgraph's integer path maps levels otherwise than its float one, so it keeps
    its own)."""

    def __init__(self) -> None:
        super().__init__(autoDownsample=True)

    def render(self) -> None:
        full = self.image
        factors = self._computeDownsampleFactors() if full is not None else None
        if (factors is None or None in factors or max(factors) <= 1 or full.ndim != 2 or full.dtype == np.uint8
                or full.dtype.kind not in "iuf"):
            super().render()
            return
        xds, yds = factors
        row_step, column_step = (yds, xds) if self.axisOrder == "row-major" else (xds, yds)
        rows, columns = full.shape[0] // row_step, full.shape[1] // column_step
        if rows < 1 or columns < 1:
            super().render()
            return
        # the block means of pyqtgraph's own reduction (whole blocks; a last partial one is left out as there)
        whole = full[: rows * row_step, : columns * column_step]
        if whole.dtype not in (np.uint16, np.float32):  # int32 (a rescaled DICOM), int16 …: OpenCV reduces float32
            whole = whole.astype(np.float32)  # (exact for mammograms' grey levels, far below 2**24)
        reduced = cv2.resize(np.ascontiguousarray(whole), (columns, rows), interpolation=cv2.INTER_AREA)
        self.image, self.autoDownsample = reduced, False
        try:
            super().render()
        finally:
            self.image, self.autoDownsample = full, True
        self._lastDownsample = (xds, yds)
