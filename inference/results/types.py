"""The one numpy result every family returns, and the identity of the model that made it (no torch, no Qt).

Whatever a family is, it answers with :class:`ModelViewOutput`: probabilities keyed by
class name, heat layers (each at its own resolution with its own affine into the original image) and scored
regions (a box in original pixels, a score and what the score means). Everything downstream — the
workstation, reports, the study store — works from these types alone; an index like ``[1]`` meaning
"malignant" is a defect.

Coordinates are continuous (row, col): pixel (i, j) covers [i, i + 1) x [j, j + 1). An affine is a 3 x 3
matrix ``A`` with ``(row, col, 1)_original = A @ (row, col, 1)_layer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------------- geometry


def scale_affine(row_scale: float, col_scale: float) -> np.ndarray:
    """The affine of a layer whose cells are ``row_scale`` x ``col_scale`` pixels of the frame it lies on."""
    return np.array([[row_scale, 0.0, 0.0], [0.0, col_scale, 0.0], [0.0, 0.0, 1.0]])


def map_points(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(…, 2) continuous (row, col) points through ``affine``."""
    p = np.asarray(points, dtype=np.float64)
    return p @ affine[:2, :2].T + affine[:2, 2]


def map_box(affine: np.ndarray, box: Sequence[float]) -> tuple[float, float, float, float]:
    """A (top, left, bottom, right) box (bottom/right exclusive) through ``affine`` (axis-aligned result)."""
    top, left, bottom, right = box
    corners = map_points(affine, np.array([[top, left], [top, right], [bottom, left], [bottom, right]]))
    return (float(corners[:, 0].min()), float(corners[:, 1].min()), float(corners[:, 0].max()),
            float(corners[:, 1].max()))


@dataclass(frozen=True)
class InputFrame:
    """The model input of one view and how it lies on the original image.

    Attributes:
        input_shape: (rows, cols) of the model input.
        to_original: affine from input coordinates to original image coordinates (crop, flip, padding and
            any resize).
        original_shape: (rows, cols) of the image as stored.
        record: the family's own preprocessing record (GMIC: crop origin, window origin …), for reports.
    """

    input_shape: tuple[int, int]
    to_original: np.ndarray
    original_shape: tuple[int, int]
    record: Mapping[str, Any] = field(default_factory=dict)

    def layer_affine(self, layer_shape: tuple[int, int]) -> np.ndarray:
        """The affine of a map that covers the whole input at ``layer_shape`` cells."""
        return self.to_original @ scale_affine(self.input_shape[0] / layer_shape[0],
                                                self.input_shape[1] / layer_shape[1])


# ------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HeatLayer:
    """A map to draw over the image.

    Attributes:
        name: what it is, for the layer list ("saliency", "GLAM fused", "tissue mask" …).
        class_name: the class it shows, or None (a tissue mask).
        values: (h, w) float32 in [0, 1] at the layer's own resolution.
        to_original: affine from layer cells to original image coordinates.
        primary: the map shown by default for its class (one per class).
        smooth: draw with bilinear interpolation (coarse saliency maps); False for maps made of blocks or
            masks, whose edges are part of the meaning.
        colormap: "" draws the class's colour with opacity growing with the value; "viridis" draws the
            value through the viridis colour map (a map that is not about one class: an attention map).
    """

    name: str
    class_name: str | None
    values: np.ndarray
    to_original: np.ndarray
    primary: bool = True
    smooth: bool = True
    colormap: str = ""

    def in_original(self, original_shape: tuple[int, int], fill: float = 0.0) -> np.ndarray:
        """The layer resampled onto an original image grid of ``original_shape`` (``fill`` where it does not
        reach): bilinear for smooth maps, nearest for block maps and masks."""
        return warp_to_original(self.values, self.to_original, original_shape, fill, smooth=self.smooth)


def warp_to_original(values: np.ndarray, affine: np.ndarray, original_shape: tuple[int, int], fill: float = np.nan,
                     *, smooth: bool = True) -> np.ndarray:
    """Resample a (h, w) map whose cells map to the original frame through ``affine`` onto the original grid.

    Returns float32 of ``original_shape``; pixels the map does not cover get ``fill``.
    """
    import cv2  # noqa: PLC0415

    values = np.asarray(values, dtype=np.float32)
    # cell (u, v) centre is (u + 0.5, v + 0.5); cv2 works on (x, y) pixel-centre indices
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    unhalf = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    forward = unhalf @ swap @ affine @ swap @ half
    inverse = np.linalg.inv(forward)[:2]
    rows, cols = original_shape
    flags = (cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST) | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(values, inverse, (int(cols), int(rows)), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=float(fill))


@dataclass(frozen=True)
class InstanceMask:
    """A detection's own mask (Mask R-CNN), at its own resolution with its own affine.

    Attributes:
        values: (h, w) float32 probabilities in [0, 1] that each cell belongs to the finding.
        to_original: affine from mask cells to original image coordinates.
        threshold: the probability above which a cell is inside the finding (drawn outline).
    """

    values: np.ndarray
    to_original: np.ndarray
    threshold: float = 0.5

    def binary(self) -> np.ndarray:
        """(h, w) bool: the cells inside the finding."""
        return np.asarray(self.values) > self.threshold

    def in_original(self, original_shape: tuple[int, int]) -> np.ndarray:
        """(rows, cols) bool on the original image grid: the finding pasted through its affine (nearest
        cell; False where the mask does not reach)."""
        inside = self.binary().astype(np.float32)
        if inside.size == 0:
            return np.zeros(original_shape, bool)
        return warp_to_original(inside, self.to_original, original_shape, 0.0, smooth=False) > 0.5


# what a region's rank follows, where it is not its score (most families rank by score, highest first)
RANK_ORDERS = {"attention": "the order the model retrieved its regions, the most salient first (not the attention "
                            "weight, which is how much each counted in its answer)",
               "glimpse": "the order the model took its glimpses"}


def rank_order(kind: str) -> str:
    """What the ranks of regions of ``kind`` follow, in words."""
    return RANK_ORDERS.get(kind, "the region's score, highest first")


@dataclass(frozen=True)
class ScoredRegion:
    """A region the model scored.

    Attributes:
        rank: 1 = the most important.
        box_original: (top, left, bottom, right) in original pixels (bottom/right exclusive; may extend past
            the image where the model input was padded).
        score: the region's score, in [0, 1].
        kind: what the score means: "attention", "glimpse probability", "window probability", "GLAM patch" …
        probabilities: the region's own class probabilities, where the model gives them.
        box_input: the box in the model-input frame, where there is one.
        size: (rows, cols) the model saw, in input pixels.
        pixels: the region as the model saw it (float32, standardised), or None (restored results).
        source: which member of an ensemble the region comes from ("" for a single model).
        mask: the region's instance mask, where the model gives one (detectors), else None.
    """

    rank: int
    box_original: tuple[float, float, float, float]
    score: float
    kind: str
    probabilities: Mapping[str, float] | None = None
    box_input: tuple[float, float, float, float] | None = None
    size: tuple[int, int] | None = None
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    source: str = ""
    mask: InstanceMask | None = field(default=None, repr=False, compare=False)

    def caption(self) -> str:
        """"#1 attention 0.279, 256 × 256"; the size's spaces do not break (a PDF cell wrapped it "256 × / 256")."""
        size = f", {self.size[0]}\u00a0×\u00a0{self.size[1]}" if self.size else ""
        return f"#{self.rank}  {self.kind} {self.score:.3f}{size}"


@dataclass(frozen=True)
class ModelViewOutput:
    """One model's answer on one view (what every family's ``run`` returns).

    Attributes:
        probabilities: class name -> probability, in the model's class order.
        layers: heat layers.
        regions: scored regions.
        extras: family-specific named outputs shown under details (GMIC: y_global, y_local), each a
            class -> value mapping.
        frame: the model input of this view.
        refused: why the model did not read this view ("" when it did): an input outside what the model
            declares it reads. Such an output is no result on the view, with this reason.
    """

    probabilities: Mapping[str, float]
    layers: tuple[HeatLayer, ...]
    regions: tuple[ScoredRegion, ...]
    extras: Mapping[str, Mapping[str, float]]
    frame: InputFrame
    refused: str = ""


# ------------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelIdentity:
    """Where a loaded model came from and what it declares; shown in the UI and written into every result.

    Attributes:
        path: the checkpoint file.
        git_blob_sha1: content hash (``git hash-object``), which identifies published checkpoints.
        sha256: content hash for reports.
        published_name: the published file name when the file is a published checkpoint, else None.
        percent_t: GMIC's pooling threshold (None for other families).
        label: a short human-readable name.
        demo: True for the project's synthetic-data demo model (never for clinical use).
        family: the model family (``gmic``, ``glam`` …).
        classes: the class names, in the order of the model's outputs.
        malignancy: the classes whose probabilities add up to P(malignant) for the exam decision and the
            hybrid; empty when the family has no malignancy score (findings-only classes).
        exclusive: True when the classes are exclusive (softmax), False for independent per-class sigmoids.
        licence: the licence of the weights, where known.
        calibration: how to read the probability (operating points, temperature, evaluation data), or None
            for an uncalibrated model.
        settings: family settings that change the numbers (GMIC: percent_t), for the cache key.
        site_calibration: the site's recalibration of P(malignant) (``<checkpoint>.site_calibration.json``,
            written by ``validate``; ``inference.evaluation.calibration``), read at load; None when the site has none.
            It does not change the model's numbers, only the hybrid's scale (not in the key).
    """

    path: str
    git_blob_sha1: str
    sha256: str
    published_name: str | None
    percent_t: float | None
    label: str
    demo: bool = False
    family: str = "gmic"
    classes: tuple[str, ...] = ("benign", "malignant")
    malignancy: tuple[str, ...] = ("malignant",)
    exclusive: bool = False
    licence: str = ""
    calibration: Mapping[str, Any] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    site_calibration: Mapping[str, Any] | None = None
    # how the output is drawn, from the metadata's "display" key (not in the key: it changes no number):
    # "region_operating_point" (regions shown by default from this score), "map_range" ([low, high] of the
    # maps' absolute colour scale), "background_classes" (class maps never on by default)
    display: Mapping[str, Any] | None = None

    @property
    def weights_id(self) -> str:
        """How every output names these weights: the published name, else ``sha256`` and the hash's first 12
        digits (the screen, the PDF, the SR and the SEG said 8, 12 or none of them, the score table another hash);
        ``model_sha256`` in the score table holds the whole hash."""
        if self.published_name:
            return self.published_name
        return f"sha256 {self.sha256[:12]}" if self.sha256 else f"git-blob {self.git_blob_sha1[:12]}"

    @property
    def key(self) -> str:
        """What makes two identities give the same numbers: content and settings."""
        settings = ",".join(f"{k}={self.settings[k]}" for k in sorted(self.settings))
        return f"{self.family}:{self.git_blob_sha1 or self.sha256}:{settings}"
