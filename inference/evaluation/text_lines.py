"""Text of a figure in lines that fit it (OpenCV's Hershey font): the figures of app/validation and of
inference/evaluation break long labels and titles the same way."""

from __future__ import annotations

import cv2

FONT = cv2.FONT_HERSHEY_SIMPLEX


def wrap(text: str, width: int, scale: float) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels at ``scale`` (broken at spaces; a single word wider
    than that is cut)."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(joined, FONT, scale, 1)[0][0] <= width:
            lines[-1] = joined
            continue
        while cv2.getTextSize(word, FONT, scale, 1)[0][0] > width and len(word) > 1:
            word = word[:-1]
        lines.append(word)
    return lines or [""]
