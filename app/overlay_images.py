"""Pixels of the overlays, computed off the GUI thread (numpy and OpenCV only).

A heat layer becomes one 8-bit texture drawn through a colour lookup table whose opacity is the value (so a
zero map is fully transparent): no RGBA copy per class, and a bounded size whatever the map's resolution
(a coarse 46 x 30 map is upsampled smoothly to a few hundred pixels, a 2944 x 1920 map is reduced to at most
``MAX_TEXTURE`` on its long side and drawn at screen resolution). The texture's affine takes its pixels to the
original image, so it stays registered through crop, flip, padding and resize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from inference.results.types import HeatLayer, ScoredRegion, scale_affine
from inference.intake.exam import Exam
from inference.results.exam_result import ExamResult
from inference.intake.views import View

SMOOTH_TARGET = 368  # coarse maps are upsampled to about this many pixels on the long side (46 -> 368)
MAX_TEXTURE = 2048


@dataclass(frozen=True)
class Texture:
    """An 8-bit map (0 = nothing, 255 = 1.0) and the affine from its pixels to the original image."""

    values: np.ndarray
    to_original: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


def layer_texture(layer: HeatLayer, value_range: tuple[float, float] | None = None) -> Texture:
    """The texture of one heat layer, at a bounded size; a colour-mapped layer on ``value_range`` (the
    model's absolute scale from its metadata) when given, so a near-uniform low map stays faint."""
    values = np.nan_to_num(np.asarray(layer.values, np.float32))
    if value_range is not None and layer.colormap:
        low, high = value_range
        values = (values - low) / (high - low)
    values = np.clip(values, 0.0, 1.0)
    h, w = values.shape
    long_side = max(h, w)
    if long_side < SMOOTH_TARGET:
        factor = max(1, math.ceil(SMOOTH_TARGET / long_side))
        interpolation = cv2.INTER_LINEAR if layer.smooth else cv2.INTER_NEAREST
        resized = cv2.resize(values, (w * factor, h * factor), interpolation=interpolation) if factor > 1 else values
    elif long_side > MAX_TEXTURE:
        scale = MAX_TEXTURE / long_side
        resized = cv2.resize(values, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    else:
        resized = values
    rh, rw = resized.shape  # OpenCV's resizing keeps pixel edges on pixel edges: the affine is a pure scale
    return Texture(np.round(resized * 255).astype(np.uint8), layer.to_original @ scale_affine(h / rh, w / rw))


def region_thumbnail(pixels: np.ndarray) -> np.ndarray:
    """A region as the model saw it, stretched to uint8 (breast facing right)."""
    low, high = np.percentile(pixels, [0.5, 99.5])
    return np.ascontiguousarray(np.clip((pixels - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8))


def cut_region(image: np.ndarray, region: ScoredRegion) -> np.ndarray:
    """The region's box cut from a stored image (zeros outside it)."""
    top, left, bottom, right = (int(round(v)) for v in region.box_original)
    out = np.zeros((max(bottom - top, 1), max(right - left, 1)), np.float32)
    t0, l0, b0, r0 = max(top, 0), max(left, 0), min(bottom, image.shape[0]), min(right, image.shape[1])
    if b0 > t0 and r0 > l0:
        out[t0 - top: b0 - top, l0 - left: r0 - left] = image[t0:b0, l0:r0]
    return out


def shown_thumbnail(exam: Exam | None, view: View, region: ScoredRegion, flipped: bool) -> np.ndarray:
    """The region turned the way the view hangs: cut from the stored image (also for restored results,
    which keep no pixels), or the model's own pixels (turned back if the model saw it mirrored)."""
    image = exam.views.get(view) if exam is not None else None
    if image is not None:
        cut = cut_region(image.model_image, region)
        thumbnail = region_thumbnail(cut[:, ::-1] if image.horizontal_flip else cut)
        if region.mask is not None:  # a detection: its outline on the cut, in the CAD marks' colour (RGB)
            from app.cad_marks import mask_outline, outline_on_thumbnail  # noqa: PLC0415

            outline = mask_outline(region.mask)
            thumbnail = outline_on_thumbnail(thumbnail, [] if outline is None else [outline], region.box_original,
                                             image.horizontal_flip)
        return thumbnail
    pixels = region.pixels if region.pixels is not None else np.zeros((8, 8), np.float32)
    return region_thumbnail(pixels[:, ::-1] if flipped else pixels)


def over_tissue(texture: Texture, tissue: np.ndarray) -> Texture:
    """The texture with every pixel whose centre falls outside the breast (``tissue`` False, or past the
    image) set to 0, i.e. transparent."""
    rows, cols = texture.values.shape
    a = texture.to_original
    r = np.arange(rows, dtype=np.float64)[:, None] + 0.5
    c = np.arange(cols, dtype=np.float64)[None, :] + 0.5
    orig_r = np.floor(a[0, 0] * r + a[0, 1] * c + a[0, 2]).astype(np.int64)
    orig_c = np.floor(a[1, 0] * r + a[1, 1] * c + a[1, 2]).astype(np.int64)
    inside = (orig_r >= 0) & (orig_r < tissue.shape[0]) & (orig_c >= 0) & (orig_c < tissue.shape[1])
    keep = np.zeros((rows, cols), bool)
    keep[inside] = tissue[orig_r[inside], orig_c[inside]]
    return Texture(np.where(keep, texture.values, 0).astype(np.uint8), texture.to_original)


@dataclass(frozen=True)
class OverlayImages:
    """textures[(view, entry, layer index)]; thumbnails[(view, entry, rank)] as shown on screen."""

    textures: dict[tuple[View, str, int], Texture]
    thumbnails: dict[tuple[View, str, int], np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.textures.values()) + sum(t.nbytes for t in self.thumbnails.values())


def prepare_overlays(result: ExamResult, exam: Exam | None, members_by_entry: dict | None = None) -> OverlayImages:
    """Textures and thumbnails; colour-mapped maps (attention, saliency) only over the breast and on the
    absolute range the model's metadata declares (``members_by_entry``: the models in memory, else the
    result's own identities)."""
    from app.cad_marks import breast_of, map_range  # noqa: PLC0415

    textures, thumbnails = {}, {}
    ranges = {e.id: map_range((members_by_entry or {}).get(e.id, e.members)) for e in result.entries}
    for view, view_result in result.views.items():
        image = exam.views.get(view) if exam is not None else None
        tissue = breast_of(image)
        for entry_id, entry in view_result.entries.items():
            for index, layer in enumerate(entry.layers):
                texture = layer_texture(layer, ranges.get(entry_id))
                if layer.colormap and tissue is not None:
                    texture = over_tissue(texture, tissue)
                textures[(view, entry_id, index)] = texture
            flipped = bool(entry.frame.record.get("flipped", False))
            for region in entry.regions:
                thumbnails[(view, entry_id, region.rank)] = shown_thumbnail(exam, view, region, flipped)
    return OverlayImages(textures, thumbnails)
