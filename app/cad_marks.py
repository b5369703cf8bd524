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

# the regions' rule, not the decision's: "no operating point" stood beside a model declaring a 90 %-specificity
# one for its P(malignant) (a deployer's audit), and the best is of each kind of region (a detector's: its class)
NO_REGION_THRESHOLD = "no region threshold declared: the first 3 by rank and each kind's best, on the breast"
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
        return NO_REGION_THRESHOLD
    return f"regions from the operating point {operating_point:.2f}, over the breast"


def analysed_window(frame: Any, tissue: np.ndarray | None) -> tuple[int, int, int, int] | None:
    """The model input's rectangle (top, left, bottom, right) on the stored image, when more than
    ``UNSEEN_TISSUE_SHARE`` of the breast lies outside it (the share at which the view's preparation says so) (GMIC's and GLAM's 2944 × 1920 window on a tall or deep
    breast); None when the input holds (nearly) all of it, or without a tissue mask. Drawn so that the place where
    a map stops is seen as not analysed, not as nothing found (a radiologist's reading of a tall R-MLO)."""
    if tissue is None or frame is None:
        return None
    rows, cols = frame.input_shape
    corners = np.array([[0.0, 0.0, 1.0], [rows, cols, 1.0]]) @ np.asarray(frame.to_original, np.float64).T
    top, bottom = sorted(corners[:, 0])
    left, right = sorted(corners[:, 1])
    top, left = max(int(np.floor(top)), 0), max(int(np.floor(left)), 0)
    bottom, right = min(int(np.ceil(bottom)), tissue.shape[0]), min(int(np.ceil(right)), tissue.shape[1])
    total = int(np.count_nonzero(tissue))
    if total == 0 or bottom <= top or right <= left:
        return None
    outside = total - int(np.count_nonzero(tissue[top:bottom, left:right]))
    from inference.families.preprocess import UNSEEN_TISSUE_SHARE  # noqa: PLC0415

    return (top, left, bottom, right) if outside > UNSEEN_TISSUE_SHARE * total else None


def unanalysed_centre(window: tuple[int, int, int, int], tissue: np.ndarray) -> tuple[float, float]:
    """(row, col) of the centre of the breast tissue in the band outside ``window`` that holds most of it (above,
    below, or beside the window): where the words "not analysed" go."""
    top, left, bottom, right = window
    bands = [(slice(0, top), slice(None)), (slice(bottom, None), slice(None)),
             (slice(top, bottom), slice(0, left)), (slice(top, bottom), slice(right, None))]
    rows, cols = max(bands, key=lambda band: int(np.count_nonzero(tissue[band])))
    found = np.nonzero(tissue[rows, cols])
    if not found[0].size:
        return (top + bottom) / 2, (left + right) / 2
    return (rows.start or 0) + float(np.median(found[0])), (cols.start or 0) + float(np.median(found[1]))


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
                 bounds: tuple[float, float] | None = None, reserved: Sequence[Rect] = (), *,
                 sizes: Sequence[tuple[float, float]] | None = None, gap: float = 2.0,
                 reach: int = 4, within: Rect | None = None) -> list[Rect]:
    """A label rectangle per box (``size`` (w, h) each, or its own of ``sizes``), beside its box: outside it,
    touching it within ``gap`` — above or below its nipple-side end (away from the midline, where the two views
    of a row meet), at its nipple side, then the other end and side, then slid along its sides — over no box's
    interior (any of ``boxes``), no label placed before and nothing ``reserved`` (a figure's caption, a view's
    corner badges), inside ``bounds`` (w, h: the image or the viewport) and, where a place there is free,
    inside ``within`` (the image on screen: over the background beside it only when needed). Where every place
    beside the box is taken (boxes in a cluster), the nearest free one stacked at most ``reach`` label heights
    out; where none is free, the one covering least. Labels never drift further from their box: a number far
    from its box reads as another box's. Boxes come best first: the first get the places next to them."""
    if sizes is not None and len(sizes) != len(boxes):
        raise ValueError(f"{len(sizes)} label sizes for {len(boxes)} boxes")
    interiors = np.array([(b.x, b.y, b.x + b.w, b.y + b.h) for b in boxes], np.float64).reshape(-1, 4)
    interiors += (0.5, 0.5, -0.5, -0.5)  # a label may touch a box's line, not go inside
    taken = [(r.x, r.y, r.x + r.w, r.y + r.h) for r in reserved]
    placed: list[Rect] = []
    for index, box in enumerate(boxes):
        w, h = sizes[index] if sizes is not None else size
        # around the box, and stacked on the labels placed before (a cluster of boxes: one column, no gaps)
        corners = np.concatenate([_beside(box, w, h, nipple_left, gap, reach),
                                  np.array([(r.x, y) for r in placed for y in (r.y + r.h + gap, r.y - h - gap)],
                                           np.float64).reshape(-1, 2)])
        if bounds is not None:  # moved inside (a box at the edge: the label stays at its visible side)
            corners[:, 0] = np.clip(corners[:, 0], 0.0, max(bounds[0] - w, 0.0))
            corners[:, 1] = np.clip(corners[:, 1], 0.0, max(bounds[1] - h, 0.0))
        candidates = np.concatenate([corners, corners + (w, h)], axis=1)
        dx = np.maximum(box.x - candidates[:, 2], candidates[:, 0] - (box.x + box.w))
        dy = np.maximum(box.y - candidates[:, 3], candidates[:, 1] - (box.y + box.h))
        away = np.round(np.maximum(np.maximum(dx, dy) - gap, 0.0), 1)  # 0: touching the box
        near = away <= (reach + 0.5) * h
        candidates, away = candidates[near], away[near]
        covered = _overlap(candidates, np.array(taken, np.float64).reshape(-1, 4))
        over_boxes = _overlap(candidates, interiors)
        outside = np.zeros(len(candidates), bool)
        if within is not None:
            area = np.array([[within.x, within.y, within.x + within.w, within.y + within.h]])
            outside = _overlap(candidates, area) < w * h - 0.5
        # free of labels and reserved places first, then off every box, then inside ``within``, then nearest,
        # then by preference
        best = np.lexsort((np.arange(len(candidates)), away, outside, over_boxes, covered))[0]
        x0, y0, x1, y1 = candidates[best]
        taken.append((x0, y0, x1, y1))
        placed.append(Rect(float(x0), float(y0), w, h))
    return placed


def _beside(box: Rect, w: float, h: float, nipple_left: bool, gap: float, reach: int) -> np.ndarray:
    """Top-left corners (k, 2) of a w × h label's places around ``box``, in order of preference: touching it
    (above or below its ends, level with its top or bottom at its sides, at its corners, then slid along each
    side; the nipple side first), then the same rows above and below one label height further out, up to
    ``reach`` times, and the sides' columns as long."""
    near_end = box.x if nipple_left else box.x + box.w - w  # above or below the box, flush with its nipple end
    far_end = box.x + box.w - w if nipple_left else box.x
    near_side = box.x - w - gap if nipple_left else box.x + box.w + gap  # beside the box, on the nipple side
    far_side = box.x + box.w + gap if nipple_left else box.x - w - gap
    step = max(h / 2.0, 2.0)
    along = np.arange(box.x - w - gap, box.x + box.w + gap + 1e-9, step)  # rows above and below
    along = along if nipple_left else along[::-1]
    places: list[tuple[float, float]] = []
    for k in range(reach + 1):
        out = k * h
        above, below = box.y - h - gap - out, box.y + box.h + gap + out
        top, bottom = box.y - out, box.y + box.h - h + out
        places += [(near_end, above), (near_end, below), (near_side, top), (near_side, bottom),
                   (near_side, above), (near_side, below), (far_end, above), (far_end, below),
                   (far_side, top), (far_side, bottom), (far_side, above), (far_side, below)]
        places += [(x, y) for y in (above, below) for x in along]
        places += [(x, y) for x in (near_side, far_side) for y in np.arange(above, below + 1e-9, step)]
    return np.array(places, np.float64)


def _overlap(rects: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The area each of ``rects`` (n, 4: x0, y0, x1, y1) shares with all of ``others`` (m, 4) together."""
    # only those near the candidates (a view with "all regions" has dozens, laid out again at every pan)
    hull_min, hull_max = rects[:, :2].min(axis=0), rects[:, 2:].max(axis=0)
    others = others[(others[:, 0] < hull_max[0]) & (others[:, 2] > hull_min[0]) &
                    (others[:, 1] < hull_max[1]) & (others[:, 3] > hull_min[1])]
    if not len(others):
        return np.zeros(len(rects))
    width = np.minimum(rects[:, None, 2], others[None, :, 2]) - np.maximum(rects[:, None, 0], others[None, :, 0])
    height = np.minimum(rects[:, None, 3], others[None, :, 3]) - np.maximum(rects[:, None, 1], others[None, :, 1])
    return (np.maximum(width, 0.0) * np.maximum(height, 0.0)).sum(axis=1)


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
