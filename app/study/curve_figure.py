"""Line charts of a study's curves as PNG files (ROC, FROC, wAFROC), drawn with OpenCV as the report figures are
(no plotting library, no display), their text in :mod:`app.figure_text`'s fonts (OpenCV's draw ASCII only). The
curves keep the results screen's colours, markers and dashes (:data:`MARKER_SHAPES`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from app.colours import PALETTE, bgr
from app.figure_text import CaptionFonts, put_text
from app.study.froc import Curve

BLACK = (0, 0, 0)
GRID = (225, 225, 225)
TEXT, TITLE = 14, 18  # px
# each curve's own marker, at its own places along the x axis: two curves that coincide (aided reads that changed
# nothing, a hybrid equal to the readers) still both show; the results screen draws the same shapes in this order
MARKER_SHAPES = ("circle", "square", "triangle down", "diamond", "star", "plus", "x", "triangle up")
_CV_MARKERS = {"square": cv2.MARKER_SQUARE, "triangle down": cv2.MARKER_TRIANGLE_DOWN, "diamond": cv2.MARKER_DIAMOND,
               "star": cv2.MARKER_STAR, "plus": cv2.MARKER_CROSS, "x": cv2.MARKER_TILTED_CROSS,
               "triangle up": cv2.MARKER_TRIANGLE_UP}
MARK_AT, MARK_STEP = np.arange(0.02, 0.9, 0.1), 0.012  # fractions of the x axis; each curve a step further
LEGEND_MAX = 420  # px of legend text; a longer name wraps
# a reading modality's colour, on the screen and in the files (ROC, FROC, wAFROC)
READING_COLOURS = {"unaided": (70, 130, 220), "aided": (230, 140, 30), "concurrent": (150, 90, 200)}


@dataclass(frozen=True)
class CurveStyle:
    colour: tuple[int, int, int]  # RGB
    marker: int  # index into MARKER_SHAPES
    dashed: bool = False


def titled(what: str, study: str, detail: str) -> str:
    """``"FROC (pilot, readers pooled)"``."""
    return f"{what} ({study + ', ' if study else ''}{detail})"


def marker_places(index: int, x_max: float = 1.0) -> np.ndarray:
    """Where the ``index``-th curve's markers sit along the x axis (the screen's and the file's)."""
    return (MARK_AT + MARK_STEP * (index % len(MARKER_SHAPES))) * x_max


def curve_png(curves: Mapping[str, Curve], title: str, x_label: str, y_label: str, x_max: float | None = None,
              size: int = 560, styles: Mapping[str, CurveStyle] | None = None, diagonal: bool = False) -> bytes:
    """A line chart of the curves on white, axes from 0 (x to ``x_max`` or the largest x), y 0..1, the legend
    beside the plot (long names wrap: inside, a long one ran off the picture and many hid the curves); ``styles``
    by curve name (else a reading modality's colour or the palette's, and the markers in turn, solid);
    ``diagonal``: the chance line of an ROC plot."""
    fonts, title_fonts = CaptionFonts(TEXT), CaptionFonts(TITLE)  # loaded once a figure
    styles = {name: (styles or {}).get(name) or CurveStyle(READING_COLOURS.get(name, PALETTE[n % len(PALETTE)]), n)
              for n, name in enumerate(curves)}
    legend = {name: _wrapped(name, fonts) for name in curves}
    legend_width = max([0, *(fonts.length(line) for lines in legend.values() for line in lines)])
    margin_left, margin_bottom, margin_top = 76, 60, 44
    legend_left = margin_left + size + 24
    width = legend_left + (int(legend_width) + 50 if curves else 0) + 10
    rows = sum(len(lines) for lines in legend.values())
    height = max(size + margin_top + margin_bottom, margin_top + 22 * rows + 20)
    canvas = np.full((height, width, 3), 255, np.uint8)
    top = max([float(c.x.max()) for c in curves.values() if c.x.size] + [1.0]) if x_max is None else x_max
    top = top if top > 0 else 1.0

    def point(x: float, y: float) -> tuple[int, int]:
        return (int(round(margin_left + x / top * size)), int(round(margin_top + (1 - y) * size)))

    for tick in np.linspace(0, 1, 6):
        cv2.line(canvas, point(0, tick), point(top, tick), GRID, 1)
        cv2.line(canvas, point(tick * top, 0), point(tick * top, 1), GRID, 1)
        put_text(canvas, f"{tick:.1f}", (margin_left - 34, point(0, tick)[1] + 5), TEXT, BLACK, fonts)
        x_text = f"{tick * top:.1f}" if top == 1 else f"{tick * top:.2g}"
        put_text(canvas, x_text, (point(tick * top, 0)[0] - 10, margin_top + size + 20), TEXT, BLACK, fonts)
    if diagonal:
        _polyline(canvas, np.array([point(0, 0), point(top, 1)], np.int32), (160, 160, 160), 1, dashed=True)
    cv2.rectangle(canvas, point(0, 1), point(top, 0), BLACK, 1)
    put_text(canvas, title, (margin_left, 28), TITLE, BLACK, title_fonts)
    x_at = margin_left + size // 2 - int(fonts.length(x_label)) // 2
    put_text(canvas, x_label, (x_at, height - 14), TEXT, BLACK, fonts)
    _vertical_text(canvas, y_label, (18, margin_top + size // 2), fonts)
    for n, (name, curve) in enumerate(curves.items()):
        style, colour = styles[name], bgr(styles[name].colour)
        points = np.array([point(x, y) for x, y in zip(curve.x, curve.y)], np.int32)
        _polyline(canvas, points, colour, 2, style.dashed)
        if curve.x.size > 1:
            for at in marker_places(style.marker, top):
                if at <= float(curve.x.max()):
                    _marker(canvas, point(at, float(np.interp(at, curve.x, curve.y))), colour, style.marker)
    y = margin_top + 10
    for name, lines in legend.items():
        style, colour = styles[name], bgr(styles[name].colour)
        _polyline(canvas, np.array([(legend_left, y), (legend_left + 34, y)], np.int32), colour, 3, style.dashed)
        _marker(canvas, (legend_left + 17, y), colour, style.marker)
        for k, line in enumerate(lines):
            put_text(canvas, line, (legend_left + 44, y + 5 + 18 * k), TEXT, BLACK, fonts)
        y += 22 + 18 * (len(lines) - 1)
    ok, data = cv2.imencode(".png", canvas)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def _wrapped(text: str, fonts: CaptionFonts) -> list[str]:
    """``text`` in lines of at most LEGEND_MAX px, broken at spaces where it can be, else anywhere."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if fonts.length(candidate) <= LEGEND_MAX:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word
        while fonts.length(line) > LEGEND_MAX:  # one word longer than a line
            cut = max(1, next(i for i in range(len(line), 0, -1) if fonts.length(line[:i]) <= LEGEND_MAX))
            lines.append(line[:cut])
            line = line[cut:]
    return [*lines, line] if line else lines


def _polyline(canvas: np.ndarray, points: np.ndarray, colour, thickness: int, dashed: bool = False) -> None:
    if not dashed:
        cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, colour, thickness, cv2.LINE_AA)
        return
    on, off, travelled = 9.0, 6.0, 0.0  # px along the line
    for start, end in zip(points[:-1].astype(float), points[1:].astype(float)):
        length = float(np.hypot(*(end - start)))
        at = 0.0
        while at < length:
            phase = travelled % (on + off)
            step = min((on - phase) if phase < on else (on + off - phase), length - at)
            if phase < on:
                a, b = start + (end - start) * at / length, start + (end - start) * (at + step) / length
                cv2.line(canvas, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b), colour, thickness,
                         cv2.LINE_AA)
            at, travelled = at + step, travelled + step


def _marker(canvas: np.ndarray, at: tuple[int, int], colour, index: int) -> None:
    shape = MARKER_SHAPES[index % len(MARKER_SHAPES)]
    if shape == "circle":
        cv2.circle(canvas, at, 5, colour, 2, cv2.LINE_AA)
    else:
        cv2.drawMarker(canvas, at, colour, _CV_MARKERS[shape], 12, 2, cv2.LINE_AA)


def _vertical_text(canvas: np.ndarray, text: str, centre: tuple[int, int], fonts: CaptionFonts) -> None:
    """``text`` read bottom to top, centred at ``centre`` (the y axis' label, beside the axis: drawn inside the
    plot, curves ran through it)."""
    length = int(np.ceil(fonts.length(text))) + 4
    strip = np.full((TEXT * 2, length, 3), 255, np.uint8)
    put_text(strip, text, (2, int(TEXT * 1.4)), TEXT, BLACK, fonts)
    turned = np.ascontiguousarray(np.rot90(strip))  # counter-clockwise: read from the bottom up
    x, y = centre[0] - turned.shape[1] // 2, centre[1] - turned.shape[0] // 2
    y0, y1 = max(0, y), min(canvas.shape[0], y + turned.shape[0])
    canvas[y0:y1, x : x + turned.shape[1]] = np.minimum(canvas[y0:y1, x : x + turned.shape[1]],
                                                       turned[y0 - y : y1 - y])
