"""Discrimination and decision measures with their confidence intervals.

* AUC: the project's one AUC with DeLong's variance (``app.study.analysis.delong``, built on
  ``inference.evaluation.metrics``), 95 % normal-approximation interval clipped to [0, 1].
* Proportions (sensitivity, specificity, recall rate, PPV): the Wilson score interval.
* The threshold that reaches a target specificity or sensitivity on these data, with a stratified bootstrap
  percentile interval (seeded, so a rerun gives the same interval).
* The paired comparison of two models on the same units: DeLong's covariance of the two AUCs
  (DeLong, DeLong & Clarke-Pearson 1988); the difference is always A - B, named.

A case is called positive when its score is at or above the threshold (as the models' declared operating
points are read by ``inference.evaluation.calibration``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.study.analysis import Z95, StudyMatrix, covariance_matrix, delong, wilson, zero_variance_reason
from app.validation.errors import ValidationInputError
from inference.evaluation.metrics import auc_components

BOOTSTRAP_SEED = 20_27
BOOTSTRAP_REPLICATES = 1000


def auc_with_ci(scores: np.ndarray, truth: np.ndarray) -> dict:
    """``{"auc", "auc_ci", "n_positive", "n_negative"}``; AUC and CI are None without both kinds of case,
    the CI None with fewer than two of a kind. Where DeLong's variance is 0 (the two kinds wholly separated, AUC
    0 or 1, or every score alike) its interval is a point, which would claim a certainty no sample gives: the CI
    is None and ``auc_ci_note`` says why."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    n_pos, n_neg = int((truth == 1).sum()), int((truth == 0).sum())
    out = {"auc": None, "auc_ci": None, "n_positive": n_pos, "n_negative": n_neg}
    if n_pos and n_neg:
        estimate = delong(scores, truth)
        out["auc"] = estimate.auc
        if math.isfinite(estimate.variance) and estimate.variance > 0:
            out["auc_ci"] = [estimate.ci[0], estimate.ci[1]]
        elif math.isfinite(estimate.variance):
            out["auc_ci_note"] = f"no CI: {zero_variance_reason(estimate.auc)} (DeLong's variance is 0)"
        else:  # an AUC of one cancer against one non-cancer was printed bare, as if it were a measure
            out["auc_ci_note"] = (f"no CI: {FEWER_THAN_TWO} ({n_pos} cancer(s), {n_neg} non-cancer(s)): too few "
                                  "to say")
    return out


FEWER_THAN_TWO = "fewer than two cancers or two non-cancers"


def _proportion(successes: int, trials: int) -> dict:
    ci = wilson(successes, trials)
    return {"value": successes / trials if trials else None, "ci": list(ci) if ci else None,
            "successes": successes, "trials": trials}


def at_threshold(scores: np.ndarray, truth: np.ndarray, threshold: float) -> dict:
    """Counts and sensitivity, specificity, recall rate (share called positive) and PPV with Wilson CIs."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    called = scores >= threshold
    tp, fn = int((called & (truth == 1)).sum()), int((~called & (truth == 1)).sum())
    fp, tn = int((called & (truth == 0)).sum()), int((~called & (truth == 0)).sum())
    return {"threshold": float(threshold), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "sensitivity": _proportion(tp, tp + fn), "specificity": _proportion(tn, tn + fp),
            "recall_rate": _proportion(tp + fp, len(scores)), "ppv": _proportion(tp, tp + fp)}


@dataclass(frozen=True)
class Target:
    """An operating point asked for: ``spec=0.9``, ``sens=0.85`` or ``threshold=0.3``."""

    kind: str  # spec | sens | threshold
    value: float

    @property
    def name(self) -> str:
        return f"{self.kind}={self.value:g}"


def parse_target(text: str) -> Target:
    kind, sep, value = text.partition("=")
    kind = {"specificity": "spec", "sensitivity": "sens"}.get(kind.strip().lower(), kind.strip().lower())
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or kind not in ("spec", "sens", "threshold") or not 0.0 <= number <= 1.0:
        raise ValidationInputError(f"operating point {text!r}: write spec=0.9, sens=0.85 or threshold=0.3 "
                                   "(a value between 0 and 1)")
    return Target(kind, number)


def threshold_for(scores: np.ndarray, truth: np.ndarray, target: Target) -> float:
    """The threshold that reaches ``target`` on these data: for a specificity, the lowest threshold whose
    specificity is at least the target (the most sensitive such point); for a sensitivity, the highest one
    whose sensitivity is at least the target (the most specific)."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    if target.kind == "threshold":
        return target.value
    if target.kind == "spec":
        negatives = np.sort(scores[truth == 0])
        need = math.ceil(target.value * len(negatives) - 1e-9)
        if need == 0:
            return float(scores.min())
        below = negatives[need - 1]  # this many negatives must lie strictly below the threshold
        above = scores[scores > below]
        return float(above.min()) if above.size else float(np.nextafter(below, np.inf))
    positives = np.sort(scores[truth == 1])[::-1]
    need = max(1, math.ceil(target.value * len(positives) - 1e-9))
    return float(positives[need - 1])


def threshold_ci(scores: np.ndarray, truth: np.ndarray, target: Target, replicates: int = BOOTSTRAP_REPLICATES,
                 seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95 % percentile interval of :func:`threshold_for` over bootstrap samples drawn within each class (so
    every sample keeps the number of cancers); None for a fixed threshold."""
    if target.kind == "threshold":
        return None
    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    rng = np.random.default_rng(seed)
    positives, negatives = scores[truth == 1], scores[truth == 0]
    labels = np.r_[np.ones(len(positives), int), np.zeros(len(negatives), int)]
    values = np.empty(replicates)
    for index in range(replicates):
        sample = np.r_[rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))]
        values[index] = threshold_for(sample, labels, target)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def paired_comparison(a: np.ndarray, b: np.ndarray, truth: np.ndarray, names: tuple[str, str]) -> dict:
    """DeLong's paired test of two models scored on the same units: difference = AUC(a) - AUC(b), its 95 %
    CI and the two-sided p-value."""
    from scipy import stats  # noqa: PLC0415

    a, b, truth = np.asarray(a, float), np.asarray(b, float), np.asarray(truth, int)
    n_pos, n_neg = int((truth == 1).sum()), int((truth == 0).sum())
    out = {"a": names[0], "b": names[1], "n_positive": n_pos, "n_negative": n_neg, "auc_a": None, "auc_b": None,
           "difference": None, "ci": None, "p": None}
    if n_pos == 0 or n_neg == 0:
        return out
    auc_a, auc_b = auc_components(a, truth)[0], auc_components(b, truth)[0]
    out.update(auc_a=auc_a, auc_b=auc_b, difference=auc_a - auc_b)
    if n_pos < 2 or n_neg < 2:
        return out
    matrix = StudyMatrix(names, ("model",), tuple(range(len(truth))), truth, np.stack([a, b])[:, None, :])
    cov = covariance_matrix(matrix, "delong")
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if variance <= 1e-15:  # identical scores, or both perfect: no difference to test
        out.update(ci=[out["difference"], out["difference"]], p=1.0 if out["difference"] == 0 else None)
        return out
    se = math.sqrt(variance)
    out.update(ci=[out["difference"] - Z95 * se, out["difference"] + Z95 * se],
               p=float(2 * stats.norm.sf(abs(out["difference"]) / se)))
    return out
