"""Scoring marks against lesions: inside the outline, near the centre (mm through the pixel spacing), away,
twice on one lesion, on the other view; and scored marks analysed as a small localisation study."""

from __future__ import annotations

import numpy as np
import pytest

from app.study.errors import StudyError
from app.study.froc import figure_of_merit, froc_analysis, froc_data_from_dict, froc_data_to_dict
from app.study.localisation import (
    DEFAULT_DISTANCE_MM,
    Lesion,
    LesionOutline,
    ScoringRule,
    json_marks,
    score_marks,
)
from app.study.store import ReaderMark

SPACING = {"L-CC": (0.1, 0.1), "L-MLO": (0.1, 0.1)}  # mm per pixel (row, col)


def elongated_lesion(lesion_id=1, view="L-CC"):
    """Centre (1000, 1000); the outline a thin band reaching 400 px (40 mm) to the right of the centre."""
    mask = np.zeros((20, 500), bool)
    mask[5:15, :] = True
    return Lesion(lesion_id, (LesionOutline(view, (1000.0, 1000.0), mask, origin=(990, 990)),))


def kinds(scored):
    return [(s.kind, s.lesion) for s in scored]


def test_default_distance_is_documented():
    assert ScoringRule().distance_mm == DEFAULT_DISTANCE_MM == 10.0


def test_inside_the_outline_far_from_the_centre_is_a_lesion_localisation():
    marks = [ReaderMark("L-CC", 1000.0, 1380.0, "mass", 4)]  # 38 mm from the centre, inside the band
    assert kinds(score_marks(marks, [elongated_lesion()], SPACING)) == [("LL", 1)]
    without_outline = score_marks(marks, [elongated_lesion()], SPACING, ScoringRule(use_outline=False))
    assert kinds(without_outline) == [("NL", None)]


def test_near_the_centre_in_mm_is_a_lesion_localisation_and_away_is_not():
    lesion = Lesion(1, (LesionOutline("L-CC", (1000.0, 1000.0)),))
    near = ReaderMark("L-CC", 1060.0, 1080.0, "mass", 3)  # 100 px = 10.0 mm: on the limit, accepted
    away = ReaderMark("L-CC", 1000.0, 1101.0, "mass", 2)  # 10.1 mm
    scored = score_marks([near, away], [lesion], SPACING)
    assert kinds(scored) == [("LL", 1), ("NL", None)]
    assert scored[0].distance_mm == pytest.approx(10.0)
    coarse = {"L-CC": (0.5, 0.5)}  # the same pixels are 50 mm away on a coarser image
    assert kinds(score_marks([near], [lesion], coarse)) == [("NL", None)]
    assert kinds(score_marks([away], [lesion], SPACING, ScoringRule(distance_mm=15))) == [("LL", 1)]


def test_a_lesion_has_one_lesion_localisation_the_highest_rated():
    lesion = Lesion(1, (LesionOutline("L-CC", (1000.0, 1000.0)), LesionOutline("L-MLO", (800.0, 900.0))))
    marks = [ReaderMark("L-CC", 1001.0, 1001.0, "mass", 2), ReaderMark("L-MLO", 802.0, 901.0, "mass", 5),
             ReaderMark("L-MLO", 1000.0, 1000.0, "mass", 1)]  # right place, wrong view: 20 mm from the MLO centre
    scored = score_marks(marks, [lesion], SPACING)
    assert kinds(scored) == [("duplicate", 1), ("LL", 1), ("NL", None)]
    assert json_marks(scored, "aided", "r1", "c1") == [
        {"modality": "aided", "reader": "r1", "case": "c1", "lesion": 1, "rating": 5.0},
        {"modality": "aided", "reader": "r1", "case": "c1", "lesion": None, "rating": 1.0},
    ]


def test_a_mark_between_two_lesions_localises_the_nearer():
    lesions = [Lesion("a", (LesionOutline("L-CC", (1000.0, 1000.0)),)),
               Lesion("b", (LesionOutline("L-CC", (1000.0, 1120.0)),))]
    scored = score_marks([ReaderMark("L-CC", 1000.0, 1070.0, "mass", 4)], lesions, SPACING)
    assert kinds(scored) == [("LL", "b")]


def test_normal_case_marks_are_non_lesion_localisations():
    assert kinds(score_marks([{"view": "L-CC", "row": 5, "col": 5, "rating": 3}], [], SPACING)) == [("NL", None)]


def test_a_view_without_pixel_spacing_is_named():
    lesion = Lesion(1, (LesionOutline("L-CC", (1000.0, 1000.0)),))
    with pytest.raises(StudyError, match="case c7: view L-CC has no pixel spacing"):
        score_marks([ReaderMark("L-CC", 0.0, 0.0, "mass", 3)], [lesion], {}, case="c7")


def test_scored_marks_make_a_study_that_survives_the_json_form():
    """Two readers, two modalities, 3 normal and 3 abnormal cases: marks placed by hand, scored, analysed,
    written in the JSON form and read back with identical results."""
    lesion = Lesion(1, (LesionOutline("L-CC", (1000.0, 1000.0)),))
    hit, miss = (1002.0, 1003.0), (300.0, 300.0)
    # per (modality, reader): for each abnormal case the confidence of a mark on the lesion (0: none),
    # for each normal case the confidence of a false mark (0: none)
    plan = {
        ("unaided", "r1"): ([4, 2, 0], [3, 0, 0]), ("unaided", "r2"): ([3, 3, 1], [2, 4, 0]),
        ("aided", "r1"): ([5, 4, 2], [1, 0, 0]), ("aided", "r2"): ([5, 2, 3], [3, 1, 0]),
    }
    marks = []
    for (modality, reader), (lesion_marks, false_marks) in plan.items():
        for n, confidence in enumerate(lesion_marks):
            if confidence:
                scored = score_marks([ReaderMark("L-CC", *hit, "mass", confidence)], [lesion], SPACING)
                marks += json_marks(scored, modality, reader, f"abnormal{n}")
        for n, confidence in enumerate(false_marks):
            if confidence:
                scored = score_marks([ReaderMark("L-CC", *miss, "mass", confidence)], [], SPACING)
                marks += json_marks(scored, modality, reader, f"normal{n}")
    study = {
        "name": "small", "description": {"type": "FROC"}, "modalities": ["aided", "unaided"], "readers": ["r1", "r2"],
        "cases": [{"id": f"normal{n}", "abnormal": False, "lesions": []} for n in range(3)]
        + [{"id": f"abnormal{n}", "abnormal": True, "lesions": [{"id": 1}]} for n in range(3)],
        "marks": marks,
    }
    data = froc_data_from_dict(study)
    foms = figure_of_merit(data)
    # aided r1: FP (1, -inf, -inf) vs lesions (5, 4, 2): every lesion beats every FP -> 1
    assert foms[0, 0] == pytest.approx(1.0)
    # unaided r1: FP (3, -inf, -inf) vs lesions (4, 2, -inf): (1+1+1 + 0+1+1 + 0+.5+.5) / 9
    assert foms[1, 0] == pytest.approx(6.0 / 9)
    first = froc_analysis(data, "wAFROC", "DBM")
    again = froc_analysis(froc_data_from_dict(froc_data_to_dict(data)), "wAFROC", "DBM")
    np.testing.assert_array_equal(first.foms, again.foms)
    assert first.tests["RRRC"].differences[0].name == "aided − unaided"
    for name in first.tests:
        a, b = first.tests[name], again.tests[name]
        assert a.reason == b.reason
        if not a.reason:
            assert (a.statistic, a.p, a.differences[0].ci) == (b.statistic, b.p, b.differences[0].ci)
