"""Exam intake: DICOM and PNG mammograms read right, or refused with a reason that names the file.

Loading follows "examine, then load" (3D Slicer's DICOM plugins): odd but usable input becomes a warning
attached to the image (view taken from the file name, MONOCHROME1 inverted, image stored mirrored, noisy
background removed ...), unusable input raises :class:`ExamError`, and nothing else escapes.

Two arrays per view:
* ``pixels``: the stored pixels after the Modality LUT, in stored orientation: what the viewer windows.
* ``model_image``: what :func:`inference.preprocess.prepare_view` receives: dense tissue bright
  (MONOCHROME1 inverted), background exactly 0 and tissue > 0, same orientation as ``pixels`` (whether the
  image is stored mirrored is the per-view ``horizontal_flip`` flag), so model coordinates map straight
  back onto ``pixels``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inference.errors import MammoError
from inference.views import Laterality, Projection, View

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
]

logger = logging.getLogger(__name__)

MAX_PIXELS = 12000 * 12000  # larger than any mammography detector; refuse before allocating
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
NON_IMAGE_TOKENS = ("BENIGN", "MALIGNANT", "MASK", "SEG", "SEGMENTATION")


class ExamError(MammoError):
    """An exam or image that cannot be used, with the file concerned and the reason in plain words."""


@dataclass(frozen=True)
class DisplayWindow:
    """A VOI window: centre/width in stored values (after the Modality LUT), with the file's explanation."""

    center: float
    width: float
    explanation: str = ""
    function: str = "LINEAR"


@dataclass(frozen=True)
class PatientInfo:
    """Identifiers for display only. Never logged; dropped by :meth:`Exam.deidentify`."""

    name: str = ""
    patient_id: str = ""
    birth_date: str = ""


@dataclass(frozen=True)
class ViewImage:
    """One loaded image.

    Attributes:
        view: the screening slot, or None for an image kept aside (spot, magnification, ML ...).
        pixels: (H, W) stored pixels after the Modality LUT, stored orientation.
        model_image: (H, W) float32 input for ``prepare_view``: tissue bright, background exactly 0.
        horizontal_flip: True when the breast faces the unusual way for its side (L facing left, R right).
        source: the file it came from.
        windows: display windows from the file (may be empty); ``auto_window`` is always available.
        invert_display: True when low values display white (MONOCHROME1 or Presentation LUT INVERSE).
        pixel_spacing: (row, col) mm per pixel, or None.
        spacing_source: which attribute gave ``pixel_spacing``.
        laterality_source, view_source: where laterality and projection came from.
        view_label: the projection as found (``CC``, ``MLO``, ``ML``, ``XCCL`` ...), with modifiers.
        orientation: PatientOrientation as stored, or "" .
        analyzable: False for images that may be viewed but not analysed (For Processing).
        warnings: non-fatal oddities, for the UI.
        sop_instance_uid: DICOM SOP Instance UID ("" for PNG).
        acquisition: sortable acquisition date-time string ("" when unknown).
        background_level: the value subtracted to make the background 0 (model-image units).
    """

    view: View | None
    pixels: np.ndarray
    model_image: np.ndarray
    horizontal_flip: bool
    source: Path
    windows: tuple[DisplayWindow, ...] = ()
    invert_display: bool = False
    pixel_spacing: tuple[float, float] | None = None
    spacing_source: str = ""
    laterality_source: str = ""
    view_source: str = ""
    view_label: str = ""
    orientation: str = ""
    analyzable: bool = True
    warnings: tuple[str, ...] = ()
    sop_instance_uid: str = ""
    acquisition: str = ""
    background_level: float = 0.0
    voi_lut_dataset: object | None = field(default=None, repr=False)  # VOI LUT Sequence only (pydicom)
    implant_displaced: bool = False
    study: dict = field(default_factory=dict, repr=False)  # exam-level fields: accession, date, UIDs
    patient: PatientInfo = field(default_factory=PatientInfo, repr=False)

    def auto_window(self) -> DisplayWindow:
        """A window from robust percentiles of the tissue (for files without one)."""
        values = self.pixels[self.model_image > 0] if np.any(self.model_image > 0) else self.pixels
        sample = values.ravel()[:: max(1, values.size // 500_000)]
        low, high = np.percentile(sample, [0.5, 99.5]) if sample.size else (0.0, 1.0)
        return DisplayWindow(center=float(low + high) / 2, width=float(max(high - low, 1.0)), explanation="auto")

    def display_image(self, window: DisplayWindow | None = None) -> np.ndarray:
        """Grey levels in [0, 1] for display, white = dense: VOI (window or LUT), then inversion if needed.

        Uses pydicom's VOI functions (LINEAR, LINEAR_EXACT, SIGMOID; VOI LUT Sequence).
        """
        from pydicom.pixels.processing import apply_voi, apply_windowing  # noqa: PLC0415 - display only

        if window is None and self.voi_lut_dataset is not None:
            lut = self.voi_lut_dataset.VOILUTSequence[0]
            bits = int(lut.LUTDescriptor[2]) or 16
            out = apply_voi(self.pixels, self.voi_lut_dataset, index=0).astype(np.float32)
            out = np.clip(out / float(2**bits - 1), 0.0, 1.0)
        else:
            window = window or (self.windows[0] if self.windows else self.auto_window())
            out = _window(self.pixels, window, apply_windowing)
        return 1.0 - out if self.invert_display else out


def _window(pixels: np.ndarray, window: DisplayWindow, apply_windowing) -> np.ndarray:
    """Apply one VOI window with pydicom and scale its output range to [0, 1]."""
    from pydicom.dataset import Dataset  # noqa: PLC0415

    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 16
    ds.PixelRepresentation = 0
    ds.WindowCenter = window.center
    ds.WindowWidth = max(window.width, 1.0)
    ds.VOILUTFunction = window.function if window.function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR"
    out = apply_windowing(pixels.astype(np.float64), ds)
    return np.clip(out / 65535.0, 0.0, 1.0).astype(np.float32)


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
        warnings: exam-level notes (which of several candidates was used ...).
        source: the folder, manifest or first file.
    """

    views: dict[View, ViewImage]
    aside: tuple[ViewImage, ...] = ()
    exam_id: str = ""
    study_date: str = ""
    labels: dict = field(default_factory=dict)
    patient: PatientInfo = field(default_factory=PatientInfo, repr=False)
    warnings: tuple[str, ...] = ()
    source: Path | None = None

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
        """A copy without patient identifiers (name, ID, birth date) anywhere in it."""
        views = {v: dataclasses.replace(img, patient=PatientInfo()) for v, img in self.views.items()}
        aside = tuple(dataclasses.replace(img, patient=PatientInfo()) for img in self.aside)
        return dataclasses.replace(self, views=views, aside=aside, patient=PatientInfo())


# ----------------------------------------------------------------------------------------------------------
# grey levels and orientation, shared by PNG and DICOM


def background_level(image: np.ndarray) -> tuple[float, str]:
    """Estimate the background level of an image whose tissue is bright.

    A clean image has an exact-minimum background covering a good share of the pixels: its level is that
    minimum. A noisy one (real detectors, film scans) has a background *mode* at the dark end of the
    histogram: its level is where that mode ends (the histogram falls below 2 % of the mode's height, or
    reaches a valley), so that the noise maps to 0 and the faint skin line stays above it.
    """
    sample = image.ravel()[:: max(1, image.size // 1_000_000)].astype(np.float64)
    low = float(sample.min())
    if np.mean(sample == low) >= 0.02:
        return low, "exact"
    high = float(np.percentile(sample, 99.9))
    if high <= low:
        return low, "exact"
    counts, edges = np.histogram(sample, bins=512, range=(low, high))
    smooth = np.convolve(counts, np.ones(3) / 3, mode="same")
    peak = int(np.argmax(smooth[:256]))
    height = smooth[peak]
    end = peak
    while end + 1 < len(smooth) and smooth[end] > 0.02 * height:
        if smooth[end] < 0.5 * height and smooth[end + 1] > smooth[end]:
            break  # a valley between the background mode and the tissue
        end += 1
    return float(edges[end + 1]), "estimated"


def to_model_image(pixels: np.ndarray, dense_is_low: bool) -> tuple[np.ndarray, float, list[str]]:
    """Tissue bright, background exactly 0: invert if needed, then subtract the background level."""
    notes = []
    image = pixels.astype(np.float32)
    if dense_is_low:
        image = float(image.max()) - image
    level, how = background_level(image)
    if how == "estimated":
        notes.append(f"noisy background: level {level:.4g} estimated and set to 0 for the model")
    out = np.clip(image - np.float32(level), 0, None)
    if not np.any(out > 0):
        raise ValueError("no tissue: the image is uniform")
    return out, level, notes


def faces_right(model_image: np.ndarray) -> bool:
    """Whether the breast points to the right (chest wall at the left edge), judged from the pixels."""
    width = model_image.shape[1]
    band = max(1, width // 10)
    tissue = model_image > 0
    return float(tissue[:, :band].mean()) >= float(tissue[:, width - band :].mean())


def _orientation_facing(orientation: str) -> bool | None:
    """PatientOrientation row direction: anterior means the nipple points right; posterior, left."""
    parts = [p for p in re.split(r"[\\/,\s]+", orientation.upper()) if p]
    if len(parts) < 2:
        return None
    if parts[0].startswith("A"):
        return True
    if parts[0].startswith("P"):
        return False
    return None


def _orient(
    model_image: np.ndarray, laterality: Laterality, orientation: str, warnings: list[str]
) -> bool:
    """The view's horizontal_flip flag (stored mirrored), from the pixels; disagreements are warnings."""
    by_pixels = faces_right(model_image)
    expected = laterality == Laterality.LEFT
    by_tag = _orientation_facing(orientation)
    if by_tag is not None and by_tag != by_pixels:
        warnings.append(
            f"PatientOrientation '{orientation}' disagrees with the image content; the image content was used"
        )
    if by_pixels != expected:
        warnings.append(
            "the breast faces the unusual way for its side (image stored mirrored); it was turned for the model"
        )
    return by_pixels != expected


# ----------------------------------------------------------------------------------------------------------
# names and text


_VIEW_IN_TEXT = re.compile(r"(?:^|[^A-Z])(?:(L|R|LEFT|RIGHT)[\s_\-]*(CC|MLO))(?:$|[^A-Z])")
_SIDE_WORD = re.compile(r"(?:^|[^A-Z])(LEFT|RIGHT)(?:$|[^A-Z])")
_PROJECTION_WORD = re.compile(r"(?:^|[^A-Z])(CC|MLO|XCCL|XCCM|ML|LM|LMO|SIO|FB|AT|CV)(?:$|[^A-Z])")


def view_from_text(text: str) -> tuple[Laterality | None, str | None]:
    """Laterality and projection named in free text such as ``0_L-CC``, ``LCC``, ``RIGHT_MLO``."""
    upper = text.upper()
    match = _VIEW_IN_TEXT.search(upper)
    if match:
        return Laterality(match.group(1)[0]), match.group(2)
    compact = re.sub(r"[^A-Z]", "", upper)
    for token, side in (("LCC", "L"), ("RCC", "R"), ("LMLO", "L"), ("RMLO", "R")):
        if compact.endswith(token) or compact == token:
            return Laterality(side), token[1:]
    side = _SIDE_WORD.search(upper)
    projection = _PROJECTION_WORD.search(upper)
    return (Laterality(side.group(1)[0]) if side else None), (projection.group(1) if projection else None)


def _is_mask_name(path: Path) -> bool:
    tokens = set(re.split(r"[^A-Z]+", path.stem.upper()))
    return any(t in tokens for t in NON_IMAGE_TOKENS)


# ----------------------------------------------------------------------------------------------------------
# PNG


def _read_png(path: Path) -> tuple[np.ndarray, list[str]]:
    warnings = []
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ExamError("the file is empty", path)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ExamError("the file is not a readable image (damaged or not a PNG/TIFF)", path)
    if image.ndim == 3:
        channels = image[..., :3]
        if not (np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(channels[..., 1], channels[..., 2])):
            raise ExamError("this is a colour image; mammograms are greyscale", path)
        image = channels[..., 0]
        warnings.append("stored as colour (RGB or palette) with equal channels; read as greyscale")
    if image.dtype == np.uint8:
        warnings.append("8-bit image: only 256 grey levels (mammograms are usually 12 to 16 bit)")
    elif image.dtype not in (np.uint16, np.int16, np.float32):
        image = image.astype(np.float32)
    return image, warnings


def _load_png(path: Path, view_hint: View | None) -> ViewImage:
    pixels, warnings = _read_png(path)
    if view_hint is not None:
        laterality, projection, source = view_hint.laterality, view_hint.projection.value, "manifest"
    else:
        laterality, projection = view_from_text(path.stem)
        source = "file name"
        if laterality is None or projection is None:
            raise ExamError(
                "the view could not be told from the file name; name it like 0_L-CC.png, LCC.png or R_MLO.png, "
                "or list it in a manifest",
                path,
            )
    try:
        model_image, level, notes = to_model_image(pixels, dense_is_low=False)
    except ValueError as error:
        raise ExamError(f"{error}", path) from error
    warnings += notes
    view, aside_reason = _screening_slot(laterality, projection, modifiers=())
    if aside_reason:
        warnings.append(aside_reason)
    flip = _orient(model_image, laterality, "", warnings)
    return ViewImage(
        view=view,
        pixels=pixels,
        model_image=model_image,
        horizontal_flip=flip,
        source=path,
        laterality_source=source,
        view_source=source,
        view_label=projection,
        warnings=tuple(warnings),
        background_level=level,
    )


def _screening_slot(laterality: Laterality, projection: str, modifiers: Sequence[str]) -> tuple[View | None, str]:
    """The screening view for (laterality, projection), or None with the reason it is kept aside."""
    if projection not in ("CC", "MLO"):
        return None, f"{projection} is not a screening view (CC or MLO); kept aside"
    lowered = [m.lower() for m in modifiers]
    for keyword in ("spot", "magnif", "implant"):
        if any(keyword in m for m in lowered):
            return None, f"{', '.join(modifiers)} view; kept aside from the screening slots"
    return View.of(laterality, projection), ""


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
    from inference import dicom_intake  # noqa: PLC0415 - pydicom is imported only when DICOM is read

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
    if not path.is_file():
        raise ExamError("the file does not exist", path)
    try:
        if path.suffix.lower() in IMAGE_SUFFIXES and not _is_dicom(path):
            return _load_png(path, hint)
        return _load_dicom(path, hint)
    except ExamError:
        raise
    except MemoryError as error:
        raise ExamError("the image is too large to load", path) from error
    except Exception as error:  # noqa: BLE001 - damaged files make decoders raise anything; report, not crash
        logger.info("refused %s: %s", path.name, type(error).__name__)
        raise ExamError(f"the file is damaged or unreadable ({type(error).__name__}: {error})", path) from error


def _candidates_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if _is_mask_name(path):
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
            items = data.items() if isinstance(data, dict) else ((d["path"], d.get("view")) for d in data)
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
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


def _choose(candidates: list[ViewImage]) -> tuple[ViewImage, str]:
    """Deterministic choice among several images for one slot: latest acquisition, then file name."""
    ranked = sorted(candidates, key=lambda img: (img.acquisition, str(img.source)), reverse=True)
    chosen = ranked[0]
    others = ", ".join(img.source.name for img in ranked[1:])
    return chosen, (
        f"{len(candidates)} images for {chosen.view.value}: used {chosen.source.name} "
        f"(latest acquisition, then file name); kept aside: {others}"
    )


def load_exam(source: str | Path | Iterable[str | Path], *, workers: int = 4) -> Exam:
    """Load an exam from a folder, a list of files, or a manifest (CSV/JSON of path -> view).

    Views load in parallel. Files that are refused make the whole load fail with :class:`ExamError` naming
    them, except in a folder, where unreadable non-image files are skipped with a warning.
    """
    warnings: list[str] = []
    hints: list[tuple[Path, View | None]]
    root: Path | None
    if isinstance(source, (str, Path)):
        root = Path(source)
        if root.is_dir():
            hints = [(p, None) for p in _candidates_files(root)]
            if not hints:
                raise ExamError("the folder holds no mammogram (no DICOM or PNG file)", root)
        elif root.is_file() and root.suffix.lower() in (".csv", ".json"):
            hints = _read_manifest(root)
        elif root.exists():
            hints = [(root, None)]
        else:
            raise ExamError("no such file or folder", root)
    else:
        hints = [(Path(p), None) for p in source]
        root = hints[0][0] if hints else None
        if not hints:
            raise ExamError("no file was given")

    in_folder = root is not None and root.is_dir()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hints)))) as pool:
        futures = [(p, pool.submit(load_view, p, v)) for p, v in hints]
        loaded: list[ViewImage] = []
        for path, future in futures:
            try:
                loaded.append(future.result())
            except ExamError as error:
                if in_folder and path.suffix.lower() not in IMAGE_SUFFIXES + (".dcm",) and not _is_dicom(path):
                    warnings.append(f"{path.name} skipped: {error.message}")
                    continue
                raise

    slots: dict[View, list[ViewImage]] = {}
    aside = []
    for image in loaded:
        if image.view is None:
            aside.append(image)
        else:
            slots.setdefault(image.view, []).append(image)
    views = {}
    for view in View:
        candidates = slots.get(view, [])
        if len(candidates) == 1:
            views[view] = candidates[0]
        elif candidates:
            chosen, note = _choose(candidates)
            views[view] = chosen
            aside += [c for c in candidates if c is not chosen]
            warnings.append(note)
    if not views and not aside:
        raise ExamError("no mammogram could be loaded", root)
    if not views:
        raise ExamError("none of the images is a screening view (L-CC, R-CC, L-MLO, R-MLO)", root)
    missing = [v.value for v in View if v not in views]
    if missing:
        warnings.append(f"missing views: {', '.join(missing)}")
    first = next(iter(views.values()))
    study = first.study
    exam_id = study.get("accession") or study.get("study_uid") or (
        root.name if root is not None and root.is_dir() else (root.stem if root else "")
    )
    return Exam(
        views=views,
        aside=tuple(aside),
        exam_id=str(exam_id),
        study_date=str(study.get("date", "")),
        patient=first.patient,
        warnings=tuple(warnings),
        source=root,
    )
