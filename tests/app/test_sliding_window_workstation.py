"""The sliding-window classifier in the workstation and the reports: its four classes, the malignant map and
the tissue mask registered on the breast, the top windows as "window probability" regions, whether and on
what data it is calibrated (with its reliability diagram), and every report format."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.ui.workstation.main_window import grab_png
from inference.families.sliding_window.family import CLASSES
from inference.intake.views import View
from tests.app.conftest import open_one_view
from tests.helpers import make_window_stub, synthetic_view

LESION = (700, 500)


@pytest.fixture(scope="module")
def window_stub():
    return make_window_stub()



def _open(qtbot, store, tmp_path, models):
    return open_one_view(qtbot, store, tmp_path, models, synthetic_view("R-CC", LESION, shape=(1600, 900)))


def test_maps_tissue_mask_and_windows_on_the_breast(qtbot, store, tmp_path, window_stub):
    window = _open(qtbot, store, tmp_path, [window_stub])
    widget = window.hanging.views[View.R_CC]
    heat = widget.heatmap_item("malignant")
    assert heat is not None and heat.isVisible()
    i, j = np.unravel_index(np.argmax(heat.image), heat.image.shape)
    peak = heat.mapToItem(widget.image_item, QPointF(j + 0.5, i + 0.5))
    assert abs(peak.y() - LESION[0]) < 200 and abs(peak.x() - LESION[1]) < 200
    assert widget.heatmap_item("no_tumour") is None  # the background class is not a main map
    boxes = widget.patch_boxes()
    from app.cad_marks import MIN_TISSUE_FRACTION, tissue_fraction

    tissue = widget.image.model_image > 0  # the windows lying mostly in the air are not drawn (issue 25)
    inside = [r for r in widget.result.regions if tissue_fraction(r.box_original, tissue) >= MIN_TISSUE_FRACTION]
    assert 0 < len(inside) and len(boxes) == len(inside)
    top, left, bottom, right = widget.result.regions[0].box_original
    assert top <= LESION[0] < bottom and left <= LESION[1] < right
    qtbot.waitUntil(lambda: window.gallery.lists[View.R_CC].count() == len(inside), timeout=5000)
    assert "window probability" in window.gallery.lists[View.R_CC].item(0).text()
    # the tissue mask is a layer the reader can show
    window.layer_combo.setCurrentIndex(window.layer_combo.findData("tissue mask"))
    mask_index = next(k for k, layer in enumerate(widget.result.layers) if layer.name == "tissue mask")
    mask_item = widget._heat_items[mask_index]  # noqa: SLF001 - the drawn item of one layer
    assert mask_item.isVisible() and not heat.isVisible()
    # registered: the texture's far corner is the far corner of the last 8-pixel mask cell (113 x 200 cells)
    corner = mask_item.mapToItem(widget.image_item, QPointF(mask_item.image.shape[1], mask_item.image.shape[0]))
    assert corner.x() == pytest.approx(113 * 8) and corner.y() == pytest.approx(1600)
    window.layer_combo.setCurrentIndex(window.layer_combo.findData("window average"))
    assert widget.heatmap_item("benign", "window average").isVisible()
    window.layer_combo.setCurrentIndex(0)
    table = window.scores.model_tables[window.result.entries[0].id]
    headers = [table.horizontalHeaderItem(k).text().replace("\n", " ") for k in range(table.columnCount())]
    assert [h for h in headers if h.replace(" ", "_") in CLASSES] == [c.replace("_", " ") for c in CLASSES]
    assert "meaning" in headers and table.item(0, headers.index("meaning")).text() == "uncalibrated"
    grab_png(window, tmp_path / "sliding_window.png")


def test_a_calibrated_model_says_so_and_shows_its_reliability(qtbot, store, tmp_path, tiny_window_model):
    from inference.weights import load_model

    model = load_model(tiny_window_model)
    window = _open(qtbot, store, tmp_path, [model])
    entry_id = window.result.entries[0].id
    table = window.scores.model_tables[entry_id]
    headers = [table.horizontalHeaderItem(k).text() for k in range(table.columnCount())]
    assert table.item(0, headers.index("meaning")).text() == "calibrated (temperature)"
    window.scores.details.setChecked(True)
    from PySide6.QtWidgets import QLabel, QWidget

    note = window.scores.findChild(QLabel, f"calibration_{entry_id}")
    assert "temperature scaling (T = " in note.text() and "held-out phantom views" in note.text()
    assert "ECE" in note.text()
    chart = window.scores.findChild(QWidget, f"reliability_{entry_id}")
    assert chart is not None and chart.reliability["bins"] == 15
    qtbot.wait(50)
    grab_png(window, tmp_path / "details.png")


def test_every_report_format_with_the_window_classifier(tmp_path, window_stub):
    import highdicom as hd

    from inference.results.serialize import read_result, write_result
    from tests.helpers import dciodvfy, report_one_view
    from tests.report.test_report import pdf_text

    _, result, paths = report_one_view(window_stub, tmp_path, synthetic_view("R-CC", LESION, shape=(1600, 900)))
    seg = next(p for p in paths if p.name.endswith("_saliency_seg.dcm"))
    assert dciodvfy(seg) == []
    segments = hd.seg.segread(seg).SegmentSequence
    assert [s.SegmentLabel for s in segments] == ["benign without callback map", "benign map", "malignant map"]
    sr_path = next(p for p in paths if p.name.endswith("_sr.dcm"))
    assert dciodvfy(sr_path) == []
    groups = hd.sr.MeasurementReport.from_sequence([hd.sr.srread(sr_path)]).get_planar_roi_measurement_groups()
    names = {m.name.meaning for g in groups for m in g.get_measurements()}
    assert "Region score: window probability" in names
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "window probability" in text and "benign without callback" in text
    # the result file keeps every layer, the tissue mask (no class) included
    json_path, _ = write_result(result, tmp_path / "result.json")
    again = read_result(json_path)
    layers = again.views[View.R_CC].entries[result.entries[0].id].layers
    assert [(layer.name, layer.class_name) for layer in layers][-1] == ("tissue mask", None)
    assert again.exam[result.entries[0].id].malignant == pytest.approx(result.exam[result.entries[0].id].malignant)
