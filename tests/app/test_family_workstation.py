"""Every model family in the workstation, through one test: a lesion drawn on one view, the family's main map
peaking on it (through its own crop, mirror and resize), its regions drawn and captioned in the gallery with
the family's own kind of region, and its classes spelled out in the model table. What is a family's own (GLAM's
layers beside GMIC, the sliding window's tissue mask and calibration, the attention CNN's findings-only
classes, GlimpseNet's class-less saliency) follows in its own short tests, and every report format per family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QLabel

from app.ui.workstation.main_window import grab_png
from inference.intake.views import View
from tests.app.conftest import open_one_view
from tests.helpers import (make_attention_stub, make_glam_stub, make_glimpse_stub, make_stub_model, make_window_stub,
                           synthetic_view)

SHAPE = (1600, 900)


@dataclass(frozen=True)
class FamilyCase:
    name: str
    models: Callable[[], list]  # the models the window runs (the family's first)
    view: str
    lesion: tuple[int, int]
    mirrored: bool
    main_map: str | None  # the class of the map drawn at first (None: a class-less layer)
    peak_tolerance: float  # px in the stored image, from the family's map resolution
    region_kind: str  # how the gallery captions a region
    classes: tuple[str, ...]


def _classes(module: str) -> tuple[str, ...]:
    import importlib

    return tuple(importlib.import_module(module).CLASSES)


CASES = [
    FamilyCase("gmic", lambda: [make_stub_model()], "R-CC", (700, 500), False, "malignant", 60, "attention",
               ("benign", "malignant")),
    FamilyCase("glam R-CC", lambda: [make_glam_stub(), make_stub_model()], "R-CC", (700, 500), False, "malignant", 40,
               "GLAM patch", ("benign", "malignant")),
    FamilyCase("glam L-MLO mirrored", lambda: [make_glam_stub(), make_stub_model()], "L-MLO", (900, 300), True,
               "malignant", 40, "GLAM patch", ("benign", "malignant")),
    FamilyCase("sliding-window", lambda: [make_window_stub()], "R-CC", (700, 500), False, "malignant", 200,
               "window probability", _classes("inference.families.sliding_window.family")),
    FamilyCase("attention-cnn", lambda: [make_attention_stub(region_threshold=0.9)], "R-CC", (700, 500), False, None,
               min(SHAPE) / 7, "attention region", _classes("inference.families.attention_cnn.mias")),
    FamilyCase("glimpsenet", lambda: [make_glimpse_stub()], "R-CC", (700, 300), False, None, 20, "glimpse",
               _classes("inference.families.glimpsenet.family")),
]


def open_case(qtbot, store, tmp_path, case: FamilyCase, models=None):
    image = synthetic_view(case.view, case.lesion, mirrored=case.mirrored, shape=SHAPE)
    return open_one_view(qtbot, store, tmp_path, models or case.models(), image, name=f"0_{case.view}.png")


def headers_of(window, entry_id: str) -> list[str]:
    table = window.scores.model_tables[entry_id]
    return [table.horizontalHeaderItem(k).text().replace("\n", " ") for k in range(table.columnCount())]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_familys_map_regions_and_classes_are_on_this_breast(qtbot, store, tmp_path, case):
    window = open_case(qtbot, store, tmp_path, case)
    view = View.parse(case.view)
    widget = window.hanging.views[view]
    heat = widget.heatmap_item(case.main_map)
    assert heat is not None and heat.isVisible()
    assert heat.image.dtype == np.uint8 and heat.image.ndim == 2  # 8-bit through a LUT, never full-size RGBA
    assert heat.image.nbytes <= 2048 * 2048
    i, j = np.unravel_index(np.argmax(heat.image), heat.image.shape)
    peak = heat.mapToItem(widget.image_item, QPointF(j + 0.5, i + 0.5))
    assert abs(peak.y() - case.lesion[0]) < case.peak_tolerance
    assert abs(peak.x() - case.lesion[1]) < case.peak_tolerance
    assert widget.patch_boxes()
    qtbot.waitUntil(lambda: window.gallery.lists[view].count() > 0, timeout=5000)
    assert case.region_kind in window.gallery.lists[view].item(0).text()
    entry = window.result.entries[0]
    assert [h for h in headers_of(window, entry.id) if h.replace(" ", "_") in case.classes] == [
        c.replace("_", " ") for c in case.classes]
    assert len(window.scores.model_tables) == len(window.result.entries)  # every model's scores in the panel
    grab_png(window, tmp_path / f"{case.name}.png")


def test_glam_keeps_its_other_layers_on_demand_inside_its_patch(qtbot, store, tmp_path):
    window = open_case(qtbot, store, tmp_path, CASES[1])
    widget = window.hanging.views[View.R_CC]
    heat = widget.heatmap_item("malignant")
    (region,) = widget.result.regions
    top, left, bottom, right = region.box_original
    assert top <= 700 <= bottom and left <= 500 <= right and region.kind == "GLAM patch"
    window.layer_combo.setCurrentIndex(window.layer_combo.findData("local patch"))
    local = widget.heatmap_item("malignant", "local patch")
    assert local.isVisible() and not heat.isVisible()
    corner = local.mapToItem(widget.image_item, QPointF(0.5, 0.5))
    assert top - 1 <= corner.y() <= bottom + 1 and left - 1 <= corner.x() <= right + 1
    assert window.overlays.nbytes < 8 * 2**20  # the overlays of both models, all layers


def test_the_sliding_window_draws_windows_on_tissue_and_its_registered_tissue_mask(qtbot, store, tmp_path):
    from inference.intake.image import MIN_TISSUE_FRACTION, tissue_fraction

    window = open_case(qtbot, store, tmp_path, CASES[3])
    widget = window.hanging.views[View.R_CC]
    heat = widget.heatmap_item("malignant")
    assert widget.heatmap_item("no_tumour") is None  # the background class is not a main map
    tissue = widget.image.model_image > 0  # the windows lying mostly in the air are not drawn
    inside = [r for r in widget.result.regions if tissue_fraction(r.box_original, tissue) >= MIN_TISSUE_FRACTION]
    assert 0 < len(inside) and len(widget.patch_boxes()) == len(inside)
    top, left, bottom, right = widget.result.regions[0].box_original
    assert top <= 700 < bottom and left <= 500 < right
    qtbot.waitUntil(lambda: window.gallery.lists[View.R_CC].count() == len(inside), timeout=5000)
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
    headers = headers_of(window, window.result.entries[0].id)
    assert "meaning" in headers and table.item(0, headers.index("meaning")).text() == "uncalibrated"


def test_the_attention_cnn_covers_the_image_in_viridis_and_says_findings_only(qtbot, store, tmp_path):
    from app.colours import colormap_rgb

    window = open_case(qtbot, store, tmp_path, CASES[4])
    widget = window.hanging.views[View.R_CC]
    heat = widget.heatmap_item(None)
    lut = heat.lut if not callable(heat.lut) else heat.lut(heat.image)
    assert np.array_equal(np.asarray(lut)[-1, :3], colormap_rgb("viridis")[-1])  # the top of viridis: yellow
    far = heat.mapToItem(widget.image_item, QPointF(heat.image.shape[1], heat.image.shape[0]))
    assert far.x() == pytest.approx(900) and far.y() == pytest.approx(1600)  # the map covers the stored image
    assert "P(malignant)" not in headers_of(window, window.result.entries[0].id)
    texts = " ".join(label.text() for label in window.scores.findChildren(QLabel))
    assert "findings only" in texts
    assert "(no model gives one)" in window.scores.compare_box.title()


def test_glimpsenet_decides_by_p_malignant_with_a_class_less_saliency(qtbot, store, tmp_path):
    window = open_case(qtbot, store, tmp_path, CASES[5])
    assert len(window.hanging.views[View.R_CC].patch_boxes()) == 1
    assert "attention" not in window.gallery.lists[View.R_CC].item(0).text()
    entry_id = window.result.entries[0].id
    decision = window.result.exam[entry_id]
    assert decision.breast.value == "R" and decision.malignant == pytest.approx(
        window.result.views[View.R_CC].entries[entry_id].probabilities["malignant"])
    assert window._class_boxes == {}  # noqa: SLF001 - no class has a map: no class switches
    assert window.findChild(QLabel, "layerLegend_saliency").text() == "saliency"


def test_a_calibrated_window_classifier_says_so_and_shows_its_reliability(qtbot, store, tmp_path, tiny_window_model):
    from inference.weights import load_model

    model = load_model(tiny_window_model)
    window = open_case(qtbot, store, tmp_path, CASES[3], models=[model])
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
    grab_png(window, tmp_path / "details.png")


def test_every_report_format_with_the_window_classifier(tmp_path):
    import highdicom as hd

    from inference.results.serialize import read_result, write_result
    from tests.helpers import dciodvfy, report_one_view
    from tests.report.test_report import pdf_text

    _, result, paths = report_one_view(make_window_stub(), tmp_path, synthetic_view("R-CC", (700, 500), shape=SHAPE))
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


def test_every_report_format_with_glam_and_gmic(tmp_path):
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
    result = analyze_exam(exam, [make_glam_stub(), make_stub_model()], device="cpu")
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


def test_mask_rcnn_detections_are_outlined_in_the_viewer_and_the_gallery(qtbot, store, tmp_path):
    """The seeded Mask R-CNN on exam 0: each drawn detection has its mask's outline inside its box, in the
    regions' yellow; the gallery's thumbnails show the same outline."""
    from app.colours import REGION
    from tests.conftest import DATA, SHARED, require_shared

    seeded = SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt"
    require_shared(seeded.parent)
    from inference.weights import load_model

    window = open_one_view(qtbot, store, tmp_path, [load_model(seeded)],
                           __import__("cv2").imread(str(DATA / "gmic-exam0" / "0_R-CC.png"), -1), name="0_R-CC.png")
    widget = window.hanging.views[View.R_CC]
    boxes, outlines = widget.patch_boxes(), widget.detection_outlines()
    assert boxes and len(outlines) == len(boxes)
    for box, outline in zip(boxes, outlines):
        inner, frame = outline.path().boundingRect(), box.rect()
        assert frame.adjusted(-1, -1, 1, 1).contains(inner) and inner.width() > 0 and inner.height() > 0
        assert outline.pen().isCosmetic() and outline.pen().color().getRgb()[:3] == REGION
    shown = [item for item in outlines if item.isVisible()]
    assert shown
    first = next(r for r in widget.result.regions if r.rank == boxes[0].rank)  # its label: class and score
    labels = [label.textItem.toPlainText() for label in widget._labels]  # noqa: SLF001
    assert f"{first.rank} {first.kind.split()[0]} {100 * first.score:.0f}%" in labels
    window.overlays_box.setChecked(False)  # H hides them with the rest
    assert not any(item.isVisible() for item in outlines)
    window.overlays_box.setChecked(True)
    qtbot.waitUntil(lambda: window.gallery.lists[View.R_CC].count() > 0, timeout=5000)
    region = window.result.views[View.R_CC].result(window.result.entries[0].id).regions[0]
    thumbnail = window.overlays.thumbnails[(View.R_CC, window.result.entries[0].id, region.rank)]
    assert thumbnail.ndim == 3 and (np.abs(thumbnail.reshape(-1, 3).astype(int) - REGION).sum(axis=1) < 60).any()
    assert "detection" in window.gallery.lists[View.R_CC].item(0).text()
    grab_png(window, tmp_path / "maskrcnn.png")


@pytest.mark.parametrize("view", ["L-MLO", "R-MLO", "L-CC"])
def test_mask_rcnn_labels_sit_by_their_outlines_inside_the_image_apart(qtbot, store, tmp_path, view):
    """Seen hands-on on exam 0 with the seeded detector: labels 140 px from their outlines (at a corner of a far
    larger box), on top of each other, and cut at the image's edge ("ign 8%")."""
    from tests.conftest import DATA, SHARED, require_shared

    seeded = SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt"
    require_shared(seeded.parent)
    from inference.weights import load_model

    window = open_one_view(qtbot, store, tmp_path, [load_model(seeded)],
                           __import__("cv2").imread(str(DATA / "gmic-exam0" / f"0_{view}.png"), -1),
                           name=f"0_{view}.png")
    widget = window.hanging.views[View(view)]
    qtbot.wait(50)
    image = widget.image_item.sceneBoundingRect()
    drawn = [(label.sceneBoundingRect(), outline.sceneBoundingRect())
             for label, outline in zip(widget._labels, widget.detection_outlines(), strict=True)  # noqa: SLF001
             if label.isVisible()]
    assert len(drawn) >= 2
    for place, outline in drawn:
        assert image.adjusted(-1, -1, 1, 1).contains(place), (place, image)
        gap = max(outline.left() - place.right(), place.left() - outline.right(),
                  outline.top() - place.bottom(), place.top() - outline.bottom(), 0.0)
        assert gap <= 5 * place.height(), (place, outline)
    for i, (a, _) in enumerate(drawn):
        for b, _ in drawn[i + 1:]:
            assert not a.adjusted(1, 1, -1, -1).intersects(b.adjusted(1, 1, -1, -1)), (a, b)
    # every per-view number of the panel has its detection on screen (a malignant 9.3 % was drawn nowhere)
    shown = {(r.kind, r.score) for r in widget.result.regions
             for box in widget.patch_boxes() if box.rank == r.rank and box.isVisible()}
    for name, probability in widget.result.probabilities.items():
        if probability > 0:
            assert any(kind == f"{name} detection" and abs(score - probability) < 1e-6 for kind, score in shown), \
                (name, probability)


def test_mask_rcnn_labels_are_whole_on_a_narrow_image(qtbot, store, tmp_path):
    """Seen hands-on at 1280 × 800 with four models: where a label was wider than the narrow image (or flipped
    to stay in the viewport) it was cut at the image's own edge ("4%", "25 malignan"). Labels go on over the
    background; only the viewport bounds them: each label's first and last letters are on screen."""
    from app.colours import REGION
    from tests.conftest import DATA, SHARED, require_shared

    seeded = SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt"
    require_shared(seeded.parent)
    from inference.weights import load_model

    window = open_one_view(qtbot, store, tmp_path, [load_model(seeded)],
                           __import__("cv2").imread(str(DATA / "gmic-exam0" / "0_L-CC.png"), -1), name="0_L-CC.png")
    window.resize(900, 600)
    widget = window.hanging.views[View.L_CC]
    qtbot.waitUntil(lambda: widget.graphics.width() < 260, timeout=5000)
    qtbot.wait(100)
    image = widget.graphics.mapFromScene(widget.image_item.sceneBoundingRect()).boundingRect()
    shot = widget.graphics.grab().toImage()
    labels = [label for label in widget._labels if label.isVisible()]  # noqa: SLF001
    assert labels and any(widget.graphics.mapFromScene(label.sceneBoundingRect()).boundingRect().width()
                          > image.width() for label in labels)  # wider than the image: the case seen

    def lettered(x0: int, x1: int, y0: int, y1: int) -> bool:
        return any(np.abs(np.array(shot.pixelColor(x, y).getRgb()[:3]) - REGION).sum() < 90
                   for x in range(x0, x1) for y in range(y0, y1))

    for label in labels:
        rect = widget.graphics.mapFromScene(label.sceneBoundingRect()).boundingRect()
        assert rect.left() >= -1 and rect.right() <= widget.graphics.width() + 1, rect
        quarter = max(rect.width() // 4, 2)
        top, bottom = max(rect.top(), 0), min(rect.bottom(), shot.height() - 1)
        assert lettered(max(rect.left(), 0), rect.left() + quarter, top, bottom), (label.textItem.toPlainText(), rect)
        assert lettered(rect.right() - quarter, min(rect.right(), shot.width() - 1), top, bottom), \
            (label.textItem.toPlainText(), rect)
