"""A stored study's committed marks, scored against the lesions, in the localisation JSON form.

A study created with a lesion list stores its lesions (``app/study/lesions.py``); for a study created without
one they come from a truth file (JSON) beside the study,

```
{"rule": {"distance_mm": 10, "use_outline": true},
 "cases": {"c01": {"spacing": {"L-CC": [0.07, 0.07], "L-MLO": [0.07, 0.07]},
                   "lesions": [{"id": 1, "weight": 1.0,
                                "views": [{"view": "L-CC", "centre": [1210, 640], "mask": "masks/c01_lcc.png"}]}]}}}
```
(centres in original image pixels (row, col); a mask is a PNG of the view's size, or of a region whose top-left
pixel is ``origin``, non-zero inside the outline; its path is relative to the truth file). A case not listed
has no lesion (normal). The rule used is written into the JSON form's description with the study.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.study.cases import CaseEntry, study_cases
from app.study.design import study_info
from app.study.errors import StudyError
from app.study.localisation import Lesion, LesionOutline, ScoringRule, json_marks, score_marks
from app.study.store import ReaderMark, Store


@dataclass(frozen=True)
class LesionTruth:
    """Where the lesions are: per case its lesions and the pixel spacing (mm) of its views, and the rule."""

    rule: ScoringRule = ScoringRule()
    lesions: dict[str, tuple[Lesion, ...]] = field(default_factory=dict)
    spacing: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)


def _read_mask(path: Path, source: Path) -> np.ndarray:
    import cv2  # noqa: PLC0415

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise StudyError(f"{source}: the lesion mask {path} cannot be read as an image")
    return image > 0


def _view_name(text: object, source: Path, case_id: object) -> str:
    """A truth file's view in the one spelling marks are stored with ("LCC" and "l-cc" are L-CC: as typed, a
    lesion so given could never be hit by a mark)."""
    from inference.intake.views import View  # noqa: PLC0415

    try:
        return View.parse(str(text)).value
    except ValueError:
        raise StudyError(f"{source}: case {case_id}: {text!r} is not a view (L-CC, R-CC, L-MLO or R-MLO)") from None


def lesion_truth_from_dict(data: Mapping[str, Any], source: Path = Path("the truth file")) -> LesionTruth:
    """Raises ``StudyError`` naming ``source`` when an entry is missing or malformed."""
    try:
        rule = ScoringRule(**dict(data.get("rule") or {}))
        lesions: dict[str, tuple[Lesion, ...]] = {}
        spacing: dict[str, dict[str, tuple[float, float]]] = {}
        for case_id, case in dict(data.get("cases") or {}).items():
            spacing[str(case_id)] = {_view_name(v, source, case_id): (float(s[0]), float(s[1]))
                                     for v, s in (case.get("spacing") or {}).items()}
            found = []
            for lesion in case.get("lesions") or []:
                outlines = []
                for view in lesion["views"]:
                    mask = None
                    if view.get("mask"):
                        mask = _read_mask(source.parent / view["mask"], source)
                    origin = tuple(int(v) for v in view.get("origin", (0, 0)))
                    centre = (float(view["centre"][0]), float(view["centre"][1]))
                    outlines.append(LesionOutline(_view_name(view["view"], source, case_id), centre, mask, origin))
                weight = lesion.get("weight")
                found.append(Lesion(lesion["id"], tuple(outlines), None if weight is None else float(weight)))
            lesions[str(case_id)] = tuple(found)
    except StudyError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise StudyError(f"{source}: not a lesion truth file as described in app/study/froc_study.py ({error!r})") \
            from error
    return LesionTruth(rule, lesions, spacing)


def load_lesion_truth(path: str | Path) -> LesionTruth:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StudyError(f"{path}: not a readable lesion truth file ({error})") from error
    return lesion_truth_from_dict(data, path)


def check_truth_file(truth: LesionTruth, cases: Mapping[str, CaseEntry], source: str | Path,
                     shapes_of: Callable[[str], Mapping[str, tuple[int, int]]] | None = None) -> tuple[str, ...]:
    """The checks a lesion list gets when a study is created (``app.study.lesions``), for a truth file given
    later: each lesion on a breast that is not normal in the case list, all its views on that one breast, each
    view one the case's exam has and its centre inside that image. A truth file that put a lesion on a normal
    case made it abnormal in the analysis without a word. Returns cautions: the cases whose exam could not be
    read (moved or archived since the reading), whose lesions' places were not checked.

    Raises:
        StudyError: naming ``source``, the case, the lesion and what is wrong.
    """
    from app.study.lesions import exam_shapes  # noqa: PLC0415 - reads the exams
    from inference.errors import MammoError  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415

    shapes_of = shapes_of or exam_shapes
    unread: list[str] = []
    for case_id, lesions in truth.lesions.items():
        case = cases.get(case_id)
        if case is None or not lesions:
            continue  # an unknown case is named by stored_froc_data; one without lesions is normal
        shapes = None
        for lesion in lesions:
            where = f"{source}: case {case_id}: lesion {lesion.lesion_id!r}"
            breasts = set()
            for outline in lesion.outlines:
                try:
                    view = View.parse(outline.view)
                except ValueError:
                    raise StudyError(f"{where}: {outline.view!r} is not a view (L-CC, R-CC, L-MLO or R-MLO)") from None
                breasts.add(view.laterality.value)
                truth_of_breast = case.truth_left if view.laterality.value == "L" else case.truth_right
                if truth_of_breast in ("normal", "none"):
                    side = "left" if view.laterality.value == "L" else "right"
                    raise StudyError(f"{where} is on {view.value}, but the {side} breast is {truth_of_breast} in "
                                     "the study's case list")
                if shapes is None:
                    try:
                        shapes = shapes_of(case.exam_path)
                    except (MammoError, OSError):
                        shapes = {}
                        unread.append(case_id)
                if case_id in unread:
                    continue
                shape = shapes.get(view.value)
                if shape is None:
                    raise StudyError(f"{where} is on {view.value}, but the case's exam has no {view.value} image")
                row, col = outline.centre
                if not (0 <= row < shape[0] and 0 <= col < shape[1]):
                    raise StudyError(f"{where}: its centre (row {row:g}, col {col:g}) is outside the {view.value} "
                                     f"image ({shape[0]} rows × {shape[1]} columns)")
            if len(breasts) > 1:
                raise StudyError(f"{where} is given on both breasts' views")
            views = [outline.view for outline in lesion.outlines]
            twice = sorted({v for v in views if views.count(v) > 1})
            if twice:
                raise StudyError(f"{where} is given twice on {', '.join(twice)}")
    for case_id, case in cases.items():  # as at creation: a malignant breast without a lesion made marks on its
        if case.training:  # cancer false positives (training cases are never scored)
            continue
        marked = {View.parse(o.view).laterality.value for lesion in truth.lesions.get(case_id, ())
                  for o in lesion.outlines}
        for breast, side, truth_of_breast in (("L", "left", case.truth_left), ("R", "right", case.truth_right)):
            if truth_of_breast == "malignant" and breast not in marked:
                raise StudyError(f"{source}: case {case_id}: the {side} breast is malignant in the study's case list "
                                 "but the truth file gives it no lesion")
    if not unread:
        return ()
    return (f"the exam(s) of case(s) {', '.join(unread[:5])}{' …' if len(unread) > 5 else ''} could not be read: "
            f"the places of their lesions in {source} were not checked against the images",)


def _weights(lesions: tuple[Lesion, ...]) -> list[float]:
    if not lesions:
        return []
    given = [lesion.weight for lesion in lesions]
    if all(w is None for w in given):
        return [1.0 / len(lesions)] * len(lesions)
    if any(w is None for w in given):
        raise StudyError("give a weight for every lesion of a case, or for none (equal weights)")
    return [float(w) for w in given]


def stored_froc_data(store: Store, study_id: int, truth: LesionTruth,
                     chosen: Collection[str] | None = None) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(the study in the localisation JSON form, cautions); ``chosen``: only these readers (default all).

    Every committed mark of the non-training cases is scored with ``truth.rule``; a mark's rating is its
    confidence (1–5). Only the cases that every reader has read in every modality are kept (an unread case is
    not a case without marks); the cautions say how many were left out.

    Raises:
        StudyError: a case whose study truth is malignant has no lesion in ``truth``, a lesion's view has
            no pixel spacing, or the study has no committed reads.
    """
    info = study_info(store, study_id)
    every_case = study_cases(store, study_id)
    cases = {c: e for c, e in every_case.items() if not e.training}
    training = set(every_case) - set(cases)  # their lesions (required when they are malignant) are not scored
    for case_id, entry in cases.items():
        malignant = "malignant" in (entry.truth_left, entry.truth_right)
        if malignant and not truth.lesions.get(case_id):
            raise StudyError(f"case {case_id} is malignant in the study but the truth file gives no lesion for it")
    unknown = sorted(set(truth.lesions) - set(cases) - training)
    if unknown:
        raise StudyError(f"the truth file names cases that are not in the study: {', '.join(unknown[:5])}")
    reads = [(r, c, m) for r, c, m in store.read(  # the training cases' reads are not the study's
        "SELECT reader, case_id, modality FROM study_reads WHERE study_id=? "
        "GROUP BY reader, case_id, modality HAVING COUNT(*) = 2", (study_id,))
        if c in cases and (chosen is None or r in chosen)]
    if not reads:
        raise StudyError("no committed reads yet: the results need at least one finished reading")
    modalities = sorted({m for _, _, m in reads})
    cautions = []
    started = {r for r, _, _ in reads}
    idle = [r for r in info["readers"] if r not in started and (chosen is None or r in chosen)]
    if idle:  # as in the ROC results: a reader who has read nothing yet is not in the interim results
        cautions.append(f"reader(s) {', '.join(idle)} have read nothing yet and are left out; results are interim")
    readers = [r for r in info["readers"] if r in started]
    done = {(r, c, m) for r, c, m in reads}
    complete = [c for c in sorted(cases) if all((r, c, m) in done for r in readers for m in modalities)]
    if not complete:
        raise StudyError(f"no case is read yet by every reader who has begun ({', '.join(readers)}) in every "
                         f"modality ({', '.join(modalities)}): the localisation results need at least one")
    if len(complete) < len(cases):
        cautions.append(f"the study is not finished: {len(cases) - len(complete)} of {len(cases)} case(s) are not yet "
                        "read by every reader in every modality and are left out; results are interim")
    marks_by_read: dict[tuple[str, str, str], list[ReaderMark]] = {}
    for reader, case_id, modality, view, row, col, label, confidence in store.read(
            "SELECT reader, case_id, modality, view, row, col, label, confidence FROM study_marks WHERE study_id=? "
            "ORDER BY reader, case_id, modality, mark_id", (study_id,)):
        marks_by_read.setdefault((reader, case_id, modality), []).append(ReaderMark(view, row, col, label, confidence))
    marks = []
    for case_id in complete:
        lesions = truth.lesions.get(case_id, ())
        for reader in readers:
            for modality in modalities:
                scored = score_marks(marks_by_read.get((reader, case_id, modality), []), lesions,
                                     truth.spacing.get(case_id, {}), truth.rule, case=case_id)
                marks += json_marks(scored, modality, reader, case_id)
    data = {
        "name": info["name"],
        "description": {"type": "FROC", "source": "Mammo Reader study", "rating": "confidence 1-5",
                        "scoring": asdict(truth.rule)},
        "modalities": modalities,
        "readers": readers,
        "cases": [{"id": c, "abnormal": bool(truth.lesions.get(c)),
                   "lesions": [{"id": lesion.lesion_id, "weight": w}
                               for lesion, w in zip(truth.lesions.get(c, ()), _weights(truth.lesions.get(c, ())))]}
                  for c in complete],
        "marks": marks,
    }
    return data, tuple(cautions)
