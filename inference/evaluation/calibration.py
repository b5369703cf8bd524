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

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import CheckpointError
from inference.numbers import finite_number, threshold_text


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
        return f"below the {lowest['name']} threshold ({threshold_text(lowest['threshold'], 2)})"
    top = reached[-1]
    return f"above the {top['name']} threshold ({threshold_text(top['threshold'], 2)})"


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
        parts.append(f"{point['name']}: threshold {threshold_text(point['threshold'], 2)}"
                     + (f" ({extra})" if extra else ""))
    data = calibration.get("data")
    return "; ".join(parts) + (f"; on {data}" if data else "")


# ----------------------------------------------------------------------------------------------------------
# the site's calibration (written by ``python main.py validate`` beside the checkpoint), read at model load

SITE_FORMAT = "mammo-reader site calibration"
SITE_SUFFIX = ".site_calibration.json"
EPSILON = 1e-6  # scores are clipped to [EPSILON, 1 - EPSILON] before a logit


def site_calibration_path(checkpoint: str | Path) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + SITE_SUFFIX)


def read_site_calibration(path: str | Path) -> dict[str, Any] | None:
    """The site calibration stored at ``path`` (None when there is none).

    Raises:
        CheckpointError: the file is there but damaged or not a site calibration (naming it): a model whose
            calibration cannot be read is not shown as if it had none.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"the site calibration could not be read ({error})", path) from error
    if not isinstance(data, dict) or data.get("format") != SITE_FORMAT:
        raise CheckpointError("this is not a Mammo Reader site calibration file", path)
    if data.get("method") not in ("platt", "isotonic") or not isinstance(data.get("parameters"), dict):
        raise CheckpointError(f"the site calibration's method {data.get('method')!r} is neither platt nor isotonic",
                              path)
    problem = recalibration_problem(data)
    if problem:
        raise CheckpointError(f"the site calibration is damaged: {problem}; delete it (the model's own probabilities "
                              "are used then) or run validate again", path)
    return data


def recalibration_problem(calibration: Mapping[str, Any]) -> str | None:
    """What makes a platt or isotonic record unusable (parameters that are not finite numbers, isotonic steps
    that are not a non-decreasing curve in [0, 1]); None when it can be applied."""
    parameters = calibration.get("parameters")
    if not isinstance(parameters, Mapping):
        return "it has no parameters"

    if calibration.get("method") == "platt":
        bad = [name for name in ("a", "b") if not finite_number(parameters.get(name))]
        if bad:
            return f"platt's {' and '.join(bad)} must be finite numbers"
        # a slope of 0 or below would flatten or reverse the model's ranking in every hybrid
        return None if parameters["a"] > 0 else "platt's slope a must be above 0 (it would reverse the model)"
    x, y = parameters.get("x"), parameters.get("y")
    if not (isinstance(x, list) and isinstance(y, list) and len(x) == len(y) >= 1
            and all(finite_number(v) for v in [*x, *y])):
        return "isotonic's x and y must be two lists of finite numbers of one length"
    # a step that goes down would reverse the model's ranking in every hybrid
    if any(b < a for a, b in zip(x, x[1:])) or any(b < a for a, b in zip(y, y[1:])) \
            or not all(0.0 <= v <= 1.0 for v in y):
        return "isotonic's x and y must not decrease, and its y must lie in [0, 1]"
    return None


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def apply_recalibration(calibration: Mapping[str, Any], scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of ``scores`` under a recalibration record (``method`` platt: 1 / (1 +
    exp(-(a logit(s) + b))); isotonic: the fitted steps, interpolated, clipped at the ends)."""
    method, parameters = calibration["method"], calibration["parameters"]
    scores = np.asarray(scores, float)
    if method == "platt":
        return 1.0 / (1.0 + np.exp(-(parameters["a"] * _logit(scores) + parameters["b"])))
    if method == "isotonic":
        return np.interp(scores, parameters["x"], parameters["y"])
    raise ValueError(f"unknown recalibration {method!r}")


def _card_applies(card: Mapping[str, Any] | None) -> bool:
    return bool(card) and card.get("method") in ("platt", "isotonic") and isinstance(card.get("parameters"), dict)


def hybrid_calibration(site: Mapping[str, Any] | None, card: Mapping[str, Any] | None) -> tuple[str, str]:
    """How a model's P(malignant) is put on the reader's scale for the hybrid: ``(kind, words)`` where kind is
    ``site`` (the site's recalibration), ``card`` (the model card's: a recalibration applied here, or a
    temperature that inference already applied) or ``none`` (uncalibrated)."""
    if site:
        return "site", (f"calibrated on {site.get('site', 'this site')}, {site.get('date', '?')}, "
                        f"n = {site.get('n', '?')} ({site.get('method')}, version {site.get('version', 1)})")
    if _card_applies(card) or (card and card.get("method") == "temperature"):
        data = card.get("data")
        return "card", f"calibrated by its model card ({card.get('method')}{f', on {data}' if data else ''})"
    return "none", "uncalibrated"


def calibrated_probability(probability: float | None, site: Mapping[str, Any] | None,
                           card: Mapping[str, Any] | None) -> float | None:
    """``probability`` on a calibrated scale: the site's recalibration, else the card's (a temperature is
    already in the output), else as it is."""
    if probability is None:
        return None
    if site:
        return float(apply_recalibration(site, np.array([probability]))[0])
    if _card_applies(card):
        return float(apply_recalibration(card, np.array([probability]))[0])
    return float(probability)
