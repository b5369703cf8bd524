"""Report figures (numpy + OpenCV, no Qt): views with the drawn model's maps and numbered region boxes, hung
as on the workstation (right views on the left, chest walls meeting in the middle)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.cad_marks import Rect, analysed_window, breast_of, place_labels, unanalysed_centre
from app.colours import MARK, REGION, bgr, class_colour, colormap_rgb
from inference.intake.views import Laterality, View

HANGING = ((View.R_CC, View.L_CC), (View.R_MLO, View.L_MLO))


FONT = cv2.FONT_HERSHEY_SIMPLEX
CAPTION_SCALE = 1.0  # the view's name in the four-view figure ("R CC")
GUTTER = 6  # pixels between the four-view figure's tiles
NOT_ANALYSED = "not analysed"  # written on the breast outside the model's window (app.cad_marks.analysed_window)
NOT_ANALYSED_BGR = (60, 40, 40)  # the grey-blue over it, as on screen
NOT_ANALYSED_ALPHA = 0.35  # a third: the tissue under it is to be read without the model
CAPTION_BACKGROUND = (24, 24, 24)  # opaque under the view's name: no box or map runs through its letters


@dataclass(frozen=True)
class RegionNumber:
    """A region's box as drawn (its line included) and its number's rectangle, in a figure's pixels."""

    rank: int
    box: Rect
    place: Rect


def _thickness(scale: float) -> int:
    return max(1, round(2.2 * scale))


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour) -> None:
    """Text with a dark outline, readable on bright tissue and at print size."""
    thickness = _thickness(scale)
    cv2.putText(canvas, text, origin, FONT, scale, (0, 0, 0), thickness + 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, FONT, scale, colour, thickness, cv2.LINE_AA)


def _number_height(label_height: float | None, figure_height: int) -> float:
    """A region number's height in a figure: as asked, else about 2.5 % of the figure's."""
    return label_height or max(14.0, 0.025 * figure_height)


def _box_thickness(scale: float) -> int:
    return max(2, round(4 * scale))


def region_numbers(content, view: View, *, scale: float = 1.0, label_height: float | None = None,
                   reserved: Sequence[Rect] = ()) -> list[RegionNumber]:
    """Where ``view_figure`` draws the shown regions' boxes and numbers, in its pixels (after mirroring, so
    that the numbers read the right way): each number beside its box, outside it at a corner or along a side,
    off every box, apart from the others, inside the figure and off ``reserved`` (``place_labels``, as on
    screen). A number inside its box hid the finding, and one stacked far from its box read as another's."""
    if content.entry_view(view) is None:
        return []
    image = content.exam.views[view]
    height, width = (round(v * scale) for v in image.pixels.shape)
    width, height = max(1, width), max(1, height)
    text_height = _number_height(label_height, height)
    font = text_height / 22.0
    half = _box_thickness(scale) / 2.0
    ranks, boxes, sizes = [], [], []
    for region in content.shown_regions(view):  # the screen's rule: operating point, on the breast
        top, left, bottom, right = (v * scale for v in region.box_original)
        if image.horizontal_flip:
            left, right = width - right, width - left
        ranks.append(region.rank)
        boxes.append(Rect(left - half, top - half, right - left + 2 * half, bottom - top + 2 * half))
        text_width = cv2.getTextSize(str(region.rank), FONT, font, _thickness(font))[0][0]
        sizes.append((text_width + 8.0, text_height + 6.0))
    # the nipple side first: away from the midline, where the two views of a row meet
    places = place_labels(boxes, (0.0, 0.0), view.laterality == Laterality.RIGHT, bounds=(float(width), float(height)),
                          reserved=reserved, sizes=sizes)
    return [RegionNumber(rank, box, place) for rank, box, place in zip(ranks, boxes, places, strict=True)]


def view_figure(content, view: View, *, scale: float = 1.0, opacity: float = 0.45, overlays: bool = True,
                label_height: float | None = None, reserved: Sequence[Rect] = ()) -> np.ndarray:
    """One view as BGR uint8 at ``scale`` of the stored size: the drawn entry's primary maps and its regions,
    then mirrored back if the file was stored mirrored (so it hangs the usual way). Region numbers are
    ``label_height`` pixels tall (default: about 2.5 % of the figure's height), placed by ``region_numbers``
    (beside their boxes, apart from each other, inside the figure, off ``reserved``, e.g. its caption)."""
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
    tissue = breast_of(image) if entry_result is not None else None
    window = analysed_window(entry_result.frame, tissue) if entry_result is not None else None
    if window is not None:  # as on screen: the breast outside the model's window greyed over, its edge drawn
        top, left, bottom, right = (round(value * scale) for value in window)
        outside = np.ones(canvas.shape[:2], bool)
        outside[top:bottom, left:right] = False
        tint = np.array(NOT_ANALYSED_BGR, np.float32) * NOT_ANALYSED_ALPHA
        canvas[outside] = canvas[outside] * (1 - NOT_ANALYSED_ALPHA) + tint
        cv2.rectangle(canvas, (left, top), (right - 1, bottom - 1), (230, 230, 230), max(1, round(2 * scale)))
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    if image.horizontal_flip:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
    if window is not None:
        row, col = unanalysed_centre(window, tissue)
        text_height = _number_height(label_height, canvas.shape[0])
        text_width = cv2.getTextSize(NOT_ANALYSED, FONT, text_height / 22.0, _thickness(text_height / 22.0))[0][0]
        x = (canvas.shape[1] - col * scale) if image.horizontal_flip else col * scale
        x = min(max(0, round(x - text_width / 2)), max(0, canvas.shape[1] - text_width))
        _label(canvas, NOT_ANALYSED, (x, round(row * scale + text_height / 2)), text_height / 22.0, (235, 235, 235))
    if entry_result is not None:
        _draw_regions(canvas, content, view, scale, label_height, reserved)
    _draw_marks(canvas, content, view, scale, label_height)
    return canvas


def mark_names(content) -> list[str]:
    """The reader's marks' names in the report, in their order: M1, M2, … (the figure draws each beside its
    cross, the PDF's table of marks lists it)."""
    return [f"M{number}" for number in range(1, len(content.report.marks) + 1)]


def _draw_marks(canvas: np.ndarray, content, view: View, scale: float, label_height: float | None) -> None:
    """The reader's own marks on ``view``: a cross in the marks' colour, as on screen, with its name."""
    image = content.exam.views[view]
    height, width = canvas.shape[:2]
    text_height = 0.8 * _number_height(label_height, height)
    arm = max(6, round(0.6 * text_height))
    thickness = max(2, round(text_height / 9))
    for name, mark in zip(mark_names(content), content.report.marks, strict=True):
        if mark.view != view.value:
            continue
        x, y = mark.col * scale, mark.row * scale
        if image.horizontal_flip:
            x = width - x
        x, y = round(x), round(y)
        for (x0, y0), (x1, y1) in (((x - arm, y), (x + arm, y)), ((x, y - arm), (x, y + arm))):
            cv2.line(canvas, (x0, y0), (x1, y1), (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.line(canvas, (x0, y0), (x1, y1), bgr(MARK), thickness, cv2.LINE_AA)
        text_width = cv2.getTextSize(name, FONT, text_height / 22.0, _thickness(text_height / 22.0))[0][0]
        left = x + arm + 2 if x + arm + 2 + text_width <= width else x - arm - 2 - text_width  # inside the figure
        top = max(int(text_height), y - arm)
        _label(canvas, name, (left, top), text_height / 22.0, bgr(MARK))


def _draw_regions(canvas: np.ndarray, content, view: View, scale: float, label_height: float | None,
                  reserved: Sequence[Rect]) -> None:
    numbers = region_numbers(content, view, scale=scale, label_height=label_height, reserved=reserved)
    thickness = _box_thickness(scale)
    half = thickness / 2.0
    for number in numbers:  # the boxes first: no box line runs through a number
        box = number.box
        cv2.rectangle(canvas, (round(box.x + half), round(box.y + half)),
                      (round(box.x + box.w - half), round(box.y + box.h - half)), bgr(REGION), thickness)
    text_height = _number_height(label_height, canvas.shape[0])
    for number in numbers:
        place = number.place
        _label(canvas, str(number.rank), (int(place.x + 4), int(place.y + text_height + 2)), text_height / 22.0,
               bgr(REGION))


@dataclass(frozen=True)
class _Hanging:
    """The four-view figure's geometry: one scale, the tiles' width, each view's drawn width."""

    scale: float
    tile_height: int
    tile_width: int
    widths: dict

    @property
    def label_height(self) -> float:
        """The region numbers' height: readable at print size."""
        return max(16.0, 0.035 * self.tile_height)

    def offset(self, view: View) -> int:
        """The tile's x in its cell: chest walls meet mid-figure."""
        return self.tile_width - self.widths[view] if view.laterality == Laterality.RIGHT else 0

    def caption(self, view: View) -> tuple[str, Rect, tuple[int, int]]:
        """The view's name, its opaque box and its text's origin, in the cell's pixels (at the nipple side's
        top corner, away from the midline)."""
        text = f"{view.laterality.value} {view.projection.value}"
        (text_width, text_height), baseline = cv2.getTextSize(text, FONT, CAPTION_SCALE, _thickness(CAPTION_SCALE))
        x = 12 if view.laterality == Laterality.RIGHT else self.tile_width - 12 - text_width
        x = max(0, x)
        origin = (x, 12 + text_height)
        return text, Rect(x - 6.0, 4.0, text_width + 12.0, text_height + baseline + 14.0), origin


def _hanging(content, tile_height: int) -> _Hanging:
    exam = content.exam
    heights = [img.pixels.shape[0] for img in exam.views.values()]
    scale = tile_height / max(heights) if heights else 1.0
    widths = {view: round(img.pixels.shape[1] * scale) for view, img in exam.views.items()}
    return _Hanging(scale, tile_height, max(widths.values(), default=tile_height // 2), widths)


def four_view_numbers(content, *, tile_height: int = 700) -> dict[View, tuple[Rect, list[RegionNumber]]]:
    """Per view of the four-view figure: its caption's box and its regions' boxes and numbers, in the
    figure's pixels (what ``four_view_figure`` draws; for checking that nothing covers another)."""
    hanging = _hanging(content, tile_height)
    out = {}
    for row, row_views in enumerate(HANGING):
        for column, view in enumerate(row_views):
            x0, y0 = column * (hanging.tile_width + GUTTER), row * (tile_height + GUTTER)
            _text, caption, _origin = hanging.caption(view)
            numbers = []
            if view in content.exam.views:
                dx = hanging.offset(view)
                shift = Rect(caption.x - dx, caption.y, caption.w, caption.h)
                numbers = [RegionNumber(n.rank, _moved(n.box, x0 + dx, y0), _moved(n.place, x0 + dx, y0))
                           for n in region_numbers(content, view, scale=hanging.scale,
                                                   label_height=hanging.label_height, reserved=[shift])]
            out[view] = (_moved(caption, x0, y0), numbers)
    return out


def _moved(rect: Rect, dx: float, dy: float) -> Rect:
    return Rect(rect.x + dx, rect.y + dy, rect.w, rect.h)


def four_view_figure(content, *, tile_height: int = 700, overlays: bool = True, opacity: float = 0.45) -> np.ndarray:
    """The screening hanging as one BGR image: R-CC | L-CC above R-MLO | L-MLO, at one scale; each view's name
    drawn last, on an opaque box that the region numbers keep off."""
    exam = content.exam
    hanging = _hanging(content, tile_height)
    tile_width = hanging.tile_width

    def caption_in_tile(view: View) -> list[Rect]:  # the caption's box, in the tile's own pixels
        _text, box, _origin = hanging.caption(view)
        return [Rect(box.x - hanging.offset(view), box.y, box.w, box.h)]

    tiles = {view: view_figure(content, view, scale=hanging.scale, overlays=overlays, opacity=opacity,
                               label_height=hanging.label_height, reserved=caption_in_tile(view))
             for view in exam.views}
    rows = []
    for row_views in HANGING:
        cells = []
        for view in row_views:
            cell = np.zeros((tile_height, tile_width, 3), np.uint8)
            tile = tiles.get(view)
            if tile is not None:
                h, w = tile.shape[:2]
                x0 = hanging.offset(view)
                cell[:h, x0: x0 + w] = tile
            else:
                _label(cell, f"no {view.value}", (20, tile_height // 2), 1.0, (150, 150, 150))
            text, box, origin = hanging.caption(view)
            cv2.rectangle(cell, (round(box.x), round(box.y)), (round(box.x + box.w), round(box.y + box.h)),
                          CAPTION_BACKGROUND, -1)
            _label(cell, text, origin, CAPTION_SCALE, (240, 240, 240))
            cells.append(cell)
        rows.append(np.hstack([cells[0], np.full((tile_height, GUTTER, 3), 40, np.uint8), cells[1]]))
    return np.vstack([rows[0], np.full((GUTTER, rows[0].shape[1], 3), 40, np.uint8), rows[1]])


def captioned(image: np.ndarray, lines: list[str], warning: str = "") -> np.ndarray:
    """``image`` (BGR) under a caption band that says what it is (the exam, the view, the model, decision support
    only) and, for the demo model, its warning on red: an exported PNG travels without its PDF (a slide, an
    e-mail), and showed a patient's images and a demo model's maps with nothing saying either."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    from app.figure_text import CaptionFonts  # noqa: PLC0415 - DejaVu Sans, and a system font for CJK

    width = image.shape[1]
    size = max(14, width // 60)
    fonts = CaptionFonts(size)
    line = int(size * 1.45)

    def wrapped(text: str) -> list[str]:  # at words, within the picture's width
        out, current = [], ""
        for word in text.split(" "):
            trial = f"{current} {word}".strip()
            if current and fonts.length(trial) > width - size:
                out.append(current)
                trial = word
            current = trial
        return [*out, current]

    rows = ([(part, (150, 25, 25)) for part in wrapped(warning)] if warning else []) + [
        (part, (40, 40, 40)) for text in lines for part in wrapped(text)]
    band = Image.new("RGB", (width, line * len(rows) + size // 2), (40, 40, 40))
    draw = ImageDraw.Draw(band)
    for index, (text, background) in enumerate(rows):
        draw.rectangle((0, index * line, width, (index + 1) * line), fill=background)
        fonts.draw(draw, (size // 2, index * line + (line - size) // 2), text, (255, 255, 255))
    colour = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.vstack([np.asarray(band)[..., ::-1], colour])


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
