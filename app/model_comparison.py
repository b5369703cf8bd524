"""Models side by side (no Qt): a label for each model that tells two checkpoints apart, and the rows of the
comparison table (one column per model: P(malignant) per breast and for the exam, the exam decision, and what
the model's operating point means).

Two checkpoints are often both called ``seeded_state_dict.pt`` or share a family's label; a label of family,
file name and short content hash (a published checkpoint: its published name) tells them apart at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.reading import percent
from inference.evaluation.calibration import is_calibrated, score_category
from inference.results.exam_result import ExamResult, ModelEntry
from inference.intake.views import Laterality
from inference.numbers import threshold_text

ROW_TITLES = ("P(malignant) right", "P(malignant) left", "P(malignant) exam", "Exam decision", "Operating point")


def file_name(identity: Any) -> str:
    """The checkpoint's file name; its label for a model held in memory (``<in memory>``)."""
    path = getattr(identity, "path", "") or ""
    return Path(path).name if path and not path.startswith("<") else getattr(identity, "label", "")


def member_label(identity: Any) -> str:
    """``family · file · hash8`` for a checkpoint; ``family · published name`` for a published one."""
    family = getattr(identity, "family", "") or "model"
    if getattr(identity, "published_name", None):
        return f"{family} · {identity.published_name} (published)"
    name = file_name(identity)
    digest = (identity.sha256 or "")[:8]
    return f"{family} · {name}" + (f" · {digest}" if digest else "")


def entry_label(entry: ModelEntry) -> str:
    """A model entry's label; an ensemble names its size and its first member."""
    first = member_label(entry.members[0]) if entry.members else entry.label
    return first if len(entry.members) <= 1 else f"{first} + {len(entry.members) - 1} more (ensemble)"


def unique_labels(entries: Sequence[ModelEntry]) -> dict[str, str]:
    """entry id -> a label no other entry has (a number added only where the files themselves are alike)."""
    labels: dict[str, str] = {}
    taken: set[str] = set()
    for entry in entries:
        label, number = entry_label(entry), 2
        unique = label
        while unique in taken:
            unique, number = f"{label} #{number}", number + 1
        taken.add(unique)
        labels[entry.id] = unique
    return labels


def short_labels(models: Sequence[tuple[str, Sequence[Any]]]) -> dict[str, str]:
    """id -> a header-sized label for each (id, member identities): the family where no other model is of it,
    else family and short content hash (a published checkpoint's name; the file name where there is no hash),
    "#2" where even those are alike; an ensemble says so. The full label (``unique_labels``) is the tooltip."""
    families = [getattr(members[0], "family", "") or "model" for _, members in models]
    labels: dict[str, str] = {}
    taken: set[str] = set()
    for (model_id, members), family in zip(models, families, strict=True):
        label = family
        if families.count(family) > 1:
            first = members[0]
            which = getattr(first, "published_name", None) or (getattr(first, "sha256", "") or "")[:8] or file_name(first)
            label = f"{family} · {which}"
        if len(members) > 1:
            label += f" (ensemble of {len(members)})"
        unique, number = label, 2
        while unique in taken:
            unique, number = f"{label} #{number}", number + 1
        taken.add(unique)
        labels[model_id] = unique
    return labels


def operating_point_meaning(entry: ModelEntry) -> str:
    """What crossing the model's threshold means, from its calibration metadata."""
    calibration = entry.members[0].calibration if entry.members else None
    if not is_calibrated(calibration):
        return "none declared (uncalibrated)"
    points = calibration.get("operating_points") or []
    if not points:
        return f"calibrated ({calibration.get('method')}), no operating point"
    texts = []
    for point in sorted(points, key=lambda p: p["threshold"]):
        extra = ", ".join(f"{key} {point[key]:.2f}" for key in ("sensitivity", "specificity") if key in point)
        texts.append(f"{point['name']} at {threshold_text(point['threshold'], 2)}" + (f" ({extra})" if extra else ""))
    return "; ".join(texts)


def comparison_columns(result: ExamResult, hidden: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers (the row title column, then one per model that gives a P(malignant)) and the rows of
    :data:`ROW_TITLES`; ``hidden`` (blind first) shows "hidden" for every model number."""
    entries = [entry for entry in result.entries if entry.has_malignancy]
    labels = unique_labels(result.entries)
    headers = [""] + [labels[entry.id] for entry in entries]
    rows = [[title] for title in ROW_TITLES]
    for entry in entries:
        calibration = entry.members[0].calibration if entry.members else None
        values = []
        for side in (Laterality.RIGHT, Laterality.LEFT):
            scores = result.breasts[side].entries.get(entry.id) if side in result.breasts else None
            values.append(scores.malignant if scores is not None else None)
        decision = result.exam.get(entry.id)
        exam_value = decision.malignant if decision is not None else None
        cells = [percent(values[0]), percent(values[1]), percent(exam_value),
                 score_category(exam_value, calibration) or "—", operating_point_meaning(entry)]
        if hidden:
            cells = ["hidden"] * 4 + [cells[4]]
        for row, cell in zip(rows, cells, strict=True):
            row.append(cell)
    return headers, rows
