"""Calibration on the site's data: reliability bins and ECE of P(malignant), and a recalibration fitted here.

Two recalibrations are fitted — Platt scaling (a logistic regression on the logit of the score) and isotonic
regression — and the one with the lower cross-validated log loss (stratified folds, seeded) is kept; both
losses are reported. When neither beats the model's own probabilities on the held-out folds, no recalibration
is kept (``method`` "none"): a fit that is worse than none must not rescale the workstation's hybrid. A kept
one is written as a versioned calibration file beside the model, ``<checkpoint>.site_calibration.json``, which
the application can find next to the weights::

    {"format": "mammo-reader site calibration", "version": 2, "model_id": …, "model_key": …, "site": …,
     "date": "2026-12-04", "n": 812, "n_positive": 41, "level": "breast", "method": "isotonic" | "platt",
     "parameters": {"a": …, "b": …} | {"x": […], "y": […]}, "cv_log_loss": {"platt": …, "isotonic": …,
     "uncalibrated": …}, "ece_before": …, "ece_after": …, "history": [earlier versions, newest first]}

ECE here is the binary expected calibration error: breasts binned by their predicted P(malignant) into
equal-width bins, ECE = sum_b (n_b / N) |observed cancer rate_b - mean predicted_b|.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app.validation.errors import ValidationInputError
from inference.evaluation.calibration import EPSILON, apply_recalibration, site_calibration_path
from inference.evaluation.calibration import SITE_FORMAT as FORMAT
from inference.evaluation.calibration import SITE_SUFFIX as SUFFIX
from inference.evaluation.calibration import _logit
from inference.evaluation.calibration import read_site_calibration as _read_site_calibration
from inference.errors import CheckpointError
from inference.files import write_text_atomic
from inference.evaluation.temperature import ReliabilityBins

# EPSILON: scores are clipped to [EPSILON, 1 - EPSILON] before a logit or a log loss. The reading and the
# applying of a calibration live in inference/evaluation/calibration.py, where the model loader finds them.
FOLDS = 5
SEED = 20_27
# a recalibration rescales every reader's hybrid at the site: fitted on fewer cancers (or non-cancers) than
# this it is shown in the report, never saved (21 breasts with 6 cancers gave an isotonic step from 0 to 1)
MIN_SAVED = 20
NONE = "none"  # the method of a record that keeps the model's own calibration


def reliability(probabilities: np.ndarray, truth: np.ndarray, bins: int = 10) -> ReliabilityBins:
    """Per equal-width bin of predicted P(malignant): mean prediction (``confidence``), observed cancer rate
    (``accuracy``) and count; the first bin also holds 0."""
    p, y = np.asarray(probabilities, float), np.asarray(truth, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.where(count > 0, np.bincount(index, p, bins) / count, 0.0)
        observed = np.where(count > 0, np.bincount(index, y, bins) / count, 0.0)
    return ReliabilityBins(edges, predicted, observed, count)


def ece(probabilities: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    return reliability(probabilities, truth, bins).ece


def log_loss(probabilities: np.ndarray, truth: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, float), EPSILON, 1 - EPSILON)
    y = np.asarray(truth, float)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit(method: str, scores: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The parameters of ``method`` (``platt`` or ``isotonic``) fitted to (scores, truth)."""
    if method == "platt":
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores)[:, None], np.asarray(truth, int))
        return {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression  # noqa: PLC0415

        # no step at exactly 0 or 1: a certainty from a finite sample (the hybrid would show "100 %")
        bound = 0.5 / len(scores)
        model = IsotonicRegression(y_min=bound, y_max=1.0 - bound, out_of_bounds="clip").fit(scores, truth)
        return {"x": [float(v) for v in model.X_thresholds_], "y": [float(v) for v in model.y_thresholds_]}
    raise ValueError(f"unknown recalibration {method!r}")


def apply(calibration: Mapping[str, Any], scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of ``scores`` under a calibration record (``method`` and ``parameters``)."""
    return apply_recalibration(calibration, scores)


def cross_validated_log_loss(method: str, scores: np.ndarray, truth: np.ndarray, folds: int = FOLDS,
                             seed: int = SEED) -> float:
    """Log loss of ``method`` on held-out folds (stratified, seeded)."""
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    predicted = np.empty(len(scores))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(scores, truth):
        predicted[test] = apply({"method": method, "parameters": fit(method, scores[train], truth[train])},
                                scores[test])
    return log_loss(predicted, truth)


def recalibrate(scores: np.ndarray, truth: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Fit Platt and isotonic recalibrations, keep the one with the lower cross-validated log loss, if it is
    lower than the model's own (uncalibrated) log loss.

    Returns the calibration record (without site, date and version) and its effect on these data; its
    ``method`` is ``"none"`` (and ``parameters`` empty) when neither fit beats the model's own probabilities,
    so the model's own calibration is kept and nothing is to be saved. Raises
    ``ValidationInputError`` when there are too few cancers or non-cancers for a cross-validated choice."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    n_pos, n_neg = int(truth.sum()), int((truth == 0).sum())
    if min(n_pos, n_neg) < FOLDS:
        raise ValidationInputError(f"a recalibration needs at least {FOLDS} cancers and {FOLDS} non-cancers "
                                   f"(here {n_pos} and {n_neg})")
    losses = {m: cross_validated_log_loss(m, scores, truth) for m in ("platt", "isotonic")}
    # a Platt slope of 0 or below reverses the model's ranking (outcomes coded the wrong way round, a model
    # that fails here): never kept, whatever its loss
    usable = [m for m in losses if m != "platt" or fit("platt", scores, truth)["a"] > 0]
    method = min(usable, key=losses.get)
    uncalibrated = log_loss(scores, truth)  # nothing fitted: every breast is held out
    record = {"method": method, "parameters": {}, "n": len(scores), "n_positive": n_pos,
              "cv_log_loss": {**losses, "uncalibrated": uncalibrated}, "bins": bins,
              "not_chosen": "" if "platt" in usable else "Platt, whose slope here is 0 or below (it would reverse "
                                                         "the model)"}
    if losses[method] >= uncalibrated:
        before = ece(scores, truth, bins)
        return {**record, "method": NONE, "ece_before": before, "ece_after": before,
                "log_loss_after_in_sample": uncalibrated}
    record["parameters"] = fit(method, scores, truth)
    after = apply(record, scores)
    record.update(ece_before=ece(scores, truth, bins), ece_after=ece(after, truth, bins),
                  log_loss_after_in_sample=log_loss(after, truth))
    return record


def calibration_path(checkpoint: str | Path) -> Path:
    return site_calibration_path(checkpoint)


def read_site_calibration(path: str | Path) -> dict[str, Any] | None:
    """The site calibration stored at ``path`` (None when there is none)."""
    try:
        return _read_site_calibration(path)
    except CheckpointError as error:
        raise ValidationInputError(error.message, path) from error


def save_site_calibration(path: str | Path, record: Mapping[str, Any], site: str, model_id: str, model_key: str,
                          level: str, date: datetime.date | None = None,
                          write_to: str | Path | None = None) -> dict[str, Any]:
    """Write ``record`` as the next version of the calibration file at ``path``, keeping the earlier ones in
    its history; returns what was written. ``write_to``: write that next version there instead (when
    ``path``'s folder cannot be written, a copy to move beside the model later)."""
    path = Path(path)
    if record.get("method") == NONE:
        raise ValueError("a record that keeps the model's own calibration is not saved")
    try:
        previous = read_site_calibration(path)
    except ValidationInputError:  # one the loader refuses (a Platt slope below 0 an earlier version saved): the
        previous = None  # new version replaces it, and it is kept aside for the record
        try:
            os.replace(path, path.with_name(path.name + ".refused"))
        except OSError:  # a read-only folder: the new version goes to write_to, the old one stays refused
            pass
    history: list = []
    version = 1
    if previous is not None:
        history = [{k: v for k, v in previous.items() if k != "history"}, *previous.get("history", [])]
        version = int(previous.get("version", 0)) + 1
    data = {"format": FORMAT, "version": version, "model_id": model_id, "model_key": model_key, "site": site,
            "date": (date or datetime.date.today()).isoformat(), "level": level, **record, "history": history}
    write_text_atomic(Path(write_to) if write_to is not None else path, json.dumps(data, indent=1))
    return data
