"""The shipped demo model: it loads safely, is labelled as a demo, and its heatmaps point at the lesions of
the demo exam (malignant map on the right breast's spiculated mass, benign map on the left findings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.evaluation.phantom_exams import saliency_peak_on_lesion
from inference.intake.phantom import demo_exam
from inference.pipeline import analyze_exam
from inference.intake.views import View
from inference.weights import load_model

MODEL = Path(__file__).resolve().parents[2] / "resources" / "demo" / "model.pt"


@pytest.fixture(scope="module")
def demo():
    assert MODEL.is_file(), "the demo model is part of the repository"
    loaded = load_model(MODEL)
    exam = demo_exam()
    result = analyze_exam({v: p.image for v, p in exam.views.items()}, loaded, device="cpu")
    return loaded, exam, result


def test_demo_model_is_small_labelled_and_documented(demo):
    loaded, _, _ = demo
    assert loaded.identity.demo and "demo" in loaded.identity.label.lower()
    assert MODEL.stat().st_size < 8_000_000
    card = (MODEL.parent / "MODEL_CARD.md").read_text()
    assert "NOT FOR CLINICAL USE" in card.upper() and "AUC" in card
    meta = json.loads(MODEL.with_name("model.pt.json").read_text())
    assert meta["training"]["data"] == "phantom"


def test_heatmaps_point_at_the_inserted_lesions(demo):
    _, exam, result = demo
    entry = result.entries[0].id
    for view, name in ((View.R_CC, "malignant"), (View.R_MLO, "malignant"), (View.L_CC, "benign"),
                       (View.L_MLO, "benign")):
        layer = result.views[view].entries[entry].layer(name)
        assert saliency_peak_on_lesion(layer, exam.views[view].lesion_masks[name]), view


def test_demo_model_ranks_the_malignant_breast_higher(demo):
    _, _, result = demo
    entry = result.entries[0].id
    right, left = result.breasts["R"].entries[entry], result.breasts["L"].entries[entry]
    assert right.probabilities["malignant"] > left.probabilities["malignant"]
    assert left.probabilities["benign"] > right.probabilities["benign"]
    decision = result.exam[entry]
    assert decision.breast == "R" and decision.malignant == right.malignant
    assert all(0 <= p <= 1 for p in decision.probabilities.values())


def test_the_demo_model_declares_where_its_scores_stand():
    """Its metadata holds a 90 %-specificity operating point (from bench/eval_demo_model.py) on phantom data."""
    from inference.evaluation.calibration import score_category

    calibration = load_model(MODEL).identity.calibration
    (point,) = calibration["operating_points"]
    assert point["specificity"] >= 0.9 and 0 < point["threshold"] < 1 and "phantom" in calibration["data"]
    assert score_category(point["threshold"] + 0.01, calibration).startswith("above the 90 % specificity")


def test_operating_point_is_the_lowest_threshold_reaching_the_specificity():
    from inference.evaluation.phantom_exams import operating_point

    scores = [0.1 * i for i in range(10)] + [0.55, 0.95, 0.99]
    truth = [0] * 10 + [1, 1, 1]
    point = operating_point(scores, truth, specificity=0.9)
    # 9 of the 10 negatives (0.0 .. 0.8) must fall below: the threshold is just above 0.8
    assert 0.8 < point["threshold"] < 0.80001 and point["specificity"] == 0.9
    assert point["sensitivity"] == 2 / 3
