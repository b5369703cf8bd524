"""The shipped demo model: it loads safely, is labelled as a demo, and its heatmaps point at the lesions of
the demo exam (malignant map on the right breast's spiculated mass, benign map on the left findings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.evaluate import saliency_peak_on_lesion
from inference.phantom import demo_exam
from inference.pipeline import analyze_exam
from inference.views import View
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
    for view in (View.R_CC, View.R_MLO):
        assert saliency_peak_on_lesion(result.views[view], exam.views[view].lesion_masks["malignant"], 1), view
    for view in (View.L_CC, View.L_MLO):
        assert saliency_peak_on_lesion(result.views[view], exam.views[view].lesion_masks["benign"], 0), view


def test_demo_model_ranks_the_malignant_breast_higher(demo):
    _, _, result = demo
    assert result.breasts["R"].probabilities[1] > result.breasts["L"].probabilities[1]
    assert result.breasts["L"].probabilities[0] > result.breasts["R"].probabilities[0]
    assert np.all((result.probabilities >= 0) & (result.probabilities <= 1))
