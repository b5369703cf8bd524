"""Report figures (numpy + OpenCV, no Qt): views with the drawn model's maps and numbered region boxes, hung
as on the workstation (right views on the left, chest walls meeting in the middle)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from app.cad_marks import Rect, place_labels
from app.colours import REGION, bgr, class_colour, colormap_rgb
from inference.intake.views import Laterality, View

HANGING = ((View.R_CC, View.L_CC), (View.R_MLO, View.L_MLO))


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour) -> None:
    """Text with a dark outline, readable on bright tissue and at print size."""
    thickness = max(1, round(2.2 * scale))
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def view_figure(content, view: View, *, scale: float = 1.0, opacity: float = 0.45, overlays: bool = True,
                label_height: float | None = None, reserved: Sequence[Rect] = ()) -> np.ndarray:
    """One view as BGR uint8 at ``scale`` of the stored size: the drawn entry's primary maps and its regions,
    then mirrored back if the file was stored mirrored (so it hangs the usual way). Region numbers are
    ``label_height`` pixels tall (default: about 2.5 % of the figure's height), placed as on screen
    (``place_labels``: apart from each other, inside the figure, off ``reserved``, e.g. its caption)."""
    image = content.exam.views[view]
    grey = content.display(view)
    height, width = grey.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if scale != 1.0 else grey
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR).astype(np.float32)
    entry_result = content.entry_view(view) if overlays else None
    if entry_result is not None:
        for layer in content.drawn_layers(view):
            heat = content.layer_map(view, layer.class_name)
            if scale != 1.0:
                heat = cv2.resize(heat, size, interpolation=cv2.INTER_AREA)
            alpha = (heat.astype(np.float32) / 255.0 * opacity)[..., None]
            if layer.colormap:  # the value's colour from the map (BGR), per pixel
                colour = colormap_rgb(layer.colormap)[:, ::-1].astype(np.float32)[heat]
            else:
                colour = np.array(bgr(class_colour(layer.class_name, content.entry.classes)), np.float32)
            canvas = canvas * (1 - alpha) + colour * alpha
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    boxes = []
    if entry_result is not None:
        thickness = max(2, round(4 * scale))
        for region in content.shown_regions(view):  # the screen's rule: operating point, on the breast
            top, left, bottom, right = (v * scale for v in region.box_original)
            cv2.rectangle(canvas, (round(left), round(top)), (round(right), round(bottom)), bgr(REGION), thickness)
            boxes.append((region.rank, top, left, bottom, right))
    if image.horizontal_flip:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
    # numbers after mirroring, so that they read the right way; inside each box at its top corner on the
    # nipple side (away from the midline where the two views of a row meet)
    text_height = label_height or max(14.0, 0.025 * canvas.shape[0])
    font = text_height / 22.0
    nipple_left = view.laterality == Laterality.RIGHT
    if not boxes:
        return canvas
    widths = [cv2.getTextSize(str(rank), cv2.FONT_HERSHEY_SIMPLEX, font, max(1, round(2.2 * font)))[0][0]
              for rank, *_ in boxes]
    rects = []
    for _rank, top, left, bottom, right in boxes:
        if image.horizontal_flip:
            left, right = canvas.shape[1] - right, canvas.shape[1] - left
        rects.append(Rect(left, top, right - left, bottom - top))
    size = (max(widths) + 8.0, text_height + 6.0)
    places = place_labels(rects, size, nipple_left, bounds=(float(canvas.shape[1]), float(canvas.shape[0])),
                          reserved=reserved)
    for (rank, *_), place in zip(boxes, places, strict=True):
        _label(canvas, str(rank), (int(place.x + 4), int(place.y + text_height + 2)), font, bgr(REGION))
    return canvas


def four_view_figure(content, *, tile_height: int = 700, overlays: bool = True, opacity: float = 0.45) -> np.ndarray:
    """The screening hanging as one BGR image: R-CC | L-CC above R-MLO | L-MLO, at one scale."""
    exam = content.exam
    heights = [img.pixels.shape[0] for img in exam.views.values()]
    scale = tile_height / max(heights) if heights else 1.0
    label_height = max(16.0, 0.035 * tile_height)
    widths = {view: round(img.pixels.shape[1] * scale) for view, img in exam.views.items()}
    tile_width = max(widths.values(), default=tile_height // 2)

    def caption(view: View) -> tuple[str, int]:
        label = f"{view.laterality.value} {view.projection.value}"
        return label, (12 if view.laterality == Laterality.RIGHT else tile_width - 12 - 18 * len(label))

    def caption_in_tile(view: View) -> list[Rect]:  # the caption's place, in the tile's own pixels
        label, x = caption(view)
        x0 = tile_width - widths[view] if view.laterality == Laterality.RIGHT else 0
        return [Rect(x - x0 - 4, 0.0, 18.0 * len(label) + 8, 44.0)]

    tiles = {view: view_figure(content, view, scale=scale, overlays=overlays, opacity=opacity, label_height=label_height,
                               reserved=caption_in_tile(view))
             for view in exam.views}
    rows = []
    for row_views in HANGING:
        cells = []
        for view in row_views:
            cell = np.zeros((tile_height, tile_width, 3), np.uint8)
            tile = tiles.get(view)
            if tile is not None:
                h, w = tile.shape[:2]
                x0 = tile_width - w if view.laterality == Laterality.RIGHT else 0  # chest walls meet mid-figure
                cell[:h, x0: x0 + w] = tile
            else:
                _label(cell, f"no {view.value}", (20, tile_height // 2), 1.0, (150, 150, 150))
            label, x = caption(view)
            _label(cell, label, (max(0, x), 34), 1.0, (240, 240, 240))
            cells.append(cell)
        rows.append(np.hstack([cells[0], np.full((tile_height, 6, 3), 40, np.uint8), cells[1]]))
    return np.vstack([rows[0], np.full((6, rows[0].shape[1], 3), 40, np.uint8), rows[1]])


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
