"""Sliding windows over a mammogram at native resolution (numpy and OpenCV, no torch): the tissue mask, the
window grid, and the per-class maps that average the overlapping windows' probabilities.

The tissue mask lives on *mask cells* of ``downsample`` pixels a side (cell (i, j) covers pixels
[i d, (i + 1) d) x [j d, (j + 1) d)); it is Otsu's threshold of the cell means' logarithm, the largest connected
component, holes filled. The window grid has *map cells* of ``stride`` pixels; a window of ``window`` pixels
covers ``window / stride`` map cells a side (the stride must divide the window: 0, 50 or 75 % overlap for
256-pixel windows are strides 256, 128, 64). Windows start at every map cell up to the one whose window
reaches the last image row or column, so the edges are covered; past the image the window is background.
A window whose tissue fraction is below ``min_tissue`` is skipped. Each map cell holds the mean of the kept
windows that cover it (a count map divides, so edges covered by fewer windows are not darkened); cells that
no kept window covers hold 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TissueMask:
    """The breast on mask cells.

    Attributes:
        cells: (ceil(h / downsample), ceil(w / downsample)) bool.
        downsample: pixels per cell side.
        shape: (h, w) of the image.
    """

    cells: np.ndarray
    downsample: int
    shape: tuple[int, int]

    @property
    def fraction(self) -> float:
        return float(self.cells.mean()) if self.cells.size else 0.0

    def full(self) -> np.ndarray:
        """The mask at image resolution (bool (h, w))."""
        d = self.downsample
        return np.repeat(np.repeat(self.cells, d, axis=0), d, axis=1)[: self.shape[0], : self.shape[1]]


def tissue_mask(image: np.ndarray, downsample: int = 8) -> TissueMask:
    """The breast: Otsu's threshold on the logarithm of the ``downsample``-pixel cell means, the largest
    8-connected component with its holes filled (dark fat inside the breast stays breast). An empty image
    gives an empty mask."""
    image = np.asarray(image, np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    h, w = image.shape
    d = int(downsample)
    rows, cols = -(-h // d), -(-w // d)
    padded = np.zeros((rows * d, cols * d), np.float32)
    padded[:h, :w] = image
    # mean of the image pixels in each cell (edge cells: of the pixels inside the image)
    sums = padded.reshape(rows, d, cols, d).sum(axis=(1, 3))
    inside = np.zeros((rows * d, cols * d), np.float32)
    inside[:h, :w] = 1
    small = sums / np.maximum(inside.reshape(rows, d, cols, d).sum(axis=(1, 3)), 1)
    # on a log scale: the bright pectoral muscle of an MLO would otherwise pull the threshold into the fat
    small = np.log1p(np.maximum(small - float(small.min()), 0))
    high = float(small.max())
    if high <= 0:
        return TissueMask(np.zeros((rows, cols), bool), d, (h, w))
    scaled = np.round(small / high * 255).astype(np.uint8)
    _, binary = cv2.threshold(scaled, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return TissueMask(np.zeros((rows, cols), bool), d, (h, w))
    largest = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    # holes: background not connected to the border (flood the border from a one-cell frame)
    framed = np.pad(largest, 1)
    flood = framed.copy()
    cv2.floodFill(flood, np.zeros((rows + 4, cols + 4), np.uint8), (0, 0), 1)
    filled = framed | (1 - flood)
    return TissueMask(filled[1:-1, 1:-1].astype(bool), d, (h, w))


def mask_downsample(stride: int, preferred: int = 8) -> int:
    """The largest mask cell that divides ``stride`` and ``preferred``, so windows cover whole cells."""
    return math.gcd(int(stride), int(preferred))


@dataclass(frozen=True)
class WindowGrid:
    """Windows (upper-left (row, col) in image pixels) and the map grid they lie on.

    Attributes:
        origins: (M, 2) int64 upper-left corners of the kept windows, in raster order.
        tissue: (M,) tissue fraction of each kept window.
        window, stride: pixels.
        cells: (rows, cols) of the map grid (``ceil(h / stride)``, ``ceil(w / stride)``).
        candidates: how many windows the grid has before tissue skipping.
    """

    origins: np.ndarray
    tissue: np.ndarray
    window: int
    stride: int
    cells: tuple[int, int]
    candidates: int

    @property
    def skipped(self) -> int:
        return self.candidates - len(self.origins)


def window_grid(mask: TissueMask, window: int = 256, stride: int = 128, min_tissue: float = 0.25) -> WindowGrid:
    """Every window on the stride grid with at least ``min_tissue`` of its area in the breast."""
    if window <= 0 or stride <= 0 or window % stride:
        raise ValueError(f"the stride ({stride}) must divide the window ({window}): 0, 50 or 75 % overlap")
    if stride % mask.downsample:
        raise ValueError(f"the stride ({stride}) must be a multiple of the mask cell ({mask.downsample})")
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"the minimum tissue fraction must be between 0 and 1, not {min_tissue}")
    h, w = mask.shape
    d = mask.downsample
    cells = (-(-h // stride), -(-w // stride))
    span = window // stride
    starts = (max(cells[0] - span + 1, 1), max(cells[1] - span + 1, 1))
    # the mask on a canvas large enough for every window, counted with an integral image
    wc = window // d
    canvas = np.zeros((starts[0] * (stride // d) + wc, starts[1] * (stride // d) + wc), np.float32)
    r_max, c_max = min(mask.cells.shape[0], canvas.shape[0]), min(mask.cells.shape[1], canvas.shape[1])
    canvas[:r_max, :c_max] = mask.cells[:r_max, :c_max]
    integral = cv2.integral(canvas, sdepth=cv2.CV_64F)
    r = np.arange(starts[0])[:, None] * (stride // d)
    c = np.arange(starts[1])[None, :] * (stride // d)
    sums = integral[r + wc, c + wc] - integral[r, c + wc] - integral[r + wc, c] + integral[r, c]
    fraction = (sums / float(wc * wc)).ravel()
    keep = fraction >= min_tissue
    if min_tissue > 0:
        keep &= fraction > 0
    rr, cc = np.meshgrid(np.arange(starts[0]) * stride, np.arange(starts[1]) * stride, indexing="ij")
    origins = np.stack([rr.ravel(), cc.ravel()], axis=1)[keep].astype(np.int64)
    return WindowGrid(origins, fraction[keep], int(window), int(stride), cells, int(fraction.size))


def cut_windows(image: np.ndarray, origins: np.ndarray, window: int, fill: float = 0.0) -> np.ndarray:
    """(len(origins), window, window) float32 windows of ``image``; ``fill`` past the image edge."""
    image = np.asarray(image)
    h, w = image.shape
    out = np.full((len(origins), window, window), fill, np.float32)
    for index, (r, c) in enumerate(np.asarray(origins, np.int64)):
        bottom, right = min(r + window, h), min(c + window, w)
        out[index, : bottom - r, : right - c] = image[r:bottom, c:right]
    return out


def average_maps(probabilities: np.ndarray, grid: WindowGrid) -> tuple[np.ndarray, np.ndarray]:
    """Per class the mean of the window probabilities over the kept windows covering each map cell.

    Returns (maps (K, rows, cols) float32, 0 where no window covers a cell; count (rows, cols) int32).
    """
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2 or len(probabilities) != len(grid.origins):
        raise ValueError(f"expected ({len(grid.origins)}, K) window probabilities, got {probabilities.shape}")
    k = probabilities.shape[1]
    span = grid.window // grid.stride
    rows, cols = grid.cells
    # every window adds its probabilities to span x span cells: a sum of shifted scatter-adds
    total = np.zeros((k, rows + span, cols + span), np.float64)
    count = np.zeros((rows + span, cols + span), np.int64)
    cell_r, cell_c = (grid.origins // grid.stride).T if len(grid.origins) else (np.zeros(0, int),) * 2
    for dr in range(span):
        for dc in range(span):
            for cls in range(k):
                np.add.at(total[cls], (cell_r + dr, cell_c + dc), probabilities[:, cls])
            np.add.at(count, (cell_r + dr, cell_c + dc), 1)
    total, count = total[:, :rows, :cols], count[:rows, :cols]
    maps = np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)
    return maps, count.astype(np.int32)


def top_windows(scores: np.ndarray, count: int, origins: np.ndarray | None = None, window: int = 0,
                max_overlap: float = 0.25) -> np.ndarray:
    """Indices of the ``count`` highest-scoring windows, highest first (ties: the earlier window first).

    With ``origins`` and ``window``, a window that shares more than ``max_overlap`` of its area with a
    higher-ranked one is passed over (greedy non-maximum suppression), so the regions shown are distinct
    places rather than the overlapping neighbours of one lesion."""
    scores = np.asarray(scores, np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))
    if origins is None or window <= 0:
        return order[:count]
    chosen: list[int] = []
    for index in order:
        r, c = origins[index]
        if all((max(0, window - abs(int(r) - int(origins[k][0]))) * max(0, window - abs(int(c) - int(origins[k][1]))))
               <= max_overlap * window * window for k in chosen):
            chosen.append(int(index))
            if len(chosen) == count:
                break
    return np.array(chosen, np.int64)
