"""Subgroups (density, manufacturer, age band, one-view breasts) and drift (by month of study date).

A cell with fewer than ``MIN_CANCERS`` cancers gets its counts but no AUC: "too few to say", never a number
that a committee could read as evidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.validation.metrics import at_threshold, auc_with_ci
from app.validation.outcomes import DENSITIES, BreastOutcome

MIN_CANCERS = 10
TOO_FEW = f"too few to say (fewer than {MIN_CANCERS} cancers)"
AGE_BANDS = ((0, 50, "<50"), (50, 60, "50-59"), (60, 70, "60-69"), (70, 200, "70+"))


@dataclass(frozen=True)
class Unit:
    """One scored breast with its outcome (``one_view``: its score came from a single view)."""

    outcome: BreastOutcome
    score: float
    one_view: bool


def age_band(age: float | None) -> str:
    """The age's band; "" (no age subgroup) when the age is unknown or no age (a header's 999Y, NaN)."""
    if age is None:
        return ""
    return next((name for low, high, name in AGE_BANDS if low <= age < high), "")


def _cell(variable: str, value: str, units: Sequence[Unit], point: tuple[str, float] | None) -> dict:
    scores = np.array([u.score for u in units], float)
    truth = np.array([u.outcome.cancer for u in units], int)
    auc = auc_with_ci(scores, truth)
    note = auc.pop("auc_ci_note", "")
    row = {"variable": variable, "value": value, "n": len(units), **auc, "note": note}
    if row["n_positive"] < MIN_CANCERS:
        row.update(auc=None, auc_ci=None, note=TOO_FEW)
    if point is not None and len(units):
        name, threshold = point
        measured = at_threshold(scores, truth, threshold)
        row.update(operating_point=name, threshold=threshold, sensitivity=measured["sensitivity"],
                   specificity=measured["specificity"])
    return row


VARIABLES: tuple[tuple[str, Callable[[Unit], str], tuple[str, ...]], ...] = (
    ("density", lambda u: u.outcome.density, DENSITIES),
    ("manufacturer", lambda u: u.outcome.manufacturer, ()),
    ("age band", lambda u: age_band(u.outcome.age), tuple(name for _, _, name in AGE_BANDS)),
    ("views", lambda u: "one view" if u.one_view else "two views", ("two views", "one view")),
)


def subgroups(units: Sequence[Unit], point: tuple[str, float] | None = None) -> list[dict]:
    """One row per (variable, value) present, in a fixed order; units whose value is unknown form an
    "unknown" row, so every unit is counted in every variable. ``point`` (the first requested operating point's
    name and its threshold on the whole cohort) adds each row's sensitivity and specificity at that threshold."""
    rows = []
    for variable, value_of, order in VARIABLES:
        groups: dict[str, list[Unit]] = {}
        for unit in units:
            groups.setdefault(value_of(unit) or "unknown", []).append(unit)
        if set(groups) == {"unknown"}:
            rows.append({"variable": variable, "value": "unknown", "n": len(units), "auc": None, "auc_ci": None,
                         "n_positive": sum(u.outcome.cancer for u in units),
                         "n_negative": sum(1 - u.outcome.cancer for u in units),
                         "note": f"no {variable} in the outcomes"})
            continue
        ranked = [v for v in order if v in groups] + sorted(v for v in groups if v not in order and v != "unknown")
        rows += [_cell(variable, value, groups[value], point) for value in ranked + (["unknown"] if "unknown" in groups else [])]
    return rows


def drift(units: Sequence[Unit], point: tuple[str, float] | None = None) -> list[dict]:
    """Per month of study date (YYYY-MM): the score distribution and the AUC, and with ``point`` (the first
    requested operating point's name and threshold on the whole cohort) the share of breasts called at it, the
    month's recall rate a service watches; units without a date form one "no date" row."""
    months: dict[str, list[Unit]] = {}
    for unit in units:
        date = unit.outcome.study_date
        months.setdefault(date.strftime("%Y-%m") if date else "no date", []).append(unit)
    rows = []
    for month in sorted(months, key=lambda m: (m == "no date", m)):
        cell = months[month]
        scores = np.array([u.score for u in cell], float)
        row = _cell("month", month, cell, point)
        if point is not None:
            row["recall_rate"] = at_threshold(scores, np.array([u.outcome.cancer for u in cell], int),
                                              point[1])["recall_rate"]
        row.update(month=month, score_mean=float(scores.mean()), score_median=float(np.median(scores)),
                   score_q25=float(np.percentile(scores, 25)), score_q75=float(np.percentile(scores, 75)))
        rows.append(row)
    return rows
