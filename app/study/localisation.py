"""Scoring a reader's marks against the lesions of a case (the FROC paradigm).

A mark is a *lesion localisation* (LL) of a lesion on the same view when it falls inside the lesion's outline
or within ``distance_mm`` of the lesion's centre (millimetres through the view's pixel spacing); a mark that
localises no lesion is a *non-lesion localisation* (NL). When a mark could localise several lesions it takes
the one whose centre is nearest; each lesion has at most one LL, its highest-rated mark: further marks of the
same lesion (the same lesion marked again, or in its other view) are *duplicates*, neither LL nor NL, so that
marking a lesion in both CC and MLO is not counted as a false mark.

The default distance, 10 mm, is about the radius of a typical screen-detected mass and the acceptance radius
most often used for mammography CAD and reader-study localisation; a study stores its own rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.study.errors import StudyError

DEFAULT_DISTANCE_MM = 10.0


@dataclass(frozen=True)
class ScoringRule:
    """How marks are scored; stored with the study. ``use_outline``: a mark inside a lesion's outline is an
    LL whatever its distance from the centre."""

    distance_mm: float = DEFAULT_DISTANCE_MM
    use_outline: bool = True

    def __post_init__(self) -> None:
        if not (self.distance_mm >= 0 and math.isfinite(self.distance_mm)):
            raise ValueError(f"the acceptance distance must be a finite number of mm >= 0, not {self.distance_mm}")


@dataclass(frozen=True)
class LesionOutline:
    """A lesion on one view: its centre (row, col) in the view's original image pixels and, optionally, its
    outline as a boolean mask whose pixel [0, 0] lies at ``origin`` (row, col) of that image (a full-size
    mask has origin (0, 0); a cropped ROI mask its top-left corner), or as a circle of ``radius_mm`` about the
    centre (a lesion given as centre + radius)."""

    view: str
    centre: tuple[float, float]
    mask: np.ndarray | None = None
    origin: tuple[int, int] = (0, 0)
    radius_mm: float | None = None

    def contains(self, row: float, col: float) -> bool:
        if self.mask is None:
            return False
        r, c = int(math.floor(row)) - self.origin[0], int(math.floor(col)) - self.origin[1]
        return 0 <= r < self.mask.shape[0] and 0 <= c < self.mask.shape[1] and bool(self.mask[r, c])


@dataclass(frozen=True)
class Lesion:
    """One lesion of a case, seen on one or more views, with its weight in the weighted figures of merit."""

    lesion_id: Any
    outlines: tuple[LesionOutline, ...]
    weight: float | None = None  # None: equal weights within the case


@dataclass(frozen=True)
class ScoredMark:
    """A mark and what it scored: ``kind`` is ``"LL"`` (``lesion`` set), ``"NL"`` or ``"duplicate"``
    (``lesion`` set: that lesion's LL is another, higher-rated mark)."""

    index: int  # the mark's place in the list given
    view: str
    rating: float
    kind: str
    lesion: Any = None
    distance_mm: float | None = None


def _get(mark: Any, key: str) -> Any:
    return mark[key] if isinstance(mark, Mapping) else getattr(mark, key)


def _distance_mm(row: float, col: float, centre: tuple[float, float], spacing: tuple[float, float]) -> float:
    return math.hypot((row - centre[0]) * spacing[0], (col - centre[1]) * spacing[1])


def score_marks(marks: Sequence[Any], lesions: Sequence[Lesion], pixel_spacing: Mapping[str, tuple[float, float]],
                rule: ScoringRule = ScoringRule(), case: str = "") -> list[ScoredMark]:
    """Score one reader's marks on one case (one modality) against the case's lesions.

    Args:
        marks: objects or dicts with ``view``, ``row``, ``col`` (original image pixels) and a rating
            (``rating``, else ``confidence``), e.g. :class:`app.study.store.ReaderMark`.
        lesions: the case's lesions (none on a normal case).
        pixel_spacing: (row, col) spacing in mm of each view.
        rule: the acceptance rule.
        case: the case's name, for messages.

    Raises:
        StudyError: a mark or lesion needs the distance in mm on a view without a pixel spacing.
    """
    candidates: list[tuple[int, Any, float]] = []  # (mark index, lesion id, distance mm)
    ratings = []
    for i, mark in enumerate(marks):
        view, row, col = str(_get(mark, "view")), float(_get(mark, "row")), float(_get(mark, "col"))
        try:
            rating = float(_get(mark, "rating"))
        except (KeyError, AttributeError):
            rating = float(_get(mark, "confidence"))
        ratings.append((view, rating))
        for lesion in lesions:
            for outline in lesion.outlines:
                if outline.view != view:
                    continue
                spacing = pixel_spacing.get(view)
                inside = rule.use_outline and outline.contains(row, col)
                if spacing is None:
                    if inside:
                        candidates.append((i, lesion.lesion_id, math.nan))
                        continue
                    raise StudyError(f"case {case or '?'}: view {view} has no pixel spacing, so the distance of a mark "
                                     f"from lesion {lesion.lesion_id!r} cannot be measured in mm")
                distance = _distance_mm(row, col, outline.centre, spacing)
                inside = inside or (rule.use_outline and outline.radius_mm is not None
                                    and distance <= outline.radius_mm)
                if inside or distance <= rule.distance_mm:
                    candidates.append((i, lesion.lesion_id, distance))
    # each mark: its nearest acceptable lesion (inside an outline without a spacing counts as distance 0)
    best: dict[int, tuple[Any, float]] = {}
    for i, lesion_id, distance in candidates:
        key = 0.0 if math.isnan(distance) else distance
        if i not in best or key < best[i][1]:
            best[i] = (lesion_id, key)
    # each lesion: its highest-rated mark is the LL (ties: the nearer, then the earlier mark)
    owner: dict[Any, int] = {}
    for i, (lesion_id, distance) in best.items():
        j = owner.get(lesion_id)
        if j is None or (ratings[i][1], -distance, -i) > (ratings[j][1], -best[j][1], -j):
            owner[lesion_id] = i
    out = []
    for i, (view, rating) in enumerate(ratings):
        if i not in best:
            out.append(ScoredMark(i, view, rating, "NL"))
            continue
        lesion_id, distance = best[i]
        kind = "LL" if owner[lesion_id] == i else "duplicate"
        out.append(ScoredMark(i, view, rating, kind, lesion_id, distance))
    return out


def json_marks(scored: Sequence[ScoredMark], modality: str, reader: str, case: Any) -> list[dict[str, Any]]:
    """The scored marks as the ``marks`` of the localisation JSON form (duplicates left out)."""
    return [{"modality": modality, "reader": reader, "case": case,
             "lesion": mark.lesion if mark.kind == "LL" else None, "rating": mark.rating}
            for mark in scored if mark.kind != "duplicate"]
