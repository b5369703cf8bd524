"""Breast tissue outside the model's window (GMIC's and GLAM's 2944 × 1920 on a tall or deep breast) is drawn as
not analysed: a radiologist saw a tall R-MLO's map stop at a line, with the words only in the notes, and read the
part without a map as "nothing found"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF

from app.cad_marks import analysed_window, unanalysed_centre
from app.ui.workstation.view_widget import MammoViewWidget, OverlayOptions
from inference.families.preprocess import prepare_view
from inference.intake.image import ViewImage
from inference.intake.views import View
from inference.results.exam_result import EntryViewResult
from inference.results.types import InputFrame
from tests.app.conftest import settle
from tests.helpers import synthetic_view

TALL = (4368, 1570)


def _frame(prepared, shape) -> InputFrame:
    """The model input's frame of a GMIC-prepared view: its window, through the crop and flip, on the image."""
    return InputFrame(prepared.input.shape, prepared.mapping.input_to_original_affine(), shape)


def test_the_window_is_found_when_tissue_lies_outside_it_and_only_then():
    tissue = np.zeros((400, 100), bool)
    tissue[20:380, :60] = True
    frame = SimpleNamespace(input_shape=(300, 100), to_original=np.array([[1.0, 0, 100], [0, 1, 0], [0, 0, 1]]))
    assert analysed_window(frame, tissue) == (100, 0, 400, 100)  # rows 20-99 of the breast outside: drawn
    row, col = unanalysed_centre((100, 0, 400, 100), tissue)
    assert 20 <= row < 100 and 0 <= col < 60  # the words go on the tissue left out
    holds_it = SimpleNamespace(input_shape=(390, 100), to_original=np.array([[1.0, 0, 10], [0, 1, 0], [0, 0, 1]]))
    assert analysed_window(holds_it, tissue) is None
    mirrored = SimpleNamespace(input_shape=(300, 100), to_original=np.array([[1.0, 0, 100], [0, -1, 100], [0, 0, 1]]))
    assert analysed_window(mirrored, tissue) == (100, 0, 400, 100)
    assert analysed_window(frame, None) is None and analysed_window(frame, np.zeros((400, 100), bool)) is None


def _shown(qtbot, view: View, image: np.ndarray) -> MammoViewWidget:
    prepared = prepare_view(image, view)
    view_image = ViewImage(view, image, image.astype(np.float32), False, Path("x.png"))
    widget = MammoViewWidget(view)
    qtbot.addWidget(widget)
    widget.resize(500, 800)
    widget.show()
    widget.set_image(view_image)
    result = EntryViewResult({"malignant": 0.1}, {"malignant": 0.0}, (), (), {}, (), "", _frame(prepared, image.shape))
    widget.set_result(result, classes=("malignant",))
    widget.set_overlay_options(OverlayOptions(visible=True, classes=frozenset({"malignant"})))
    settle()
    return widget


@pytest.mark.parametrize("view", [View.R_MLO, View.L_MLO])  # L: the window mirrored onto the image
def test_a_tall_breast_s_unanalysed_rows_are_greyed_and_named_on_the_view(qtbot, view):
    tall = synthetic_view(view.value, (3000, 600), shape=TALL)
    widget = _shown(qtbot, view, tall)
    shade, edge, words = widget._unanalysed  # noqa: SLF001
    assert words.toPlainText() == "not analysed" and all(item.isVisible() for item in (shade, edge, words))
    assert "outside the model's input window" in shade.toolTip()
    # the shade covers the rows above the window (219-1197 of the breast, the preparation says) and not the
    # window itself
    window = edge.rect()
    assert window.top() > 1000 and window.height() == 2944
    col = 600 if view == View.R_MLO else TALL[1] - 600  # in the breast
    assert shade.path().contains(QPointF(col, 600)) and not shade.path().contains(QPointF(col, 2000))
    widget.set_overlay_options(OverlayOptions(visible=False))  # overlays off (H): off with them
    assert not any(item.isVisible() for item in (shade, edge, words))
    widget.set_result(None)
    assert widget._unanalysed == []  # noqa: SLF001


def test_a_breast_that_fits_the_window_gets_no_shade(qtbot):
    widget = _shown(qtbot, View.R_CC, synthetic_view("R-CC", (700, 500)))
    assert widget._unanalysed == []  # noqa: SLF001


def test_the_exported_view_greys_the_same_part_and_names_it(tmp_path):
    """The PNG and PDF figures show what the screen shows (the demo GMIC model on a tall R-MLO)."""
    from app.demo import demo_model_path
    from app.report.content import ReportContent, ReportInput
    from app.report.figures import NOT_ANALYSED_ALPHA, NOT_ANALYSED_BGR, view_figure
    from inference.exam import load_exam
    from inference.pipeline import analyze_exam
    from inference.weights import load_model_groups
    from tests.helpers import write_png

    write_png(tmp_path / "0_R-MLO.png", synthetic_view("R-MLO", (3000, 600), shape=TALL))
    exam = load_exam(tmp_path)
    result = analyze_exam(exam, load_model_groups([demo_model_path()]), device="cpu")
    content = ReportContent(ReportInput(exam, result))
    drawn, plain = view_figure(content, View.R_MLO), view_figure(content, View.R_MLO, overlays=False)
    left_out, analysed = (slice(250, 550), slice(400, 800)), (slice(2500, 2600), slice(100, 200))  # off the words
    expected = (plain[left_out].astype(np.float32) * (1 - NOT_ANALYSED_ALPHA)
                + np.array(NOT_ANALYSED_BGR, np.float32) * NOT_ANALYSED_ALPHA)
    assert np.abs(drawn[left_out].astype(np.float32) - expected).max() <= 1.0  # greyed over (text aside)
    # inside the window: the image under the demo map's faint tint, not greyed over
    assert np.abs(drawn[analysed].astype(int) - plain[analysed].astype(int)).max() <= 3


@pytest.mark.parametrize("view", [View.R_MLO, View.L_MLO])
def test_the_words_lie_whole_in_the_view_where_the_band_left_out_is_by_the_chest_wall(qtbot, view):
    """On a CBIS-DDSM view the band left out lay along the chest wall, which meets the view's edge at the
    midline: the words centred on it were cut in half ("not analy", "t analysed")."""
    tall = synthetic_view(view.value, (3000, 600), shape=TALL)
    strip = slice(None, -120) if view == View.R_MLO else slice(120, None)  # the chest wall: right in R, left in L
    tall[:1150, strip] = 0  # above the window, tissue only along the chest wall
    widget = _shown(qtbot, view, tall)
    widget.resize(round(800 * TALL[1] / TALL[0]), 800)  # the image fills the view's width
    widget.reset_view()
    settle()
    words = widget._unanalysed[-1]  # noqa: SLF001
    viewport = QRectF(widget.graphics.viewport().rect())
    placed = widget.graphics.viewportTransform().mapRect(words.sceneBoundingRect())
    assert words.toPlainText() == "not analysed" and viewport.contains(placed), (placed, viewport)
