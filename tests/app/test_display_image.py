"""A view's image is reduced to the screen by OpenCV with pyqtgraph's own block means: what is painted is what
pyqtgraph would paint (within a grey level of rounding), without its float64 means on the GUI thread."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from app.ui.workstation.display_image import DisplayImageItem


def _painted(qtbot, item: pg.ImageItem, image: np.ndarray, levels: tuple[float, float]) -> tuple[np.ndarray, tuple]:
    view = pg.GraphicsView()
    qtbot.addWidget(view)
    box = pg.ViewBox()
    view.setCentralItem(box)
    box.addItem(item)
    item.setImage(image, autoLevels=False, levels=levels)
    view.resize(400, 300)
    view.show()
    box.setRange(xRange=(0, image.shape[1]), yRange=(0, image.shape[0]), padding=0)
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: max(item._computeDownsampleFactors()) > 1, timeout=5000)  # noqa: SLF001 - laid out
    item.render()
    qimage = item.qimage
    data = np.array(qimage.constBits(), dtype=np.uint8).reshape(qimage.height(), qimage.bytesPerLine())
    return data[:, : qimage.width() * (qimage.bytesPerLine() // qimage.width())], item._lastDownsample  # noqa: SLF001


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int32, np.int16])  # int32: a rescaled DICOM's pixels
def test_the_reduced_image_is_pyqtgraph_s_within_a_grey_level(qtbot, dtype):
    """int32 (what the intake gives after a rescale slope) went to pyqtgraph's float64 means: 64 ms a 1600 × 1000
    view on the GUI thread, 0.3 s at every exam change of a reading (bench_reading)."""
    rows, cols = np.mgrid[0:2731, 0:1999]
    image = (200 + 3600 * (rows + cols) / (2731 + 1999) + 300 * np.sin(cols / 7.0)).astype(dtype)
    levels = (200, 3800)
    ours, factors = _painted(qtbot, DisplayImageItem(), image, levels)
    theirs, their_factors = _painted(qtbot, pg.ImageItem(autoDownsample=True), image, levels)
    assert factors == their_factors and max(factors) > 1 and ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int32, np.int16])
def test_pyqtgraph_never_reduces_a_grey_image_itself(qtbot, monkeypatch, dtype):
    from pyqtgraph import functions

    def refused(*args, **kwargs):
        raise AssertionError("pyqtgraph's float64 block means ran on the GUI thread")

    monkeypatch.setattr(functions, "downsample", refused)
    image = (np.arange(2731 * 1999).reshape(2731, 1999) % 4000).astype(dtype)
    _, factors = _painted(qtbot, DisplayImageItem(), image, (0, 4000))
    assert max(factors) > 1
