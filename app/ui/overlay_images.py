"""Pixels of the overlays (heatmap RGBA, patch thumbnails), computed off the GUI thread (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference.exam import Exam
from inference.pipeline import ExamResult
from inference.views import View

CLASS_COLOURS = {0: (40, 220, 60), 1: (235, 40, 40)}  # benign green, malignant red (GMIC figures)
HEATMAP_UPSAMPLE = 8


def heatmap_rgba(values: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """(h, w) probabilities in [0, 1] -> (h, w, 4) uint8: a fixed colour whose opacity is the value."""
    alpha = np.clip(values, 0.0, 1.0)
    rgba = np.zeros(values.shape + (4,), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return rgba


def smooth_heatmap(values: np.ndarray) -> np.ndarray:
    """Bilinear upsampling of a saliency map by HEATMAP_UPSAMPLE (cells stay aligned to the input frame)."""
    h, w = values.shape
    return cv2.resize(values, (w * HEATMAP_UPSAMPLE, h * HEATMAP_UPSAMPLE), interpolation=cv2.INTER_LINEAR)


def patch_thumbnail(pixels: np.ndarray, mirror: bool) -> np.ndarray:
    """A patch as the model saw it, stretched to uint8; ``mirror`` turns it the way the view hangs."""
    shown = pixels[:, ::-1] if mirror else pixels
    low, high = np.percentile(shown, [0.5, 99.5])
    return np.ascontiguousarray(np.clip((shown - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8))


def _cut_as_model_saw(image: np.ndarray, view_result, patch) -> np.ndarray:
    """The patch region of the stored image, turned to face right like the model's input."""
    top, left, bottom, right = (int(round(v)) for v in patch.box_original)
    out = np.zeros((bottom - top, right - left), np.float32)
    t0, l0, b0, r0 = max(top, 0), max(left, 0), min(bottom, image.shape[0]), min(right, image.shape[1])
    if b0 > t0 and r0 > l0:
        out[t0 - top : b0 - top, l0 - left : r0 - left] = image[t0:b0, l0:r0]
    return out[:, ::-1] if view_result.mapping.flipped else out


@dataclass(frozen=True)
class OverlayImages:
    """heatmaps[(view, class)] -> RGBA; thumbnails[(view, rank)] -> uint8 patch as shown on screen."""

    heatmaps: dict[tuple[View, int], np.ndarray]
    thumbnails: dict[tuple[View, int], np.ndarray]


def prepare_overlays(result: ExamResult, exam: Exam | None) -> OverlayImages:
    heatmaps, thumbnails = {}, {}
    for view, view_result in result.views.items():
        for class_index, colour in CLASS_COLOURS.items():
            heatmaps[(view, class_index)] = heatmap_rgba(smooth_heatmap(view_result.saliency[class_index]), colour)
        stored_mirrored = bool(exam is not None and view in exam.views and exam.views[view].horizontal_flip)
        mirror = view_result.mapping.flipped != stored_mirrored
        for patch in view_result.patches:
            pixels = patch.pixels
            if pixels.size == 0 and exam is not None and view in exam.views:
                # a result restored from the store keeps no patch pixels: cut them from the image again
                pixels = _cut_as_model_saw(exam.views[view].model_image, view_result, patch)
            thumbnails[(view, patch.rank)] = patch_thumbnail(pixels, mirror)
    return OverlayImages(heatmaps=heatmaps, thumbnails=thumbnails)
