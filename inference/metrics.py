"""Discrimination measures shared by training and evaluation (numpy only)."""

from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN without both classes.

    By ranks, O(n log n): per-window AUCs run over tens of thousands of windows."""
    scores = np.asarray(scores, np.float64).ravel()
    truth = np.asarray(truth).ravel().astype(bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    # average rank (1-based) of each run of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))
