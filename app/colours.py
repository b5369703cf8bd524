"""The one colour table of the app (no Qt): a colour per class name, the same on screen, in figures and in
reports. Benign is green and malignant red (the GMIC figures); other classes take the palette in order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NAMED = {
    "benign": (40, 220, 60),
    "malignant": (235, 40, 40),
    "benign_without_callback": (60, 170, 235),
    "normal": (160, 160, 160),
    "no_tumour": (160, 160, 160),
}
PALETTE = ((240, 200, 30), (60, 170, 235), (200, 90, 230), (250, 140, 40), (40, 210, 200), (230, 90, 150),
           (150, 200, 60), (120, 120, 250))
REGION = (255, 210, 0)  # region boxes (yellow), on screen and in figures
MARK = (0, 230, 255)  # the reader's own marks


def class_colour(name: str, classes: Sequence[str] = ()) -> tuple[int, int, int]:
    """RGB of a class: its own colour when it has one, else the palette colour of its place among ``classes``."""
    key = name.lower().replace(" ", "_")
    if key in NAMED:
        return NAMED[key]
    others = [c for c in classes if c.lower().replace(" ", "_") not in NAMED] or [name]
    index = others.index(name) if name in others else len(others)
    return PALETTE[index % len(PALETTE)]


def bgr(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return colour[2], colour[1], colour[0]


def alpha_ramp(colour: tuple[int, int, int]) -> np.ndarray:
    """(256, 4) uint8 lookup table: the class colour with opacity equal to the value (exactly 0 at 0)."""
    lut = np.zeros((256, 4), np.uint8)
    lut[:, :3] = colour
    lut[:, 3] = np.arange(256)
    return lut


COLORMAPS = ("", "viridis")


def colormap_rgb(name: str) -> np.ndarray:
    """(256, 3) uint8 RGB of a named colour map (OpenCV's tables)."""
    import cv2  # noqa: PLC0415

    if name != "viridis":
        raise ValueError(f"unknown colour map {name!r}; known: viridis")
    bgr_table = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0]
    return np.ascontiguousarray(bgr_table[:, ::-1])


def layer_lut(colormap: str, colour: tuple[int, int, int]) -> np.ndarray:
    """(256, 4) RGBA lookup table of a heat layer: its colour map (opacity growing with the value, exactly 0
    at 0), or the class colour's ramp when it has none."""
    if not colormap:
        return alpha_ramp(colour)
    lut = np.zeros((256, 4), np.uint8)
    lut[:, :3] = colormap_rgb(colormap)
    lut[:, 3] = np.arange(256)
    return lut
