"""GLAM in the workstation and the reports: its fused full-resolution map drawn registered on the breast (no
full-resolution RGBA copy), its other layers on demand, its patch in the gallery, GMIC beside it, and every
report format with both."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.settings import AppSettings
from app.ui.workstation.main_window import MainWindow, grab_png
from inference.intake.views import View
from tests.helpers import make_glam_stub, synthetic_view, write_png


@pytest.fixture(scope="module")
def glam_stub():
    return make_glam_stub()



@pytest.mark.parametrize("view, lesion, mirrored", [("R-CC", (700, 500), False), ("L-MLO", (900, 300), True)])
def test_the_fused_map_lands_on_the_lesion(qtbot, store, tmp_path, glam_stub, stub_model, view, lesion, mirrored):
    write_png(tmp_path / f"0_{view}.png", synthetic_view(view, lesion, mirrored=mirrored, shape=(1600, 900)))
    window = MainWindow(AppSettings(blind_first=False, show_overlays=True), store)
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    window.use_models([glam_stub, stub_model])
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(tmp_path)
    widget = window.hanging.views[View.parse(view)]
    heat = widget.heatmap_item("malignant")
    assert heat is not None and heat.image.dtype == np.uint8 and heat.image.ndim == 2  # 8-bit through a LUT
    assert heat.image.nbytes <= 2048 * 2048  # bounded, whatever the map's resolution
    i, j = np.unravel_index(np.argmax(heat.image), heat.image.shape)
    peak = heat.mapToItem(widget.image_item, QPointF(j + 0.5, i + 0.5))
    assert abs(peak.y() - lesion[0]) < 40 and abs(peak.x() - lesion[1]) < 40
    (region,) = widget.result.regions
    top, left, bottom, right = region.box_original
    assert top <= lesion[0] <= bottom and left <= lesion[1] <= right and region.kind == "GLAM patch"
    # the other layers are there on demand: the local patch map lies inside the patch box
    window.layer_combo.setCurrentIndex(window.layer_combo.findData("local patch"))
    local = widget.heatmap_item("malignant", "local patch")
    assert local.isVisible() and not heat.isVisible()
    corner = local.mapToItem(widget.image_item, QPointF(0.5, 0.5))
    assert top - 1 <= corner.y() <= bottom + 1 and left - 1 <= corner.x() <= right + 1
    window.layer_combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: window.gallery.lists[View.parse(view)].count() == 1, timeout=5000)
    assert "GLAM patch" in window.gallery.lists[View.parse(view)].item(0).text()
    assert window.overlays.nbytes < 8 * 2**20  # the overlays of both models, all layers
    assert len(window.scores.model_tables) == 2  # both models' scores in the panel
    grab_png(window, tmp_path / "glam.png")


def test_every_report_format_with_glam_and_gmic(tmp_path, glam_stub, stub_model):
    from app.report.content import ReportContent, ReportInput
    from app.report.export import export_report
    from app.report.seg import map_stack
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from tests.helpers import dciodvfy
    from tests.inference.intake.dicom_factory import make_dataset, write

    folder = tmp_path / "exam"
    folder.mkdir()
    write(make_dataset(synthetic_view("R-CC", (600, 500)), "R-CC"), folder, "a.dcm")
    exam = load_exam(folder)
    result = analyze_exam(exam, [glam_stub, stub_model], device="cpu")
    glam_id = result.entries[0].id
    report = ReportInput(exam, result, entry_id=glam_id)
    paths = export_report(report, tmp_path / "out", formats=("pdf", "png", "json", "sr", "seg"))
    seg = next(p for p in paths if p.name.endswith("_saliency_seg.dcm"))
    assert dciodvfy(seg) == [] and glam_id in seg.name
    import highdicom as hd

    maps = hd.seg.segread(seg).get_pixels_by_source_instance([exam.views[View.R_CC].sop_instance_uid],
                                                                segment_numbers=[1, 2])[0]
    classes, expected = map_stack(ReportContent(report), View.R_CC)
    assert maps.shape == exam.views[View.R_CC].pixels.shape + (2,)  # the full map on the source grid
    assert np.abs(maps - expected).max() <= 0.5 / 255 + 1e-6
    r, c = np.unravel_index(np.argmax(maps[..., 1]), maps.shape[:2])
    assert abs(r - 600) < 40 and abs(c - 500) < 40
    sr = hd.sr.srread(next(p for p in paths if p.name.endswith("_sr.dcm")))
    groups = hd.sr.MeasurementReport.from_sequence([sr]).get_planar_roi_measurement_groups()
    names = {m.name.meaning for g in groups for m in g.get_measurements()}
    assert "Region score: GLAM patch" in names and "Attention weight of the region" in names
    assert dciodvfy(next(p for p in paths if p.name.endswith("_sr.dcm"))) == []
    from tests.report.test_report import pdf_text

    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "GLAM patch" in text and "bright-spot GLAM stub" in text and "bright-spot stub" in text
