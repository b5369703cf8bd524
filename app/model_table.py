"""The model table of one analysed model — its views, breasts and exam decision, every class, P(malignant) and
what it means — computed once, Qt-free, and rendered by the score panel and the PDF alike. A breast's row is
the mean of its CC and MLO (``BREAST_RULE``), or says which one view it comes from."""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.reading import percent as shown
from inference.evaluation.calibration import score_category
from inference.intake.views import Laterality, View
from inference.results.exam_result import ExamResult, ModelEntry

BREAST_NAMES = {"R": "Right breast", "L": "Left breast"}
HANGING_ORDER = (View.R_CC, View.L_CC, View.R_MLO, View.L_MLO)
BREAST_RULE = "A breast's scores are the mean of its CC and MLO views, unless its row names the one view used."


def class_title(name: str) -> str:
    """A column title: words, long names on two lines (``benign without\ncallback``)."""
    words = name.replace("_", " ").split()
    if len(" ".join(words)) <= 12 or len(words) < 2:
        return " ".join(words)
    best = min(range(1, len(words)), key=lambda k: abs(len(" ".join(words[:k])) - len(" ".join(words[k:]))))
    return " ".join(words[:best]) + "\n" + " ".join(words[best:])


def score_floor(entry: ModelEntry) -> float | None:
    """A detector's score threshold (one model): a class none of whose detections passed it has the score 0,
    which says "below the threshold", not "certainly none"."""
    value = (entry.members[0].settings or {}).get("box_score_threshold") if len(entry.members) == 1 else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def model_percent(value: float | None, entry: ModelEntry) -> str:
    """A model's score as a percentage; a detector's 0 as below its threshold (``score_floor``). A score that
    rounds to 0.0 % or 100.0 % is shown as "< 0.1 %" or "> 99.9 %": a model's output is never a certainty, and
    "100.0 %" benign beside "0.0 %" malignant read as one (a radiologist's test of the demo model)."""
    floor = score_floor(entry)
    if floor is not None and value == 0.0:
        return f"< {100 * floor:g} %"
    if value is not None and math.isfinite(value):
        if value < 0.0005:
            return "< 0.1 %"
        if value >= 0.9995:
            return "> 99.9 %"
    return shown(value)


def entry_rows(result: ExamResult, entry: ModelEntry, details: bool = False, views: Sequence[View] = HANGING_ORDER,
               ) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of one entry's table: its views (in ``views``' order), breasts and the exam decision;
    ``details``: the family's own outputs as extra columns. A detector's 0 is shown as below its threshold
    ("< 5 %"): no detection of the class was kept, which is not a probability of 0."""
    def percent(value: float | None) -> str:
        return model_percent(value, entry)

    ensemble = len(entry.members) > 1
    calibration = entry.members[0].calibration
    has_operating_points = bool((calibration or {}).get("operating_points"))
    headers = [""] + [class_title(c) for c in entry.classes]
    extra_column = entry.has_malignancy and not entry.malignancy_is_a_class
    if entry.has_malignancy:
        headers += (["P(malignant)"] if extra_column else []) + ["meaning"]
    first = next((r.result(entry.id) for r in result.views.values() if r.result(entry.id) is not None), None)
    extras = list(first.extras) if (details and first is not None) else []
    headers += [f"{name} ({'/'.join(c[0] for c in entry.classes)})" for name in extras]
    rows = []
    for view in views:
        if view not in result.views:
            continue
        view_result = result.views[view]
        r = view_result.result(entry.id)
        if r is None:  # no result (not finite, or refused): no number (the reason is in the notices)
            rows.append([f"{view.value}  (no result)"] + ["—"] * (len(headers) - 1))
            continue
        cells = [view.value + ("" if view_result.counted else "  (not counted)")]
        cells += [percent(r.probabilities[c]) + (f" ±{100 * r.spread[c]:.1f}" if ensemble else "") for c in entry.classes]
        if entry.has_malignancy:
            p = entry.malignant(r.probabilities)
            # an operating point is a threshold set on breasts (the exam: its deciding breast); beside a view it
            # read as that view's verdict, even beside one not counted (a deployer's audit); what is true of every
            # row ("uncalibrated", "calibrated (temperature)") stays
            cells += ([percent(p)] if extra_column else []) + [
                "" if has_operating_points else score_category(p, calibration)]
        cells += [" / ".join(f"{100 * r.extras[name][c]:.1f}" for c in entry.classes) for name in extras]
        rows.append(cells)
    for side in (Laterality.RIGHT, Laterality.LEFT):
        scores = result.breasts[side].entries.get(entry.id) if side in result.breasts else None
        if scores is not None:
            name = f"{BREAST_NAMES[side.value]} {scores.one_view_note}".rstrip()  # "(MLO only)": one view counted
            cells = [name] + [percent(scores.probabilities[c]) for c in entry.classes]
            if entry.has_malignancy:
                cells += ([percent(scores.malignant)] if extra_column else []) + [
                    score_category(scores.malignant, calibration)]
            rows.append(cells + [""] * len(extras))
    decision = result.exam[entry.id]
    cells = [f"Exam {result.one_breast_note(entry.id)}".rstrip()] + [percent(decision.probabilities.get(c))
                                                                       for c in entry.classes]
    if entry.has_malignancy:
        cells += ([percent(decision.malignant)] if extra_column else []) + [
            score_category(decision.malignant, calibration)]
    rows.append(cells + [""] * len(extras))
    return headers, rows
