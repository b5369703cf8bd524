"""Line charts of a study's curves as PNG files (ROC, FROC, wAFROC), drawn with OpenCV as the report figures are:
no plotting library, no display."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from app.colours import PALETTE, bgr
from app.study.froc import Curve

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK = (0, 0, 0)
# each curve's own marker, at its own places along the x axis: two curves that coincide (aided reads that changed
# nothing, a hybrid equal to the readers) still both show, as on the results screen
MARKERS = (cv2.MARKER_DIAMOND, cv2.MARKER_SQUARE, cv2.MARKER_TRIANGLE_UP, cv2.MARKER_CROSS,
           cv2.MARKER_TILTED_CROSS, cv2.MARKER_STAR, cv2.MARKER_TRIANGLE_DOWN)
MARK_AT, MARK_STEP = np.arange(0.02, 0.9, 0.1), 0.012  # fractions of the x axis


def titled(what: str, study: str, detail: str) -> str:
    """``"FROC (pilot, readers pooled)"``; a study name OpenCV cannot draw (outside printable ASCII: it drew each
    such letter as "?") is left out of the picture, whose file sits in the study's results folder anyway."""
    named = study if study and study.isascii() and study.isprintable() else ""
    return f"{what} ({named + ', ' if named else ''}{detail})"


def curve_png(curves: Mapping[str, Curve], title: str, x_label: str, y_label: str, x_max: float | None = None,
              size: int = 560, colours: Mapping[str, tuple[int, int, int]] | None = None,
              diagonal: bool = False) -> bytes:
    """A line chart of the curves on white, axes from 0 (x to ``x_max`` or the largest x), y 0..1; ``colours``
    (RGB) by curve name, else the palette's in turn; ``diagonal``: the chance line of an ROC plot. The legend sits
    at the lower right on white, as wide as its longest name."""
    margin_left, margin_bottom, margin_top, margin_right = 70, 60, 40, 20
    width, height = size + margin_left + margin_right, size + margin_top + margin_bottom
    canvas = np.full((height, width, 3), 255, np.uint8)
    top = max([float(c.x.max()) for c in curves.values() if c.x.size] + [1.0]) if x_max is None else x_max
    top = top if top > 0 else 1.0

    def point(x: float, y: float) -> tuple[int, int]:
        return (int(round(margin_left + x / top * size)), int(round(margin_top + (1 - y) * size)))

    for tick in np.linspace(0, 1, 6):
        cv2.line(canvas, point(0, tick), point(top, tick), (225, 225, 225), 1)
        cv2.line(canvas, point(tick * top, 0), point(tick * top, 1), (225, 225, 225), 1)
        cv2.putText(canvas, f"{tick:.1f}", (8, point(0, tick)[1] + 5), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
        x_text = f"{tick * top:.2g}"
        cv2.putText(canvas, x_text, (point(tick * top, 0)[0] - 10, margin_top + size + 20), FONT, 0.45, BLACK, 1,
                    cv2.LINE_AA)
    if diagonal:
        for start in np.arange(0.0, 1.0, 0.02):  # dashed
            cv2.line(canvas, point(start * top, start), point((start + 0.01) * top, start + 0.01), (160, 160, 160), 1,
                     cv2.LINE_AA)
    cv2.rectangle(canvas, point(0, 1), point(top, 0), BLACK, 1)
    cv2.putText(canvas, title, (margin_left, 26), FONT, 0.65, BLACK, 1, cv2.LINE_AA)
    cv2.putText(canvas, x_label, (margin_left + size // 2 - 60, height - 12), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.putText(canvas, y_label, (margin_left + 8, margin_top + 18), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    drawn = {name: bgr((colours or {}).get(name, PALETTE[n % len(PALETTE)])) for n, name in enumerate(curves)}
    for n, (name, curve) in enumerate(curves.items()):
        points = np.array([point(x, y) for x, y in zip(curve.x, curve.y)], np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], False, drawn[name], 2, cv2.LINE_AA)
        if curve.x.size > 1:
            for at in (MARK_AT + MARK_STEP * (n % len(MARKERS))) * top:
                if at <= float(curve.x.max()):
                    y = float(np.interp(at, curve.x, curve.y))  # x rises along a curve: the first y at x
                    cv2.drawMarker(canvas, point(at, y), drawn[name], MARKERS[n % len(MARKERS)], 11, 2, cv2.LINE_AA)
    if curves:
        text_width = max(cv2.getTextSize(name, FONT, 0.5, 1)[0][0] for name in curves)
        left = max(margin_left + 4, margin_left + size - 46 - text_width)
        bottom = margin_top + size - 12
        cv2.rectangle(canvas, (left - 6, bottom - 22 * len(curves) - 2), (margin_left + size - 4, bottom + 6),
                      (255, 255, 255), -1)
        for n, name in enumerate(curves):
            y = bottom - 22 * (len(curves) - 1 - n) - 6
            cv2.line(canvas, (left, y), (left + 24, y), drawn[name], 3)
            cv2.drawMarker(canvas, (left + 12, y), drawn[name], MARKERS[n % len(MARKERS)], 11, 2, cv2.LINE_AA)
            cv2.putText(canvas, name, (left + 32, y + 5), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".png", canvas)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
