"""Discrimination measures shared by training, evaluation, reader studies and site validation (numpy only).

One AUC in the project: the Mann-Whitney statistic by midranks (ties counted half), with DeLong's structural
components computed from the same ranks (Sun & Xu 2014's fast DeLong), O(n log n) in time and O(n) in memory,
so that an archive of a hundred thousand breasts costs no more than a sort.
"""

from __future__ import annotations

import numpy as np


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` with each run of ties given its average rank (float64, same order)."""
    values = np.asarray(values, np.float64).ravel()
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(values) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def auc_components(scores: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(AUC, V10 per positive, V01 per negative): DeLong's structural components.

    V10_i is the fraction of negatives that positive i outscores (ties half), V01_j the fraction of positives
    that outscore negative j; the AUC is the mean of either. Raises ``ValueError`` without both classes, or
    when a score is NaN (it has no rank: sorting would put it above every other score)."""
    scores = np.asarray(scores, np.float64).ravel()
    truth = np.asarray(truth).ravel().astype(bool)
    if np.isnan(scores).any():
        raise ValueError(f"{int(np.isnan(scores).sum())} score(s) are NaN: no AUC")
    positives, negatives = scores[truth], scores[~truth]
    m, n = len(positives), len(negatives)
    if m == 0 or n == 0:
        raise ValueError("an AUC needs at least one diseased and one non-diseased case")
    combined = midranks(np.r_[positives, negatives])
    v10 = (combined[:m] - midranks(positives)) / n
    v01 = 1.0 - (combined[m:] - midranks(negatives)) / m
    return float(v10.mean()), v10, v01


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN without both classes or
    with a NaN score.

    By ranks, O(n log n): per-window AUCs run over tens of thousands of windows."""
    try:
        return auc_components(scores, truth)[0]
    except ValueError:
        return float("nan")
