"""Report figures (numpy + OpenCV, no Qt): views with saliency overlays and numbered patch boxes, hung as
on the workstation (right views on the left, chest walls meeting in the middle)."""

from __future__ import annotations

import cv2
import numpy as np

from inference.exam import Exam, ViewImage
from inference.pipeline import ExamResult, ViewResult
from inference.views import Laterality, View

CLASS_BGR = {0: (60, 220, 40), 1: (40, 40, 235)}  # benign green, malignant red
PATCH_BGR = (0, 210, 255)
HANGING = ((View.R_CC, View.L_CC), (View.R_MLO, View.L_MLO))


def _display_uint8(image: ViewImage) -> np.ndarray:
    return np.round(np.clip(image.display_image(), 0, 1) * 255).astype(np.uint8)


def view_figure(image: ViewImage, result: ViewResult | None, *, scale: float = 1.0, opacity: float = 0.45,
                overlays: bool = True) -> np.ndarray:
    """One view as BGR uint8 at ``scale`` of the stored size, overlays drawn in the stored frame, then
    mirrored back if the file was stored mirrored (so it hangs the usual way)."""
    grey = _display_uint8(image)
    height, width = grey.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if scale != 1.0 else grey
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR).astype(np.float32)
    if result is not None and overlays:
        for class_index, colour in CLASS_BGR.items():
            heat = result.saliency_in_original(class_index)
            heat = np.nan_to_num(heat, nan=0.0)
            if scale != 1.0:
                heat = cv2.resize(heat, size, interpolation=cv2.INTER_LINEAR)
            alpha = (np.clip(heat, 0, 1) * opacity)[..., None]
            canvas = canvas * (1 - alpha) + np.array(colour, np.float32) * alpha
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    if result is not None and overlays:
        thickness = max(1, round(3 * scale))
        for patch in result.patches:
            top, left, bottom, right = (v * scale for v in patch.box_original)
            cv2.rectangle(canvas, (round(left), round(top)), (round(right), round(bottom)), PATCH_BGR, thickness)
    if image.horizontal_flip:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
    if result is not None and overlays:  # labels after mirroring, so that the text reads the right way
        font = max(0.5, 1.4 * scale)
        for patch in result.patches:
            top, left, bottom, right = (v * scale for v in patch.box_original)
            if image.horizontal_flip:
                left = canvas.shape[1] - right
            cv2.putText(canvas, f"{patch.rank}", (max(0, round(left) + 3), max(12, round(top) + round(22 * font))),
                        cv2.FONT_HERSHEY_SIMPLEX, font, PATCH_BGR, max(1, round(2 * scale)), cv2.LINE_AA)
    return canvas


def four_view_figure(exam: Exam, result: ExamResult | None, *, tile_height: int = 700, overlays: bool = True,
                     opacity: float = 0.45) -> np.ndarray:
    """The screening hanging as one BGR image: R-CC | L-CC above R-MLO | L-MLO, at one scale."""
    heights = [img.pixels.shape[0] for img in exam.views.values()]
    scale = tile_height / max(heights) if heights else 1.0
    tiles = {}
    for view, image in exam.views.items():
        view_result = result.views.get(view) if result is not None else None
        tiles[view] = view_figure(image, view_result, scale=scale, overlays=overlays, opacity=opacity)
    tile_width = max((t.shape[1] for t in tiles.values()), default=tile_height // 2)
    rows = []
    for row_views in HANGING:
        cells = []
        for view in row_views:
            cell = np.zeros((tile_height, tile_width, 3), np.uint8)
            tile = tiles.get(view)
            if tile is not None:
                h, w = tile.shape[:2]
                x0 = tile_width - w if view.laterality == Laterality.RIGHT else 0  # chest walls meet mid-figure
                cell[:h, x0 : x0 + w] = tile
            else:
                cv2.putText(cell, f"no {view.value}", (20, tile_height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0,
                            (120, 120, 120), 2, cv2.LINE_AA)
            label = f"{view.laterality.value} {view.projection.value}"
            x = 12 if view.laterality == Laterality.RIGHT else tile_width - 12 - 18 * len(label)
            cv2.putText(cell, label, (max(0, x), 34), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (240, 240, 240), 2, cv2.LINE_AA)
            cells.append(cell)
        rows.append(np.hstack([cells[0], np.full((tile_height, 6, 3), 40, np.uint8), cells[1]]))
    return np.vstack([rows[0], np.full((6, rows[0].shape[1], 3), 40, np.uint8), rows[1]])


def patch_thumbnails(image: ViewImage, result: ViewResult, size: int = 160) -> list[tuple[int, float, np.ndarray]]:
    """(rank, attention, grey uint8 thumbnail) per patch, cut from the displayed image in the stored frame
    (so they also work for results restored from JSON), turned the way the view hangs."""
    grey = _display_uint8(image)
    out = []
    for patch in result.patches:
        top, left, bottom, right = (int(round(v)) for v in patch.box_original)
        crop = np.zeros((bottom - top, right - left), np.uint8)
        t0, l0 = max(top, 0), max(left, 0)
        b0, r0 = min(bottom, grey.shape[0]), min(right, grey.shape[1])
        if b0 > t0 and r0 > l0:
            crop[t0 - top : b0 - top, l0 - left : r0 - left] = grey[t0:b0, l0:r0]
        if image.horizontal_flip:
            crop = crop[:, ::-1]
        out.append((patch.rank, patch.attention, cv2.resize(np.ascontiguousarray(crop), (size, size),
                                                            interpolation=cv2.INTER_AREA)))
    return out


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
