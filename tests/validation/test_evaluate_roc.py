"""``evaluate`` draws its ROC curves as ``roc.png`` with the validation's figure code (issue 27)."""

from __future__ import annotations

import cv2
import numpy as np


def test_roc_png_draws_one_curve_per_class_with_the_validation_figure():
    from app.cli.evaluate import roc_curves, roc_png
    from app.validation.figures import roc_figure

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 60).tolist()
    probabilities = rng.dirichlet(np.ones(3), 60)
    probabilities[np.arange(60), truth] += 0.5  # each class's own images score higher: curves above chance
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    png = roc_png(roc_curves(("benign", "malignant", "normal"), probabilities, truth))
    assert png.startswith(b"\x89PNG")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == roc_figure([]).shape  # the same canvas as the validation report's ROC figure
    assert (image != 255).any(axis=2).sum() > (roc_figure([]) != 255).any(axis=2).sum()  # curves were drawn


def test_roc_png_copes_with_a_class_without_images():
    from app.cli.evaluate import roc_curves, roc_png

    png = roc_png(roc_curves(("a", "b"), np.array([[0.8, 0.2], [0.6, 0.4]]), [0, 0]))  # no "b" image: no error
    assert png.startswith(b"\x89PNG")
