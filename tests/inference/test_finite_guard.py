"""A logit of ±inf is a finite probability after a sigmoid or a softmax (1 or 0): every family's run is watched
there, and a view whose values were not finite is no result, never a confident answer."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import torch

from inference.finite_guard import WHERE, run_guarded
from inference.intake.views import View
from inference.results.types import InputFrame, ModelViewOutput
from tests.helpers import make_attention_stub, make_glimpse_stub, make_window_stub, synthetic_view


class SigmoidOfTheInput:
    """A family whose probability is the sigmoid of each view's one value: ±inf gives a "sure" 1 or 0."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, model, batch, device, mode, identity):
        self.calls += 1
        values = torch.sigmoid(torch.tensor([p.value for p in batch], dtype=torch.float32))
        frame = InputFrame((1, 1), np.eye(3), (1, 1), {})
        return [ModelViewOutput({"malignant": float(v)}, (), (), {}, frame) for v in values]


def test_only_the_view_whose_logit_was_not_finite_is_no_result():
    family = SigmoidOfTheInput()
    batch = [SimpleNamespace(value=v) for v in (0.0, float("inf"), -2.0)]
    assert torch.sigmoid(torch.tensor(float("inf"))) == 1.0  # what was shown before: a confident 100 %
    outputs = run_guarded(family, None, batch, torch.device("cpu"), "exact", None)
    assert outputs[0].probabilities == {"malignant": 0.5} and outputs[2].probabilities["malignant"] < 0.2
    assert np.isnan(outputs[1].probabilities["malignant"]) and outputs[1].frame.record["not_finite"] == WHERE
    assert family.calls == 4  # the batch, then a view at a time to tell which
    clean = run_guarded(family, None, batch[:1], torch.device("cpu"), "exact", None)
    assert clean[0].probabilities == {"malignant": 0.5} and family.calls == 5


def _analysed(loaded, view: str = "L-CC"):
    from inference.pipeline import analyze_exam

    image = synthetic_view(view, (700, 300))
    result = analyze_exam({View(view): image}, [loaded], device="cpu")
    (entry,) = result.entries
    return result, entry


def test_an_attention_cnn_whose_logit_overflows_has_no_result():
    loaded = make_attention_stub()
    model = loaded.model
    plain = type(model).forward

    def overflowing(self, x):
        out = plain(self, x)
        return dataclasses.replace(out, logits=out.logits.clone().index_fill_(1, torch.tensor([6]), float("inf")))

    model.forward = overflowing.__get__(model)
    result, entry = _analysed(loaded)
    reason = result.views[View.L_CC].no_result[entry.id]
    assert "is not a finite number" in reason and f"not finite inside the network: {WHERE}" in reason
    assert not result.exam[entry.id].probabilities


def test_a_glimpsenet_logit_of_minus_infinity_is_no_sure_zero():
    result, entry = _analysed(make_glimpse_stub(logits=(float("-inf"), 0.5, 2.0)))
    assert "not finite inside the network" in result.views[View.L_CC].no_result[entry.id]


def test_a_sliding_window_logit_that_is_not_finite_is_no_result():
    loaded = make_window_stub()
    plain = type(loaded.model).forward

    def overflowing(self, x):
        out = plain(self, x)
        out[:, 0] = float("-inf")  # softmax (numpy's) made the class a sure 0 and the others finite
        return out

    loaded.model.forward = overflowing.__get__(loaded.model)
    result, entry = _analysed(loaded)
    assert "not finite inside the network: a window's logits" in result.views[View.L_CC].no_result[entry.id]


def test_a_sliding_window_evaluation_or_calibration_stops_at_logits_that_are_not_finite():
    """A review's finding: evaluate and calibrate read the windows outside ``run`` (read_images), and a −inf
    logit gave AUCs of 0.5 and could fit a temperature into the model's metadata."""
    import pytest

    from app.cli.common import read_images_with_progress
    from inference.errors import MammoError
    from inference.families.sliding_window.family import CLASSES, WindowSettings
    from inference.training.labelled_images import LabelledImage

    loaded = make_window_stub()
    plain = type(loaded.model).forward

    def overflowing(self, x):
        out = plain(self, x)
        out[:, 3] = float("-inf")
        return out

    loaded.model.forward = overflowing.__get__(loaded.model)
    image = LabelledImage(synthetic_view("L-CC", (700, 300)), View.L_CC, "malignant", None, "scan.png")
    settings = WindowSettings(**loaded.identity.settings)
    with pytest.raises(MammoError, match="scan.png: the model's window logits are not finite numbers"):
        read_images_with_progress(loaded.model, settings, CLASSES, [image], "cpu")
