"""Detector evaluation (numpy only, no Qt): the FROC curve, sensitivity at fixed false-positive rates, the
CPM, and the image-level ROC AUC from the highest malignant detection score.

A lesion is *found* at a threshold when a detection scored at or above it hits it. Two hit rules (``HitRule``):

* ``centre`` (default): the centre of the detection's box falls inside the lesion's mask;
* ``iou``: the detection overlaps the lesion with IoU >= ``min_iou`` (default 0.1): the detection's own mask
  against the lesion's mask where the detection has a mask, else its box against the lesion's bounding box.

A detection that hits no lesion is a false positive; one that hits a lesion already found by a higher-scored
detection is neither (it adds no sensitivity and is not counted as a false positive, as in CAMELYON's and
LUNA16's FROC). Sensitivity at a false-positive rate is the highest sensitivity of any threshold whose mean
false positives per image is at most that rate (no interpolation); the CPM (competition performance metric,
Niemeijer et al. 2011) is its mean over 1/4, 1/2, 1, 2 and 4 false positives per image; without a lesion both are
not available (NaN), not 0. The image-level AUC is
the project's one AUC (``inference.evaluation.metrics``) of each image's highest malignant-class score (0 without one)
against whether the image holds a malignant lesion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from inference.evaluation.metrics import roc_auc

FP_RATES = (0.25, 0.5, 1.0, 2.0, 4.0)


class HitRule(StrEnum):
    CENTRE = "centre"
    IOU = "iou"


@dataclass(frozen=True)
class Detection:
    """One detection on an image: box (top, left, bottom, right) in original pixels (bottom/right exclusive),
    score, class, and its binary mask on the image's grid (or None)."""

    box: tuple[float, float, float, float]
    score: float
    class_name: str
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class ImageTruth:
    """An image's lesions (bool masks on its grid) and whether it holds a malignant one."""

    lesions: tuple[np.ndarray, ...]
    malignant: bool


@dataclass(frozen=True)
class FROC:
    """The FROC curve, its summary and the image-level AUC.

    Attributes:
        thresholds: score thresholds, descending (each detection score once).
        sensitivity: fraction of lesions found at each threshold.
        fp_per_image: mean false positives per image at each threshold.
        at_rates: FP rate -> sensitivity (see the module docstring).
        cpm: mean of ``at_rates``.
        image_auc: image-level ROC AUC of the highest malignant score (NaN without both kinds of image).
        lesions, images: counts.
        rule: how a lesion counts as found, in words.
    """

    thresholds: np.ndarray
    sensitivity: np.ndarray
    fp_per_image: np.ndarray
    at_rates: dict[float, float]
    cpm: float
    image_auc: float
    lesions: int
    images: int
    rule: str


def hits(detection: Detection, lesion: np.ndarray, rule: HitRule, min_iou: float = 0.1) -> bool:
    """Whether ``detection`` finds ``lesion`` (a bool mask on the image's grid) under ``rule``."""
    top, left, bottom, right = detection.box
    if rule == HitRule.CENTRE:
        row, col = int(np.floor((top + bottom) / 2)), int(np.floor((left + right) / 2))
        return 0 <= row < lesion.shape[0] and 0 <= col < lesion.shape[1] and bool(lesion[row, col])
    if detection.mask is not None:
        inter = np.logical_and(detection.mask, lesion).sum()
        union = np.logical_or(detection.mask, lesion).sum()
    else:
        rows, cols = np.nonzero(lesion)
        if not len(rows):
            return False
        other = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
        height = max(0.0, min(bottom, other[2]) - max(top, other[0]))
        width = max(0.0, min(right, other[3]) - max(left, other[1]))
        inter = height * width
        union = (bottom - top) * (right - left) + (other[2] - other[0]) * (other[3] - other[1]) - inter
    return union > 0 and inter / union >= min_iou


def rule_text(rule: HitRule, min_iou: float = 0.1) -> str:
    if rule == HitRule.CENTRE:
        return "a lesion is found when a detection's box centre falls inside its mask"
    return f"a lesion is found when a detection overlaps it with IoU >= {min_iou:g} (masks, else boxes)"


def froc(detections: Sequence[Sequence[Detection]], truths: Sequence[ImageTruth], malignancy: Sequence[str],
         rule: HitRule = HitRule.CENTRE, min_iou: float = 0.1, rates: Sequence[float] = FP_RATES) -> FROC:
    """The FROC of a detector on images (``detections[i]`` on the image ``truths[i]``)."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} images of detections for {len(truths)} images of truth")
    if not truths:
        raise ValueError("a FROC needs at least one image")
    lesion_best: list[float] = []  # per lesion, the highest score of a detection that finds it (-inf: none)
    false_scores: list[float] = []
    for found, truth in zip(detections, truths, strict=True):
        best = [-np.inf] * len(truth.lesions)
        for detection in found:
            hit_any = False
            for index, lesion in enumerate(truth.lesions):
                if hits(detection, lesion, rule, min_iou):
                    hit_any = True
                    best[index] = max(best[index], detection.score)
            if not hit_any:
                false_scores.append(detection.score)
        lesion_best.extend(best)
    lesion_scores, fp_scores = np.asarray(lesion_best, float), np.asarray(false_scores, float)
    every = np.concatenate([lesion_scores[np.isfinite(lesion_scores)], fp_scores])
    thresholds = np.unique(every)[::-1]
    lesions, images = len(lesion_scores), len(truths)
    sensitivity = np.array([(lesion_scores >= t).sum() / lesions if lesions else np.nan for t in thresholds])
    fp_per_image = np.array([(fp_scores >= t).sum() / images for t in thresholds])
    at_rates = {}
    for rate in rates:  # no threshold within the rate: nothing found there (0), unless there is nothing to find
        allowed = sensitivity[fp_per_image <= rate]
        at_rates[float(rate)] = float("nan") if not lesions else float(allowed.max()) if len(allowed) else 0.0
    malignant = set(malignancy)
    highest = [max((d.score for d in found if d.class_name in malignant), default=0.0) for found in detections]
    labels = np.array([t.malignant for t in truths])
    image_auc = roc_auc(np.asarray(highest), labels) if labels.any() and not labels.all() else float("nan")
    return FROC(thresholds, sensitivity, fp_per_image, at_rates, float(np.mean(list(at_rates.values()))), image_auc,
                lesions, images, rule_text(rule, min_iou))


def curve_within(fp_per_image: np.ndarray, sensitivity: np.ndarray, max_fp: float) -> tuple[np.ndarray, np.ndarray]:
    """The FROC curve as drawn on an axis that ends at ``max_fp`` false positives per image: its points up to
    ``max_fp`` and, where the curve goes on beyond, one more at ``max_fp`` holding the sensitivity reached
    within it (a step function holds its value until the next point), so that no point beyond the axis is
    drawn at its edge with a sensitivity reached only there. Points without a sensitivity (no lesions) are
    left out.

    Args:
        fp_per_image: (T,) mean false positives per image, non-decreasing (``FROC.fp_per_image``).
        sensitivity: (T,) the sensitivity at each point (``FROC.sensitivity``).
        max_fp: the axis's end.

    Returns:
        (fp_per_image, sensitivity) of the points to draw, new arrays.
    """
    fp, sens = np.asarray(fp_per_image, float), np.asarray(sensitivity, float)
    keep = np.isfinite(sens)
    fp, sens = fp[keep], sens[keep]
    inside = fp <= max_fp
    if inside.all() or not inside.any() or fp[inside][-1] == max_fp:
        return fp[inside].copy(), sens[inside].copy()
    last = np.flatnonzero(inside)[-1]
    return np.append(fp[inside], max_fp), np.append(sens[inside], sens[last])
