"""CAD marks by operating point: regions shown from the model's declared region operating point (the top ones,
said so, without one), never in the air outside the breast, the rest dimmed with "all regions"; numbers that
do not overlap; background classes off by default."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QToolBar, QToolButton

from app.cad_marks import NO_REGION_THRESHOLD, TOP_REGIONS, Rect, background_classes, place_labels
from inference.intake.image import MIN_TISSUE_FRACTION, tissue_fraction
from inference.intake.views import View
from tests.app.conftest import open_one_view
from tests.helpers import synthetic_view



def with_display(model, **display):
    return dataclasses.replace(model, identity=dataclasses.replace(model.identity, display=display))


def visible(widget):
    return sorted(box.rank for box in widget.patch_boxes() if box.isVisible())


def inside_ranks(widget):
    tissue = widget.image.model_image > 0
    return [r.rank for r in widget.result.regions if tissue_fraction(r.box_original, tissue) >= MIN_TISSUE_FRACTION]


def test_without_an_operating_point_the_top_regions_are_shown_and_it_says_so(qtbot, store, tmp_path, stub_model):
    window = open_one_view(qtbot, store, tmp_path, [stub_model], synthetic_view("R-CC", (700, 500)))
    widget = window.hanging.views[View.R_CC]
    assert len(widget.result.regions) > TOP_REGIONS
    inside = inside_ranks(widget)
    assert visible(widget) == sorted(inside)[:TOP_REGIONS]
    assert NO_REGION_THRESHOLD in window.regions_note.text()
    window.resize(1280, 800)  # a 1280-px screen: every control stays on the bar, the rule's words cut short
    bar = window.findChild(QToolBar, "overlayToolbar")
    qtbot.waitUntil(lambda: bar.width() <= 1280)
    assert window.opacity_slider.isVisible() and window.regions_note.isVisible()
    assert not bar.findChild(QToolButton, "qt_toolbar_ext_button").isVisible()
    assert NO_REGION_THRESHOLD in window.regions_note.toolTip()
    window.all_regions_box.setChecked(True)  # the rest, dimmed; never one in the air
    assert visible(widget) == sorted(inside)
    dimmed = [box for box in widget.patch_boxes() if box.isVisible() and box.opacity() < 1]
    assert len(dimmed) == len(inside) - min(TOP_REGIONS, len(inside))


def test_regions_are_shown_from_the_declared_operating_point(qtbot, store, tmp_path, stub_model):
    (tmp_path / "a").mkdir()
    probe = open_one_view(qtbot, store, tmp_path / "a", [stub_model], synthetic_view("R-CC", (700, 500)))
    scores = sorted((r.score for r in probe.hanging.views[View.R_CC].result.regions), reverse=True)
    threshold = (scores[0] + scores[1]) / 2  # only the best region reaches it
    probe.close()
    model = with_display(stub_model, region_operating_point=threshold)
    (tmp_path / "b").mkdir()
    window = open_one_view(qtbot, store, tmp_path / "b", [model], synthetic_view("R-CC", (700, 500)))
    widget = window.hanging.views[View.R_CC]
    passing = [r.rank for r in widget.result.regions if r.score >= threshold and r.rank in inside_ranks(widget)]
    assert visible(widget) == passing and len(passing) == 1
    assert f"operating point {threshold:.2f}" in window.regions_note.text()
    window.all_regions_box.setChecked(True)
    assert visible(widget) == sorted(inside_ranks(widget))


def test_a_region_mostly_in_the_air_is_outside_and_numbers_do_not_overlap():
    import numpy as np

    tissue = np.zeros((100, 100), bool)
    tissue[:, :50] = True
    assert tissue_fraction((0, 0, 10, 10), tissue) == 1.0
    assert tissue_fraction((0, 40, 10, 60), tissue) == 0.5
    assert tissue_fraction((0, 90, 10, 130), tissue) == 0.0  # past the image edge counts as outside
    boxes = [Rect(10, 10, 40, 40), Rect(12, 12, 40, 40), Rect(11, 11, 40, 40)]  # three boxes almost on top
    labels = place_labels(boxes, (8, 6), nipple_left=True)
    assert not any(a.overlaps(b) for i, a in enumerate(labels) for b in labels[i + 1:])


def test_a_region_on_a_marker_apart_from_the_breast_is_outside():
    """The letters and markers burnt into the background are tissue > 0 but not breast (they carried a Mask
    R-CNN 'benign mass' at 0.96, drawn and exported as a finding)."""
    import numpy as np

    from app.cad_marks import RegionShown, classify_regions
    from inference.intake.image import breast_mask

    model_image = np.zeros((400, 300), np.float32)
    model_image[50:350, :180] = 1.0  # the breast against the chest wall
    model_image[360:390, 250:280] = 3.0  # a marker in the background
    model_image[:, 120] = 0.0  # a line of background cutting the breast in two: both parts are breast
    model_image[10:30, 0:20] = 2.0  # a small piece at the chest wall (an axillary tail cut off): breast too
    breast = breast_mask(model_image)
    assert breast[200, 50] and breast[200, 150] and breast[20, 10] and not breast[370, 260]

    class Region:
        def __init__(self, rank, box):
            self.rank, self.box_original, self.score = rank, box, 0.9

    verdicts, _ = classify_regions([Region(1, (360, 250, 390, 280)), Region(2, (100, 20, 140, 60))], None, breast)
    assert [verdict for _, verdict in verdicts] == [RegionShown.OUTSIDE, RegionShown.SHOWN]


def test_without_an_operating_point_the_best_of_each_kind_is_shown_too():
    """A detector's panel shows each class's best score: its detection is drawn even below the top three."""
    from types import SimpleNamespace

    from app.cad_marks import RegionShown, classify_regions

    kinds = ["benign mass detection"] * 4 + ["malignant mass detection"]
    regions = [SimpleNamespace(rank=i, box_original=(0, 0, 10, 10), score=1 - i / 10, kind=kind)
               for i, kind in enumerate(kinds, start=1)]
    verdicts, note = classify_regions(regions, None, None)
    assert [v for _, v in verdicts] == [RegionShown.SHOWN] * 3 + [RegionShown.BELOW, RegionShown.SHOWN]
    assert "each kind's best" in note


def test_background_classes_are_never_on_by_default():
    assert background_classes(("no_tumour", "benign", "malignant")) == {"no_tumour"}
    assert background_classes(("background", "benign mass", "malignant mass")) == {"background"}

    class Identity:
        display = {"background_classes": ["healthy"]}

    assert background_classes(("healthy", "cancer"), [Identity()]) == {"healthy"}


def test_colour_mapped_maps_only_over_tissue_and_on_the_declared_range():
    import numpy as np

    from app.overlay_images import layer_texture, over_tissue
    from inference.results.types import HeatLayer

    near_uniform = np.full((40, 40), 0.2, np.float32)  # an attention map with nothing in it
    affine = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 1]])  # a 40 x 40 map over a 400 x 400 image
    layer = HeatLayer("attention", None, near_uniform, affine, colormap="viridis")
    own = layer_texture(layer)
    scaled = layer_texture(layer, (0.0, 1.0))
    assert scaled.values.max() <= own.values.max()
    assert layer_texture(layer, (0.1, 0.3)).values.max() == 128  # 0.2 is half way on the declared range
    tissue = np.zeros((400, 400), bool)
    tissue[:, :200] = True  # the breast on the left half, air on the right
    masked = over_tissue(scaled, tissue)
    rows, cols = masked.values.shape
    assert masked.values[:, : cols // 2 - 1].min() > 0 and masked.values[:, cols // 2 + 1:].max() == 0


def test_a_view_whose_regions_all_lie_outside_the_breast_says_so_in_the_gallery(qtbot, store, tmp_path, stub_model,
                                                                                 monkeypatch):
    """Seen by a radiologist: a view with no region drawn had an empty gallery tab, which read as regions lost."""
    import app.cad_marks
    from app.cad_marks import RegionShown

    window = open_one_view(qtbot, store, tmp_path, [stub_model], synthetic_view("R-CC", (700, 500)))
    monkeypatch.setattr(app.cad_marks, "classify_regions",
                        lambda regions, *_args: ([(r, RegionShown.OUTSIDE) for r in regions], "the rule"))
    window.gallery.set_result(window.result, window.overlays, window.entry_id, window.exam)
    listing = window.gallery.lists[View.R_CC]
    assert listing.count() == 1 and "No region of this model lies over the breast on R-CC" in listing.item(0).text()
    with qtbot.assertNotEmitted(window.gallery.patchClicked):
        listing.itemClicked.emit(listing.item(0))


def test_the_gallery_s_captions_fit_a_short_pane(qtbot, store, tmp_path, stub_model):
    """At 1600 x 1000 the regions' captions ("#3 attention 0.162, 256 × 256") were cut in half at the bottom of
    the gallery (a hands-on review): the thumbnails are as large as a row fits with its captions."""
    from app.ui.workstation.patch_gallery import PATCH_ICON  # noqa: PLC0415

    window = open_one_view(qtbot, store, tmp_path, [stub_model], synthetic_view("R-CC", (700, 500)))
    gallery = window.gallery
    for height, large in ((190, False), (400, True)):
        gallery.setFixedHeight(height)
        qtbot.waitUntil(lambda h=height: gallery.height() == h, timeout=5000)
        listing = gallery.lists[View.R_CC]
        assert (listing.iconSize().height() == PATCH_ICON) == large
        first = listing.visualItemRect(listing.item(0))
        assert first.bottom() <= listing.viewport().height(), (height, first, listing.viewport().height())
