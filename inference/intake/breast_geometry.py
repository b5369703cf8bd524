"""Where a point of one view of a breast lies in the other (CC <-> MLO cross-reference).

A mammography workstation relates a finding in the CC view to the MLO view by its depth: the distance from
the nipple along the chest-wall normal, which compression keeps about the same in both projections. Here the
chest-wall normal is the image's horizontal (perpendicular to the chest-wall edge of the detector); the
nipple is the tissue point farthest from that edge. A point at depth d in one view corresponds to the band of
points at depth d (plus or minus a tolerance) in the other. The pectoral-muscle angle of the MLO is not
modelled, so the band is an aid, not a location: a lesion near the chest wall or high in the axilla can sit
outside it. All coordinates are (row, col) pixels of the stored image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BreastAxis:
    """The nipple and the chest-wall side of one stored view.

    Attributes:
        nipple: (row, col) of the tissue point farthest from the chest wall.
        chest_wall_col: the column of the chest-wall edge (0 or the image width).
        faces_right: True when the nipple points to larger columns.
        col_spacing: mm per column (1.0 with ``in_mm`` False when the spacing is unknown).
        in_mm: whether depths are millimetres (else pixels).
    """

    nipple: tuple[float, float]
    chest_wall_col: float
    faces_right: bool
    col_spacing: float
    in_mm: bool

    def depth(self, col: float) -> float:
        """Distance behind the nipple of a point in column ``col``, along the chest-wall normal."""
        return abs(self.nipple[1] - col) * self.col_spacing

    def column_at_depth(self, depth: float) -> float:
        step = depth / self.col_spacing
        return self.nipple[1] - step if self.faces_right else self.nipple[1] + step


def breast_axis(breast: np.ndarray, faces_right: bool, pixel_spacing: tuple[float, float] | None) -> BreastAxis:
    """Nipple and chest wall from the breast's pixels (``ViewImage.breast()``, or any image whose breast is
    > 0; stored orientation)."""
    tissue = np.asarray(breast) > 0
    height, width = tissue.shape
    cols = np.flatnonzero(tissue.any(axis=0))
    if cols.size == 0:
        nipple_col, rows = (width - 1 if faces_right else 0), np.arange(height)
    else:
        nipple_col = int(cols[-1] if faces_right else cols[0])
        rows = np.flatnonzero(tissue[:, nipple_col])
    nipple = (float(np.median(rows)) + 0.5, nipple_col + 0.5)
    spacing = pixel_spacing[1] if pixel_spacing else 1.0
    return BreastAxis(nipple, 0.0 if faces_right else float(width), faces_right, float(spacing), bool(pixel_spacing))


def corresponding_band(source: BreastAxis, point: tuple[float, float], target: BreastAxis,
                       tolerance: float | None = None) -> tuple[float, float, float]:
    """(col_from, col_centre, col_to) in the target view for ``point`` (row, col) of the source view.

    ``tolerance``: the half-width of the band in the depth unit (default 10 mm, or 100 pixels without spacing,
    and at least 10 % of the depth: depths agree less well far from the nipple).
    """
    depth = source.depth(point[1])
    base = tolerance if tolerance is not None else (10.0 if source.in_mm else 100.0)
    half = max(base, 0.1 * depth)
    centre = target.column_at_depth(depth)
    edges = sorted((target.column_at_depth(max(depth - half, 0.0)), target.column_at_depth(depth + half)))
    return edges[0], centre, edges[1]
