"""Evaluating a model on fresh phantom exams: AUC per class (view and breast level) and localisation
(how often the class saliency map peaks on the inserted lesion)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference.evaluation.metrics import roc_auc
from inference.intake.phantom import generate_exam
from inference.pipeline import analyze_exam
from inference.intake.views import Laterality


@dataclass(frozen=True)
class PhantomEvaluation:
    exams: int
    view_auc: dict[str, float]
    breast_auc: dict[str, float]
    hit_rate: dict[str, float]
    lesion_views: dict[str, int]
    breast_scores: dict[str, tuple[list[float], list[int]]]  # class -> (scores, truth) per breast


def operating_point(scores: list[float], truth: list[int], specificity: float = 0.9) -> dict:
    """The lowest threshold whose specificity on (scores, truth) is at least ``specificity`` (a score at or above
    it is called positive), with the sensitivity there."""
    s, t = np.asarray(scores, float), np.asarray(truth, int)
    negatives, positives = np.sort(s[t == 0]), s[t == 1]
    if not negatives.size or not positives.size:
        raise ValueError("an operating point needs positive and negative cases")
    index = min(int(np.ceil(specificity * negatives.size)), negatives.size) - 1
    threshold = float(np.nextafter(negatives[index], np.inf))
    return {"name": f"{round(100 * specificity)} % specificity", "threshold": threshold,
            "specificity": float((negatives < threshold).mean()), "sensitivity": float((positives >= threshold).mean()),
            "positives": int(positives.size), "negatives": int(negatives.size)}


def saliency_peak_on_lesion(layer, lesion_mask: np.ndarray, tolerance_px: int = 64) -> bool:
    """Whether a heat layer's maximum, mapped to the stored image, falls within ``tolerance_px`` of the
    lesion (one GMIC saliency cell is 64 input pixels)."""
    from inference.results.types import map_points  # noqa: PLC0415

    cells = layer.values
    i, j = np.unravel_index(int(np.argmax(cells)), cells.shape)
    row, col = map_points(layer.to_original, np.array([i + 0.5, j + 0.5]))
    grown = cv2.dilate(lesion_mask.astype(np.uint8), np.ones((2 * tolerance_px + 1,) * 2, np.uint8))
    r, c = int(np.floor(row)), int(np.floor(col))
    return 0 <= r < grown.shape[0] and 0 <= c < grown.shape[1] and bool(grown[r, c])


def evaluate_on_phantoms(models, exams: int = 20, seed: int = 90_000, device: str | None = "cpu") -> PhantomEvaluation:
    """AUCs and saliency hit rates of the first model group on fresh phantom exams (classes benign,
    malignant: the phantoms' labels)."""
    names = ("benign", "malignant")
    view_scores = {n: ([], []) for n in names}
    breast_scores = {n: ([], []) for n in names}
    hits = {n: [] for n in names}
    for k in range(exams):
        exam = generate_exam(seed + k)
        result = analyze_exam({v: p.image for v, p in exam.views.items()}, models, device=device)
        entry = result.entries[0].id
        for view, phantom in exam.views.items():
            side = "left" if view.laterality == Laterality.LEFT else "right"
            view_result = result.views[view].entries[entry]
            for name in names:
                truth = exam.labels[f"{side}_{name}"]
                view_scores[name][0].append(float(view_result.probabilities[name]))
                view_scores[name][1].append(truth)
                if phantom.lesion_masks[name].any():
                    hits[name].append(saliency_peak_on_lesion(view_result.layer(name), phantom.lesion_masks[name]))
        for side, breast in result.breasts.items():
            label = "left" if side == Laterality.LEFT else "right"
            for name in names:
                breast_scores[name][0].append(float(breast.entries[entry].probabilities[name]))
                breast_scores[name][1].append(exam.labels[f"{label}_{name}"])
    return PhantomEvaluation(
        exams=exams,
        view_auc={n: roc_auc(*view_scores[n]) for n in names},
        breast_auc={n: roc_auc(*breast_scores[n]) for n in names},
        hit_rate={n: float(np.mean(hits[n])) if hits[n] else float("nan") for n in names},
        lesion_views={n: len(hits[n]) for n in names},
        breast_scores={n: breast_scores[n] for n in names},
    )
