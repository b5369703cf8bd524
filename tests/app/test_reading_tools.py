"""The reader's tools on real widgets: window/level drag, the magnifier, layouts, cross-reference, ruler, marks,
laterality warnings, blinding of every output, and the shipped reading defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.settings import AppSettings
from app.study.store import ReaderMark
from app.ui.workstation.hanging import Layout
from app.ui.workstation.main_window import MainWindow
from inference.intake.views import View
from tests.conftest import DATA, require_shared
from tests.app.conftest import open_and_wait, settle
from tests.helpers import synthetic_view, write_png


def make_window(qtbot, store, **settings) -> MainWindow:
    settings = {"blind_first": False, "show_overlays": True, **settings}
    window = MainWindow(AppSettings(**settings), store, model_path=settings.get("model_path", ""))
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    return window


def dicom_view(tmp_path, **attributes):
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    write(make_dataset(sample_pixels("L-CC", shrink=2), **attributes), tmp_path, "l_cc.dcm")
    return tmp_path


# ------------------------------------------------------------------------------------------------ window

@pytest.mark.parametrize("attributes", [{}, {"WindowCenter": 2000, "WindowWidth": 1000, "VOILUTFunction": "SIGMOID"}],
                         ids=["no window in the file", "sigmoid window"])
def test_right_drag_changes_width_and_level_continuously(qtbot, store, tmp_path, attributes):
    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, dicom_view(tmp_path, **attributes))
    widget = window.hanging.views[View.L_CC]
    seen = []
    for _ in range(5):  # five steps of one drag: each moves on from the last, none jumps back
        widget._on_window_drag(20.0, -10.0)
        low, high = widget.image_item.getLevels()
        seen.append((high - low, (high + low) / 2))
    widths, centres = zip(*seen, strict=True)
    assert all(b > a for a, b in zip(widths, widths[1:], strict=False))  # right: wider each step
    assert all(b < a for a, b in zip(centres, centres[1:], strict=False))  # up: lower level each step
    text = widget.readout.text()
    assert f"W {widths[-1]:.0f}" in text and f"L {centres[-1]:.0f}" in text and "zoom" in text


def test_corner_text_names_date_accession_and_patient_only_when_identified(qtbot, store, tmp_path):
    require_shared()
    from tests.inference.intake.dicom_factory import PATIENT_ID

    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, dicom_view(tmp_path))
    corner = window.hanging.views[View.L_CC].corner.text()
    assert "2026-01-01" in corner and "ACC123" in corner and PATIENT_ID in corner
    from inference.intake.exam import load_exam

    window.hanging.set_exam(load_exam(tmp_path).deidentify())
    corner = window.hanging.views[View.L_CC].corner.text()
    assert "ACC123" in corner and PATIENT_ID not in corner


def test_magnifier_samples_the_image_at_native_resolution(qtbot, store, tmp_path):
    """Zoomed far out (one screen pixel = several image pixels), the magnifier still shows every image pixel:
    at x1 neighbouring magnifier pixels are neighbouring image pixels, windowed as the view is."""
    rng = np.random.default_rng(1)
    image = (rng.integers(1000, 3000, (1400, 800))).astype(np.uint16)
    image[:, 600:] = 0  # background beyond the breast
    write_png(tmp_path / "0_L-CC.png", image)
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.L_CC]
    assert widget.zoom_factor() < 0.6
    widget.set_window(2000, 1000)
    widget.magnification = 1
    picture = widget.magnifier_picture((700.0, 300.0), size=40)
    expected = np.clip((image[680:720, 280:320].astype(float) - 1500) / 1000, 0, 1) * 255
    assert np.abs(picture.astype(float) - np.round(expected)).max() <= 1
    widget.magnification = 4
    enlarged = widget.magnifier_picture((700.0, 300.0), size=40)
    assert enlarged.shape == (40, 40) and abs(float(enlarged.mean()) - float(expected[15:25, 15:25].mean())) < 20


@pytest.mark.parametrize("layout", [Layout.CC, Layout.MLO, Layout.RIGHT, Layout.LEFT, Layout.FOUR])
def test_every_layout_fits_its_images_on_entry(qtbot, store, layout):
    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, DATA / "gmic-exam0")
    window.hanging.set_layout(layout)
    settle()
    shown = [window.hanging.views[v] for v in window.hanging.visible_views()]
    scales = []
    for widget in shown:
        h, w = widget.image.pixels.shape
        top_left, bottom_right = widget.item_to_widget(0, 0), widget.item_to_widget(w, h)
        drawn_h, drawn_w = abs(bottom_right.y() - top_left.y()), abs(bottom_right.x() - top_left.x())
        view_h, view_w = widget.graphics.height(), widget.graphics.width()
        scales.append(widget.viewbox.viewPixelSize()[0])
        # the largest image of the layout fills its viewport in one dimension; none is a small inset
        assert drawn_h >= 0.55 * view_h and drawn_w <= view_w + 2 and drawn_h <= view_h + 2
    assert max(scales) / min(scales) < 1.01  # one physical scale
    tallest = max(shown, key=lambda w: w.physical_size()[0])
    h, w = tallest.image.pixels.shape
    drawn = abs(tallest.item_to_widget(w, h).y() - tallest.item_to_widget(0, 0).y())
    drawn_w = abs(tallest.item_to_widget(w, h).x() - tallest.item_to_widget(0, 0).x())
    assert drawn >= 0.98 * tallest.graphics.height() or drawn_w >= 0.98 * tallest.graphics.width()


def test_a_view_without_a_pixel_spacing_beside_measured_ones_is_not_hung_at_nothing(qtbot, store, tmp_path):
    """One view in pixels beside views in millimetres (or a spacing off by a unit) shrank the others to a few
    screen pixels at one 'physical' scale: each view fills its own slot then."""
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        ds = make_dataset(sample_pixels(view, shrink=2), view)
        if view == "L-CC":
            del ds.ImagerPixelSpacing
        write(ds, tmp_path, f"{view}.dcm")
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    settle()
    for widget in window.hanging.views.values():
        h, w = widget.image.pixels.shape
        top_left, bottom_right = widget.item_to_widget(0, 0), widget.item_to_widget(w, h)
        drawn_h, drawn_w = abs(bottom_right.y() - top_left.y()), abs(bottom_right.x() - top_left.x())
        assert drawn_h >= 0.9 * widget.graphics.height() or drawn_w >= 0.9 * widget.graphics.width(), widget.view


def test_cross_reference_shows_the_band_at_the_same_depth(qtbot, store, tmp_path):
    """A lesion 250 columns behind the nipple in the CC is at the same depth in the MLO: pointing at it in
    the CC puts the MLO band over the MLO lesion (and the other way round)."""
    cc, mlo = synthetic_view("L-CC", (700, 390)), synthetic_view("L-MLO", (900, 390), shape=(1600, 800))
    write_png(tmp_path / "0_L-CC.png", cc)
    write_png(tmp_path / "0_L-MLO.png", mlo)
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    window.crossref_action.trigger()
    hanging = window.hanging
    hanging.views[View.L_CC].pointed.emit(View.L_CC, 700.0, 390.0)
    band = hanging.views[View.L_MLO].band
    assert band.isVisible() and band.rect().left() <= 390 <= band.rect().right()
    assert not hanging.views[View.L_CC].band.isVisible()
    hanging.views[View.L_MLO].pointed.emit(View.L_MLO, 900.0, 100.0)
    assert not hanging.views[View.L_CC].band.rect().left() <= 390 <= hanging.views[View.L_CC].band.rect().right()
    window.crossref_action.trigger()
    assert not band.isVisible()


def test_ruler_measures_millimetres_or_says_pixels(qtbot, store, tmp_path):
    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, dicom_view(tmp_path))  # ImagerPixelSpacing 0.1 mm
    widget = window.hanging.views[View.L_CC]
    window.ruler_action.trigger()
    start, end = widget.image_item.mapToScene(QPointF(100, 100)), widget.image_item.mapToScene(QPointF(400, 500))
    widget.viewbox.rulerDragged.emit(start, end, True)
    assert widget.rulers()[0].text() == "50.0 mm"  # 300 x 400 pixels of 0.1 mm
    png = tmp_path / "png"
    png.mkdir()
    write_png(png / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    open_and_wait(qtbot, window, png)
    widget = window.hanging.views[View.R_CC]
    widget.viewbox.rulerDragged.emit(widget.image_item.mapToScene(QPointF(0, 0)),
                                     widget.image_item.mapToScene(QPointF(30, 40)), True)
    assert widget.rulers()[0].text() == "50 px (no spacing: pixels)"


def test_marks_are_stored_with_the_read_and_come_back(qtbot, store, tmp_path):
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    window.add_mark(View.R_CC, 700.0, 500.0, ReaderMark("R-CC", 700.0, 500.0, "mass", 4))
    assert len(window.hanging.views[View.R_CC]._marks) == 1
    window.close()
    store.submit(lambda db: None).result()  # the writer thread has stored it
    again = make_window(qtbot, store)
    open_and_wait(qtbot, again, tmp_path)
    assert again.marks == [ReaderMark("R-CC", 700.0, 500.0, "mass", 4)]
    # a radiologist's test: the label, a child of the image, was cut at the image's edge (":ifications (3/5)")
    # instead of flipping at the viewport's; it sits on the unclipped label layer, as the regions' labels do
    (mark,) = again.hanging.views[View.R_CC]._marks
    holder = mark.label.parentItem()
    assert holder is again.hanging.views[View.R_CC].label_layer
    assert not holder.flags() & holder.GraphicsItemFlag.ItemClipsChildrenToShape


# --------------------------------------------------------------------------------------------- labels

def test_a_laterality_warning_above_one_slot_keeps_every_view_at_one_scale(qtbot, store, tmp_path):
    """The warning takes room from its slot's image: that slot's scale is the exam's (the other views shown as
    small), not a scale of its own (seen: 0.18x on the warned CC row, 0.12x on the MLO row)."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("L-CC", (700, 300)))  # a left breast labelled right
    write_png(tmp_path / "0_R-MLO.png", synthetic_view("R-MLO", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    warned, other = window.hanging.views[View.R_CC], window.hanging.views[View.R_MLO]
    assert warned.banner.isVisible() and not other.banner.isVisible()
    qtbot.waitUntil(lambda: abs(warned.viewbox.viewPixelSize()[1] / other.viewbox.viewPixelSize()[1] - 1) < 0.01,
                    timeout=5000)
    (_x0, _x1), (y0, y1) = warned.item_range()
    assert y0 <= 0.5 and y1 >= warned.image.pixels.shape[0] - 0.5  # and the warned image still whole


def test_a_laterality_warning_above_one_slot_keeps_its_pair_level(qtbot, store, tmp_path):
    """The banner above R CC pushed its image down beside L CC (a radiologist saw the nipples 100 px apart): the
    partner slot keeps blank room of the banner's height, so the pair hangs level for comparison."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("L-CC", (700, 300)))  # a left breast labelled right
    write_png(tmp_path / "0_L-CC.png", synthetic_view("L-CC", (700, 300)))
    window = make_window(qtbot, store)
    window.resize(1400, 900)
    open_and_wait(qtbot, window, tmp_path)
    warned, partner = window.hanging.views[View.R_CC], window.hanging.views[View.L_CC]
    assert warned.banner.isVisible() and "POSSIBLE LATERALITY ERROR" in warned.banner.text.text()
    assert partner.banner.confirm_button.isHidden() and partner.banner.move_button.isHidden()  # room, no warning
    # level within the pixel the slots' widths may differ by (a wrapped line's height follows the width)
    qtbot.waitUntil(lambda: abs(warned.graphics.geometry().top() - partner.graphics.geometry().top()) <= 2,
                    timeout=5000)
    assert abs(warned.graphics.height() - partner.graphics.height()) <= 2 and warned.banner.height() > 20


def test_a_possible_laterality_error_is_loud_and_can_be_moved(qtbot, store, tmp_path, stub_model):
    write_png(tmp_path / "0_R-CC.png", synthetic_view("L-CC", (700, 300)))  # a left breast labelled right
    window = make_window(qtbot, store, auto_run=True)
    window.use_models([stub_model])
    open_and_wait(qtbot, window, tmp_path, analysis=True)
    slot = window.hanging.views[View.R_CC]
    assert slot.banner.isVisible() and "POSSIBLE LATERALITY ERROR" in slot.banner.text.text()
    # above the image, not over it: the whole image is in the view left below the warning
    assert slot.banner.geometry().bottom() < slot.graphics.geometry().top()
    (x0, x1), (y0, y1) = slot.item_range()
    height, width = slot.image.pixels.shape
    assert y0 <= 0.5 and y1 >= height - 0.5 and x1 - x0 >= width - 0.5
    assert window.notes.item(0).text().startswith("⚠⚠ POSSIBLE LATERALITY ERROR")
    assert not window.result.views[View.R_CC].counted and "R" not in window.result.breasts
    with qtbot.waitSignal(window.analysisFinished, timeout=60_000):
        slot.banner.move_button.click()
    assert window.exam.laterality_conflicts == () and View.L_CC in window.exam.views
    assert window.result.views[View.L_CC].counted and "L" in window.result.breasts
    assert not window.hanging.views[View.L_CC].banner.isVisible()


def test_a_mark_goes_with_its_image_when_the_image_is_moved_to_the_other_side(qtbot, store, tmp_path):
    """Marks lie on an image's own pixels: moved (the banner's button), the image takes them to its new slot
    (they stayed on the old one, drawn on the other breast's image and stored as that breast's)."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("L-CC", (700, 300)))  # a left breast filed as R-CC
    write_png(tmp_path / "0_L-CC.png", synthetic_view("R-CC", (400, 500)))  # and the right one as L-CC
    for view in ("R-MLO", "L-MLO"):
        write_png(tmp_path / f"0_{view}.png", synthetic_view(view, (700, 400)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    marked = window.exam.views[View.R_CC].pixels
    window.add_mark(View.R_CC, 700, 300, ReaderMark("R-CC", 700, 300, "mass", 5))
    window.hanging.views[View.R_CC].banner.move_button.click()
    settle()
    assert window.exam.views[View.L_CC].pixels is marked
    assert [m.view for m in window.marks] == ["L-CC"]
    assert {v: len(w._marks) for v, w in window.hanging.views.items() if w._marks} == {View.L_CC: 1}  # noqa: SLF001
    store.submit(lambda db: None).result()
    assert [m.view for m in store.load_marks(window.exam_key, window._reader())] == ["L-CC"]  # noqa: SLF001


# ------------------------------------------------------------------------------------------- blinding

def test_shipped_defaults_are_blind_first_with_maps_on_demand():
    settings = AppSettings()
    assert settings.blind_first and not settings.show_overlays


def test_a_hidden_model_is_in_no_export(qtbot, store, tmp_path, stub_model):
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store, auto_run=True, blind_first=True)
    window.use_models([stub_model])
    open_and_wait(qtbot, window, tmp_path, analysis=True)
    assert window.model_hidden()
    worker = window.export(str(tmp_path / "out"), ["pdf", "json"], deidentify=False)
    with qtbot.waitSignal(worker.result, timeout=60_000) as blocker:
        pass
    data = json.loads(next(p for p in blocker.args[0].paths if p.suffix == ".json").read_text())
    assert data["result"] is None and "blind first" in data["model_withheld"]
    assert not any(p.suffix == ".npz" for p in blocker.args[0].paths)
    from tests.report.test_report import pdf_text

    text = pdf_text(next(p for p in blocker.args[0].paths if p.suffix == ".pdf"))
    assert "Model probabilities" not in text and "blind first" in text
    tooltips = [b.toolTip() for b in window.hanging.views[View.R_CC].patch_boxes()]
    assert all(not b.isVisible() for b in window.hanging.views[View.R_CC].patch_boxes()) and tooltips
    assert not window.gallery.isVisible()


def test_preferences_show_the_model_in_use_and_ok_keeps_it(qtbot, store):
    from app.demo import demo_model_path
    from app.ui.workstation.preferences import PreferencesDialog

    window = MainWindow(AppSettings(), store)  # no model configured: the built-in demo model
    qtbot.addWidget(window)
    assert window.model_path == str(demo_model_path())
    in_use, demo = window.preferences.models_in_use()
    dialog = PreferencesDialog(window.settings, window, in_use=in_use, in_use_is_demo=demo)
    qtbot.addWidget(dialog)
    assert "demo" in dialog.in_use.text() and str(demo_model_path()) in dialog.in_use.text()
    window.apply_settings(dialog.settings())  # OK with the field left empty
    assert window.model_path == str(demo_model_path())
    assert "DEMO MODEL" in window.banner.text()


def test_an_uncalibrated_score_says_so_and_a_calibrated_one_gives_its_category():
    from inference.evaluation.calibration import score_category

    assert score_category(0.4, None) == "uncalibrated"
    calibration = {"method": "none", "data": "phantom validation",
                   "operating_points": [{"name": "90 % specificity", "threshold": 0.3}]}
    assert score_category(0.4, calibration) == "above the 90 % specificity threshold (0.30)"
    assert score_category(0.1, calibration) == "below the 90 % specificity threshold (0.30)"


# ---------------------------------------------------------------------------------------------- polish

def test_a_zero_map_tints_nothing(qtbot):
    """Alpha is 0 where the map is 0: an all-zero layer leaves the picture exactly as it was."""
    from inference.results.types import HeatLayer, InputFrame
    from inference.intake.image import ViewImage
    from inference.results.exam_result import EntryViewResult
    from app.ui.workstation.view_widget import MammoViewWidget, OverlayOptions
    from pathlib import Path

    image = synthetic_view("L-CC", (700, 300))
    view_image = ViewImage(View.L_CC, image, image.astype(np.float32), False, Path("x.png"))
    widget = MammoViewWidget(View.L_CC)
    qtbot.addWidget(widget)
    widget.resize(500, 700)
    widget.show()
    widget.set_image(view_image)
    settle()
    before = widget.graphics.grab().toImage()
    frame = InputFrame((1400, 800), np.eye(3), (1400, 800))
    zero = HeatLayer("saliency", "malignant", np.zeros((46, 30), np.float32), frame.layer_affine((46, 30)))
    result = EntryViewResult({"malignant": 0.0}, {"malignant": 0.0}, (zero,), (), {}, (), "", frame)
    widget.set_result(result, classes=("malignant",))
    widget.set_overlay_options(OverlayOptions(visible=True, classes=frozenset({"malignant"}), opacity=1.0))
    settle()
    assert widget.heatmap_item("malignant").isVisible()
    assert widget.graphics.grab().toImage() == before


def test_a_selected_region_is_framed_not_tinted():
    from PySide6.QtGui import QIcon

    from app.ui.workstation.patch_gallery import region_icon

    icon = region_icon(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    normal = icon.pixmap(64, 64, QIcon.Mode.Normal).toImage()
    assert icon.pixmap(64, 64, QIcon.Mode.Selected).toImage() == normal


def test_slots_say_loading_until_the_images_arrive(qtbot, store):
    window = make_window(qtbot, store)
    window.hanging.set_loading()
    assert all("Loading" in w.empty.text() and w.empty.isVisible() for w in window.hanging.views.values())


def test_ctrl_r_on_a_restored_result_offers_to_analyse_again(qtbot, store, tmp_path, stub_model):
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    first = make_window(qtbot, store, auto_run=True)
    first.use_models([stub_model])
    open_and_wait(qtbot, first, tmp_path, analysis=True)
    assert not first.restored
    first.close()
    window = make_window(qtbot, store, auto_run=True)
    window.use_models([stub_model])
    open_and_wait(qtbot, window, tmp_path, analysis=True)
    assert window.restored
    window.findChild(type(window.link_action), "runAnalysis").trigger()
    from PySide6.QtWidgets import QMessageBox

    dialog = next(w for w in window.findChildren(QMessageBox) if w.objectName() == "reanalyseDialog")
    assert "restored" in dialog.text()
    # blind first: the question spoke of "the result shown" while it was hidden
    assert ("hidden until you commit your estimate" in dialog.text()) == window.model_hidden()
    assert ("The result shown" in dialog.text()) != window.model_hidden()
    with qtbot.waitSignal(window.analysisFinished, timeout=60_000):
        dialog.button(QMessageBox.StandardButton.Yes).click()
    assert not window.restored


def test_a_full_config_folder_at_start_is_a_message_not_a_crash(tmp_path):
    """The local database cannot be opened (here its file name is taken by a folder, as a full or read-only
    disk would refuse it): the workstation still opens, reads the exam, and says that nothing is saved."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path / "home"
    (home / "mammo_reader.sqlite").mkdir(parents=True)
    (tmp_path / "exam").mkdir()
    write_png(tmp_path / "exam" / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    out = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, "main.py", "--screenshot", str(out), str(tmp_path / "exam")],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "MAMMO_READER_HOME": str(home)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.is_file() and "NOT saved" in done.stderr and "Traceback" not in done.stderr


def test_the_magnifier_lens_is_centred_on_the_cursor_and_quit_needs_no_click(qtbot, store, tmp_path):
    """Issue 25 polish: the lens sits on the cursor (and lets the mouse through to the image); Ctrl+Q is an
    application-wide shortcut."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtGui import QAction

    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.R_CC]
    widget.set_magnifier(True)
    widget.update_magnifier(QPoint(200, 150), (700.0, 500.0), size=120)
    centre = widget.magnifier.geometry().center()
    assert abs(centre.x() - 200) <= 2 and abs(centre.y() - 150) <= 2
    assert widget.magnifier.testAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    quit_action = window.findChild(QAction, "quit")
    assert quit_action.shortcutContext() == Qt.ShortcutContext.ApplicationShortcut


def test_the_ruler_label_stays_inside_the_viewport(qtbot, store, tmp_path):
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.R_CC]
    (x0, x1), (y0, y1) = widget.viewbox.viewRange()
    start = widget.image_item.mapToScene(QPointF((x0 + x1) / 2, (y0 + y1) / 2))
    corner = widget.image_item.mapToScene(QPointF(x1 - 1, y0 + 1))  # the top-right corner of the viewport
    widget._on_ruler(start, corner, True)
    label = widget.rulers()[-1].label
    box = label.mapRectToScene(label.boundingRect())
    on_screen = widget.graphics.mapFromScene(box).boundingRect()
    assert on_screen.right() <= widget.graphics.width() + 1 and on_screen.top() >= -1


def test_a_measurement_s_label_at_the_image_s_edge_is_not_cut_by_it(qtbot, store, tmp_path):
    """A line ending at a narrow view's edge read "49.1" without its "mm": the label was the image's child,
    clipped to it (a radiologist's hands-on test); it lies on the view's label layer, as the marks' do."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.R_CC]
    rows, cols = widget.image.pixels.shape
    start = widget.image_item.mapToScene(QPointF(cols / 2, rows / 2))
    edge = widget.image_item.mapToScene(QPointF(cols - 1, rows / 2))
    widget._on_ruler(start, edge, True)
    label = widget.rulers()[-1].label
    assert label.parentItem() is widget.label_layer  # the image clips its children; the layer does not
    assert label.toPlainText().endswith(" mm") or label.toPlainText().endswith("pixels)")


def test_a_measurement_dragged_beyond_the_image_measures_the_line_drawn_on_it(qtbot, store, tmp_path):
    """Dragged out into the slot beside the image, the line stopped at the image's edge (clipped) while its label
    gave the length to the cursor: "207.2 mm" beside a line of about 70 mm (a radiologist's re-test)."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.R_CC]
    rows, cols = widget.image.pixels.shape
    start = widget.image_item.mapToScene(QPointF(cols - 300, rows / 2))
    beyond = widget.image_item.mapToScene(QPointF(cols + 500, rows / 2 + 400))  # past the right and lower edges
    widget._on_ruler(start, beyond, True)
    ruler = widget.rulers()[-1]
    line = ruler.line.line()
    assert (line.x2(), line.y2()) == (float(cols), min(rows / 2 + 400, float(rows)))
    expected = ((cols - (cols - 300)) ** 2 + (line.y2() - rows / 2) ** 2) ** 0.5
    assert ruler.text() == f"{expected:.0f} px (no spacing: pixels)"


def test_a_measurement_s_label_is_not_laid_over_the_view_s_own_texts(qtbot, store, tmp_path):
    """Zoomed in, a line ending just under the orientation marker wrote its length over "R CC" (the label goes
    above right of its end unless cut there): it goes to a side where it covers none of the view's texts."""
    from PySide6.QtCore import QPoint  # noqa: PLC0415

    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.R_CC]
    widget.viewbox.setRange(xRange=(150, 350), yRange=(250, 450), padding=0)  # the image fills the view
    settle()
    marker = widget.marker.geometry()
    end = widget.graphics.mapToScene(QPoint(marker.left() + 12, marker.bottom() + 4))
    middle = widget.graphics.mapToScene(widget.graphics.viewport().rect().center())
    widget._on_ruler(middle, end, True)
    label = widget.rulers()[-1].label
    drawn = widget.graphics.mapFromScene(label.mapRectToScene(label.boundingRect())).boundingRect()
    assert label.toPlainText().endswith("pixels)") and not drawn.intersects(marker)
    assert drawn.left() >= -1 and drawn.bottom() <= widget.graphics.height() + 1


def test_mark_and_measurement_labels_stay_inside_the_viewport_after_a_pan(qtbot, store, tmp_path):
    """Issue 25 polish: every label drawn on the image (a mark's, a measurement's, the regions' numbers) flips
    to the other side of its point when the preferred side would be cut at the viewport's edge, also after
    the reader pans or zooms."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.R_CC]

    def inside(label) -> bool:
        box = widget.graphics.mapFromScene(label.mapRectToScene(label.boundingRect())).boundingRect()
        return box.left() >= -1 and box.top() >= -1 and box.right() <= widget.graphics.width() + 1 and \
            box.bottom() <= widget.graphics.height() + 1

    (x0, x1), (y0, y1) = widget.viewbox.viewRange()
    mark = ReaderMark(View.R_CC.value, (y0 + y1) / 2, (x0 + x1) / 2, "mass", 4)
    widget.set_marks([mark])
    start = widget.image_item.mapToScene(QPointF((x0 + x1) / 2 - 50, (y0 + y1) / 2 + 50))
    end = widget.image_item.mapToScene(QPointF((x0 + x1) / 2, (y0 + y1) / 2 + 100))
    widget._on_ruler(start, end, True)
    labels = [widget._marks[0].label, widget.rulers()[0].label]
    assert all(inside(label) for label in labels)
    # pan so that the mark and the measurement sit at the viewport's top-right corner
    point = widget.item_to_widget((x0 + x1) / 2, (y0 + y1) / 2)
    dx = widget.graphics.width() - point.x() - 3
    dy = -point.y() + 3
    (vx0, vx1), (vy0, vy1) = widget.viewbox.viewRange()
    scale_x = (vx1 - vx0) / widget.graphics.width()
    scale_y = (vy1 - vy0) / widget.graphics.height()
    widget.viewbox.setRange(xRange=(vx0 - dx * scale_x, vx1 - dx * scale_x),
                            yRange=(vy0 - dy * scale_y, vy1 - dy * scale_y), padding=0)
    widget.viewbox.updateMatrix()
    moved = widget.item_to_widget((x0 + x1) / 2, (y0 + y1) / 2)
    assert abs(moved.x() - (widget.graphics.width() - 3)) < 5 and abs(moved.y() - 3) < 5
    settle()  # the range change alone clamps them (sigRangeChanged -> clamp_labels)
    assert all(inside(label) for label in labels)


def test_the_pixel_readout_clears_when_the_pointer_leaves_the_view_or_the_layout_changes(qtbot, store, tmp_path):
    """With R-CC alone on screen and the pointer over the gallery, the status bar still read "L-CC row 623 col
    41 value 278"."""
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtWidgets import QApplication

    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, dicom_view(tmp_path))
    widget = window.hanging.views[View.L_CC]
    centre = widget.image_item.mapToScene(QPointF(widget.image.pixels.shape[1] / 2, widget.image.pixels.shape[0] / 2))
    widget._on_mouse_moved(centre)  # noqa: SLF001 - the scene's mouse-move signal
    assert window.cursor_label.text().startswith("L-CC  row ")
    QApplication.sendEvent(widget, QEvent(QEvent.Type.Leave))
    assert window.cursor_label.text() == ""
    widget._on_mouse_moved(centre)  # noqa: SLF001
    window.hanging.toggle_single(View.R_CC)
    assert window.cursor_label.text() == ""


def test_the_lens_goes_when_the_pointer_leaves_the_view_or_the_window_changes(qtbot, store, tmp_path):
    """Seen by a radiologist: the lens stayed where the pointer had left the view, with the pixels of before an
    invert, and so did the lens that followed it into the partner view, until G was pressed again."""
    from PySide6.QtCore import QEvent, QPoint
    from PySide6.QtWidgets import QApplication

    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    write_png(tmp_path / "0_L-CC.png", synthetic_view("L-CC", (700, 250)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    right, left = window.hanging.views[View.R_CC], window.hanging.views[View.L_CC]
    for widget in (right, left):
        widget.set_magnifier(True)
    right.update_magnifier(QPoint(200, 150), (700.0, 500.0), size=120)
    left.magnify_at((700.0, 250.0), right.magnification)  # the partner's lens follows the reader's
    assert right.magnifier.isVisible() and left.magnifier.isVisible()
    QApplication.sendEvent(right, QEvent(QEvent.Type.Leave))
    assert not right.magnifier.isVisible() and not left.magnifier.isVisible()
    assert right._magnifier_on  # still on: the lens comes back where the pointer moves next
    right.update_magnifier(QPoint(200, 150), (700.0, 500.0), size=120)
    before = right.magnifier.pixmap().toImage()
    right.toggle_invert()  # the lens showed the pixels of before: now drawn again, inverted (found in review:
    assert right.magnifier.isVisible() and right.magnifier.pixmap().toImage() != before  # hidden, a right-drag
    right._on_window_drag(5.0, 5.0)  # lost it at every step)
    assert right.magnifier.isVisible()


def test_the_mark_dialog_says_which_view_and_breast_in_its_body(qtbot):
    """Seen by a radiologist without a window manager: the dialog named its view only in the title bar, which was
    not drawn; it now says the view and the breast beside the fields."""
    from app.ui.workstation.mark_dialog import MarkDialog

    dialog = MarkDialog("R-MLO", 10.0, 20.0)
    qtbot.addWidget(dialog)
    assert dialog.where.text() == "R-MLO (right breast)" and dialog.mark().view == "R-MLO"


def test_a_screenshot_of_a_refused_worklist_says_why_and_ends(tmp_path):
    """It waited for ever: the worklist's error opened a dialog and no exam ever came to finish the picture."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "empty").mkdir()
    out = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, "main.py", "open", "--worklist", str(tmp_path / "empty"), "--screenshot",
                           str(out)], cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen",
                                            "MAMMO_READER_HOME": str(tmp_path / "home")})
    assert done.returncode == 1 and out.is_file()
    assert f"error: {tmp_path / 'empty'}" in done.stderr and "Traceback" not in done.stderr


def test_the_readout_fits_a_narrow_view_and_the_notes_badge_never_covers_it(qtbot, store, tmp_path):
    """At 1280 × 800 with the worklist open, the notes badge covered the window / level readout ("W 58344 L 29393
    · exam au[⚠ 3 notes]") and the readout ran past the view's edge ("… zoom 0.07")."""
    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, dicom_view(tmp_path, WindowCenter=29393, WindowWidth=58344))
    widget = window.hanging.views[View.L_CC]
    widget.badge.setText("⚠ 3 notes")
    widget.badge.show()
    for width in (900, 420, 260):
        widget.graphics.resize(width, 300)
        widget._place_labels()  # noqa: SLF001 - what a resize does
        view = widget.graphics.rect()
        readout, badge = widget.readout.geometry(), widget.badge.geometry()
        assert view.contains(readout), (width, readout, view, widget.readout.text())
        assert view.contains(badge) and not readout.intersects(badge), (width, readout, badge)
        assert "zoom" in widget.readout.text() and "W 58344" in widget.readout.text()
    assert "\n" in widget.readout.text()  # broken at its separators where one line does not fit
