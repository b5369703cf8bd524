"""Which CAD marks mean something (no Qt): regions by the model's declared operating point, inside the breast.

A region is shown by default only when its score reaches the region operating point the model's metadata
declares (``"display": {"region_operating_point": t}``); without one, the top regions are shown and the
screen says so. A region lying mostly outside the breast (``ViewImage.breast``: the tissue without the
detector's letters and markers) is never drawn: a box in the air or on a marker is no finding. "Show all
regions" adds the rest, dimmed. Numbers are placed so that they do not overlap. Class maps of a background class are never on by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from inference.intake.image import MIN_TISSUE_FRACTION, tissue_fraction

NO_OPERATING_POINT = "no operating point: the top 3 and each class's best, on the breast"
TOP_REGIONS = 3  # shown without an operating point
BACKGROUND_NAMES = ("background", "no_tumour", "normal")  # the families' names for "no finding"


class RegionShown(StrEnum):
    SHOWN = "shown"
    BELOW = "below the operating point"  # drawn dimmed with "show all regions"
    OUTSIDE = "outside the breast"  # never drawn


def display_of(members: Iterable[Any]) -> Mapping[str, Any]:
    """The first member's ``display`` metadata (an ensemble is drawn as its first member declares)."""
    for identity in members:
        display = getattr(identity, "display", None)
        if display:
            return display
    return {}


def region_operating_point(members: Iterable[Any]) -> float | None:
    value = display_of(members).get("region_operating_point")
    return float(value) if value is not None else None


def map_range(members: Iterable[Any]) -> tuple[float, float] | None:
    """The absolute [low, high] of the maps' colour scale, when the metadata declares one."""
    value = display_of(members).get("map_range")
    if not value or len(value) != 2 or float(value[1]) <= float(value[0]):
        return None
    return float(value[0]), float(value[1])


def background_classes(classes: Sequence[str], members: Iterable[Any] = ()) -> frozenset[str]:
    declared = set(display_of(members).get("background_classes", ()))
    return frozenset(c for c in classes if c in declared or c.lower() in BACKGROUND_NAMES)


def regions_rule_text(operating_point: float | None) -> str:
    """The line that says which regions are drawn: by the model's operating point, or the top ones; never one
    outside the breast (the numbers are the model's ranks, so a rank outside it leaves a gap)."""
    if operating_point is None:
        return NO_OPERATING_POINT
    return f"regions from the operating point {operating_point:.2f}, over the breast"


def classify_regions(regions: Sequence[Any], operating_point: float | None,
                     tissue: np.ndarray | None) -> tuple[list[tuple[Any, RegionShown]], str]:
    """Each region with whether it is shown, and the line that says by which rule."""
    out = []
    for region in sorted(regions, key=lambda r: r.rank):
        if tissue is not None and tissue_fraction(region.box_original, tissue) < MIN_TISSUE_FRACTION:
            out.append((region, RegionShown.OUTSIDE))
            continue
        if operating_point is not None:
            passes = region.score >= operating_point
        else:  # the top ones, and the best of each kind (a detector's class): every view number has its region
            passes = (sum(1 for _r, s in out if s == RegionShown.SHOWN) < TOP_REGIONS
                      or not any(r.kind == region.kind for r, s in out if s != RegionShown.OUTSIDE))
        out.append((region, RegionShown.SHOWN if passes else RegionShown.BELOW))
    note = regions_rule_text(operating_point)
    return out, note


def breast_of(image: Any) -> np.ndarray | None:
    """The breast of ``image`` (a ``ViewImage``) on its stored grid, the regions' frame; None without an image
    or where the model image is on another grid (no tissue test then)."""
    if image is None or image.model_image.shape != image.pixels.shape:
        return None
    return image.breast()


def regions_over_breast(regions: Sequence[Any], image: Any) -> list[Any]:
    """The regions lying mostly over the breast of ``image`` (a ``ViewImage``; None: all): what the structured
    exports (SR, SEG) record as findings. One on a marker or in the air is no finding; the JSON keeps every
    region as the model gave it."""
    breast = breast_of(image)
    if breast is None:
        return list(regions)
    return [r for r in regions if tissue_fraction(r.box_original, breast) >= MIN_TISSUE_FRACTION]


def shown_regions(regions: Sequence[Any], members: Iterable[Any], image: Any) -> tuple[list[Any], str]:
    """The regions every export shows, by the screen's rule (``classify_regions``): those reaching the model's
    declared operating point (the top ones without one), never one lying mostly outside the breast of
    ``image`` (a ``ViewImage``; None: no tissue test); and the line that names the rule."""
    verdicts, note = classify_regions(regions, region_operating_point(members), breast_of(image))
    return [region for region, verdict in verdicts if verdict == RegionShown.SHOWN], note


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    def overlap_area(self, other: Rect) -> float:
        width = min(self.x + self.w, other.x + other.w) - max(self.x, other.x)
        height = min(self.y + self.h, other.y + other.h) - max(self.y, other.y)
        return max(width, 0.0) * max(height, 0.0)

    def overlaps(self, other: Rect) -> bool:
        return not (self.x + self.w <= other.x or other.x + other.w <= self.x or
                    self.y + self.h <= other.y or other.y + other.h <= self.y)


def place_labels(boxes: Sequence[Rect], size: tuple[float, float], nipple_left: bool,
                 bounds: tuple[float, float] | None = None, reserved: Sequence[Rect] = ()) -> list[Rect]:
    """A label rectangle of ``size`` (w, h) per box: the first free of the box's corners (nipple side first,
    inside then outside), then places stacked above and below it one label height at a time. Each candidate is
    moved inside ``bounds`` (w, h: the image, so that no label is cut at its edge) and must overlap no label
    placed before nor ``reserved`` (e.g. a figure's caption); when none is free, the one covering least."""
    w, h = size
    taken: list[Rect] = list(reserved)
    placed: list[Rect] = []

    def inside(rect: Rect) -> Rect:
        if bounds is None:
            return rect
        return Rect(min(max(rect.x, 0.0), max(bounds[0] - w, 0.0)), min(max(rect.y, 0.0), max(bounds[1] - h, 0.0)),
                    w, h)

    for box in boxes:
        near = box.x if nipple_left else box.x + box.w - w
        far = box.x + box.w - w if nipple_left else box.x
        candidates = [Rect(near, box.y, w, h), Rect(near, box.y + box.h - h, w, h), Rect(far, box.y, w, h),
                      Rect(far, box.y + box.h - h, w, h), Rect(near, box.y - h, w, h),
                      Rect(near, box.y + box.h, w, h)]
        for step in range(1, 9):
            candidates += [Rect(near, box.y - (step + 1) * h, w, h), Rect(near, box.y + box.h + step * h, w, h),
                           Rect(far, box.y - step * h, w, h), Rect(far, box.y + box.h + (step - 1) * h, w, h)]
        candidates = [inside(c) for c in candidates]
        chosen = next((c for c in candidates if not any(c.overlaps(t) for t in taken)), None)
        if chosen is None:  # none free: the one that covers the least of the others
            chosen = min(candidates, key=lambda c: sum(c.overlap_area(t) for t in taken))
        taken.append(chosen)
        placed.append(chosen)
    return placed


def mask_outline(mask) -> np.ndarray | None:
    """The outline of a detection's instance mask (``inference.results.types.InstanceMask``): (k, 2) (row, col) in
    the original image, the outer contour of the mask's largest piece (cv2.findContours on the mask's own cells),
    its vertices at the centres of the boundary cells mapped through the mask's affine (a piece one cell thick in
    a line: its cells' rectangle); None when no cell is inside. The screen, the gallery and the SR draw this one."""
    import cv2  # noqa: PLC0415

    from inference.results.types import map_points  # noqa: PLC0415

    inside = mask.binary().astype(np.uint8)
    if inside.size == 0 or not inside.any():
        return None
    # the piece with the most cells (a polygon's area would call a thin, many-celled piece empty)
    _, pieces, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    piece = (pieces == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(piece, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    largest = max(contours, key=len)[:, 0, :]  # (k, 2) x, y = col, row
    if len(largest) >= 3:
        return map_points(mask.to_original, largest[:, ::-1].astype(np.float64) + 0.5)
    cells = np.argwhere(piece)
    (r0, c0), (r1, c1) = cells.min(axis=0), cells.max(axis=0) + 1
    return map_points(mask.to_original, np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]], np.float64))


def outline_on_thumbnail(thumbnail: np.ndarray, polygons: Sequence[np.ndarray], box: Sequence[float],
                         mirrored: bool, colour: tuple[int, int, int] | None = None) -> np.ndarray:
    """An RGB copy of a region's grey ``thumbnail`` (cut from ``box`` = (top, left, bottom, right) of the
    original image, turned the way the view hangs when ``mirrored``) with the outlines drawn on it."""
    import cv2  # noqa: PLC0415

    from app.colours import REGION  # noqa: PLC0415

    colour = colour or REGION
    rgb = np.repeat(np.asarray(thumbnail, np.uint8)[..., None], 3, axis=2)
    top, left, bottom, right = box
    height, width = thumbnail.shape
    scale_r, scale_c = height / max(bottom - top, 1e-6), width / max(right - left, 1e-6)
    thickness = max(1, round(max(height, width) / 90))
    for polygon in polygons:
        rows = (polygon[:, 0] - top) * scale_r
        cols = (polygon[:, 1] - left) * scale_c
        if mirrored:
            cols = width - cols
        points = np.round(np.stack([cols, rows], axis=1)).astype(np.int32)[:, None, :]
        cv2.polylines(rgb, [points], True, colour, thickness, cv2.LINE_AA)
    return np.ascontiguousarray(rgb)
