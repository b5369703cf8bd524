"""The workstation: hanging, W/L, linked zoom, overlay registration, patches, scores, blind reading."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.settings import AppSettings
from app.ui.workstation.hanging import Layout
from app.ui.workstation.main_window import MainWindow
from inference.intake.views import View
from tests.app.conftest import STALL_LIMIT_S, StallProbe, open_and_wait
from tests.helpers import synthetic_view, write_png
from tests.conftest import DATA, REFERENCE, require_shared

ROOT = Path(__file__).resolve().parents[2]



def make_window(qtbot, store, **settings) -> MainWindow:
    """A window whose model is shown at once (the shipped defaults, blind first and maps on demand, have
    their own test)."""
    settings = {"blind_first": False, "show_overlays": True, **settings}
    window = MainWindow(AppSettings(**settings), store, model_path=settings.get("model_path", ""))
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    return window




def analysed_r_cc_window(qtbot, store, folder, stub_model, **settings) -> MainWindow:
    """A window that opened a one-view R-CC exam (lesion at row 700, col 500) and analysed it with the stub."""
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store, auto_run=True, **settings)
    window.use_models([stub_model])
    open_and_wait(qtbot, window, folder, analysis=True)
    return window


def widget_x_of(widget, x, y):
    return widget.item_to_widget(x, y).x()


def test_open_exam_hangs_views_back_to_back(qtbot, store):
    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, DATA / "gmic-exam0")
    hanging = window.hanging
    for view in View:
        assert hanging.views[view].image is not None and not hanging.views[view].empty.isVisible()
    # right views on the left half, left views on the right half, CC above MLO
    pos = {v: hanging.views[v].mapTo(window, hanging.views[v].rect().center()) for v in View}
    assert pos[View.R_CC].x() < pos[View.L_CC].x() and pos[View.R_MLO].x() < pos[View.L_MLO].x()
    assert pos[View.R_CC].y() < pos[View.R_MLO].y()
    # chest walls meet in the middle: the R image's chest wall is at its widget's right edge, L at the left
    for view in (View.R_CC, View.R_MLO):
        widget = hanging.views[view]
        h, w = widget.image.pixels.shape
        assert abs(widget_x_of(widget, w, h / 2) - widget.graphics.width()) <= 3
        assert widget_x_of(widget, 0, h / 2) < widget_x_of(widget, w, h / 2)  # nipple points left
    for view in (View.L_CC, View.L_MLO):
        widget = hanging.views[view]
        h, w = widget.image.pixels.shape
        assert abs(widget_x_of(widget, 0, h / 2)) <= 3
        assert widget_x_of(widget, w, h / 2) > widget_x_of(widget, 0, h / 2)  # nipple points right
    # same scale: one image pixel covers the same screen size in all four
    scales = [hanging.views[v].viewbox.viewPixelSize()[0] for v in View]
    assert max(scales) / min(scales) < 1.01
    assert "No model configured" in window.banner.text()


def test_missing_view_shows_an_empty_slot(qtbot, store, tmp_path):
    require_shared()
    for view in ("L-CC", "R-CC", "L-MLO"):
        (tmp_path / f"0_{view}.png").write_bytes((DATA / "gmic-exam0" / f"0_{view}.png").read_bytes())
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    slot = window.hanging.views[View.R_MLO]
    assert slot.image is None and slot.empty.isVisible() and "R-MLO" in slot.empty.text()


def test_window_level_presets_and_invert(qtbot, store, tmp_path):
    require_shared()
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    pixels = sample_pixels("L-CC", shrink=2)
    ds = make_dataset(pixels, WindowCenter=[2000, 1000], WindowWidth=[1000, 400],
                      WindowCenterWidthExplanation=["NORMAL", "NARROW"])
    write(ds, tmp_path, "l_cc.dcm")
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    widget = window.hanging.views[View.L_CC]
    assert tuple(widget.image_item.getLevels()) == (1500.0, 2500.0)
    widget.cycle_preset()
    assert tuple(widget.image_item.getLevels()) == (800.0, 1200.0)
    widget._on_window_drag(50.0, 0.0)  # right-drag to the right widens
    low, high = widget.image_item.getLevels()
    assert high - low > 400
    lut_before = widget.image_item.lut.copy() if widget.image_item.lut is not None else None
    widget.toggle_invert()
    assert widget.inverted and lut_before is not None and widget.image_item.lut[0] == 255


def test_invert_holds_for_the_exam_s_every_view_and_the_next_exam_opens_as_its_files_say(qtbot, store, tmp_path):
    """I on the CC pair inverted those two only (the MLOs not, seen after a change of layout), and the next
    patient opened inverted on the views that had been (a radiologist's hands-on test)."""
    exams = {}
    for name, lesion in (("a", (700, 300)), ("b", (600, 400))):
        exams[name] = tmp_path / name
        exams[name].mkdir()
        for view in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
            write_png(exams[name] / f"0_{view}.png", synthetic_view(view, lesion))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, exams["a"])
    window.hanging.set_layout(Layout.CC)
    window.menu_actions.toggle_invert()
    assert all(w.inverted for w in window.hanging.views.values())  # the MLOs, off screen, too
    window.hanging.set_layout(Layout.FOUR)
    assert all(w.inverted and w.image_item.lut[0] == 255 for w in window.hanging.views.values())
    open_and_wait(qtbot, window, exams["b"])
    assert not any(w.inverted for w in window.hanging.views.values())
    window.menu_actions.toggle_invert()
    window.menu_actions.toggle_invert()  # and back
    assert not any(w.inverted for w in window.hanging.views.values())


def test_monochrome1_is_shown_dense_white(qtbot, store, tmp_path):
    require_shared()
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    pixels = sample_pixels("L-CC", shrink=2)
    write(make_dataset(4095 - pixels, photometric="MONOCHROME1"), tmp_path, "m1.dcm")
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    assert window.hanging.views[View.L_CC].inverted


def test_linked_zoom_mirrors_the_row_partner(qtbot, store):
    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, DATA / "gmic-exam0")
    right, left = window.hanging.views[View.R_CC], window.hanging.views[View.L_CC]
    w = right.image.pixels.shape[1]
    right.viewbox.setRange(xRange=(w - 300, w), yRange=(500, 900), padding=0)
    right.rangeChangedByUser.emit(View.R_CC)
    (d0, d1), (y0, y1) = left.distance_range_from_wall()
    (e0, e1), (z0, z1) = right.distance_range_from_wall()  # aspect lock may widen what was asked
    assert max(abs(d0 - e0), abs(d1 - e1), abs(y0 - z0), abs(y1 - z1)) < 1.0
    assert e1 - e0 < 600  # it is zoomed in, not the whole image
    window.link_action.trigger()  # unlink
    before = left.item_range()
    right.viewbox.setRange(xRange=(w - 100, w), yRange=(0, 150), padding=0)
    right.rangeChangedByUser.emit(View.R_CC)
    assert left.item_range() == before


def test_layouts_and_double_click(qtbot, store):
    require_shared()
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, DATA / "gmic-exam0")
    hanging = window.hanging
    hanging.set_layout(Layout.CC)
    assert hanging.views[View.R_CC].isVisible() and not hanging.views[View.R_MLO].isVisible()
    hanging.set_layout(Layout.FOUR)
    hanging.views[View.L_MLO].doubleClicked.emit(View.L_MLO)
    assert hanging.visible_views() == (View.L_MLO,) and not hanging.views[View.L_CC].isVisible()
    hanging.views[View.L_MLO].doubleClicked.emit(View.L_MLO)
    assert len(hanging.visible_views()) == 4


@pytest.mark.parametrize("view, mirrored", [("R-CC", False), ("L-CC", False), ("L-MLO", True)])
def test_heatmap_hot_spot_lands_on_the_lesion(qtbot, store, tmp_path, stub_model, view, mirrored):
    """A model whose saliency peaks at the brightest input region: the drawn peak must sit on the lesion in
    the stored image, through crop, flip, padding and (for a mirrored file) the display mirror."""
    lesion = (700, 500) if (view.startswith("R") != mirrored) else (700, 300)
    write_png(tmp_path / f"0_{view}.png", synthetic_view(view, lesion, mirrored=mirrored))
    window = make_window(qtbot, store, auto_run=True)
    window.use_models([stub_model])
    open_and_wait(qtbot, window, tmp_path, analysis=True)
    widget = window.hanging.views[View.parse(view)]
    assert widget.image.horizontal_flip == mirrored
    heat = widget.heatmap_item("malignant")
    alpha = heat.image
    i, j = np.unravel_index(np.argmax(alpha), alpha.shape)
    peak = heat.mapToItem(widget.image_item, QPointF(j + 0.5, i + 0.5))
    assert abs(peak.y() - lesion[0]) < 64 and abs(peak.x() - lesion[1]) < 64
    # the first patch box contains the lesion
    top, left, bottom, right = widget.result.regions[0].box_original
    assert top <= lesion[0] <= bottom and left <= lesion[1] <= right
    # and on screen the lesion and the drawn peak coincide
    screen_peak = widget.graphics.mapFromScene(heat.mapToScene(QPointF(j + 0.5, i + 0.5)))
    screen_lesion = widget.item_to_widget(lesion[1] + 0.5, lesion[0] + 0.5)
    assert abs(screen_peak.x() - screen_lesion.x()) < 20 and abs(screen_peak.y() - screen_lesion.y()) < 20


def test_patch_click_centres_and_zooms(qtbot, store, tmp_path, stub_model):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model)
    widget = window.hanging.views[View.R_CC]
    patch = widget.result.regions[2]
    listing = window.gallery.lists[View.R_CC]
    assert listing.count() == 6
    window.gallery.patchClicked.emit(View.R_CC, patch.rank)
    (x0, x1), (y0, y1) = widget.item_range()
    t, l, b, r = patch.box_original
    assert x0 <= (l + r) / 2 <= x1 and y0 <= (t + b) / 2 <= y1
    assert (x1 - x0) < 4 * (r - l) + 1
    widget.patchHovered.emit(View.R_CC, patch.rank)
    selected = [listing.item(i) for i in range(listing.count()) if listing.item(i).isSelected()]
    assert len(selected) == 1 and str(patch.rank) in selected[0].text()


def test_scoring_panel_arithmetic_and_persistence(qtbot, store, tmp_path, stub_model):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model)
    model = window.scores.model_malignant("R")
    assert model is not None
    window.scores.reader.inputs["R"].spin.setValue(40)
    hybrid_text = window.scores.compare.item(0, 3).text()
    assert hybrid_text == f"{100 * (0.4 + model) / 2:.1f} %"
    assert window.scores.compare.item(1, 3).text() == "—"  # no left breast image, no reader value
    window.commit_estimate()
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("committed"), timeout=5000)
    window.close()
    again = make_window(qtbot, store)
    open_and_wait(qtbot, again, tmp_path)
    assert again.scores.reader.value("R") == pytest.approx(0.4)
    assert again.committed


def test_an_unanswered_breast_reads_as_a_dash_and_zero_is_an_answer(qtbot):
    from app.ui.workstation.score_panel import ReaderPanel

    panel = ReaderPanel()
    qtbot.addWidget(panel)
    right = panel.inputs["R"]
    assert panel.value("R") is None and right.spin.text() == "—"
    right.slider.sliderPressed.emit()  # a press on the slider at 0 answers 0 %
    assert panel.value("R") == 0.0 and right.spin.text() == "0 %"
    right.slider.setValue(35)
    assert panel.value("R") == pytest.approx(0.35) and right.spin.value() == 35
    right.spin.setValue(80)
    assert right.slider.value() == 80
    panel.set_reads({})
    assert panel.value("R") is None and right.spin.text() == "—" and right.slider.value() == 0


def test_an_unanswered_breast_s_slider_shows_no_handle_where_0_percent_would_be(qtbot):
    """A handle at the left end read as an answer of 0 % where none was given: the slider draws its groove alone
    until the breast has an answer (typed, pressed on the slider, or a stored read), and again once it is emptied."""
    from app.study.store import BreastRead
    from app.ui.workstation.score_panel import ReaderPanel

    panel = ReaderPanel()
    panel.resize(600, 200)
    qtbot.addWidget(panel)
    panel.show()
    right = panel.inputs["R"]

    def drawn():
        return right.slider.grab().toImage()

    unanswered = drawn()
    assert right.slider.unanswered() and right.slider.accessibleDescription() == "no answer yet"
    right.spin.setValue(0)  # 0 % is an answer: the handle at the left end
    assert not right.slider.unanswered() and drawn() != unanswered
    zero = drawn()
    right.spin.lineEdit().clear()
    right.spin.lineEdit().textEdited.emit("")  # emptied: no answer again
    assert panel.value("R") is None and right.slider.unanswered() and drawn() == unanswered
    panel.set_reads({"R": BreastRead("R", 0.0)})
    assert not right.slider.unanswered() and drawn() == zero
    panel.set_reads({})
    assert right.slider.unanswered() and drawn() == unanswered
    right.slider.sliderPressed.emit()  # a press on the slider answers its value
    assert panel.value("R") == 0.0 and not right.slider.unanswered()
    # a click on the groove answers the value under it (Qt moved one page, 10 %, towards it: a review)
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    panel.set_reads({})
    slider = right.slider
    for share in (0.8, 0.25):
        QTest.mouseClick(slider, Qt.MouseButton.LeftButton, pos=QPoint(int(share * slider.width()), slider.height() // 2))
        assert abs(panel.value("R") - share) <= 0.04 and not slider.unanswered(), (share, panel.value("R"))


def test_an_edit_waiting_for_its_save_is_saved_on_close_and_never_after_the_store_closes(qtbot, store, tmp_path):
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store)
    open_and_wait(qtbot, window, tmp_path)
    window.scores.reader.inputs["R"].spin.setValue(55)
    assert window._save_timer.isActive()  # debounced, not yet written
    window.close()
    store.close()  # waits for the flushed write
    key = window.exam_key
    assert store.load_reads(key, "reader")["R"].malignant == pytest.approx(0.55)  # reads work on a closed store
    window.scores.reader.inputs["R"].spin.setValue(60)  # a late edit after shutdown: reported, nothing raised
    qtbot.waitUntil(lambda: window.scores.reader.saved_label.text().startswith("NOT saved"), timeout=10_000)
    assert store.load_reads(key, "reader")["R"].malignant == pytest.approx(0.55)


def test_blind_then_reveal(qtbot, store, tmp_path, stub_model):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model, blind_first=True)
    widget = window.hanging.views[View.R_CC]
    assert window.scores.model_hidden and not window.scores.model_box.isVisible()
    assert not widget.heatmap_item("malignant").isVisible() and not widget.patch_boxes()[0].isVisible()
    assert window.scores.compare.item(0, 2).text() == "hidden"
    assert not window.gallery.isVisible()
    from app.ui.workstation.overlay_bar import BLIND_OVERLAYS_TEXT

    window.overlays_box.setChecked(False)
    window.overlays_box.setChecked(True)  # H while hidden: said, and still nothing drawn
    assert window.statusBar().currentMessage() == BLIND_OVERLAYS_TEXT
    assert not widget.heatmap_item("malignant").isVisible() and not widget.patch_boxes()[0].isVisible()
    assert not window.commit_estimate()  # nothing answered: refused, the model stays hidden
    assert window.scores.model_hidden and "Not committed" in window.scores.reader.saved_label.text()
    window.scores.reader.inputs["R"].spin.setValue(70)
    assert window.commit_estimate()  # only the right breast has images here: that answer suffices
    assert not window.scores.model_hidden and window.scores.model_box.isVisible()
    assert widget.heatmap_item("malignant").isVisible() and widget.patch_boxes()[0].isVisible()
    assert window.scores.compare.item(0, 2).text() != "hidden"


def test_blind_reading_says_when_no_model_answer_will_come(qtbot, store, tmp_path, stub_model):
    """Blind first hides the model's numbers; where there are none (no model, a failed analysis) it says so, with
    the reason, before the commit instead of "hidden". An answer that exists stays hidden: after a later analysis
    of the exam failed too (its earlier result is still there), and on a view that is not counted."""
    from app.ui.workstation.score_panel import HIDDEN_TEXT

    exam = tmp_path / "exam"
    exam.mkdir()
    write_png(exam / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store, blind_first=True, auto_run=True)
    open_and_wait(qtbot, window, exam)
    scores = window.scores
    said = lambda: scores.hidden_label.text()  # noqa: E731
    qtbot.waitUntil(lambda: said().startswith("No model result for this exam: No model configured"), timeout=10_000)
    assert said().endswith("Your estimate is read unaided.") and not scores.model_box.isVisible()
    assert scores.compare.item(0, 2).text() == "—" and scores.compare.item(0, 3).text() == "—"

    broken = tmp_path / "broken.pt"
    broken.write_text("not a checkpoint")
    window.model_path = str(broken)
    with qtbot.waitSignals([window.analysisFailed, window.analysisFinished], timeout=60_000):
        window.start_analysis(force=True)
    assert said().startswith("No model result for this exam: Not analysed: ") and str(broken) in said()
    assert not scores.model_box.isVisible() and scores.compare.item(0, 2).text() == "—"

    window.use_models([stub_model])
    with qtbot.waitSignal(window.analysisFinished, timeout=60_000):
        window.start_analysis(force=True)
    assert said() == HIDDEN_TEXT and not scores.model_box.isVisible()
    assert scores.compare.item(0, 2).text() == "hidden"
    window.model_path = str(broken)  # analysed again, and failing: the answer on screen stays hidden
    with qtbot.waitSignals([window.analysisFailed, window.analysisFinished], timeout=60_000):
        window.start_analysis(force=True)
    assert said() == HIDDEN_TEXT and not scores.model_box.isVisible()
    assert scores.compare.item(0, 2).text() == "hidden"

    mirrored = tmp_path / "mirrored"  # one view, facing like a left breast: not counted, but it has a result
    mirrored.mkdir()
    write_png(mirrored / "0_R-CC.png", synthetic_view("L-CC", (700, 300)))
    window.use_models([stub_model])
    open_and_wait(qtbot, window, mirrored, analysis=True)
    assert not window.result.breasts and window.result.views[View.R_CC].entries
    assert said() == HIDDEN_TEXT and not scores.model_box.isVisible()
    assert all(scores.compare.item(0, c).text() in ("—", "hidden") for c in (2, 3))


def test_the_gallery_says_which_regions_the_image_does_not_draw(qtbot, store, tmp_path, stub_model):
    """The gallery lists every region on the breast; one the image draws only with "all regions" (below the rule:
    the top 3 and each kind's best without an operating point) says so, greyed, so that a listed "#5" without a
    box 5 on the image is not read as a region lost."""
    from app.ui.workstation.patch_gallery import NOT_DRAWN

    from PySide6.QtWidgets import QLabel

    from app.ui.workstation.patch_gallery import PatchGalleryWidget

    empty = PatchGalleryWidget()  # before a result: said, not a blank box
    qtbot.addWidget(empty)
    assert empty.count() == 1 and "once the exam is analysed" in empty.findChild(QLabel, "galleryEmpty").text()
    empty.set_result(None)
    qtbot.waitUntil(lambda: len(empty.findChildren(QLabel, "galleryEmpty")) == 1)  # the pages replaced go
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model)
    assert not any(window.gallery.widget(i).objectName() == "galleryEmpty" for i in range(window.gallery.count()))
    widget = window.hanging.views[View.R_CC]
    drawn = {box.rank for box in widget.patch_boxes() if box.isVisible()}
    listing = window.gallery.lists[View.R_CC]
    items = [listing.item(row) for row in range(listing.count())]
    ranks = {item.data(0x0100): item for item in items}  # Qt.UserRole
    assert drawn and len(ranks) > len(drawn)  # the stub retrieves more regions than the rule draws
    for rank, item in ranks.items():
        assert (NOT_DRAWN in item.text()) == (rank not in drawn), (rank, item.text())
        assert ("not drawn on the image" in item.toolTip()) == (rank not in drawn)
    window.all_regions_box.setChecked(True)
    assert {box.rank for box in widget.patch_boxes() if box.isVisible()} == set(ranks)


def test_overlay_toggles(qtbot, store, tmp_path, stub_model):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model)
    widget = window.hanging.views[View.R_CC]
    window.findChild(type(window.link_action), "toggleBenign").trigger()
    assert not widget.heatmap_item("benign").isVisible() and widget.heatmap_item("malignant").isVisible()
    window.findChild(type(window.link_action), "toggleOverlays").trigger()
    assert not widget.heatmap_item("malignant").isVisible() and not widget.patch_boxes()[0].isVisible()
    window.overlays_box.setChecked(True)
    window.opacity_slider.setValue(80)
    assert widget.heatmap_item("malignant").opacity() == pytest.approx(0.8)


def test_bad_exam_becomes_one_readable_message(qtbot, store, tmp_path):
    (tmp_path / "0_L-CC.png").write_bytes(b"\x89PNG broken")
    window = make_window(qtbot, store)
    with qtbot.waitSignal(window.loadFailed, timeout=10_000):
        window.open_exam(tmp_path)
    from PySide6.QtWidgets import QMessageBox

    boxes = [w for w in window.findChildren(QMessageBox) if w.objectName() == "errorDialog"]
    assert boxes and "0_L-CC.png" in boxes[-1].text()
    boxes[-1].close()


def test_cancel_analysis(qtbot, store, seeded_model):
    require_shared()
    window = make_window(qtbot, store, auto_run=False)
    window.use_models([seeded_model])
    open_and_wait(qtbot, window, DATA / "gmic-exam0")
    window.start_analysis()
    qtbot.waitUntil(lambda: "model" in window.stage_label.text(), timeout=30_000)
    window.cancel_analysis()
    with qtbot.waitSignal(window.analysisFinished, timeout=60_000):
        pass
    assert window.result is None and "cancelled" in window.scores.model_status.text()


def test_event_loop_stays_responsive_during_analysis(qtbot, store, seeded_model, capsys):
    """Timer probe: the longest gap between 5 ms ticks while a real 4-view analysis runs (reported)."""
    require_shared()
    window = make_window(qtbot, store, auto_run=False)
    window.use_models([seeded_model])
    open_and_wait(qtbot, window, DATA / "gmic-exam0")
    with StallProbe("analysis") as probe, qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.start_analysis()
    probe.report(capsys)
    assert window.result is not None
    assert probe.longest < STALL_LIMIT_S, f"the GUI thread froze for {1000 * probe.longest:.0f} ms during the analysis"


def test_event_loop_stays_responsive_while_an_exam_opens(qtbot, store, capsys):
    """The same probe while a four-view DICOM exam is read, windowed and hung (auto-window statistics and the
    display images are computed with the intake, off the GUI thread)."""
    require_shared()
    window = make_window(qtbot, store, auto_run=False)
    with StallProbe("opening an exam") as probe, qtbot.waitSignal(window.examShown, timeout=120_000):
        window.open_exam(DATA / "gmic-exam0")
    probe.report(capsys)
    assert all(window.hanging.views[view].image is not None for view in View)
    assert probe.longest < STALL_LIMIT_S, f"the GUI thread froze for {1000 * probe.longest:.0f} ms opening an exam"


def test_screenshot_command(tmp_path):
    require_shared()
    out = tmp_path / "shot.png"
    done = subprocess.run(
        [sys.executable, "main.py", "-v", "--screenshot", str(out), "--models", str(REFERENCE / "seeded_state_dict.pt"),
         "--device", "cpu", str(DATA / "gmic-exam0")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen", "MAMMO_READER_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    # what lives as long as the process is left out of later garbage collections (a full one holds the GUI)
    frozen = re.findall(r"startup: (start-up objects|first analysis) frozen", done.stderr)
    assert frozen == ["start-up objects", "first analysis"], done.stderr
    from PySide6.QtGui import QImage

    image = QImage(str(out))
    assert image.width() >= 1200 and image.height() >= 800


def test_result_is_restored_from_the_store_after_a_restart(qtbot, store, tmp_path, stub_model, monkeypatch):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model)
    first = dict(next(iter(window.result.views[View.R_CC].entries.values())).probabilities)
    window.close()
    import inference.pipeline  # app.analysis imports analyze_exam from here when it runs one

    def must_not_run(*args, **kwargs):
        raise AssertionError("the stored result should have been used")

    monkeypatch.setattr(inference.pipeline, "analyze_exam", must_not_run)
    again = make_window(qtbot, store, auto_run=True)
    again.use_models([stub_model])
    open_and_wait(qtbot, again, tmp_path, analysis=True)
    assert next(iter(again.result.views[View.R_CC].entries.values())).probabilities == pytest.approx(first)
    assert again.restored and again.gallery.lists[View.R_CC].count() == 6


def test_export_from_the_viewer(qtbot, store, tmp_path, stub_model):
    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model)
    window.scores.reader.inputs["R"].spin.setValue(35)
    out = tmp_path / "reports"
    worker = window.export(str(out), ["pdf", "json"], deidentify=True)
    with qtbot.waitSignal(worker.result, timeout=60_000) as blocker:
        pass
    paths = blocker.args[0].paths
    assert {p.suffix for p in paths} == {".pdf", ".json", ".npz"}
    import json as _json

    data = _json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    assert data["deidentified"] and data["reads"]["R"]["reader_malignant"] == 0.35
    # no reader named in Preferences: "—", as the report command says ("reader", the key of the unnamed reader's
    # reads, was printed as a name)
    assert window.settings.reader_name == "" and data["header"]["Reader"] == "—"
    from app.ui.workstation.export_dialog import ExportDialog

    dialog = ExportDialog(str(out), has_dicom=False)
    qtbot.addWidget(dialog)
    assert dialog.chosen_formats() == ["pdf", "png", "json"] and not dialog.formats["sr"].isEnabled()
    assert not dialog.formats["seg"].isEnabled()
    from PySide6.QtWidgets import QLabel

    assert "need DICOM source images" in dialog.findChild(QLabel, "dicomFormatsNote").text()  # why, in words
    assert ExportDialog(str(out), has_dicom=True).findChild(QLabel, "dicomFormatsNote") is None
    # OK with nothing to export says why and stays open (it wrote an empty folder and "exported 0 file(s)")
    for box in dialog.formats.values():
        box.setChecked(False)
    dialog.accept()
    assert dialog.result() == 0 and dialog.problem.text() == "Tick at least one format."
    dialog.formats["json"].setChecked(True)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    dialog.folder.setText(str(a_file))
    dialog.accept()
    assert dialog.result() == 0 and dialog.problem.text().endswith("is a file, not a folder.")
    dialog.folder.setText(str(a_file / "sub"))  # a file among its parents
    dialog.accept()
    assert dialog.result() == 0 and dialog.problem.text() == f"{a_file} is a file, not a folder."
    dialog.folder.setText("~nosuchuser_mammo/x")
    dialog.accept()
    assert dialog.result() == 0 and dialog.problem.text().startswith("~nosuchuser_mammo/x: ")
    dialog.folder.setText("")
    dialog.accept()
    assert dialog.problem.text() == "Choose a folder."
    dialog.folder.setText("relative/reports")  # in the home folder, not wherever the program started
    assert dialog.chosen_folder() == str(Path.home() / "relative" / "reports")
    from app.ui.workstation.export_dialog import export_task
    from inference.errors import MammoError

    for folder, formats, says in ((out, [], "no format chosen"), (a_file, ["json"], "is a file, not a folder")):
        with pytest.raises(MammoError, match=says):  # the export itself (scripts call it without the dialog)
            export_task(None, str(folder), formats, "A4", progress=lambda *a: None, cancel=lambda: False)
    dialog.folder.setText(str(tmp_path / "new reports"))  # a folder that can take it: accepted
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted and not dialog.problem.isVisibleTo(dialog)


def test_a_tooltip_over_the_images_is_readable(qtbot):
    """A region's tooltip over a view (its rank, kind and score) was black text on the images' black."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QApplication, QToolTip

    from app.settings import AppSettings
    from app.ui.workstation.main_window import MainWindow

    window = MainWindow(AppSettings())
    qtbot.addWidget(window)
    window.show()
    view = next(iter(window.hanging.views.values()))
    QToolTip.showText(view.mapToGlobal(QPoint(40, 40)), "#1 attention 0.279, 256 × 256", view)
    qtbot.waitUntil(lambda: any(w.metaObject().className() == "QTipLabel" and w.isVisible()
                                for w in QApplication.topLevelWidgets()), timeout=3000)
    tip = next(w for w in QApplication.topLevelWidgets() if w.metaObject().className() == "QTipLabel")
    image = tip.grab().toImage()
    background = image.pixelColor(3, image.height() // 2)
    text = tip.palette().color(tip.foregroundRole())
    assert background.lightness() > 200 and text.lightness() < 60, (background.name(), text.name())
    QToolTip.hideText()


@pytest.mark.parametrize("size", [(1024, 700), (1400, 900)])
def test_the_readers_form_is_never_cut_off(qtbot, size):
    """At 1024 x 700 the side panel was 317 px for a 458-px form: benign %, BI-RADS and density out of view and
    the commit button "Commit estimate (Ctrl+En"; at 1400 x 900 density was cut."""
    from PySide6.QtWidgets import QScrollArea

    from app.settings import AppSettings
    from app.ui.workstation.main_window import MainWindow

    window = MainWindow(AppSettings())
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    scroll = window.findChild(QScrollArea, "scoresScroll")
    reader = window.scores.reader
    for side in ("R", "L"):
        density = reader.inputs[side].density
        right = density.mapTo(scroll.viewport(), density.rect().topRight()).x()
        assert right < scroll.viewport().width(), (side, right, scroll.viewport().width())
    assert reader.commit_button.width() >= reader.commit_button.sizeHint().width()


def test_two_exams_of_one_folder_name_exported_to_one_folder_keep_both_reports(qtbot, store, tmp_path):
    """Exams are named after the accession, else their folder: .../patientA/2024 and .../patientB/2024 exported to
    the one folder the dialog proposes wrote the same files, the second over the first patient's report."""
    import json  # noqa: PLC0415

    from app.settings import AppSettings  # noqa: PLC0415
    from app.ui.workstation.main_window import MainWindow  # noqa: PLC0415
    from tests.app.conftest import open_and_wait  # noqa: PLC0415
    from tests.helpers import synthetic_view, write_png  # noqa: PLC0415

    first, second = tmp_path / "patientA" / "2024", tmp_path / "patientB" / "2024"
    for folder, lesion in ((first, (700, 500)), (second, (300, 300))):
        folder.mkdir(parents=True)
        write_png(folder / "0_R-CC.png", synthetic_view("R-CC", lesion))
    out = tmp_path / "reports"
    window = MainWindow(AppSettings(auto_run=False, blind_first=False), store, model_path="")
    qtbot.addWidget(window)
    window.show()
    for folder, estimate in ((first, 80), (second, 5), (first, 80)):  # the first exam again: its own name again
        open_and_wait(qtbot, window, folder)
        window.scores.reader.inputs["R"].spin.setValue(estimate)
        window.commit_estimate()
        with qtbot.waitSignal(window.exportFinished, timeout=60_000):
            window.export(str(out), ["json"], deidentify=False)
    assert sorted(p.name for p in out.glob("*.json")) == ["2024-2.json", "2024.json"]
    assert json.loads((out / "2024.json").read_text())["reads"]["R"]["reader_malignant"] == 0.8
    assert json.loads((out / "2024-2.json").read_text())["reads"]["R"]["reader_malignant"] == 0.05


def test_the_estimate_form_is_of_an_open_exam_only(qtbot, store, tmp_path):
    """Seen hands-on: with no exam open (at start, or after an unreadable folder) the form took estimates that
    showed in the reader | model | hybrid table, under "Model hidden until you commit"."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = make_window(qtbot, store, blind_first=True)
    scores = window.scores
    assert not scores.reader.isEnabled() and not scores.hidden_label.isVisible()
    open_and_wait(qtbot, window, tmp_path)
    assert scores.reader.isEnabled() and scores.hidden_label.isVisible()
    window.clear_exam()
    assert not scores.reader.isEnabled() and not scores.hidden_label.isVisible()


def test_the_shortcuts_list_says_the_class_keys_once_and_cut_cells_are_whole_on_hover(qtbot, store):
    from app.ui.workstation.help_dialog import ShortcutsDialog
    from app.ui.workstation.score_panel import _fill, _table

    window = make_window(qtbot, store)
    dialog = ShortcutsDialog(window)
    qtbot.addWidget(dialog)
    from PySide6.QtWidgets import QTableWidget

    table = dialog.findChild(QTableWidget, "shortcutsTable")
    texts = [table.item(row, 1).text() for row in range(table.rowCount())]
    assert not any(text.startswith("Map of class") for text in texts)  # nine vague rows before
    rows = [table.item(row, 0).text() for row in range(table.rowCount())]
    assert rows.count("Alt+1 … Alt+9") == 1 and rows.index("Alt+1 … Alt+9") == texts.index("Malignant map") + 1
    dialog.show()  # every action whole in the dialog's width: the class keys' was cut, behind a sideways scroll
    qtbot.waitExposed(dialog)
    assert table.horizontalHeader().length() <= table.viewport().width()
    longest = rows.index("Alt+1 … Alt+9")
    assert table.rowHeight(longest) > table.rowHeight(0) or table.fontMetrics().horizontalAdvance(
        texts[longest]) <= table.columnWidth(1)  # wrapped onto a second line, or it fits
    model_table = _table("t")
    qtbot.addWidget(model_table)
    _fill(model_table, ["", "meaning"], [["R-CC", "above the 90 % specificity threshold (0.40)"]])
    assert model_table.item(0, 1).toolTip() == "above the 90 % specificity threshold (0.40)"


def test_every_menu_of_the_bar_has_its_own_alt_key(qtbot, store):
    """Tools and Study both took Alt+T: Alt+T opened Tools and Study could only be reached with the arrows."""
    window = make_window(qtbot, store)
    keys = [a.text()[a.text().index("&") + 1].lower() for a in window.menuBar().actions() if "&" in a.text()]
    assert len(keys) == len(window.menuBar().actions()) and len(set(keys)) == len(keys), keys


def test_the_export_dialog_offers_the_folder_chosen_last(qtbot, store, tmp_path, stub_model, monkeypatch):
    """Seen by a radiologist: each export's dialog began at ~/mammo-reader-reports again, not where the last
    report of the session went."""
    from types import SimpleNamespace

    import app.ui.workstation.export_dialog as export_dialog

    window = analysed_r_cc_window(qtbot, store, tmp_path, stub_model)
    offered, chosen = [], str(tmp_path / "site reports")

    class Dialog:  # the reader picks another folder and presses OK
        def __init__(self, folder, *_args, **_kwargs):
            offered.append(folder)
            self.deidentify = SimpleNamespace(isChecked=lambda: False)
            self.send = SimpleNamespace(isChecked=lambda: False, isEnabled=lambda: False)
            self.page_size = SimpleNamespace(currentText=lambda: "A4")
            self.comments = SimpleNamespace(toPlainText=lambda: "")

        def exec(self):
            return True

        def chosen_folder(self):
            return chosen

        def chosen_formats(self):
            return ["json"]

    monkeypatch.setattr(export_dialog, "ExportDialog", Dialog)
    monkeypatch.setattr(window.exports, "export", lambda folder, *_args, **_kwargs: None)
    window.exports.open_export()
    window.exports.open_export()
    assert offered[0].endswith("mammo-reader-reports") and offered[1] == chosen
    # and after a restart (a radiologist's finding: the next day began at ~/mammo-reader-reports again), the
    # settings file written in the background
    qtbot.waitUntil(lambda: not window._settings_worker.is_running(), timeout=10_000)
    assert AppSettings.load().export_folder == chosen
    restarted = make_window(qtbot, store, export_folder=AppSettings.load().export_folder)
    assert restarted.exports.folder == chosen


def test_the_reader_form_names_whose_read_it_records(qtbot, store):
    """Seen in a hands-on review: with no reader name in the preferences every read was committed "by reader" on
    a shared workstation, and nothing on screen said so."""
    import dataclasses

    window = MainWindow(AppSettings(), store)
    qtbot.addWidget(window)
    assert window.scores.reader.title() == "Reader's estimate — recorded as \"reader\" (give your name in Preferences)"
    window.apply_settings(dataclasses.replace(window.settings, reader_name="Dr A. Okafor"))
    assert window.scores.reader.title() == "Reader's estimate — Dr A. Okafor"
