"""GlimpseNet's glimpses and its multi-instance pooling (Liu & Hang, "GlimpseNet: Deep Attentional Methods for
Full-Image Mammogram Diagnosis", Stanford CS231n).

Glimpses: the saliency map (512 x 512 over the cropped breast) is thresholded; each connected region gives
the box around it (grown to ``min_box`` map pixels where smaller), scored by its peak saliency; boxes
overlapping a better one by more than ``nms_iou`` are dropped and the best ``top_k`` kept. When no pixel
passes the threshold, the one glimpse is the ``fallback_box`` window centred on the most salient pixel.
Boxes are then squared in the full-resolution crop (the classifier sees square glimpses without distortion).

MIL pooling of the glimpses' class probabilities p (K glimpses x C classes), per class, then renormalised
over the classes so that the image's probabilities sum to 1:

* Noisy-AND (a, b): (σ(a(mean p − b)) − σ(−ab)) / (σ(a(1 − b)) − σ(−ab)), so that 0 -> 0 and 1 -> 1;
* top-k mean: the mean of the largest ceil(fraction · K) (at least one);
* log-sum-exp (r): (1/r) log((1/K) Σ exp(r p)), between the mean (r -> 0) and the maximum (r -> ∞).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

POOLINGS = ("noisy_and", "top_k", "lse")


@dataclass(frozen=True)
class GlimpseSettings:
    """Attributes (map sizes in saliency-map pixels): threshold, top_k, min_box, nms_iou, fallback_box,
    glimpse_size (the classifier's input), pooling and its parameters."""

    threshold: float = 0.5
    top_k: int = 6
    min_box: int = 32
    nms_iou: float = 0.3
    fallback_box: int = 64
    glimpse_size: int = 299
    pooling: str = "lse"
    lse_r: float = 5.0
    nand_a: float = 10.0
    nand_b: float = 0.2
    top_fraction: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"the saliency threshold must be between 0 and 1, not {self.threshold}")
        if self.top_k < 1 or self.min_box < 1 or self.fallback_box < 1:
            raise ValueError("top_k, min_box and fallback_box must be at least 1")
        if not 0 <= self.nms_iou < 1:
            raise ValueError(f"nms_iou must be in [0, 1), not {self.nms_iou}")
        if self.glimpse_size < 75:
            raise ValueError(f"the Inception-v3 classifier needs glimpses of at least 75 pixels, not {self.glimpse_size}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if self.lse_r <= 0 or not 0 < self.top_fraction <= 1:
            raise ValueError("lse_r must be positive and top_fraction in (0, 1]")


@dataclass(frozen=True)
class Glimpse:
    box: tuple[int, int, int, int]  # (top, left, bottom, right) in saliency-map pixels, bottom/right exclusive
    score: float  # peak saliency inside the region
    fallback: bool = False


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    rows = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    cols = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = rows * cols
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _grown(top: int, left: int, bottom: int, right: int, size: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box grown about its centre to at least ``size`` per side, shifted to lie inside ``shape``."""
    out = []
    for lo, hi, extent in ((top, bottom, shape[0]), (left, right, shape[1])):
        length = min(max(hi - lo, size), extent)
        start = int(round((lo + hi) / 2 - length / 2))
        start = min(max(start, 0), extent - length)
        out.append((start, start + length))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def glimpse_boxes(saliency: np.ndarray, settings: GlimpseSettings) -> list[Glimpse]:
    """The glimpses of one saliency map, best first (at least one)."""
    import cv2  # noqa: PLC0415

    saliency = np.asarray(saliency, np.float32)
    shape = saliency.shape
    binary = (saliency >= settings.threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    candidates = []
    for index in range(1, count):
        x, y, w, h = (int(v) for v in stats[index, :4])
        peak = float(saliency[labels == index].max())
        candidates.append(Glimpse(_grown(y, x, y + h, x + w, settings.min_box, shape), peak))
    candidates.sort(key=lambda g: -g.score)
    kept: list[Glimpse] = []
    for candidate in candidates:
        if all(iou(candidate.box, other.box) <= settings.nms_iou for other in kept):
            kept.append(candidate)
        if len(kept) == settings.top_k:
            break
    if kept:
        return kept
    r, c = np.unravel_index(int(np.argmax(saliency)), shape)
    half = settings.fallback_box / 2
    box = _grown(int(r - half), int(c - half), int(r + half), int(c + half), settings.fallback_box, shape)
    return [Glimpse(box, float(saliency[r, c]), fallback=True)]


def square_in_crop(box: tuple[int, int, int, int], scale: tuple[float, float],
                   crop_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A map box in full-resolution crop pixels (``scale`` crop pixels per map pixel), squared about its
    centre to its longer side (at most the crop's shorter side) and kept inside the crop."""
    top, left, bottom, right = box[0] * scale[0], box[1] * scale[1], box[2] * scale[0], box[3] * scale[1]
    side = int(round(min(max(bottom - top, right - left), min(crop_shape))))
    out = []
    for lo, hi, extent in ((top, bottom, crop_shape[0]), (left, right, crop_shape[1])):
        start = int(round((lo + hi) / 2 - side / 2))
        start = min(max(start, 0), extent - side)
        out.append(start)
    return out[0], out[1], out[0] + side, out[1] + side


# ------------------------------------------------------------------------------------------------- MIL pooling


def mil_pool(probabilities: torch.Tensor, settings: GlimpseSettings) -> torch.Tensor:
    """(K, C) glimpse probabilities -> (C,) image probabilities (pooled per class, renormalised)."""
    p = probabilities
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"expected (glimpses, classes) probabilities, got {tuple(p.shape)}")
    if settings.pooling == "noisy_and":
        a, b = settings.nand_a, settings.nand_b
        low, high = 1 / (1 + math.exp(a * b)), 1 / (1 + math.exp(-a * (1 - b)))
        pooled = (torch.sigmoid(a * (p.mean(dim=0) - b)) - low) / (high - low)
    elif settings.pooling == "top_k":
        k = max(1, math.ceil(settings.top_fraction * p.shape[0]))
        pooled = p.topk(k, dim=0).values.mean(dim=0)
    else:
        r = settings.lse_r
        pooled = (torch.logsumexp(r * p, dim=0) - math.log(p.shape[0])) / r
    pooled = pooled.clamp_min(0)
    total = pooled.sum()
    uniform = torch.full_like(pooled, 1 / pooled.numel())  # every class pooled to 0 (Noisy-AND far below b)
    return torch.where(total > 0, pooled / total.clamp_min(torch.finfo(pooled.dtype).tiny), uniform)
