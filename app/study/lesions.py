"""The truth of a localisation (FROC) study: where each case's lesions are, stored with the study.

A lesion list is a CSV, one row per lesion per view:

```
case_id,breast,view,mask,row,col,radius_mm,weight,lesion,spacing_mm
c01,L,CC,masks/c01_lcc.png,,,,,1,
c01,L,MLO,,1210,640,8,,1,
c02,R,CC,P_00173_RIGHT_CC_ROI.dcm,,,,0.6,a,
c02,R,CC,,900,700,5,0.4,b,
```
- ``breast`` L or R; ``view`` CC or MLO (or L-CC … as the reading screen names views).
- the lesion's place: ``mask`` (a PNG or DICOM mask the size of the view's image, non-zero inside the outline;
  CBIS-DDSM's ROI masks are such files; the path is relative to the CSV), or ``row``, ``col`` (its centre in
  the view's original image pixels) with an optional ``radius_mm`` (its extent as a circle). A mask's centre is
  its centroid unless ``row``, ``col`` are given.
- ``weight`` (optional): the lesion's weight in wAFROC; give it for every lesion of a case or for none (equal
  weights); a case's weights sum to 1.
- ``lesion`` (optional): rows of one case with the same value are one lesion seen on several views; without
  it each row is a lesion of its own, numbered 1, 2 … within the case.
- ``spacing_mm`` (optional): the view's pixel spacing when the exam's images do not carry one (PNG); the
  spacing read from the exam's images (DICOM Pixel Spacing / Imager Pixel Spacing) wins.
- ``seg`` (instead of a place): a DICOM Segmentation of the case's exam (path relative to the CSV). Each
  segment is one lesion, ``S<segment number>``, on every view whose image a frame of it references (the
  Referenced SOP Instance UID matched to the exam's images); breast, view and outline come from the SEG, so
  ``breast``, ``view`` and the place are left empty. The lesions of a SEG have equal weights.

Lesions drawn by the coordinator in the study set-up (``app/ui/study/lesion_dialog.py``) are circles saved with
:func:`add_drawn_lesion`.

Normal cases have no row. A breast whose truth is normal (or none) may not have a lesion, and every malignant
breast needs one: a study is never created with a truth the analysis would refuse later.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools

import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.study.cases import CaseEntry, refuse_misshapen_row, study_csv_rows
from app.study.errors import StudyError
from app.study.froc_study import LesionTruth, _weights
from app.study.localisation import Lesion, LesionOutline, ScoringRule
from app.study.store import Store
from app.text_lists import unread_columns

LESION_COLUMNS = ("case_id", "breast", "view", "mask", "row", "col", "radius_mm", "weight", "lesion", "spacing_mm",
                  "seg")

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
BREASTS = {"l": "L", "left": "L", "r": "R", "right": "R"}
WEIGHT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class StudyLesion:
    """One lesion on one view, as stored with the study. ``mask``: the outline cropped to its bounding box,
    its pixel [0, 0] at ``mask_origin`` (row, col) of the view's image; ``spacing``: the view's (row, col)
    pixel spacing in mm, None when unknown."""

    case_id: str
    lesion_id: str
    breast: str
    view: str
    centre: tuple[float, float]
    radius_mm: float | None = None
    mask: np.ndarray | None = None
    mask_origin: tuple[int, int] = (0, 0)
    spacing: tuple[float, float] | None = None
    weight: float | None = None
    mask_shape: tuple[int, int] | None = None  # a mask file's size: it must be the view's image's


def _read_mask(path: Path, source: Path, line: int) -> np.ndarray:
    """A mask file (PNG or DICOM) as booleans, non-zero inside the outline."""
    if not path.is_file():
        raise StudyError(f"{source}: line {line}: the lesion mask {path} does not exist")
    image = None
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        import pydicom  # noqa: PLC0415

        try:
            image = pydicom.dcmread(path).pixel_array
        except Exception:  # noqa: BLE001  (not DICOM: tried as an image below)
            image = None
    if image is None:
        import cv2  # noqa: PLC0415

        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim not in (2, 3):
        raise StudyError(f"{source}: line {line}: the lesion mask {path} cannot be read as a PNG or DICOM image")
    mask = np.asarray(image)
    mask = mask.any(axis=2) if mask.ndim == 3 else mask > 0
    if not mask.any():
        raise StudyError(f"{source}: line {line}: the lesion mask {path} is empty (no pixel inside the outline)")
    return mask


def _crop(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    rows, cols = np.nonzero(mask)
    top, left = int(rows.min()), int(cols.min())
    return mask[top: int(rows.max()) + 1, left: int(cols.max()) + 1].copy(), (top, left)


def _number(row: Mapping[str, str], key: str, source: Path, line: int, positive: bool = False) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as error:
        raise StudyError(f"{source}: line {line}: {key} {text!r} is not a number") from error
    if not math.isfinite(value) or (positive and value <= 0):
        raise StudyError(f"{source}: line {line}: {key} must be a {'positive' if positive else 'finite'} number, "
                         f"not {text!r}")
    return value


def _view(row: Mapping[str, str], source: Path, line: int) -> tuple[str, str]:
    breast = BREASTS.get((row.get("breast") or "").strip().lower())
    if breast is None:
        raise StudyError(f"{source}: line {line}: breast must be L or R, not {row.get('breast')!r}")
    view = (row.get("view") or "").strip().upper()
    if view in ("CC", "MLO"):
        view = f"{breast}-{view}"
    if view not in VIEWS:
        raise StudyError(f"{source}: line {line}: view must be CC or MLO, not {row.get('view')!r}")
    if view[0] != breast:
        raise StudyError(f"{source}: line {line}: view {view} is not a view of the {breast} breast")
    return breast, view


@dataclass(frozen=True)
class ExamImageRef:
    """What a SEG's frame is matched against: one image of the case's exam (its view, its stored (rows, cols)
    and pixel spacing)."""

    view: str
    shape: tuple[int, int]
    spacing: tuple[float, float] | None


def exam_images(exam_path: str) -> dict[str, ExamImageRef]:
    """The exam's screening images by SOP Instance UID (PNG images have none and are left out)."""
    from inference.intake.exam import load_exam  # noqa: PLC0415

    exam = load_exam(exam_path)
    return {image.sop_instance_uid: ExamImageRef(str(view), tuple(image.pixels.shape[:2]),
                                                 tuple(float(v) for v in image.pixel_spacing)
                                                 if image.pixel_spacing else None)
            for view, image in exam.views.items() if image.sop_instance_uid}


SEGMENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _frame_source(frame, seg) -> str:
    """The SOP Instance UID of the image a SEG frame was derived from ("" when the frame does not say)."""
    for derivation in frame.get("DerivationImageSequence", []):
        for source in derivation.get("SourceImageSequence", []):
            if source.get("ReferencedSOPInstanceUID"):
                return str(source.ReferencedSOPInstanceUID)
    referenced = [i.ReferencedSOPInstanceUID for series in seg.get("ReferencedSeriesSequence", [])
                  for i in series.get("ReferencedInstanceSequence", [])]
    return str(referenced[0]) if len(referenced) == 1 else ""


def segmentation_lesions(seg_path: str | Path, case_id: str, images: Mapping[str, ExamImageRef],
                         source: str = "the lesion list") -> list[StudyLesion]:
    """The lesions of a DICOM Segmentation of one case's exam: each segment one lesion (``S<number>``) on the
    view of every image its frames reference, its outline the frame's pixels (a FRACTIONAL segment: at least
    half the maximum fraction).

    Raises:
        StudyError: the file is not a readable Segmentation, a frame references an image that is not in the
            case's exam or has another size than it, or no segment has a pixel; naming ``source`` and the file.
    """
    import pydicom  # noqa: PLC0415

    seg_path = Path(seg_path)
    where = f"{source}: case {case_id}: the segmentation {seg_path}"
    try:
        seg = pydicom.dcmread(seg_path)
        if seg.get("SOPClassUID") != SEGMENTATION_SOP_CLASS:
            raise StudyError(f"{where} is DICOM but not a Segmentation (SEG)")
        pixels = np.asarray(seg.pixel_array)
    except StudyError:
        raise
    except Exception as error:  # noqa: BLE001  (pydicom raises many kinds for a damaged or foreign file)
        raise StudyError(f"{where} cannot be read as a DICOM Segmentation ({error})") from error
    if pixels.ndim == 2:
        pixels = pixels[None]
    threshold = 0
    if str(seg.get("SegmentationType", "BINARY")) == "FRACTIONAL":
        threshold = float(seg.get("MaximumFractionalValue", 255)) / 2.0
    labels = {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in seg.get("SegmentSequence", [])}
    frames = seg.get("PerFrameFunctionalGroupsSequence", [])
    if len(frames) != pixels.shape[0]:
        raise StudyError(f"{where} has {pixels.shape[0]} frames but describes {len(frames)}")
    shared = (seg.get("SharedFunctionalGroupsSequence") or [None])[0]
    masks: dict[tuple[int, str], np.ndarray] = {}
    for index, frame in enumerate(frames):
        identification = frame.get("SegmentIdentificationSequence") or (
            shared.get("SegmentIdentificationSequence") if shared is not None else None)
        number = int(identification[0].ReferencedSegmentNumber) if identification else 1
        uid = _frame_source(frame, seg)
        image = images.get(uid)
        if image is None:
            raise StudyError(f"{where} segments an image that is not in the case's exam (SOP Instance UID "
                             f"{uid or 'not given'}): was it made on another exam?")
        mask = pixels[index] > threshold
        if mask.shape != image.shape:
            raise StudyError(f"{where}: its frame on {image.view} is {mask.shape[0]} × {mask.shape[1]} pixels, the "
                             f"image is {image.shape[0]} × {image.shape[1]}")
        key = (number, image.view)
        masks[key] = masks[key] | mask if key in masks else mask
    lesions = []
    for (number, view), mask in sorted(masks.items()):
        if not mask.any():
            continue
        cropped, origin = _crop(mask)
        rows_in, cols_in = np.nonzero(cropped)
        centre = (float(rows_in.mean() + origin[0]), float(cols_in.mean() + origin[1]))
        image = next(i for i in images.values() if i.view == view)
        lesions.append(StudyLesion(case_id, f"S{number}", view[0], view, centre, None, cropped, origin,
                                   image.spacing, None))
    if not lesions:
        raise StudyError(f"{where} has no segment with a pixel inside it ({', '.join(labels.values()) or 'none'})")
    breasts = {(l.lesion_id, l.breast) for l in lesions}
    if len(breasts) != len({l.lesion_id for l in lesions}):
        raise StudyError(f"{where}: a segment covers views of both breasts; one segment is one lesion of one breast")
    return lesions


def read_lesion_list(path: str | Path, cases: Sequence[CaseEntry] = (),
                     images_of: Callable[[str], Mapping[str, ExamImageRef]] = exam_images) -> list[StudyLesion]:
    """Read a lesion list CSV (see the module docstring); masks are read and cropped, spacing is what the
    CSV gives (``with_exam_spacing`` replaces it by the exam's). A row with a ``seg`` is read against its
    case's exam (``cases``; ``images_of(exam_path)`` gives its images).

    Raises:
        StudyError: the file cannot be read, or a line lacks a place, names a bad breast or view, holds a
            malformed number or an unreadable mask; the message names the file and the line.
    """
    path = Path(path)
    rows = study_csv_rows(path, "the lesion list")
    for column in unread_columns(list(rows[0][1]) if rows else [], LESION_COLUMNS):
        # a misspelt column ("wieght") was only said not to be read, and its values (the weights) were dropped
        if alike := difflib.get_close_matches(column.lower(), LESION_COLUMNS, n=1, cutoff=0.75):
            raise StudyError(f"{path}: the column {column!r} is none a lesion list has: is it {alike[0]!r}? (a "
                             f"lesion list reads {', '.join(LESION_COLUMNS)})")
    lesions: list[StudyLesion] = []
    numbered: dict[str, int] = {}
    exams = {c.case_id: c.exam_path for c in cases}
    columns = len([c for c in rows[0][1] if c is not None]) if rows else 0
    for line, row in rows:
        # as the case list: a value past the header's columns was dropped without a word (a coordinator's test)
        refuse_misshapen_row(path, line, row, columns)
        # the header's names in any case, as the case list's ("Weight" was read as no column at all)
        row = {key.strip().lower() if isinstance(key, str) else key: value for key, value in row.items()}
        case_id = (row.get("case_id") or "").strip()
        if not case_id:
            raise StudyError(f"{path}: line {line} has no case_id")
        seg_name = (row.get("seg") or "").strip()
        if seg_name:
            if case_id not in exams:
                raise StudyError(f"{path}: line {line}: case {case_id!r} is not in the study's case list (a SEG is "
                                 "read against the case's exam)")
            if any((row.get(k) or "").strip() for k in ("mask", "row", "col", "radius_mm", "weight", "lesion")):
                raise StudyError(f"{path}: line {line}: a row with a seg takes its lesions, places and equal weights "
                                 "from the SEG; leave mask, row, col, radius_mm, weight and lesion empty")
            seg_path = Path(seg_name) if Path(seg_name).is_absolute() else path.parent / seg_name
            lesions += segmentation_lesions(seg_path, case_id, images_of(exams[case_id]), f"{path}: line {line}")
            continue
        breast, view = _view(row, path, line)
        centre_row, centre_col = _number(row, "row", path, line), _number(row, "col", path, line)
        radius = _number(row, "radius_mm", path, line, positive=True)
        weight = _number(row, "weight", path, line, positive=True)
        spacing_mm = _number(row, "spacing_mm", path, line, positive=True)
        mask_name = (row.get("mask") or "").strip()
        mask, origin, mask_shape = None, (0, 0), None
        if mask_name:
            mask_path = Path(mask_name) if Path(mask_name).is_absolute() else path.parent / mask_name
            whole = _read_mask(mask_path, path, line)
            mask, origin = _crop(whole)
            mask_shape = (int(whole.shape[0]), int(whole.shape[1]))
        if (centre_row is None) != (centre_col is None):
            raise StudyError(f"{path}: line {line}: give both row and col of the lesion's centre, or neither")
        if centre_row is None:
            if mask is None:
                raise StudyError(f"{path}: line {line}: give the lesion's place: a mask, or its centre (row, col)")
            rows_in, cols_in = np.nonzero(mask)
            centre_row, centre_col = float(rows_in.mean() + origin[0]), float(cols_in.mean() + origin[1])
        lesion_id = (row.get("lesion") or "").strip()
        if fnmatch.fnmatchcase(lesion_id, DRAWN_PATTERN):  # saving drawn lesions replaces every such id
            raise StudyError(f"{path}: line {line}: lesion {lesion_id!r}: ids that start with {DRAWN_PREFIX} and a "
                             "digit are kept for lesions drawn in the study set-up; give this one another id")
        if not lesion_id:
            numbered[case_id] = numbered.get(case_id, 0) + 1
            lesion_id = str(numbered[case_id])
        lesions.append(StudyLesion(case_id, lesion_id, breast, view, (float(centre_row), float(centre_col)), radius,
                                   mask, origin, (spacing_mm, spacing_mm) if spacing_mm else None, weight,
                                   mask_shape))
    if not lesions:
        raise StudyError(f"{path}: the lesion list is empty")
    return lesions


def check_lesions(lesions: Sequence[StudyLesion], cases: Sequence[CaseEntry], source: str = "the lesion list") -> None:
    """Every lesion on a known case and on a breast that is not normal; every malignant breast with a
    lesion; one breast and one weight per lesion, a lesion once per view; weights all given or none, summing to 1.

    Raises:
        StudyError: naming ``source``, the case and what is wrong.
    """
    by_case = {c.case_id: c for c in cases}
    seen: dict[tuple[str, str], StudyLesion] = {}
    views: set[tuple[str, str, str]] = set()
    for lesion in lesions:
        case = by_case.get(lesion.case_id)
        if case is None:
            raise StudyError(f"{source}: case {lesion.case_id!r} is not in the study's case list")
        truth = case.truth_left if lesion.breast == "L" else case.truth_right
        if truth in ("normal", "none"):
            side = "left" if lesion.breast == "L" else "right"
            raise StudyError(f"{source}: case {lesion.case_id}: the {side} breast is {truth} in the case list but "
                             f"has lesion {lesion.lesion_id!r}")
        key = (lesion.case_id, lesion.lesion_id)
        first = seen.setdefault(key, lesion)
        if first.breast != lesion.breast or first.weight != lesion.weight:
            raise StudyError(f"{source}: case {lesion.case_id}: lesion {lesion.lesion_id!r} is given different "
                             "breasts or weights on its rows")
        if (lesion.case_id, lesion.lesion_id, lesion.view) in views:
            raise StudyError(f"{source}: case {lesion.case_id}: lesion {lesion.lesion_id!r} is given twice on "
                             f"{lesion.view}")
        views.add((lesion.case_id, lesion.lesion_id, lesion.view))
    for case in cases:
        for breast, truth in (("L", case.truth_left), ("R", case.truth_right)):
            if truth == "malignant" and not any(l.case_id == case.case_id and l.breast == breast for l in lesions):
                side = "left" if breast == "L" else "right"
                raise StudyError(f"{source}: case {case.case_id}: the {side} breast is malignant but has no lesion")
        weights = [l.weight for (c, _), l in seen.items() if c == case.case_id]
        if weights and any(w is not None for w in weights):
            if any(w is None for w in weights):
                raise StudyError(f"{source}: case {case.case_id}: give a weight for every lesion of the case or for "
                                 "none (equal weights)")
            if abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
                raise StudyError(f"{source}: case {case.case_id}: the lesion weights sum to {sum(weights):g}, not 1")


def exam_geometry(exam_path: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[float, float]]]:
    """Each view's image size (rows, cols), and its (row, col) pixel spacing in mm where the image has one."""
    from inference.intake.exam import load_exam  # noqa: PLC0415

    exam = load_exam(exam_path)
    shapes = {str(view): (int(image.pixels.shape[0]), int(image.pixels.shape[1])) for view, image in exam.views.items()}
    return shapes, {str(view): tuple(float(v) for v in image.pixel_spacing) for view, image in exam.views.items()
                    if image.pixel_spacing}


def exam_spacing(exam_path: str) -> dict[str, tuple[float, float]]:
    """Each view's (row, col) pixel spacing in mm from the exam's images (views without one left out)."""
    return exam_geometry(exam_path)[1]


def exam_shapes(exam_path: str) -> dict[str, tuple[int, int]]:
    """Each view's image size (rows, cols)."""
    return exam_geometry(exam_path)[0]


def check_lesion_places(lesions: Sequence[StudyLesion], cases: Sequence[CaseEntry],
                        shapes_of: Callable[[str], Mapping[str, tuple[int, int]]] = exam_shapes,
                        source: str = "the lesion list") -> None:
    """Every lesion on a view its case's exam has, its centre inside that view's image, and a mask file the
    image's size (a mask is drawn on the image it outlines): otherwise no mark could ever localise it.

    Raises:
        StudyError: naming ``source``, the case, the lesion and what is wrong.
    """
    exams = {c.case_id: c.exam_path for c in cases}
    read: dict[str, Mapping[str, tuple[int, int]]] = {}
    for lesion in lesions:
        if lesion.case_id not in read:
            read[lesion.case_id] = shapes_of(exams[lesion.case_id])
        shape = read[lesion.case_id].get(lesion.view)
        where = f"{source}: case {lesion.case_id}: lesion {lesion.lesion_id!r}"
        if shape is None:
            raise StudyError(f"{where} is on {lesion.view}, but the case's exam has no {lesion.view} image")
        if lesion.mask_shape is not None and tuple(lesion.mask_shape) != tuple(shape):
            raise StudyError(f"{where}: its mask is {lesion.mask_shape[0]} × {lesion.mask_shape[1]} pixels, the "
                             f"{lesion.view} image {shape[0]} × {shape[1]}: give a mask drawn on that image")
        row, col = lesion.centre
        if not (0 <= row < shape[0] and 0 <= col < shape[1]):
            raise StudyError(f"{where}: its centre (row {row:g}, col {col:g}) is outside the {lesion.view} image "
                             f"({shape[0]} rows × {shape[1]} columns)")


def with_exam_spacing(lesions: Sequence[StudyLesion], cases: Sequence[CaseEntry],
                      spacing_of: Callable[[str], Mapping[str, tuple[float, float]]] = exam_spacing,
                      source: str = "the lesion list") -> list[StudyLesion]:
    """The lesions with each view's pixel spacing read from the case's exam (else the CSV's ``spacing_mm``).

    Raises:
        StudyError: a lesion's view has no spacing from either (its distance in mm could not be measured).
    """
    exams = {c.case_id: c.exam_path for c in cases}
    read: dict[str, Mapping[str, tuple[float, float]]] = {}
    out = []
    for lesion in lesions:
        if lesion.case_id not in read:
            read[lesion.case_id] = spacing_of(exams[lesion.case_id])
        spacing = read[lesion.case_id].get(lesion.view) or lesion.spacing
        if spacing is None:
            raise StudyError(f"{source}: case {lesion.case_id}: the {lesion.view} image has no pixel spacing; give "
                             "spacing_mm in the lesion list so that distances can be measured in mm")
        out.append(replace(lesion, spacing=spacing))
    return out


def lesions_for_new_study(path: str | Path, cases: Sequence[CaseEntry],
                          distance_mm: float | None = None) -> tuple[list[StudyLesion], ScoringRule]:
    """A new localisation study's lesions read from their list and checked against its cases and their exams
    (each exam read once), with the rule that will score marks against them (``distance_mm``: None for the
    default). ``study create --lesions`` and the workstation's New study form both come here.

    Raises:
        StudyError: the list, a lesion's place or the distance is refused (the message names the list).
    """
    lesions = read_lesion_list(path, cases)  # a SEG row is read against its case's exam
    check_lesions(lesions, cases, str(path))
    geometry = functools.cache(exam_geometry)
    check_lesion_places(lesions, cases, shapes_of=lambda exam: geometry(exam)[0], source=str(path))
    lesions = with_exam_spacing(lesions, cases, spacing_of=lambda exam: geometry(exam)[1], source=str(path))
    try:
        rule = ScoringRule() if distance_mm is None else ScoringRule(distance_mm=distance_mm)
    except ValueError as error:
        raise StudyError(str(error)) from error
    return lesions, rule


def lesions_summary(lesions: Sequence[StudyLesion], rule: ScoringRule) -> str:
    """'3 lesion(s) on 2 case(s); a mark localises …': what a study made with them says."""
    return (f"{len({(l.case_id, l.lesion_id) for l in lesions})} lesion(s) on {len({l.case_id for l in lesions})} "
            f"case(s); a mark localises a lesion inside its outline or within {rule.distance_mm:g} mm of its centre")


def _png(mask: np.ndarray) -> bytes:
    import cv2  # noqa: PLC0415

    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise ValueError("PNG encoding of a lesion mask failed")
    return data.tobytes()


def insert_lesions(db: sqlite3.Connection, study_id: int, lesions: Sequence[StudyLesion], rule: ScoringRule) -> None:
    """Write the lesions and the scoring rule inside the caller's transaction (``create_study``)."""
    db.execute("INSERT INTO study_scoring VALUES (?, ?, ?)", (study_id, rule.distance_mm, int(rule.use_outline)))
    for l in lesions:
        spacing = l.spacing or (None, None)
        db.execute("INSERT INTO study_lesions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (study_id, l.case_id, l.lesion_id, l.breast, l.view, l.centre[0], l.centre[1], l.radius_mm,
                    None if l.mask is None else _png(l.mask), l.mask_origin[0], l.mask_origin[1], spacing[0],
                    spacing[1], l.weight))


def study_lesions(store: Store, study_id: int) -> list[StudyLesion]:
    import cv2  # noqa: PLC0415

    out = []
    for (case_id, lesion_id, breast, view, row, col, radius, png, mask_row, mask_col, spacing_row, spacing_col,
         weight) in store.read(
            "SELECT case_id, lesion_id, breast, view, centre_row, centre_col, radius_mm, mask_png, mask_row, mask_col, "
            "spacing_row_mm, spacing_col_mm, weight FROM study_lesions WHERE study_id=? "
            "ORDER BY case_id, lesion_id, view", (study_id,)):
        mask = None
        if png is not None:
            mask = cv2.imdecode(np.frombuffer(bytes(png), np.uint8), cv2.IMREAD_GRAYSCALE) > 0
        spacing = (spacing_row, spacing_col) if spacing_row is not None else None
        out.append(StudyLesion(case_id, lesion_id, breast, view, (row, col), radius, mask, (mask_row, mask_col),
                               spacing, weight))
    return out


def scoring_rule(store: Store, study_id: int) -> ScoringRule | None:
    """The study's scoring rule, or None for a study made without lesions (an ROC study)."""
    rows = store.read("SELECT distance_mm, use_outline FROM study_scoring WHERE study_id=?", (study_id,))
    return ScoringRule(float(rows[0][0]), bool(rows[0][1])) if rows else None


def stored_lesion_truth(store: Store, study_id: int) -> LesionTruth | None:
    """The study's lesions, views' spacings and rule as :class:`LesionTruth`, or None when it has none."""
    rule = scoring_rule(store, study_id)
    if rule is None:
        return None
    grouped: dict[str, dict[str, list[StudyLesion]]] = {}
    spacing: dict[str, dict[str, tuple[float, float]]] = {}
    for lesion in study_lesions(store, study_id):
        grouped.setdefault(lesion.case_id, {}).setdefault(lesion.lesion_id, []).append(lesion)
        if lesion.spacing is not None:
            spacing.setdefault(lesion.case_id, {})[lesion.view] = lesion.spacing
    lesions = {}
    for case_id, by_id in grouped.items():
        lesions[case_id] = tuple(
            Lesion(lesion_id, tuple(LesionOutline(v.view, v.centre, v.mask, v.mask_origin, v.radius_mm) for v in views),
                   views[0].weight)
            for lesion_id, views in by_id.items())
        _weights(lesions[case_id])  # all weights or none (checked when created)
    return LesionTruth(rule, lesions, spacing)


# ----------------------------------------------------------------------------------------------------------
# lesions drawn by the coordinator in the study set-up (app/ui/study/lesion_dialog.py): circles, Qt-free

DRAWN_PREFIX = "D"  # a drawn lesion's id: D1, D2 … within the case (a SEG's are S1 …, a list's its own)
DRAWN_PATTERN = f"{DRAWN_PREFIX}[0-9]*"  # GLOB: case-sensitive, unlike LIKE


@dataclass(frozen=True)
class DrawnLesion:
    """A circle the coordinator drew on one view: its centre in the view's original image pixels (row, col),
    its radius in mm, and a relative weight (None: equal weights; given ones are scaled to sum to 1)."""

    view: str
    centre: tuple[float, float]
    radius_mm: float
    weight: float | None = None


def circle_from_drag(start: tuple[float, float], end: tuple[float, float],
                     spacing: tuple[float, float]) -> tuple[tuple[float, float], float]:
    """(centre, radius in mm) of a circle dragged from its centre ``start`` to a point of its edge ``end``
    (image pixels, row and col), measured with the view's (row, col) pixel spacing in mm."""
    radius = math.hypot((end[0] - start[0]) * spacing[0], (end[1] - start[1]) * spacing[1])
    return (float(start[0]), float(start[1])), float(radius)


def drawn_lesions(store: Store, study_id: int, case_id: str) -> list[DrawnLesion]:
    """The case's drawn lesions, as the dialog shows them (the weights as stored, summing to 1, or None)."""
    rows = store.read("SELECT view, centre_row, centre_col, radius_mm, weight FROM study_lesions WHERE study_id=? "
                      "AND case_id=? AND lesion_id GLOB ? ORDER BY CAST(SUBSTR(lesion_id, 2) AS INTEGER)",
                      (study_id, case_id, DRAWN_PATTERN))
    return [DrawnLesion(view, (r, c), radius, weight) for view, r, c, radius, weight in rows]


def save_drawn_lesions(store: Store, study_id: int, case_id: str, lesions: Sequence[DrawnLesion],
                       spacing: Mapping[str, tuple[float, float]], **_: object) -> int:
    """Replace the case's drawn lesions by ``lesions`` (one lesion each, ids D1, D2 …), with the study's
    scoring rule when it has none yet (the default distance); returns how many were saved. Runs SQL: call it
    off the GUI thread (extra keywords, a worker's progress and cancel, are ignored).

    Raises:
        StudyError: the case is not in the study, a lesion lies on a breast the case list calls normal, a view
            has no pixel spacing, a radius is not positive, or weights are given for some lesions and not
            others (or the case also has lesions from a list or a SEG and weights are given).
    """
    from app.study.cases import study_cases  # noqa: PLC0415

    case = study_cases(store, study_id).get(case_id)
    if case is None:
        raise StudyError(f"case {case_id!r} is not in this study")
    for lesion in lesions:
        if lesion.view not in VIEWS:
            raise StudyError(f"case {case_id}: {lesion.view!r} is not a view (L-CC, R-CC, L-MLO or R-MLO)")
        truth = case.truth_left if lesion.view[0] == "L" else case.truth_right
        if truth in ("normal", "none"):
            side = "left" if lesion.view[0] == "L" else "right"
            raise StudyError(f"case {case_id}: the {side} breast is {truth} in the case list; a lesion cannot be "
                             "drawn on it")
        if not (lesion.radius_mm > 0 and math.isfinite(lesion.radius_mm)):
            raise StudyError(f"case {case_id}: a lesion's radius must be more than 0 mm (drag from its centre "
                             "to its edge)")
        if spacing.get(lesion.view) is None:
            raise StudyError(f"case {case_id}: the {lesion.view} image has no pixel spacing, so a radius in mm "
                             "cannot be measured on it")
    given = [l.weight for l in lesions]
    weights: list[float | None] = [None] * len(lesions)
    if any(w is not None for w in given):
        if any(w is None or not (w > 0 and math.isfinite(w)) for w in given):
            raise StudyError(f"case {case_id}: give a positive weight for every lesion of the case or for none "
                             "(equal weights)")
        others = store.read("SELECT COUNT(*) FROM study_lesions WHERE study_id=? AND case_id=? AND lesion_id NOT "
                            "GLOB ?", (study_id, case_id, DRAWN_PATTERN))[0][0]
        if others:
            raise StudyError(f"case {case_id} also has lesions from the lesion list or a SEG: weights can only be "
                             "given when every lesion of the case is drawn")
        total = sum(given)
        weights = [w / total for w in given]
    elif lesions and store.read("SELECT COUNT(*) FROM study_lesions WHERE study_id=? AND case_id=? AND lesion_id "
                                "NOT GLOB ? AND weight IS NOT NULL", (study_id, case_id, DRAWN_PATTERN))[0][0]:
        raise StudyError(f"case {case_id}: its lesions from the lesion list have weights; a lesion drawn beside them "
                         "would have none")

    def work(db: sqlite3.Connection) -> int:
        db.execute("INSERT OR IGNORE INTO study_scoring VALUES (?, ?, ?)",
                   (study_id, ScoringRule().distance_mm, int(ScoringRule().use_outline)))
        db.execute("DELETE FROM study_lesions WHERE study_id=? AND case_id=? AND lesion_id GLOB ?",
                   (study_id, case_id, DRAWN_PATTERN))
        for number, (lesion, weight) in enumerate(zip(lesions, weights, strict=True), start=1):
            row_mm, col_mm = spacing[lesion.view]
            db.execute("INSERT INTO study_lesions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (study_id, case_id, f"{DRAWN_PREFIX}{number}", lesion.view[0], lesion.view, lesion.centre[0],
                        lesion.centre[1], lesion.radius_mm, None, 0, 0, row_mm, col_mm, weight))
        return len(lesions)

    return store.submit(work).result()
