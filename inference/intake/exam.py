"""Exam intake: DICOM and PNG mammograms read right, or refused with a reason that names the file.

Loading follows "examine, then load" (3D Slicer's DICOM plugins): odd but usable input becomes a warning
attached to the image (view taken from the file name, MONOCHROME1 inverted, noisy background removed ...), a
file that cannot be read is named with its reason while the others load, and what makes the exam unsafe to
read as one (images of two patients or two studies) raises :class:`ExamError`.

Two arrays per view:
* ``pixels``: the stored pixels after the Modality LUT, in stored orientation: what the viewer windows.
* ``model_image``: what :func:`inference.families.preprocess.prepare_view` receives: dense tissue bright
  (MONOCHROME1 inverted), background exactly 0 and tissue > 0, same orientation as ``pixels`` (whether the
  image is stored mirrored is the per-view ``horizontal_flip`` flag), so model coordinates map straight
  back onto ``pixels``.

Laterality: which way the breast faces is read from the pixels. An image whose breast faces the way of the
other side is a *possible laterality error* (a mislabelled or swapped file looks exactly like a mirrored
one): it is listed in ``Exam.laterality_conflicts`` until the reader confirms it (stored mirrored) or moves it
to the other slot, and the analysis does not count it before that. Only when every view of the exam faces the
unusual way is the exam taken as stored mirrored as a whole (the reference's per-exam ``horizontal_flip``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.errors import ExamError, UnreadablePixelsError
from inference.intake.identifiers import remove_identifiers
from inference.intake.image import (
    DisplayWindow,
    PatientInfo,
    ViewImage,
    faces_right,
    is_mask_name,
    mlo_likeness,
    synthesized_marks,
)
from inference.intake.views import Laterality, Projection, View

__all__ = [
    "DisplayWindow",
    "Exam",
    "ExamError",
    "Laterality",
    "PatientInfo",
    "Projection",
    "View",
    "ViewImage",
    "load_exam",
    "load_view",
    "person_name_key",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass(frozen=True)
class Exam:
    """Up to four screening views of one exam, plus images kept aside.

    Attributes:
        views: the screening slots that were filled.
        aside: images that are not screening views (spot, magnification, implant-displaced, ML ...).
        exam_id: accession number, else study UID, else the folder name.
        study_date: YYYYMMDD or "".
        labels: optional ground truth or notes (for example from a case list).
        patient: identifiers for display; empty after :meth:`deidentify`.
        warnings: exam-level notes (which of several candidates was used, files that could not be read ...).
        source: the folder, manifest or first file.
        refused: (file name, reason) of each file that could not be loaded.
        laterality_conflicts: views whose breast faces the way of the other side and that the reader has
            not yet confirmed or moved: possible laterality errors, not counted by the analysis.
        accession: the accession number ("" when unknown).
        unreadable: per empty screening slot whose file named its view but whose pixels could not be used
            (truncated, not finite, all one value ...): "file name: reason", shown in the slot.
    """

    views: dict[View, ViewImage]
    aside: tuple[ViewImage, ...] = ()
    exam_id: str = ""
    study_date: str = ""
    labels: dict = field(default_factory=dict)
    patient: PatientInfo = field(default_factory=PatientInfo, repr=False)
    warnings: tuple[str, ...] = ()
    source: Path | None = None
    refused: tuple[tuple[str, str], ...] = ()
    laterality_conflicts: tuple[View, ...] = ()
    accession: str = ""
    unreadable: dict[View, str] = field(default_factory=dict)

    def check_analyzable(self) -> None:
        """Raise :class:`ExamError` when a view cannot be analysed, or there is none."""
        if not self.views:
            raise ExamError("the exam has no screening view (L-CC, R-CC, L-MLO, R-MLO) to analyse", self.source)
        for image in self.views.values():
            if not image.analyzable:
                raise ExamError(
                    "this is a 'For Processing' image (raw detector data); only 'For Presentation' images "
                    "can be analysed",
                    image.source,
                )

    def model_images(self) -> dict[View, np.ndarray]:
        """The arrays to hand to the model, per view; raises :class:`ExamError` if not analysable."""
        self.check_analyzable()
        return {v: self.views[v].model_image for v in View if v in self.views}

    def horizontal_flips(self) -> dict[View, bool]:
        return {v: img.horizontal_flip for v, img in self.views.items()}

    def deidentify(self) -> Exam:
        """A copy without patient identifiers (name, ID, birth date) anywhere in it: its notes and those of its
        images lose them too (CBIS-DDSM's note named "Mass-Test_P_00820_LEFT_CC" and the patient)."""
        identifiers = set()
        for patient in [self.patient, *(img.patient for img in (*self.views.values(), *self.aside))]:
            identifiers |= {patient.patient_id, patient.name, patient.birth_date, *re.split(r"[\^\s,]+", patient.name)}

        def clean(notes: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(remove_identifiers(note, identifiers) for note in notes)

        def anonymous(img: ViewImage) -> ViewImage:
            return dataclasses.replace(img, patient=PatientInfo(), warnings=clean(img.warnings))

        return dataclasses.replace(self, views={v: anonymous(img) for v, img in self.views.items()},
                                   aside=tuple(anonymous(img) for img in self.aside), patient=PatientInfo(),
                                   warnings=clean(self.warnings),
                                   refused=tuple((name, remove_identifiers(reason, identifiers))
                                                 for name, reason in self.refused))

    def laterality_message(self, view: View) -> str:
        """What the reader is told about a possible laterality error on ``view``."""
        other = View.of("R" if view.laterality == Laterality.LEFT else "L", view.projection)
        text = (f"POSSIBLE LATERALITY ERROR: {self.views[view].source.name} is labelled {view.value}, but the "
                f"breast faces like a {'right' if view.laterality == Laterality.LEFT else 'left'} breast. "
                f"Confirm that it is stored mirrored, or move it to {other.value}.")
        if other in self.laterality_conflicts:
            text += f" {other.value} faces the other way too: the two {view.projection.value} images look swapped."
        return text

    def confirm_orientation(self, view: View) -> Exam:
        """The reader confirms that ``view`` is labelled right and stored mirrored: it counts again."""
        if view not in self.laterality_conflicts:
            return self
        image = self.views[view]
        note = "the reader confirmed: stored mirrored, laterality label right"
        views = {**self.views, view: image.relabelled(warnings=image.warnings + (note,),
                                                      reader_decision="confirmed stored mirrored")}
        return dataclasses.replace(self, views=views,
                                   laterality_conflicts=tuple(v for v in self.laterality_conflicts if v != view))

    def move_view(self, view: View, target: View) -> Exam:
        """Put the image of ``view`` into ``target`` (swapping with the image there, if any); the orientation of
        each moved image is worked out again for its new side."""
        if view == target:
            return self
        views = dict(self.views)
        moving = {target: views.pop(view)}
        if target in views:
            moving[view] = views.pop(target)
        conflicts = [v for v in self.laterality_conflicts if v not in (view, target)]
        for slot, image in moving.items():
            flip = faces_right(image.model_image) != (slot.laterality == Laterality.LEFT)
            note = f"moved from {image.view.value} to {slot.value} by the reader"
            views[slot] = image.relabelled(view=slot, horizontal_flip=flip, warnings=image.warnings + (note,),
                                           reader_decision=f"moved from {image.view.value}")
            if flip:
                conflicts.append(slot)
        ordered = {v: views[v] for v in View if v in views}
        unreadable = {v: text for v, text in self.unreadable.items() if v not in ordered}
        return dataclasses.replace(self, views=ordered, laterality_conflicts=tuple(v for v in View if v in conflicts),
                                   unreadable=unreadable)


# ----------------------------------------------------------------------------------------------------------
# DICOM


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _load_dicom(path: Path, view_hint: View | None) -> ViewImage:
    from inference.intake import dicom as dicom_intake  # noqa: PLC0415 - pydicom is imported only when DICOM is read

    return dicom_intake.load_dicom_view(path, view_hint)


# ----------------------------------------------------------------------------------------------------------
# public loaders


def load_view(path: str | Path, view: View | str | None = None) -> ViewImage:
    """Load one image file (DICOM by content, or PNG/TIFF), raising :class:`ExamError` for anything refused.

    Args:
        path: the file.
        view: the view when known from elsewhere (a manifest); else it is read from the file.
    """
    path = Path(path)
    hint = View.parse(view) if view is not None else None
    if path.is_symlink() and not path.exists():
        raise ExamError(f"a link to a file that does not exist ({os.readlink(path)})", path)
    if not path.is_file():
        raise ExamError("the file does not exist", path)
    try:
        if path.suffix.lower() in IMAGE_SUFFIXES and not _is_dicom(path):
            from inference.intake.png import load_png_view  # noqa: PLC0415

            return load_png_view(path, hint)
        return _load_dicom(path, hint)
    except ExamError:
        raise
    except MemoryError as error:
        raise ExamError("the image is too large to load", path) from error
    except PermissionError as error:  # not damaged: the account may not read it (a share's rights, a locked file)
        raise ExamError("permission denied: this account may not read the file (check its rights or who owns "
                        "it)", path) from error
    except OSError as error:
        if not isinstance(error, (FileNotFoundError, IsADirectoryError)) and error.strerror:  # a share offline,
            raise ExamError(f"the file could not be read: {error.strerror.lower()}", path) from error  # an I/O error
        raise ExamError(f"the file is damaged or unreadable ({type(error).__name__}: {error})", path) from error
    except Exception as error:  # noqa: BLE001 - damaged files make decoders raise anything; report, not crash
        logger.info("refused %s: %s", path.name, type(error).__name__)
        raise ExamError(f"the file is damaged or unreadable ({type(error).__name__}: {error})", path) from error


SMALLEST_MAMMOGRAM = 320  # pixels on the long side: no mammogram is this small (a thumbnail, an icon, a crop)


def _with_size_note(image: ViewImage) -> ViewImage:
    """A note on an exam's image far smaller than a mammogram: the models read it enlarged to their input, and
    gave a 50 × 50 PNG confident numbers without a word (a researcher's finding). Said, not refused: a test image
    may be analysed on purpose; and said of exams only, not of a training set's patches (``load_view``)."""
    rows, cols = image.pixels.shape[:2]
    if max(rows, cols) >= SMALLEST_MAMMOGRAM:
        return image
    note = (f"the image is {cols} × {rows} pixels, far smaller than a mammogram (thousands of pixels a side): "
            "the models read it enlarged, and their answers on it mean little")
    return image.relabelled(warnings=(*image.warnings, note))


def _nested_note(folder: Path, depth: int = 4) -> str:
    """Where the images lie when a folder has none of its own but its sub-folders do (a PACS export's patient /
    study / series folders): the folder was said to hold no mammogram, which sent the user looking for none."""
    found: dict[Path, int] = {}

    def walk(here: Path, level: int) -> None:
        if level > depth or len(found) > 20:
            return
        try:
            subfolders = sorted(p for p in here.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for sub in subfolders:
            try:
                count = len(_candidates_files(sub))
            except OSError:
                continue
            if count:
                found[sub] = count
            walk(sub, level + 1)

    walk(folder, 1)
    if not found:
        return ""
    first = next(iter(found))
    return (f"; {sum(found.values())} image file(s) lie in {len(found)} sub-folder(s) of it (the first: "
            f"{first.relative_to(folder)}): give the folder that holds an exam's images")


def _candidates_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink() and not path.exists():  # a dangling link: refused by name (load_view), not skipped
            if path.suffix.lower() in (*IMAGE_SUFFIXES, ".dcm", ".dicom", "") and not is_mask_name(path):
                files.append(path)
            continue
        if not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if is_mask_name(path):
                continue
            files.append(path)
        elif path.suffix.lower() in (".dcm", ".dicom", "") or _is_dicom(path):
            files.append(path)
    return files


def _read_manifest(path: Path) -> list[tuple[Path, View | None]]:
    """A CSV (columns ``path``/``file`` and ``view``) or JSON (list of {path, view} or {path: view})."""
    entries: list[tuple[Path, View | None]] = []
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            exams = data if isinstance(data, list) else [data]
            if any(isinstance(d, dict) and {"L-CC", "R-CC", "L-MLO", "R-MLO"} & set(d) for d in exams):
                raise ExamError("this is an exam list of the GMIC repositories (views named, not paths): open "
                                "the folder of its images instead", path)
            if isinstance(data, list) and any(not isinstance(d, dict) or "path" not in d for d in data):
                raise ExamError('a JSON manifest is a list of {"path": ..., "view": ...} objects or a '
                                '{"path": "view"} map; an entry of this one is no object with a "path"', path)
            items = data.items() if isinstance(data, dict) else ((d["path"], d.get("view")) for d in data)
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
            others = [c for c in reader.fieldnames or () if c not in ("path", "file")]
            if others and "view" not in others:  # a reviewer's "file,v": its views were silently not read
                raise ExamError(f"the manifest has no 'view' column (its header has {', '.join(reader.fieldnames)}): "
                                "name the views' column 'view', or give the path column alone to take the views "
                                "from the files", path)
            items = ((r.get("path") or r.get("file"), r.get("view")) for r in rows)
        for file_name, view in items:
            if not file_name:
                raise ValueError("a row has no path")
            file_path = Path(file_name)
            if not file_path.is_absolute():
                file_path = path.parent / file_path
            entries.append((file_path, View.parse(view) if view else None))
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ExamError(f"the manifest could not be read ({error})", path) from error
    if not entries:
        raise ExamError("the manifest lists no image", path)
    return entries


PROJECTION_MARGIN = 0.15  # how much more MLO-like one candidate must look than another to tell them apart


SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and its multi-frame kinds (…7.1 to …7.4; not …77, VL)


def derived_kind(image: ViewImage) -> str:
    """What makes ``image`` a copy rather than the acquired mammogram ("" for one): a Secondary Capture (a
    screenshot, an annotated export) or an image whose ImageType says SECONDARY."""
    sop_class = str(image.study.get("sop_class_uid", ""))
    if sop_class == SECONDARY_CAPTURE or sop_class.startswith(SECONDARY_CAPTURE + "."):
        return "a Secondary Capture"
    if "SECONDARY" in _image_type(image)[1:2]:
        return "a secondary image (ImageType …\\SECONDARY)"
    return ""


def _image_type(image: ViewImage) -> list[str]:
    return str(image.study.get("image_type", "")).split("\\")


def _synthesized(image: ViewImage) -> str:
    """The ImageType values that mark a 2-D image synthesized from tomosynthesis ("GENERATED_2D"), else "": GE's
    conventional images are DERIVED\\PRIMARY like its V-Preview, which was analysed in their place."""
    return synthesized_marks(str(image.study.get("image_type", "")))


def _number(image: ViewImage, key: str) -> int:
    try:
        return int(float(image.study.get(key, "") or -1))
    except (TypeError, ValueError):
        return -1


def _order(image: ViewImage) -> tuple[int, int]:
    """Where an image comes in its study when no time says: its series' number, then its number in the series
    (instance numbers start again in each series: a retake sent in a new series is instance 1)."""
    return _number(image, "series_number"), _number(image, "instance_number")


def _source_preference(candidates: list[ViewImage]) -> tuple[list[ViewImage], list[ViewImage], str]:
    """The candidates a slot may take first, the others, and why: a 'For Presentation' image before one 'For
    Processing' (which cannot be analysed: it refused a whole exam its modality had also sent processed), the
    mammogram before a copy (``derived_kind``: an annotated screenshot had been analysed and its results sent
    to the PACS in place of the mammogram), one whose series description or protocol says nothing of an
    implant-displaced, magnified or spot view before one whose text does, a conventional image before one
    synthesized from tomosynthesis, and an ORIGINAL image before a DERIVED one. A 'For Presentation'
    image processed from the detector's is often DERIVED\\PRIMARY (GE's are): the mammogram, when alone."""
    def rank(img: ViewImage) -> tuple[int, int, int, int, int]:
        return (0 if img.analyzable else 1, 1 if derived_kind(img) else 0, 1 if img.study.get("text_marks") else 0,
                1 if _synthesized(img) else 0, 1 if _image_type(img)[0] == "DERIVED" else 0)

    best = min(rank(img) for img in candidates)
    first = [img for img in candidates if rank(img) == best]
    later = [img for img in candidates if rank(img) != best]
    if not later:
        return first, later, ""
    why = []
    for img in later:  # the first way it ranks after the chosen (both copies, one ORIGINAL: that is the reason)
        step = next(i for i, (a, b) in enumerate(zip(rank(img), best, strict=True)) if a != b)
        kind = ("a 'For Processing' image", derived_kind(img), img.study.get("text_marks", ""),
                f"a 2-D image synthesized from tomosynthesis (ImageType …{_synthesized(img)})",
                "a derived image (ImageType DERIVED)")[step]
        why.append(f"{img.source.name} is {kind}")
    return first, later, "; ".join(why)


def _latest_reason(first: ViewImage, second: ViewImage) -> str:
    """Which rule put ``first`` before ``second``, in words: "latest acquisition, then file name" was said of two
    files that had no time, told apart by their names."""
    if first.acquisition != second.acquisition:
        return "latest acquisition"
    if _order(first) != _order(second):
        return "latest series and instance number: no acquisition time tells them apart"
    return "file name: no acquisition time or instance number tells them apart"


CHOICE_NOTE = re.compile(r"^\d+ images for [LR]-(?:CC|MLO): used ")  # _choose's note: which image took a slot


def _usual_facing(slots: dict[View, list[ViewImage]]) -> bool | None:
    """How the exam's images face (``horizontal_flip``), from the slots with one image each when they agree: an
    exam stored mirrored as a whole faces the other way throughout; None when no slot has one image or they
    differ (then no image is preferred for its facing)."""
    facings = {images[0].horizontal_flip for images in slots.values() if len(images) == 1}
    return facings.pop() if len(facings) == 1 else None


def _choose(candidates: list[ViewImage], usual_flip: bool | None = False) -> tuple[ViewImage, str]:
    """A deterministic choice among several images for one slot, stated in words.

    An original 'For Presentation' image comes before a 'For Processing' one and before a copy (Secondary
    Capture, ImageType DERIVED): ``_source_preference``. Then one facing the way the exam's other images face
    (``usual_flip``, from :func:`_usual_facing`) comes before one facing the other breast's way (a header naming
    the wrong side). Then the pixels are asked: when one candidate looks
    clearly more like the other projection (the pectoral muscle of an MLO saved as CC, see ``mlo_likeness``),
    the ones that agree with the slot win. Among the rest: latest acquisition, then the latest series and instance
    number, then file name.
    """
    view = candidates[0].view
    everyone = candidates
    candidates, set_aside, source_reason = _source_preference(candidates)
    facing = [img for img in candidates if img.horizontal_flip == usual_flip]
    if usual_flip is not None and facing and len(facing) < len(candidates):  # one faces the way of the other
        # breast's image (against the exam's other views): a header naming the wrong side took this slot and
        turned = [img for img in candidates if img.horizontal_flip != usual_flip]
        names = ", ".join(img.source.name for img in turned)  # set the true image aside
        turned_reason = (f"{names} face{'s' if len(turned) == 1 else ''} the way of the other breast's "
                         f"{view.projection.value} (its laterality may be wrong)")
        # the headers' own disagreement, with every value, is the evidence the site needs (it was said of the
        # image alone, and an image kept aside has no view whose notes carry it)
        turned_reason += "".join(f"; {img.source.name}: {note}" for img in turned for note in img.warnings
                                 if note.startswith("laterality:"))
        source_reason = "; ".join(r for r in (source_reason, turned_reason) if r)
        candidates, set_aside = facing, [*turned, *set_aside]
    if len(candidates) == 1:
        chosen = candidates[0]
        others = ", ".join(img.source.name for img in set_aside)
        return chosen, (f"{len(everyone)} images for {view.value}: used {chosen.source.name} ({source_reason}); "
                        f"kept aside: {others}")
    cues = {id(img): mlo_likeness(img.model_image, img.horizontal_flip, view.laterality) for img in candidates}
    ranked = sorted(candidates, key=lambda img: (img.acquisition, _order(img), str(img.source)), reverse=True)
    valid = [cues[id(img)] for img in candidates if cues[id(img)] == cues[id(img)]]
    reason = _latest_reason(ranked[0], ranked[1])
    if len(valid) == len(candidates) and max(valid) - min(valid) >= PROJECTION_MARGIN:
        wants_mlo = view.projection == Projection.MLO
        best = max(valid) if wants_mlo else min(valid)
        agreeing = [img for img in ranked if abs(cues[id(img)] - best) < PROJECTION_MARGIN]
        chosen_ids = {id(img) for img in agreeing}
        disagreeing = [img for img in ranked if id(img) not in chosen_ids]
        latest = ranked[0]
        ranked = agreeing + disagreeing
        other = "CC" if wants_mlo else "MLO"
        # a weak cue, said as one: a CC retake showing more pectoral muscle looks more MLO-like than the first CC,
        # and the note called it "an MLO view" (a deployer's audit); the older image of the slot is the safer
        # failure (a true CC of this breast), an MLO analysed as CC the worse
        later = (" (the later acquisition: check it)" if disagreeing[0] is latest and latest.acquisition
                 and latest.acquisition > max(img.acquisition for img in agreeing) else "")  # by its time, not by a
        # series or instance number
        reason = (f"the pixels of {', '.join(img.source.name for img in disagreeing)}{later} look more like "
                  f"{'an' if other == 'MLO' else 'a'} {other} view than those of "
                  f"{', '.join(img.source.name for img in agreeing)} (pectoral muscle and shape)"
                  + (f"; then {_latest_reason(*agreeing[:2])}" if len(agreeing) > 1 else ""))
    if source_reason:
        reason = f"{source_reason}; then {reason}"
    ranked += set_aside
    chosen = ranked[0]
    others = ", ".join(img.source.name for img in ranked[1:])
    return chosen, f"{len(everyone)} images for {view.value}: used {chosen.source.name} ({reason}); kept aside: {others}"


# CBIS-DDSM (TCIA) gives every image its own PatientID, "<Mass|Calc>-<Training|Test>_P_<5 digits>_<LEFT|RIGHT>_
# <CC|MLO>" (ROI and crop series add "_<abnormality index>"), and its own StudyInstanceUID.
CBIS_DDSM_ID = re.compile(r"^(?:Mass|Calc)-(?:Training|Test)_(P_\d{5})_(?:LEFT|RIGHT)_(?:CC|MLO)(?:_\d+)?$")


def _dataset_patients(images: list[ViewImage]) -> list[str]:
    """Per image, its CBIS-DDSM patient ("P_00173") when every image's PatientID follows that dataset's
    per-image naming, else []: then the PatientIDs are compared as they are."""
    matches = [CBIS_DDSM_ID.match(image.patient.patient_id) for image in images]
    return [match.group(1) for match in matches if match] if matches and all(matches) else []


def _dataset_patient(images: list[ViewImage]) -> str:
    """The one CBIS-DDSM patient of all the images, else "". Such images are one patient's exam although
    each has its own PatientID and StudyInstanceUID."""
    numbers = set(_dataset_patients(images))
    return numbers.pop() if len(numbers) == 1 else ""


def _has_identity(image: ViewImage) -> bool:
    """Whether the image names its patient or study; a study date alone does not (another patient's image,
    stripped of all but its date, was read as this patient's)."""
    return bool(image.patient.patient_id or image.patient.name or image.study.get("study_uid")
                or image.study.get("accession"))


def _one_image_per_instance(images: list[ViewImage], warnings: list[str]) -> list[ViewImage]:
    """One image per SOP Instance UID: a copy of a file (the same UID, pixels, view and laterality) is that
    image, counted once and said (it was taken for a retake, the original "kept aside"); two files of one UID
    whose pixels or headers' view differ are an archive's error, said with both names, and both stay candidates
    (a copy relabelled R took the L-CC's place when the first by name was kept)."""
    def same_pixels(a: ViewImage, b: ViewImage) -> bool:
        return a.pixels.shape == b.pixels.shape and np.array_equal(a.pixels, b.pixels)

    def named(img: ViewImage) -> str:
        return " ".join(filter(None, (img.laterality, img.view_label))) or "none"

    kept: list[ViewImage] = []
    by_uid: dict[str, list[ViewImage]] = {}
    for image in sorted(images, key=lambda img: str(img.source)):
        uid = image.sop_instance_uid
        others = by_uid.setdefault(uid, []) if uid else []
        copied = next((o for o in others if same_pixels(o, image)
                       and (o.view, o.laterality) == (image.view, image.laterality)), None)
        if copied is not None:
            warnings.append(f"{copied.source.name} and {image.source.name} are one image (the same SOP Instance "
                            f"UID {uid} and pixels): counted once, as {copied.source.name}")
            continue
        kept.append(image)
        if not others:
            others.append(image)
            continue
        original = others[0]
        others.append(image)
        names = f"{original.source.name} and {image.source.name}"
        differ = "pixels" if not same_pixels(original, image) else \
            f"headers' views ({named(original)} and {named(image)})"
        warnings.append(f"{names} share the SOP Instance UID {uid} but their {differ} differ: an archive error (a "
                        "UID is one image's); both were considered, check which is right")
    return [img for img in images if any(img is k for k in kept)]  # in the order loaded


def _without_strangers(images: list[ViewImage], refused: list[tuple[str, str]], warnings: list[str]) -> list[ViewImage]:
    """The images without those that carry no patient or study identity at all beside images that do: such an
    image cannot be shown to be this patient's (it may be another's, stripped), so it is left out, named."""
    if not any(_has_identity(image) for image in images):
        return images
    kept = []
    for image in images:
        if _has_identity(image):
            kept.append(image)
            continue
        reason = ("it carries no patient or study identity (no PatientID, name, StudyInstanceUID or accession number; "
                  "a date is no identity) while the "
                  "other images do: left out, so that another patient's image is never read with this exam")
        refused.append((image.source.name, reason))
        warnings.append(f"{image.source.name}: {reason}")
    return kept


def _refused_of_another_patient(paths: list[Path], this_patient: Callable[[str], bool]) -> list[str]:
    """Notes on files that could not be loaded whose header names another patient: the exam opened as its
    patient's with only "could not be loaded" said of them, and a folder mixing two patients went unnoticed.
    The other patient's ID is not shown (not this exam's to show)."""
    import pydicom  # noqa: PLC0415 - only when a file was refused

    notes = []
    for path in paths:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
        except Exception:  # noqa: BLE001 - not a DICOM file, or unreadable: nothing to compare
            continue
        other = str(header.get("PatientID") or "").strip()
        if other and not this_patient(other):
            notes.append(f"{path.name} is another patient's file (its Patient ID is not this exam's): this folder "
                         "mixes patients; check it")
    return notes


# the GMIC sample naming, <exam number>_<view>.png (0_L-CC.png, 1_R_MLO.png): only names of exactly that form
# give an exam number (other datasets put an image ID first, e.g. INbreast's 20586908_…_MG_R_CC_ANON.png)
PNG_EXAM_NUMBER = re.compile(r"^(\d+)_[LR][-_]?(?:CC|MLO)\.png$", re.IGNORECASE)


def _exam_numbers(images: list[ViewImage]) -> None:
    """Refuse PNGs whose names give more than one exam number (``0_L-CC.png`` beside ``1_L_CC.png``): they are
    two exams, and a PNG has no header to say whose images they are."""
    numbers: dict[str, list[str]] = {}
    for image in images:
        match = PNG_EXAM_NUMBER.match(image.source.name)
        if match:
            numbers.setdefault(match.group(1), []).append(image.source.name)
    if len(numbers) > 1:
        described = "; ".join(f"exam {n}: {', '.join(sorted(names))}" for n, names in sorted(numbers.items()))
        raise ExamError(f"the PNG file names give {len(numbers)} exams ({described}) and were not loaded as one "
                        "exam; open each exam's images on their own", images[0].source.parent)


def _identities(images: list[ViewImage]) -> None:
    """Refuse images of more than one patient or one study: they are not one exam (an exam-level maximum
    over two patients is a wrong-patient reading). The message names the files and the identities.

    CBIS-DDSM images of one patient (see :func:`_dataset_patient`) are one exam: their per-image patient IDs
    and study UIDs are not compared (their study dates still are)."""
    def describe(groups: dict[str, list[ViewImage]]) -> str:
        return "; ".join(f"{key}: {', '.join(img.source.name for img in group[:4])}"
                         + (" …" if len(group) > 4 else "") for key, group in groups.items())

    dataset_patients = _dataset_patients(images)
    dataset_patient = _dataset_patient(images)
    patients: dict[str, list[ViewImage]] = {}
    for index, image in enumerate(images):
        key = (f"{dataset_patients[index]} (CBIS-DDSM)" if dataset_patients
               else image.patient.patient_id or image.patient.name)
        if key:
            issuer = image.study.get("issuer", "")
            patients.setdefault(f"patient {key}" + (f" ({issuer})" if issuer else ""), []).append(image)
    if len(patients) > 1:
        raise ExamError(f"the images belong to {len(patients)} different patients and were not loaded as one "
                        f"exam: {describe(patients)}; open each patient's images on their own",
                        images[0].source.parent)
    if not dataset_patients:
        _one_name_and_birth_date(images, describe)
    studies: dict[str, list[ViewImage]] = {}
    for image in images:
        uid, date = image.study.get("study_uid", ""), image.study.get("date", "")
        uid = "" if dataset_patient else uid  # one per image in that dataset: only the dates say the study
        if uid or date:
            studies.setdefault(f"study {uid or '?'} of {date or 'unknown date'}", []).append(image)
    dates = {image.study.get("date") for image in images if image.study.get("date")}
    uids = {image.study.get("study_uid") for image in images if image.study.get("study_uid") and not dataset_patient}
    if len(uids) > 1 or len(dates) > 1:
        raise ExamError(f"the images come from {max(len(uids), len(dates))} different studies and were not loaded "
                        f"as one exam: {describe(studies)}; open each study on its own (an earlier one is a prior)",
                        images[0].source.parent)


def person_name_key(name: str) -> str:
    """A DICOM person name compared as one: its alphabetic group, upper case, trailing empty components and
    spaces around components dropped ("Doe^Jane^^" is "DOE^JANE")."""
    alphabetic = name.split("=")[0]
    return "^".join(" ".join(part.split()) for part in alphabetic.upper().split("^")).rstrip("^")


def _one_name_and_birth_date(images: list[ViewImage], describe) -> None:
    """Refuse images of one patient ID that give the patient different names or birth dates (a name corrected
    on one view and resent): which is right cannot be told, and a report would carry both. The message names
    the files, never the names (patient identifiers are not logged)."""
    for attribute, what, same in (("name", "patient names", person_name_key), ("birth_date", "birth dates", str.strip)):
        given: dict[str, list[ViewImage]] = {}
        for image in images:
            value = same(getattr(image.patient, attribute))
            if value:
                given.setdefault(value, []).append(image)
        if len(given) > 1:
            groups = {f"{what[:-1]} {number}": group for number, group in enumerate(given.values(), start=1)}
            raise ExamError(f"the images give one patient {len(given)} different {what} and were not loaded as "
                            f"one exam: {describe(groups)}; correct them at the source", images[0].source.parent)


def _laterality_conflicts(views: dict[View, ViewImage]) -> tuple[tuple[View, ...], list[str]]:
    """The views to confirm before they count, and exam-level notes."""
    mirrored = [v for v, img in views.items() if img.horizontal_flip]
    if mirrored and len(mirrored) == len(views) and len(views) > 1:
        return (), ["every view faces the unusual way: the exam is taken as stored mirrored as a whole"]
    return tuple(mirrored), []


def _media_directory(root: Path) -> Path | None:
    """The DICOMDIR of a CD or USB export at ``root`` (the file itself, or one in the folder), or None."""
    if root.is_file():
        return root if root.name.upper() == "DICOMDIR" else None
    if root.is_dir():
        return next((p for p in sorted(root.iterdir()) if p.name.upper() == "DICOMDIR" and p.is_file()), None)
    return None


def _media_files(dicomdir: Path) -> list[Path]:
    """The files a DICOMDIR lists (a CD's or USB stick's images lie in PT…/ST…/SE… folders beside it): it was
    read as an image ("no Pixel Data element") and the images were never looked at."""
    from pydicom.fileset import FileSet  # noqa: PLC0415

    try:
        listed = [Path(instance.path) for instance in FileSet(dicomdir)]
    except Exception as error:  # noqa: BLE001 - a damaged DICOMDIR makes pydicom raise anything
        raise ExamError(f"the media directory (DICOMDIR) cannot be read ({type(error).__name__}: {error}); give "
                        "the folder that holds the images", dicomdir) from error
    if not listed:
        raise ExamError("the media directory (DICOMDIR) lists no image", dicomdir)
    return listed


def _hints(root: Path) -> list[tuple[Path, View | None]]:
    """The files an exam at ``root`` is read from, each with the view a manifest gives it: a folder's candidates,
    the files a DICOMDIR lists, a manifest's entries, or the file itself. A folder the account may not read is
    said so (it was Python's bare "Permission denied")."""
    try:
        return _listed(root)
    except PermissionError as error:
        raise ExamError("permission denied: this account may not read the folder or its files (check their rights "
                        "or who owns them)", root) from error


def _listed(root: Path) -> list[tuple[Path, View | None]]:
    dicomdir = _media_directory(root)
    if dicomdir is not None:
        return [(p, None) for p in _media_files(dicomdir)]
    if root.is_dir():
        hints = [(p, None) for p in _candidates_files(root)]
        if not hints:
            raise ExamError("the folder holds no mammogram (no DICOM or PNG file)" + _nested_note(root), root)
        return hints
    if root.is_file() and root.suffix.lower() in (".csv", ".json"):
        return _read_manifest(root)
    if root.exists():
        return [(root, None)]
    raise ExamError("no such file or folder", root)


def exam_files(source: str | Path) -> list[Path]:
    """The image files an exam at ``source`` would be read from (none where they cannot be listed): for what a
    message about them must not name."""
    try:
        return [path for path, _view in _hints(Path(source))]
    except (OSError, ExamError):
        return []


def load_exam(source: str | Path | Iterable[str | Path], *, workers: int = 4) -> Exam:
    """Load an exam from a folder, a list of files, or a manifest (CSV/JSON of path -> view).

    Views load in parallel. A file that cannot be read is named with its reason in ``Exam.refused`` and the
    warnings while the others load; :class:`ExamError` is raised when no screening view could be loaded, or
    when the images are not one exam (two patients, two studies).
    """
    warnings: list[str] = []
    hints: list[tuple[Path, View | None]]
    root: Path | None
    if isinstance(source, (str, Path)):
        root = Path(source)
        hints = _hints(root)
    else:  # a file named twice is one image, not two candidates for its view
        given: dict[Path, Path] = {}
        for p in source:  # keyed by the file itself, kept as named (a link's name may say its view)
            given.setdefault(Path(p).resolve(), Path(p))
        hints = [(p, None) for p in given.values()]
        root = hints[0][0] if hints else None
        if not hints:
            raise ExamError("no file was given")

    refused: list[tuple[str, str]] = []
    refused_paths: list[Path] = []
    unreadable: dict[View, str] = {}
    errors: list[ExamError] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hints)))) as pool:
        futures = [(p, pool.submit(load_view, p, v)) for p, v in hints]
        loaded: list[ViewImage] = []
        for path, future in futures:
            try:
                loaded.append(future.result())
            except ExamError as error:
                errors.append(error)
                refused.append((path.name, error.message))
                refused_paths.append(path)
                warnings.append(f"{path.name} could not be loaded: {error.message}")
                if isinstance(error, UnreadablePixelsError) and error.view is not None:
                    unreadable.setdefault(error.view, f"{path.name}: {error.message}")

    if not loaded:
        if len(errors) == 1:
            raise errors[0]
        raise ExamError("no mammogram could be loaded: " + "; ".join(f"{n}: {r}" for n, r in refused), root)
    loaded = _without_strangers(loaded, refused, warnings)
    loaded = [_with_size_note(image) for image in _one_image_per_instance(loaded, warnings)]
    _exam_numbers(loaded)
    _identities(loaded)
    dataset_patient = _dataset_patient(loaded)
    if dataset_patient:
        warnings.append(f"one patient's exam ({dataset_patient}): the identity came from the CBIS-DDSM dataset's "
                        "naming, where every image has its own PatientID (such as "
                        f"{loaded[0].patient.patient_id}) and its own StudyInstanceUID")
    slots: dict[View, list[ViewImage]] = {}
    aside = []
    for image in loaded:
        if image.view is None:
            aside.append(image)
        else:
            slots.setdefault(image.view, []).append(image)
    views = {}
    usual_flip = _usual_facing(slots)
    for view in View:
        candidates = slots.get(view, [])
        if len(candidates) == 1:
            views[view] = candidates[0]
        elif candidates:
            chosen, note = _choose(candidates, usual_flip)
            views[view] = chosen
            aside += [c for c in candidates if c is not chosen]  # identity: images compare by their arrays
            warnings.append(note)
    raw = [v for v, img in views.items() if not img.analyzable]
    only_raw: dict[View, str] = {}
    if raw and len(raw) < len(views):  # the other views are analysed: one raw view refused the whole exam
        for view in raw:
            image = views.pop(view)
            aside.append(image)
            only_raw[view] = unreadable[view] = (
                f"{image.source.name}: only a 'For Processing' image (raw detector data) of this view is here; it "
                "cannot be analysed: ask the modality for its 'For Presentation' image")
    if not views:
        reason = "none of the images is a screening view (L-CC, R-CC, L-MLO, R-MLO)"
        kept = [f"{img.source.name}: {next((w for w in img.warnings if 'kept aside' in w), img.view_label)}"
                for img in aside if img.source is not None]
        if kept:  # each with why (it was said of none)
            reason += "; kept aside: " + "; ".join(kept)
        if refused:
            reason += "; could not be loaded: " + "; ".join(f"{n}: {r}" for n, r in refused)
        raise ExamError(reason, root)
    missing = [v.value for v in View if v not in views]
    # an image set aside (an XCCL, a spot view) is named: it may be the one the reader looks for, and with the
    # four slots filled an exam's ID or magnification views went unmentioned
    others = [f"{img.source.name} ({' '.join(filter(None, (img.laterality, img.view_label))) or 'no view given'})"
              for img in aside if img.view is None and img.source is not None]
    if missing:  # a view sent only 'For Processing' says why (a damaged file's own note says its reason)
        said = [f"{v} ({only_raw[View(v)]})" if View(v) in only_raw else v for v in missing]
        warnings.append(f"missing views: {', '.join(said)}" + (
            f"; not a screening view, kept aside: {', '.join(others)}" if others else ""))
    elif others:
        warnings.append(f"not a screening view, kept aside: {', '.join(others)}")
    conflicts, notes = _laterality_conflicts(views)
    warnings += notes
    first = next(iter(views.values()))
    study = first.study
    exam_id = study.get("accession") or study.get("study_uid") or (
        root.name if root is not None and root.is_dir() else (root.stem if root else "")
    )
    patient = first.patient
    if dataset_patient:  # not one image's UID or per-image ID: the patient, with the dataset's collection
        collections = {image.patient.patient_id.split("_P_")[0] for image in views.values()}
        exam_id = f"{collections.pop()}_{dataset_patient}" if len(collections) == 1 else dataset_patient
        patient = PatientInfo(patient_id=dataset_patient, birth_date=first.patient.birth_date)
        warnings += _refused_of_another_patient(refused_paths, lambda other: dataset_patient in other)
    elif patient.patient_id:
        warnings += _refused_of_another_patient(refused_paths, lambda other: other == patient.patient_id.strip())
    return Exam(
        views=views,
        aside=tuple(aside),
        exam_id=str(exam_id),
        study_date=str(study.get("date", "")),
        patient=patient,
        warnings=tuple(warnings),
        source=root,
        refused=tuple(refused),
        laterality_conflicts=conflicts,
        accession=str(study.get("accession", "")),
        unreadable={v: text for v, text in unreadable.items() if v not in views},
    )
