"""Evaluating a model on fresh phantom exams: AUC per class (view and breast level) and localisation
(how often the class saliency map peaks on the inserted lesion)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference.phantom import generate_exam
from inference.pipeline import analyze_exam
from inference.views import Laterality


@dataclass(frozen=True)
class PhantomEvaluation:
    exams: int
    view_auc: dict[str, float]
    breast_auc: dict[str, float]
    hit_rate: dict[str, float]
    lesion_views: dict[str, int]


def _auc(scores: list[float], truth: list[int]) -> float:
    s, t = np.asarray(scores), np.asarray(truth)
    pos, neg = s[t == 1], s[t == 0]
    if not pos.size or not neg.size:
        return float("nan")
    d = pos[:, None] - neg[None, :]
    return float(((d > 0) + 0.5 * (d == 0)).mean())


def saliency_peak_on_lesion(view_result, lesion_mask: np.ndarray, class_index: int, tolerance_px: int = 64) -> bool:
    """Whether the class map's maximum, mapped to the stored image, falls within ``tolerance_px`` of the
    lesion (one saliency cell is 64 input pixels)."""
    cells = view_result.saliency[class_index]
    i, j = np.unravel_index(int(np.argmax(cells)), cells.shape)
    h, w = cells.shape
    centre_input = np.array([(i + 0.5) * view_result.mapping.input_shape[0] / h,
                             (j + 0.5) * view_result.mapping.input_shape[1] / w])
    row, col = view_result.mapping.to_original(centre_input)
    grown = cv2.dilate(lesion_mask.astype(np.uint8), np.ones((2 * tolerance_px + 1,) * 2, np.uint8))
    r, c = int(np.floor(row)), int(np.floor(col))
    return 0 <= r < grown.shape[0] and 0 <= c < grown.shape[1] and bool(grown[r, c])


def evaluate_on_phantoms(models, exams: int = 20, seed: int = 90_000, device: str | None = "cpu") -> PhantomEvaluation:
    names = ("benign", "malignant")
    view_scores = {n: ([], []) for n in names}
    breast_scores = {n: ([], []) for n in names}
    hits = {n: [] for n in names}
    for k in range(exams):
        exam = generate_exam(seed + k)
        result = analyze_exam({v: p.image for v, p in exam.views.items()}, models, device=device)
        for view, phantom in exam.views.items():
            side = "left" if view.laterality == Laterality.LEFT else "right"
            for c, name in enumerate(names):
                truth = exam.labels[f"{side}_{name}"]
                view_scores[name][0].append(float(result.views[view].probabilities[c]))
                view_scores[name][1].append(truth)
                if phantom.lesion_masks[name].any():
                    hits[name].append(saliency_peak_on_lesion(result.views[view], phantom.lesion_masks[name], c))
        for side, breast in result.breasts.items():
            label = "left" if side == Laterality.LEFT else "right"
            for c, name in enumerate(names):
                breast_scores[name][0].append(float(breast.probabilities[c]))
                breast_scores[name][1].append(exam.labels[f"{label}_{name}"])
    return PhantomEvaluation(
        exams=exams,
        view_auc={n: _auc(*view_scores[n]) for n in names},
        breast_auc={n: _auc(*breast_scores[n]) for n in names},
        hit_rate={n: float(np.mean(hits[n])) if hits[n] else float("nan") for n in names},
        lesion_views={n: len(hits[n]) for n in names},
    )
