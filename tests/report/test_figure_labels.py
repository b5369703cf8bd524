"""The report's four-view figure (the PDF's page-1 figure and ``<exam>_four_views.png``) with the seeded Mask R-CNN
on exam 0, from a radiologist's reading of it: the "L MLO" view label overprinted by a detection box ("□MLO"),
region numbers over each other and over their boxes ("1"/"12" at the midline, "5" inside its box), numbers with
no box near them. Each number must sit beside its own box, over no box and no other number, and the view's
name must stay readable."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.cad_marks import Rect
from inference.intake.views import View
from tests.conftest import DATA, SHARED, require_shared

SEEDED = SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt"
TILE_HEIGHT = 760  # the PDF's figure


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    require_shared(SEEDED.parent)
    from app.report.content import ReportContent, ReportInput
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from inference.weights import load_model

    folder = tmp_path_factory.mktemp("exam0")
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        cv2.imwrite(str(folder / f"0_{view}.png"), cv2.imread(str(DATA / "gmic-exam0" / f"0_{view}.png"), -1))
    exam = load_exam(folder)
    return ReportContent(ReportInput(exam, analyze_exam(exam, load_model(SEEDED), device="cpu")))


def _gap(a: Rect, b: Rect) -> float:
    return max(b.x - (a.x + a.w), a.x - (b.x + b.w), b.y - (a.y + a.h), a.y - (b.y + b.h), 0.0)


def _inner(rect: Rect, by: float) -> Rect:
    return Rect(rect.x + by, rect.y + by, rect.w - 2 * by, rect.h - 2 * by)


def test_region_numbers_sit_beside_their_boxes_apart_and_off_the_view_label(content):
    from app.colours import REGION, bgr
    from app.report.figures import four_view_figure, four_view_numbers

    figure = four_view_figure(content, tile_height=TILE_HEIGHT)
    marks = four_view_numbers(content, tile_height=TILE_HEIGHT)
    assert set(marks) == {View.R_CC, View.L_CC, View.R_MLO, View.L_MLO}
    numbers = [n for _caption, view_numbers in marks.values() for n in view_numbers]
    assert len(numbers) >= 8
    boxes = [n.box for n in numbers]
    for view, (caption, view_numbers) in marks.items():
        # the view's name: no box line and no number in its box ("□MLO")
        x0, y0 = round(caption.x) + 1, round(caption.y) + 1
        patch = figure[y0: round(caption.y + caption.h), x0: round(caption.x + caption.w)].reshape(-1, 3).astype(int)
        assert not (np.abs(patch - bgr(REGION)).sum(axis=1) < 60).any(), view
        for number in view_numbers:
            place = number.place
            assert caption.overlap_area(place) == 0, (view, number)
            assert not any(place.overlap_area(_inner(box, 1.0)) > 0 for box in boxes), (view, number)
            # beside its own box: touching it, or a short column beside a cluster of boxes
            crowded = any(box != number.box and _gap(box, number.box) < 2 * place.h for box in boxes)
            assert _gap(place, number.box) <= (4 * place.h if crowded else 3.0), (view, number)
            # its box is drawn where the figure says
            x, y = round(number.box.x + 1), round(number.box.y + 1)
            corner = figure[y: y + 3, x: x + 3].reshape(-1, 3).astype(int)
            assert (np.abs(corner - bgr(REGION)).sum(axis=1) < 60).any() or y <= 0 or x <= 0, (view, number)
    for i, a in enumerate(numbers):
        for b in numbers[i + 1:]:
            assert not a.place.overlaps(b.place), (a, b)


def test_a_detector_class_without_a_kept_detection_is_below_its_threshold_not_zero(content):
    """Exam 0's R-CC has no malignant detection above the seeded detector's 0.05: the tables said "0.0 %", a
    certainty the detector never gave; they say "< 5 %". A class with a detection keeps its score."""
    from app.model_table import entry_rows, model_percent

    entry = content.result.entries[0]
    _headers, rows = entry_rows(content.result, entry)
    r_cc = next(row for row in rows if row[0].startswith("R-CC"))
    scores = content.result.views[View.R_CC].result(entry.id).probabilities
    for cell, name in zip(r_cc[1:], entry.classes, strict=False):
        assert cell == ("< 5 %" if scores[name] == 0.0 else f"{100 * scores[name]:.1f} %")
    assert "< 5 %" in r_cc and any(cell.endswith(" %") and not cell.startswith("<") for cell in r_cc[1:])
    assert model_percent(0.0, entry) == "< 5 %" and model_percent(0.25, entry) == "25.0 %"


def test_a_model_score_that_rounds_to_certainty_is_shown_short_of_it(content):
    """The demo model's "100.0 %" benign beside "0.0 %" malignant read as certainties (a radiologist's test): a
    model's score shown as 0.0 % or 100.0 % says "< 0.1 %" or "> 99.9 %"; a detector's 0 keeps its threshold."""
    import dataclasses  # noqa: PLC0415

    from app.model_table import model_percent

    detector = content.result.entries[0]
    assert model_percent(0.0, detector) == "< 5 %" and model_percent(0.99996, detector) == "> 99.9 %"
    plain = dataclasses.replace(detector, members=())  # no detector's threshold: a classifier's entry
    assert [model_percent(v, plain) for v in (0.0, 0.00004, 0.0005, 0.4567, 0.9994, 0.99996, 1.0, None)] == [
        "< 0.1 %", "< 0.1 %", "0.1 %", "45.7 %", "99.9 %", "> 99.9 %", "> 99.9 %", "—"]
