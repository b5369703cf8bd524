"""One display window for the whole exam (no Qt): left and right, CC and MLO drawn alike, for asymmetry.

Computed once per exam from both breasts' tissue, off the GUI thread (the workstation's load task), with
the range a right-drag moves through, so that dragging across the viewport spans the image's values once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.intake.exam import Exam
from inference.intake.image import DisplayWindow

SAMPLES_PER_VIEW = 250_000  # a strided sample: percentiles of a quarter million pixels are stable to a grey level
DRAG_PIXELS_FOR_RANGE = 1000  # a right-drag of this many screen pixels moves the window through the whole range


@dataclass(frozen=True)
class ExamWindow:
    """``window``: the exam's auto window (0.5-99.5 % of every view's tissue together); ``value_range``: the
    spread of the stored values (0.1-99.9 % of all pixels), which scales the drag."""

    window: DisplayWindow
    value_range: float

    @property
    def drag_step(self) -> float:
        """Stored values per screen pixel of a right-drag."""
        return self.value_range / DRAG_PIXELS_FOR_RANGE


def exam_window(exam: Exam) -> ExamWindow | None:
    """The exam's window from the tissue (``model_image > 0``) of all its views; None without an image."""
    tissue, everything = [], []
    for image in exam.views.values():
        pixels = np.asarray(image.pixels)
        mask = np.asarray(image.model_image) > 0 if image.model_image.shape == pixels.shape else None
        values = pixels[mask] if mask is not None and mask.any() else pixels.ravel()
        tissue.append(values[:: max(1, values.size // SAMPLES_PER_VIEW)])
        flat = pixels.ravel()
        everything.append(flat[:: max(1, flat.size // SAMPLES_PER_VIEW)])
    if not tissue:
        return None
    low, high = np.percentile(np.concatenate(tissue), [0.5, 99.5])
    bottom, top = np.percentile(np.concatenate(everything), [0.1, 99.9])
    window = DisplayWindow(center=float(low + high) / 2, width=float(max(high - low, 1.0)), explanation="exam auto")
    return ExamWindow(window, float(max(top - bottom, high - low, 1.0)))
