"""GMIC preprocessing: breast crop, optimal window centre, the 2944 x 1920 model window, standardisation.

This reproduces the published GMIC pipeline at test time (Shen et al.; stages "crop" and "optimal centre"
of the reference, then its image loading), including its quirks, so that the model sees exactly what it
was trained on:

* Stage 1 erodes ``image > 0`` 100 times with the 3 x 3 cross, counting pixels outside the image as
  background, keeps the largest 4-connected component and dilates it 100 times. Iterated erosion and
  dilation with the cross are thresholds of the city-block (L1) distance, so two distance transforms do
  the work of 200 passes.
* Right-facing x coordinates of a breast that faces left are mirrored as ``W - x`` (not ``W - 1 - x``).
* The window centre carries an extra ``-1`` (``rightmost_x - 961``, ``bottommost_y - 1473``).
* Axes shorter than the window are zero padded (CC rows centred, MLO rows at the bottom, columns on the
  right); longer axes are windowed around ``best_center`` and clamped inside the image. Nothing is resized.

Every coordinate the model produces is in the *input frame* (2944 x 1920). :class:`Mapping` takes it back
to the *original frame* (the image as stored), so overlays are drawn through it, never by guessing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from inference.errors import PreprocessError
from inference.intake.views import Projection, View

logger = logging.getLogger(__name__)

WINDOW_SHAPE: tuple[int, int] = (2944, 1920)
MORPHOLOGY_ITERATIONS = 100
BUFFER_SIZE = 50
RIGHTMOST_SEARCH_FROM = 1 / 3


@dataclass(frozen=True)
class CropInfo:
    """Stage-1 output, in the reference's frames (see ``preprocess_exam0.json`` field formats).

    Attributes:
        window_location: (top, bottom, left, right) of the crop in the original image; bottom/right exclusive.
        rightmost_points: ((y_first, y_last), x) in the cropped image; x mirrored ``W - x`` when facing left.
        bottommost_points: (y, (x_first, x_last)) in the cropped image, same mirroring.
        distance_from_starting_side: empty columns between the chest-wall edge and the breast (0 = ok).
        used_fallback: True when no tissue survived the erosion and the whole image was kept.
    """

    window_location: tuple[int, int, int, int]
    rightmost_points: tuple[tuple[int, int], int]
    bottommost_points: tuple[int, tuple[int, int]]
    distance_from_starting_side: int
    used_fallback: bool = False


@dataclass(frozen=True)
class Mapping:
    """Coordinates between the model input frame and the original image frame of one view.

    Continuous coordinates (row, col): pixel (i, j) covers [i, i + 1) x [j, j + 1), so box edges map
    exactly. The chain from the input frame to the original frame is: add the window origin (in the
    flipped crop; negative rows mean zero padding on top), undo the left-right flip (``c -> W_crop - c``),
    add the crop offset. There is never a resize at test time (scale 1).

    Attributes:
        original_shape: (H, W) of the image as stored.
        crop_origin: (top, left) of the Stage-1 crop in the original image.
        crop_shape: (H, W) of the crop.
        flipped: whether the crop was mirrored left-right to face right.
        window_origin: (row, col) of the input frame's (0, 0) in the flipped crop.
        input_shape: shape of the model input.
    """

    original_shape: tuple[int, int]
    crop_origin: tuple[int, int]
    crop_shape: tuple[int, int]
    flipped: bool
    window_origin: tuple[int, int]
    input_shape: tuple[int, int] = WINDOW_SHAPE

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map continuous (row, col) points of shape (..., 2) from the input frame to the original frame."""
        p = np.asarray(points, dtype=np.float64)
        rows = p[..., 0] + self.window_origin[0]
        cols = p[..., 1] + self.window_origin[1]
        if self.flipped:
            cols = self.crop_shape[1] - cols
        return np.stack([rows + self.crop_origin[0], cols + self.crop_origin[1]], axis=-1)

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Map continuous (row, col) points of shape (..., 2) from the original frame to the input frame."""
        p = np.asarray(points, dtype=np.float64)
        rows = p[..., 0] - self.crop_origin[0]
        cols = p[..., 1] - self.crop_origin[1]
        if self.flipped:
            cols = self.crop_shape[1] - cols
        return np.stack([rows - self.window_origin[0], cols - self.window_origin[1]], axis=-1)

    def index_to_original(self, indices: np.ndarray) -> np.ndarray:
        """Map integer pixel indices (..., 2) of the input frame to pixel indices of the original frame."""
        centres = np.asarray(indices, dtype=np.float64) + 0.5
        return np.floor(self.to_original(centres)).astype(np.int64)

    def box_to_original(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Map a box (top, left, bottom, right), bottom/right exclusive, from the input to the original frame."""
        corners = self.to_original(np.array([[box[0], box[1]], [box[2], box[3]]]))
        top, bottom = sorted(corners[:, 0])
        left, right = sorted(corners[:, 1])
        return (float(top), float(left), float(bottom), float(right))

    def box_to_input(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Map a box (top, left, bottom, right) from the original frame to the input frame."""
        corners = self.to_input(np.array([[box[0], box[1]], [box[2], box[3]]]))
        top, bottom = sorted(corners[:, 0])
        left, right = sorted(corners[:, 1])
        return (float(top), float(left), float(bottom), float(right))

    def input_to_original_affine(self) -> np.ndarray:
        """3 x 3 matrix A with (row, col, 1)_original = A @ (row, col, 1)_input (continuous coordinates)."""
        sign = -1.0 if self.flipped else 1.0
        col_offset = (
            self.crop_shape[1] - self.window_origin[1] if self.flipped else self.window_origin[1]
        ) + self.crop_origin[1]
        return np.array(
            [
                [1.0, 0.0, self.window_origin[0] + self.crop_origin[0]],
                [0.0, sign, col_offset],
                [0.0, 0.0, 1.0],
            ]
        )

    def map_to_original(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Resample a map covering the whole input frame (any resolution, e.g. a 46 x 30 saliency map)
        onto the original image grid, bilinearly; pixels the input frame does not cover get ``fill``.

        Returns a float32 array of ``original_shape``.
        """
        values = np.asarray(values, dtype=np.float32)
        h, w = values.shape
        scale = np.array([[self.input_shape[0] / h, 0, 0], [0, self.input_shape[1] / w, 0], [0, 0, 1]])
        # map-cell continuous coordinates -> original continuous coordinates; cv2 wants (x, y) order and
        # pixel centres, so convert: centre of cell u is u + 0.5.
        a = self.input_to_original_affine() @ scale
        swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
        half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
        unhalf = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        forward = unhalf @ swap @ a @ swap @ half  # map (x, y) index -> original (x, y) index
        inverse = np.linalg.inv(forward)[:2]
        out_h, out_w = self.original_shape
        return cv2.warpAffine(
            values,
            inverse,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=float(fill),
        )


@dataclass(frozen=True)
class PreparedView:
    """A view ready for the model.

    Attributes:
        view: which view.
        input: (2944, 1920) float32, standardised; the breast faces right.
        window_location: Stage-1 crop (top, bottom, left, right) in the original image.
        best_center: (row, col) in the cropped image flipped to face right.
        mapping: input frame <-> original frame.
        crop: the full Stage-1 record.
        mean: the mean subtracted during standardisation (of the padded window, before scaling).
        std: the divisor used during standardisation.
        warnings: non-fatal oddities found while preparing.
    """

    view: View
    input: np.ndarray
    window_location: tuple[int, int, int, int]
    best_center: tuple[int, int]
    mapping: Mapping
    crop: CropInfo
    mean: float
    std: float
    warnings: tuple[str, ...] = field(default=())


def needs_flip(view: View, horizontal_flip: bool) -> bool:
    """Whether the stored image must be mirrored to face right (R views, unless stored already mirrored)."""
    return (view.laterality == "R") != horizontal_flip


def _l1_distance_to_zero(mask: np.ndarray, outside_is_zero: bool) -> np.ndarray:
    """City-block distance of every pixel to the nearest zero pixel of ``mask`` (exact for L1).

    With ``outside_is_zero`` the pixels beyond the image border count as zero pixels too, as they do in
    scipy's binary erosion.
    """
    if outside_is_zero:
        padded = np.pad(mask.astype(np.uint8), 1)
        return cv2.distanceTransform(padded, cv2.DIST_L1, cv2.DIST_MASK_3)[1:-1, 1:-1]
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L1, cv2.DIST_MASK_3)


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    """Largest 4-connected component; ties go to the component met first in raster order."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = np.flatnonzero(areas == areas.max()) + 1
    if best.size > 1:
        flat = labels.ravel()
        first_index = [int(np.argmax(flat == label)) for label in best]
        best = best[int(np.argmin(first_index))]
    else:
        best = best[0]
    return labels == best


def crop_breast(
    image: np.ndarray,
    faces_left: bool,
    iterations: int = MORPHOLOGY_ITERATIONS,
    buffer_size: int = BUFFER_SIZE,
) -> CropInfo:
    """Stage 1: the bounding box of the breast and its extreme points.

    Args:
        image: (H, W) view as stored; tissue > 0, background exactly 0.
        faces_left: True when the breast points to the left in ``image`` (chest wall on the right).
        iterations: erosion/dilation count of the reference (100).
        buffer_size: margin added around the mask (50).
    """
    mask = image > 0
    height, width = mask.shape
    tissue_rows = np.flatnonzero(mask.any(axis=1))
    if tissue_rows.size == 0:
        raise PreprocessError("the image is blank: no breast tissue (no pixel above zero) was found")
    tissue_cols = np.flatnonzero(mask.any(axis=0))
    # Outside the bounding box of the tissue everything is background, so the morphology runs on that box
    # (zero padding stands for both background and the image border) and on the box grown by `iterations`.
    r0, r1 = int(tissue_rows[0]), int(tissue_rows[-1]) + 1
    c0, c1 = int(tissue_cols[0]), int(tissue_cols[-1]) + 1
    eroded = _l1_distance_to_zero(mask[r0:r1, c0:c1], outside_is_zero=True) > iterations
    component = _largest_component(eroded)
    used_fallback = component is None
    if component is None:
        # Nothing survives the erosions (a small or thin image): keep the tissue mask as it is.
        dilated = mask
    else:
        g0, g1 = max(r0 - iterations, 0), min(r1 + iterations, height)
        h0, h1 = max(c0 - iterations, 0), min(c1 + iterations, width)
        grown = np.zeros((g1 - g0, h1 - h0), dtype=bool)
        grown[r0 - g0 : r1 - g0, c0 - h0 : c1 - h0] = component
        dilated = np.zeros_like(mask)
        dilated[g0:g1, h0:h1] = _l1_distance_to_zero(~grown, outside_is_zero=False) <= iterations

    rows_any = np.flatnonzero(dilated.any(axis=1))
    cols_any = np.flatnonzero(dilated.any(axis=0))
    top, bottom = int(rows_any[0]), int(rows_any[-1]) + 1
    left, right = int(cols_any[0]), int(cols_any[-1]) + 1

    bottom_row = bottom - 1
    bottom_cols = np.flatnonzero(dilated[bottom_row])

    top = max(top - buffer_size, 0)
    bottom = min(bottom + buffer_size, height)
    distance_from_starting_side = width - right if faces_left else left
    if faces_left:
        if left > 0:
            left = max(left - buffer_size, 0)
    elif right < width:
        right = min(right + buffer_size, width)

    bottom_row -= top
    if faces_left:
        bottom_cols = np.sort(right - bottom_cols)
    else:
        bottom_cols = bottom_cols - left
    bottommost = (int(bottom_row), (int(bottom_cols[0]), int(bottom_cols[-1])))

    cropped_mask = dilated[top:bottom, left:right]
    band_start = int(cropped_mask.shape[0] * RIGHTMOST_SEARCH_FROM)
    band = cropped_mask[band_start:]
    band_cols = np.flatnonzero(band.any(axis=0))
    column = int(band_cols[0]) if faces_left else int(band_cols[-1])
    ys = np.flatnonzero(band[:, column]) + band_start
    rightmost_x = cropped_mask.shape[1] - column if faces_left else column
    rightmost = ((int(ys[0]), int(ys[-1])), int(rightmost_x))

    return CropInfo(
        window_location=(top, bottom, left, right),
        rightmost_points=rightmost,
        bottommost_points=bottommost,
        distance_from_starting_side=int(distance_from_starting_side),
        used_fallback=used_fallback,
    )


def optimal_center(
    flipped_crop: np.ndarray,
    projection: Projection,
    crop: CropInfo,
    window_shape: tuple[int, int] = WINDOW_SHAPE,
) -> tuple[int, int]:
    """Stage 2: the window centre (row, col) in the cropped image flipped to face right.

    CC: every row that keeps the window inside the image is a candidate (only ``H // 2`` when the image is
    not taller than the window); the one whose window holds the most pixels > 0 wins, ties going to the row
    closest to ``H // 2``, then the smaller row. MLO: a single candidate below the lowest breast row.
    """
    height, width = flipped_crop.shape
    half_h, half_w = window_shape[0] // 2, window_shape[1] // 2
    center_x = crop.rightmost_points[1] - half_w - 1
    if projection == Projection.MLO:
        last_cols = flipped_crop[:, max(width - window_shape[1], 0) :]
        nonzero_rows = np.flatnonzero((last_cols > 0).any(axis=1))
        last_row = int(nonzero_rows[-1]) if nonzero_rows.size else height - 1
        bottom = min(crop.bottommost_points[0], last_row)
        return (bottom - half_h - 1, center_x)

    if height <= window_shape[0]:
        return (height // 2, center_x)
    col_start = max(center_x - half_w, 0)
    col_end = min(col_start + window_shape[1], width)
    row_counts = np.count_nonzero(flipped_crop[:, col_start:col_end] > 0, axis=1)
    cumulative = np.concatenate([[0], np.cumsum(row_counts, dtype=np.int64)])
    candidates = np.arange(half_h, height - half_h + 1)
    counts = cumulative[candidates + half_h] - cumulative[candidates - half_h]
    best = candidates[counts == counts.max()]
    com_y, com_x = height // 2, width // 2
    distance = (best - com_y) ** 2 + (center_x - com_x) ** 2
    return (int(best[distance == distance.min()].min()), center_x)


def window_origin(
    crop_shape: tuple[int, int],
    projection: Projection,
    best_center: tuple[int, int],
    window_shape: tuple[int, int] = WINDOW_SHAPE,
) -> tuple[int, int]:
    """Top-left (row, col) of the model window in the flipped crop; a negative row is top padding."""
    origin = []
    for axis in (0, 1):
        size, length, centre = crop_shape[axis], window_shape[axis], best_center[axis]
        if size < length:
            # shorter than the window: padded; CC rows are centred, MLO rows and all columns start at 0
            origin.append(-((length - size) // 2) if (axis == 0 and projection == Projection.CC) else 0)
        else:
            origin.append(min(max(centre - length // 2, 0), size - length))
    return (origin[0], origin[1])


UNSEEN_TISSUE_SHARE = 0.005  # breast tissue outside the model's window worth a note (0.5 %)


def unseen_tissue_note(flipped_crop: np.ndarray, origin: tuple[int, int], crop_top: int,
                       window_shape: tuple[int, int] = WINDOW_SHAPE) -> str:
    """A note when the window leaves breast tissue out (a breast taller or deeper than 2944 x 1920 pixels):
    the model never looks there, and a part without a map or region would read as "nothing found"; "" when the
    window holds (nearly) all of it. Rows are the original image's."""
    tissue = flipped_crop > 0
    total = int(np.count_nonzero(tissue))
    if total == 0:
        return ""
    r0, c0 = max(origin[0], 0), max(origin[1], 0)
    r1, c1 = origin[0] + window_shape[0], origin[1] + window_shape[1]
    inside = int(np.count_nonzero(tissue[r0:r1, c0:c1]))
    share = 1.0 - inside / total
    if share <= UNSEEN_TISSUE_SHARE:
        return ""
    parts = []
    noted = UNSEEN_TISSUE_SHARE * total / 5  # a side is named when it holds a real share, not a stray column
    rows = np.flatnonzero(tissue.any(axis=1))
    above, below = rows[rows < r0], rows[rows >= r1]
    if above.size and np.count_nonzero(tissue[:r0]) > noted:
        parts.append(f"rows {crop_top + above.min()}–{crop_top + above.max()} above it")
    if below.size and np.count_nonzero(tissue[r1:]) > noted:
        parts.append(f"rows {crop_top + below.min()}–{crop_top + below.max()} below it")
    # the crop faces right here: the chest wall at column 0, the nipple at the right
    if np.count_nonzero(tissue[:, :c0]) > noted:
        parts.append("the deepest tissue, at the chest wall")
    if np.count_nonzero(tissue[:, c1:]) > noted:
        parts.append("the tissue nearest the nipple")
    where = f" ({', '.join(parts)})" if parts else ""
    return (f"{100 * share:.0f} % of the breast lies outside the model's {window_shape[0]} × {window_shape[1]} "
            f"window{where} and was not analysed: no map or region there means not looked at, not nothing found")


def extract_window(
    flipped_crop: np.ndarray, origin: tuple[int, int], window_shape: tuple[int, int] = WINDOW_SHAPE
) -> np.ndarray:
    """The window of ``window_shape`` at ``origin`` as float32, zeros where it leaves the image."""
    canvas = np.zeros(window_shape, dtype=np.float32)
    r0, c0 = origin
    src_r = slice(max(r0, 0), min(r0 + window_shape[0], flipped_crop.shape[0]))
    src_c = slice(max(c0, 0), min(c0 + window_shape[1], flipped_crop.shape[1]))
    dst_r = slice(src_r.start - r0, src_r.stop - r0)
    dst_c = slice(src_c.start - c0, src_c.stop - c0)
    canvas[dst_r, dst_c] = flipped_crop[src_r, src_c]
    return canvas


def standardise(window: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Subtract the mean and divide by max(std, 1e-5), in float32 as the reference does.

    Returns the new array with the mean and divisor used.
    """
    window = np.asarray(window, dtype=np.float32)
    mean = window.mean()
    centred = window - mean
    std = max(centred.std(), np.float32(1e-5))
    return centred / std, float(mean), float(std)


def prepare_view(image: np.ndarray, view: View | str, horizontal_flip: bool = False) -> PreparedView:
    """Prepare one stored view for GMIC.

    Args:
        image: (H, W) view as stored, any real dtype; background exactly 0, tissue > 0.
        view: which view (``View`` or a string such as ``"L-CC"``).
        horizontal_flip: the reference's per-exam flag: True when the images are stored mirrored
            (L views facing left, R views facing right).

    Returns:
        The standardised (2944, 1920) float32 input with its Stage-1/2 records and the coordinate mapping.
    """
    view = View.parse(view)
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 2:
        raise PreprocessError(f"expected a 2-D greyscale image, got an array of shape {image.shape}")
    flip = needs_flip(view, horizontal_flip)
    crop = crop_breast(image, faces_left=flip)
    top, bottom, left, right = crop.window_location
    cropped = image[top:bottom, left:right]
    flipped = np.ascontiguousarray(cropped[:, ::-1]) if flip else cropped
    center = optimal_center(flipped, view.projection, crop)
    origin = window_origin(cropped.shape, view.projection, center)
    model_input, mean, std = standardise(extract_window(flipped, origin))

    warnings = []
    if crop.used_fallback:
        warnings.append("no tissue survived the breast-crop erosion; the whole image was used")
    unseen = unseen_tissue_note(flipped, origin, top)
    if unseen:
        warnings.append(unseen)
    if crop.distance_from_starting_side > 0:
        warnings.append(
            f"the breast does not touch the chest-wall edge ({crop.distance_from_starting_side} empty "
            "columns); check the view's laterality and orientation"
        )
    mapping = Mapping(
        original_shape=(int(image.shape[0]), int(image.shape[1])),
        crop_origin=(top, left),
        crop_shape=(int(cropped.shape[0]), int(cropped.shape[1])),
        flipped=flip,
        window_origin=origin,
    )
    return PreparedView(
        view=view,
        input=model_input,
        window_location=crop.window_location,
        best_center=center,
        mapping=mapping,
        crop=crop,
        mean=mean,
        std=std,
        warnings=tuple(warnings),
    )
