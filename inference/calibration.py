"""What a model's probability means: its calibration and operating points, as declared in its metadata.

A model's ``model.pt.json`` may carry::

    "calibration": {"method": "none" | "temperature", "temperature": 1.7, "data": "what it was fitted or
                    evaluated on", "operating_points": [{"name": "90 % specificity", "threshold": 0.31,
                    "specificity": 0.9, "sensitivity": 0.72}],
                    "ece_before": 0.12, "ece_after": 0.03, "nll_before": …, "nll_after": …, "level": "window",
                    "reliability": {"bins": 15, "before": {"confidence": […], "accuracy": […], "count": […]},
                                    "after": {…}}}

(``python main.py calibrate`` writes the temperature entries; the workstation draws the reliability bins.)

Without it a probability is shown as "uncalibrated": a number between 0 and 1 whose relation to the
frequency of cancer is unknown, and no category is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_calibrated(calibration: Mapping[str, Any] | None) -> bool:
    return bool(calibration) and (calibration.get("method", "none") != "none" or bool(calibration.get("operating_points")))


def score_category(probability: float | None, calibration: Mapping[str, Any] | None) -> str:
    """A short meaning for a P(malignant): the operating point it reaches, or "uncalibrated"."""
    if probability is None:
        return ""
    if not is_calibrated(calibration):
        return "uncalibrated"
    points = sorted(calibration.get("operating_points", []), key=lambda p: p["threshold"])
    if not points:
        return f"calibrated ({calibration.get('method')})"
    reached = [p for p in points if probability >= p["threshold"]]
    if not reached:
        lowest = points[0]
        return f"below the {lowest['name']} threshold ({lowest['threshold']:.2f})"
    top = reached[-1]
    return f"above the {top['name']} threshold ({top['threshold']:.2f})"


def calibration_note(calibration: Mapping[str, Any] | None) -> str:
    """One line for the model's details: how its probabilities were calibrated, and on what data."""
    if not is_calibrated(calibration):
        return "uncalibrated: no calibration or operating point in the model's metadata"
    parts = []
    method = calibration.get("method", "none")
    if method == "temperature":
        text = f"temperature scaling (T = {calibration.get('temperature', 1.0):.3g}"
        if "ece_before" in calibration and "ece_after" in calibration:
            text += f"; ECE {calibration['ece_before']:.3f} → {calibration['ece_after']:.3f}"
        if "nll_before" in calibration and "nll_after" in calibration:
            text += f", NLL {calibration['nll_before']:.3f} → {calibration['nll_after']:.3f}"
        if calibration.get("level") == "window":
            text += f" over {calibration.get('windows', '?')} labelled windows"
        parts.append(text + ")")
    for point in calibration.get("operating_points", []):
        extra = ", ".join(f"{key} {point[key]:.2f}" for key in ("sensitivity", "specificity") if key in point)
        parts.append(f"{point['name']}: threshold {point['threshold']:.2f}" + (f" ({extra})" if extra else ""))
    data = calibration.get("data")
    return "; ".join(parts) + (f"; on {data}" if data else "")
