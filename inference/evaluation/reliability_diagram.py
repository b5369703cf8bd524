"""The reliability diagram of a temperature fit (OpenCV drawing, no plotting library): per confidence bin the
accuracy as a bar against the diagonal of perfect calibration, before and after scaling, with ECE and NLL."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from inference.files import write_bytes_atomic
from inference.evaluation.temperature import CalibrationFit, ReliabilityBins

PANEL = 420  # plot square, pixels
MARGIN = 60
BAR = (200, 120, 40)  # BGR: blue bars
GAP = (60, 60, 230)  # red: the gap to the diagonal
INK = (30, 30, 30)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _panel(bins: ReliabilityBins, title: str, lines: list[str], x_label: str = "confidence",
           y_label: str = "accuracy") -> np.ndarray:
    # what the colours and numbers are (a bin of one case was drawn as tall as one of twenty, unlabelled)
    lines = [*lines, f"bar: {y_label} in the bin", f"red frame: its gap to the bin's mean {x_label}",
             "number above a bar: cases in the bin"]
    height, width = PANEL + 2 * MARGIN + 20 * len(lines), PANEL + 2 * MARGIN
    image = np.full((height, width, 3), 255, np.uint8)
    x0, y0 = MARGIN, MARGIN + PANEL  # plot origin (confidence 0, accuracy 0), bottom left

    def point(x: float, y: float) -> tuple[int, int]:
        return int(round(x0 + x * PANEL)), int(round(y0 - y * PANEL))

    for tick in np.linspace(0, 1, 6):
        cv2.line(image, point(tick, 0), point(tick, 1), (230, 230, 230), 1)
        cv2.line(image, point(0, tick), point(1, tick), (230, 230, 230), 1)
        cv2.putText(image, f"{tick:.1f}", (point(tick, 0)[0] - 12, y0 + 18), FONT, 0.4, INK, 1, cv2.LINE_AA)
        cv2.putText(image, f"{tick:.1f}", (x0 - 32, point(0, tick)[1] + 4), FONT, 0.4, INK, 1, cv2.LINE_AA)
    for lo, hi, accuracy, confidence, count in zip(bins.edges[:-1], bins.edges[1:], bins.accuracy,
                                                  bins.confidence, bins.count, strict=True):
        if count == 0:
            continue
        cv2.rectangle(image, point(lo, 0), point(hi, accuracy), BAR, -1)
        cv2.rectangle(image, point(lo, 0), point(hi, accuracy), (120, 70, 20), 1)
        # the gap framed in red, not tinted: a red tint over a blue bar drew purple, and the legend said red
        top, bottom = max(accuracy, confidence), min(accuracy, confidence)
        cv2.rectangle(image, point(lo, bottom), point(hi, top), GAP, 2)
        label = str(int(count))
        (text_w, _), _ = cv2.getTextSize(label, FONT, 0.35, 1)
        x_mid, y_top = point((lo + hi) / 2, max(accuracy, confidence))
        cv2.putText(image, label, (x_mid - text_w // 2, max(y_top - 4, MARGIN - 2)), FONT, 0.35, INK, 1, cv2.LINE_AA)
    cv2.line(image, point(0, 0), point(1, 1), (90, 90, 90), 1, cv2.LINE_AA)
    cv2.rectangle(image, point(0, 0), point(1, 1), INK, 1)
    cv2.putText(image, title, (x0, MARGIN - 22), FONT, 0.6, INK, 1, cv2.LINE_AA)
    cv2.putText(image, x_label, (x0 + PANEL // 2 - 40, y0 + 40), FONT, 0.45, INK, 1, cv2.LINE_AA)
    cv2.putText(image, y_label, (4, MARGIN - 6), FONT, 0.45, INK, 1, cv2.LINE_AA)
    for number, line in enumerate(lines):
        cv2.putText(image, line, (x0, y0 + 62 + 20 * number), FONT, 0.5, INK, 1, cv2.LINE_AA)
    return image


def reliability_panel(bins: ReliabilityBins, title: str, lines: list[str], x_label: str = "confidence",
                      y_label: str = "accuracy") -> np.ndarray:
    """(rows, cols, 3) BGR uint8: one panel of bins against the diagonal (site validation draws P(malignant)
    against the observed cancer rate with it)."""
    return _panel(bins, title, lines, x_label, y_label)


def reliability_diagram(fit: CalibrationFit, data: str = "") -> np.ndarray:
    """(rows, cols, 3) BGR uint8: the before and after panels side by side."""
    before = _panel(fit.before, "before (T = 1)", [f"ECE {fit.ece_before:.4f}   NLL {fit.nll_before:.4f}",
                                                   f"{fit.samples} samples, {fit.bins} bins"])
    after = _panel(fit.after, f"after (T = {fit.temperature:.3f})",
                   [f"ECE {fit.ece_after:.4f}   NLL {fit.nll_after:.4f}", f"accuracy {fit.accuracy:.3f} (unchanged)"])
    image = np.concatenate([before, after], axis=1)
    if data:
        strip = np.full((28, image.shape[1], 3), 255, np.uint8)
        cv2.putText(strip, f"data: {data}"[:110], (MARGIN, 20), FONT, 0.45, INK, 1, cv2.LINE_AA)
        image = np.concatenate([image, strip], axis=0)
    return image


def write_reliability_diagram(fit: CalibrationFit, path: str | Path, data: str = "") -> Path:
    ok, encoded = cv2.imencode(".png", reliability_diagram(fit, data))
    if not ok:
        raise OSError(f"{path}: the diagram could not be encoded as PNG")
    return write_bytes_atomic(path, encoded.tobytes())
