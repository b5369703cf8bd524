"""The image types and pure helpers every intake shares (PNG, DICOM, later the PACS): a loaded view, its
display windows and patient identifiers, grey levels (background to 0, tissue bright), which way the breast
faces, and views named in free text. Nothing here reads a file; ``exam.py`` assembles exams from the intakes.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.intake.views import Laterality, View

MAX_PIXELS = 12000 * 12000  # larger than any mammography detector; refuse before allocating
# smaller than any mammogram, however downsampled (MIAS's are 1024 x 1024): a 3 x 3 image was analysed as a view
# and counted, and a 1 x 4000 one failed the whole exam in preprocessing without naming its file
MIN_SIDE = 32
# below any field a mammogram covers (a spot-compression paddle is about 5 x 5 cm; this leaves room for a cropped
# one): a 40 x 40 pixel file at 0.1 mm, 4 mm of anything, was analysed and counted in its breast's score
MIN_FIELD_MM = 20.0


# a DICOM mammogram gives its pixel spacing (Type 1): one that does not is held to more pixels than a PNG (a 40 x
# 40 pixel MG file without a spacing escaped the size check and was counted)
MIN_SIDE_WITHOUT_SPACING = 64


def size_problem(rows: int, cols: int, spacing_mm: tuple[float, float] | None = None, *, dicom: bool = False) -> str:
    """Why an image of ``rows`` x ``cols`` pixels (of ``spacing_mm``, row and column, where known) cannot be a
    mammogram ("" when it can be one); ``dicom``: a DICOM file, whose missing spacing asks for more pixels."""
    if min(rows, cols) < MIN_SIDE:
        return f"the image is too small to be a mammogram ({rows} x {cols} pixels; at least {MIN_SIDE} a side)"
    if dicom and spacing_mm is None and min(rows, cols) < MIN_SIDE_WITHOUT_SPACING:
        return (f"the image is too small to be a mammogram ({rows} x {cols} pixels, and no pixel spacing in the "
                f"file; at least {MIN_SIDE_WITHOUT_SPACING} a side)")
    if spacing_mm is not None and min(rows * spacing_mm[0], cols * spacing_mm[1]) < MIN_FIELD_MM:
        covers = [math.floor(10 * size) / 10 for size in (rows * spacing_mm[0], cols * spacing_mm[1])]  # never
        # rounded up to the limit it is under ("20.0 mm ... at least 20 mm")
        return (f"the image covers {covers[0]:.1f} x {covers[1]:.1f} mm ({rows} x {cols} "
                f"pixels of {spacing_mm[0]:g} x {spacing_mm[1]:g} mm): too small to be a mammogram (at least "
                f"{MIN_FIELD_MM:.0f} mm a side)")
    if rows * cols > MAX_PIXELS:
        return f"the image dimensions are implausible ({rows} x {cols} pixels); not loaded"
    return ""


NON_IMAGE_TOKENS = ("BENIGN", "MALIGNANT", "MASK", "SEG", "SEGMENTATION")
# far beyond 16-bit stored values times any real Rescale Slope, and small enough that float32 sums of
# squares over a whole image (the standardisation before the model) stay finite
PIXEL_VALUE_LIMIT = 1e12


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
        laterality: "L" or "R" as found, also for an image kept aside ("" when unknown).
        view_label: the projection as found (``CC``, ``MLO``, ``ML``, ``XCCL`` ...), with modifiers.
        orientation: PatientOrientation as stored, or "" .
        analyzable: False for images that may be viewed but not analysed (For Processing).
        warnings: non-fatal oddities, for the UI.
        sop_instance_uid: DICOM SOP Instance UID ("" for PNG).
        acquisition: sortable acquisition date-time string ("" when unknown).
        background_level: the value subtracted to make the background 0 (model-image units).
        reader_decision: what the reader decided about this image's laterality ("" when nothing):
            "confirmed stored mirrored" or "moved from R-CC"; part of the result key, since the same
            images in other slots or orientations give other results.
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
    laterality: str = ""  # L or R as found (also for images kept aside, which have no screening slot)
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
    reader_decision: str = ""

    def auto_window(self) -> DisplayWindow:
        """A window from robust percentiles of the tissue (for files without one); computed once per image
        (the intake's worker computes it, so a key press on screen only reads it)."""
        cached = self.__dict__.get("_auto_window")
        if cached is None:
            values = self.pixels[self.model_image > 0] if np.any(self.model_image > 0) else self.pixels
            sample = values.ravel()[:: max(1, values.size // 500_000)]
            low, high = np.percentile(sample, [0.5, 99.5]) if sample.size else (0.0, 1.0)
            cached = DisplayWindow(center=float(low + high) / 2, width=float(max(high - low, 1.0)), explanation="auto")
            self.__dict__["_auto_window"] = cached  # frozen: the cache goes around __setattr__, never a field
        return cached

    def relabelled(self, **changes) -> ViewImage:
        """A copy with ``changes`` to its labels (slot, flip, notes, the reader's decision), keeping what was
        computed from its pixels (the auto window, the breast): the same pixels need not be worked again,
        on the GUI thread, after a reader's move or confirmation."""
        if "pixels" in changes or "model_image" in changes:
            raise ValueError("relabelled keeps the pixels; use dataclasses.replace for new pixels")
        copy = dataclasses.replace(self, **changes)
        for key in ("_auto_window", "_breast"):
            if key in self.__dict__:
                copy.__dict__[key] = self.__dict__[key]
        return copy

    def breast(self) -> np.ndarray:
        """(H, W) bool: the breast (``breast_mask`` of the model image); computed once per image (the intake's
        worker computes it with the auto window)."""
        cached = self.__dict__.get("_breast")
        if cached is None:
            cached = breast_mask(self.model_image)
            self.__dict__["_breast"] = cached  # frozen: the cache goes around __setattr__, never a field
        return cached

    def needs_rendered_display(self) -> bool:
        """Whether the first display needs the pixels rendered through the VOI (a VOI LUT or a sigmoid window)
        rather than the plain linear levels the screen applies itself."""
        return self.voi_lut_dataset is not None or bool(self.windows and self.windows[0].function == "SIGMOID")

    def display_image(self, window: DisplayWindow | None = None) -> np.ndarray:
        """Grey levels in [0, 1] for display, white = dense: VOI (window or LUT), then inversion if needed.

        Uses pydicom's VOI functions (LINEAR, LINEAR_EXACT, SIGMOID; VOI LUT Sequence). The first display
        (``window`` None or the file's first window) is kept once computed, so the intake's worker can render
        it and the screen only shows it.
        """
        first = window is None or (bool(self.windows) and window == self.windows[0])
        if first and "_first_display" in self.__dict__:
            return self.__dict__["_first_display"]
        shown = self._display_image(window)
        if first:
            self.__dict__["_first_display"] = shown
        return shown

    def _display_image(self, window: DisplayWindow | None) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------------------
# grey levels and orientation


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


def pixel_problem(pixels: np.ndarray, where: str = "") -> str:
    """Why these grey levels cannot be read as a mammogram, or "" when they can.

    Values that are not finite, or so large that float32 sums over the image overflow, end as NaN in the
    model (a NaN probability once printed as a confident 100 %); an image of one value has no tissue.

    Args:
        pixels: (H, W) grey levels.
        where: the step that made them, for the message (" after the Rescale Slope and Intercept (1e+308)").
    """
    with np.errstate(invalid="ignore", over="ignore"):
        if not np.all(np.isfinite(pixels)):
            return f"the pixels are not finite{where}"
        low, high = float(np.min(pixels)), float(np.max(pixels))
    if low == high:
        return f"every pixel has the same value ({low:g}){where}: there is no image"
    sample = pixels[::7, ::7]  # a quick look first: almost every mammogram shows a third value here
    if not np.any((sample != low) & (sample != high)) and not np.any((pixels != low) & (pixels != high)):
        return (f"the image has only two grey levels ({low:g} and {high:g}){where}: a mask or a drawing, not a "
                "mammogram")
    if max(abs(low), abs(high)) > PIXEL_VALUE_LIMIT:
        return f"the pixel values{where} reach {max(abs(low), abs(high)):.3g}, far beyond any detector's range"
    return ""


def to_model_image(pixels: np.ndarray, dense_is_low: bool) -> tuple[np.ndarray, float, list[str]]:
    """Tissue bright, background exactly 0: invert if needed, then subtract the background level."""
    problem = pixel_problem(pixels)
    if problem:
        raise ValueError(problem)
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


def orient(
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
        other = "right" if laterality == Laterality.LEFT else "left"
        supported = " (PatientOrientation says so too)" if by_tag is not None and by_tag == by_pixels else ""
        warnings.append(
            f"the breast faces like a {other} breast (nipple to the {'left' if not by_pixels else 'right'}): "
            f"either the image is stored mirrored{supported} or its laterality label is wrong"
        )
    return by_pixels != expected


def mlo_likeness(model_image: np.ndarray, horizontal_flip: bool, laterality: Laterality) -> float:
    """A weak cue from the pixels for the projection: about 0.3-0.9 for CC views, 1.0-1.5 for MLO views
    (seen on the shared real images). It adds the share of tissue in the upper chest-wall triangle (the
    pectoral muscle and axilla fill it on an MLO), how low the breast is widest (the nipple sits lower on an
    MLO) and how bright that triangle is against the tissue (the pectoral muscle is dense).

    Used only to compare candidates for one slot, never to relabel an image by itself.
    """
    image = np.asarray(model_image)
    faces = (laterality == Laterality.LEFT) != horizontal_flip
    image = image if faces else image[:, ::-1]  # chest wall at the left
    tissue = image > 0
    rows, cols = np.flatnonzero(tissue.any(axis=1)), np.flatnonzero(tissue.any(axis=0))
    if rows.size < 10 or cols.size < 10:
        return float("nan")
    tissue = tissue[rows[0] : rows[-1] + 1, : cols[-1] + 1]
    image = image[rows[0] : rows[-1] + 1, : cols[-1] + 1]
    height, width = tissue.shape
    r = np.arange(height)[:, None]
    c = np.arange(width)[None, :]
    band = max(1, int(height * 0.3))
    triangle = (r < band) & (c < width * 0.4 * (1 - r / band))
    filled = float((triangle & tissue).sum() / max(triangle.sum(), 1))
    profile = np.convolve(tissue.sum(axis=1), np.ones(51) / 51, mode="same")
    widest = float(np.argmax(profile) / height)
    inside = image[triangle & tissue]
    bright = float(inside.mean() / np.median(image[tissue])) if inside.size else 0.0
    return filled + (widest - 0.5) + 0.5 * (bright - 1.0)


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
    # "Screening Bilateral MLO" is no left MLO ("…BILATERALMLO" ends in "LMLO"): the -lateral words go first
    compact = re.sub(r"[^A-Z]", "", re.sub(r"[A-Z]*LATERAL", " ", upper))
    for token, side in (("LCC", "L"), ("RCC", "R"), ("LMLO", "L"), ("RMLO", "R")):
        if compact.endswith(token) or compact == token:
            return Laterality(side), token[1:]
    side = _SIDE_WORD.search(upper)
    projection = _PROJECTION_WORD.search(upper)
    return (Laterality(side.group(1)[0]) if side else None), (projection.group(1) if projection else None)


_SIDED_VIEWS = re.compile(r"(?<![A-Z])(L|R|LEFT|RIGHT)[\s_\-]*(?:CC|MLO)(?![A-Z])")
_SIDE_WORDS = re.compile(r"(?<![A-Z])(LEFT|RIGHT)(?![A-Z])")


def names_both_sides(text: str) -> bool:
    """Whether free text names both breasts ("R CC L CC", "LCC+RCC", "left and right"): a protocol or series
    name of the whole exam, no source of one image's side."""
    upper = text.upper()
    sides = {m.group(1)[0] for pattern in (_SIDED_VIEWS, _SIDE_WORDS) for m in pattern.finditer(upper)}
    return len(sides) > 1


def is_mask_name(path: Path) -> bool:
    tokens = set(re.split(r"[^A-Z]+", path.stem.upper()))
    return any(t in tokens for t in NON_IMAGE_TOKENS)


def screening_slot(laterality: Laterality, projection: str, modifiers: Sequence[str]) -> tuple[View | None, str]:
    """The screening view for (laterality, projection), or None with the reason it is kept aside. Every view
    modifier (DICOM's CID 4015: spot compression, magnification, implant displaced, tangential, nipple in
    profile, rolled, cleavage, axillary tissue, infra-mammary fold …) makes a view that is not a standard one:
    a tangential L-CC and a nipple-in-profile R-MLO, acquired after the standard views, took their slots."""
    if projection not in ("CC", "MLO"):
        return None, f"{projection} is not a screening view (CC or MLO); kept aside"
    if modifiers:
        return None, f"{', '.join(modifiers)} view, not a standard {projection}; kept aside from the screening slots"
    return View.of(laterality, projection), ""


# ImageType values of a 2-D image synthesized from a tomosynthesis acquisition (Hologic's C-View, GE's V-Preview,
# Siemens' Insight 2D): not the conventional mammogram the models were trained on
SYNTHESIZED = ("GENERATED_2D", "TOMOSYNTHESIS", "SYNTHETIC")


def synthesized_marks(image_type: str) -> str:
    """The ImageType values ("DERIVED\\PRIMARY\\GENERATED_2D") that mark a 2-D image synthesized from tomosynthesis,
    joined by "/", else ""."""
    return "/".join(v for v in (t.strip().upper() for t in image_type.split("\\")) if v in SYNTHESIZED)


# what a view's own text (its series description, its protocol) may call a view that is not a standard one: "R CC
# ID", "RCCID", "MLO ID", "implant displaced", "L MAG CC", "R CC SPOT". Free text, so a hint, not a fact: it ranks an
# image after another one of its slot whose text says no such thing (an implant patient's ID views, taken after the
# standard views, took every slot), and never sets the only image of a slot aside ("R CC ID check", "RCC (ID
# 4711)", "Diagnostic Left + Spot" for the whole exam refused standard views when it did)
_TEXT_MARKERS = (
    ("implant-displaced", re.compile(r"(?:CC|MLO)[\s_\-]*ID(?![A-Z])|(?<![A-Z])ID[\s_\-]*(?:CC|MLO)(?![A-Z])"
                                     r"|IMPLANT[\s_\-]*DISPLACED|DISPLACED[\s_\-]*IMPLANT|EKLUND")),
    ("magnification", re.compile(r"(?<![A-Z])(?:MAG|MAGN|MAGNIFIED|MAGNIFICATION)(?![A-Z])")),
    ("spot compression", re.compile(r"(?<![A-Z])SPOT(?![A-Z])")),
)


def text_modifier(text: str) -> str:
    """The kind of non-standard view a series description or protocol name says ("" for none): a hint that
    ranks an image after one of its slot whose text says nothing of the kind (see ``_TEXT_MARKERS``)."""
    upper = text.upper()
    return next((kind for kind, pattern in _TEXT_MARKERS if pattern.search(upper)), "")


BREAST_COMPONENT_SHARE = 0.05  # a tissue component this share of the largest one's area is breast too


def breast_mask(model_image: np.ndarray) -> np.ndarray:
    """The breast among the non-zero pixels: the largest 8-connected component, any other at least 5 % of its
    area (a breast cut by a line of background) and any piece at the same chest-wall edge (an axillary tail cut
    off). The detector's letters and markers, burnt into the background apart from the breast (0.1–0.3 % of
    its area on the exam-0 views), are not breast: a finding or a nipple is never placed on them."""
    import cv2  # noqa: PLC0415

    tissue = np.asarray(model_image) > 0
    if not tissue.any():
        return tissue
    count, labels, stats, _ = cv2.connectedComponentsWithStats(tissue.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    starts, widths = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_WIDTH]
    left, right = starts == 0, starts + widths == tissue.shape[1]
    largest = int(np.argmax(areas))
    # a piece at the breast's own chest-wall edge is breast whatever its size (an axillary tail cut off by a line
    # of background); markers lie in the air apart from it
    at_wall = (left if left[largest] and not right[largest] else right if right[largest] and not left[largest]
               else np.zeros_like(left))
    keep = np.flatnonzero((areas >= BREAST_COMPONENT_SHARE * areas.max()) | at_wall) + 1
    if len(keep) == count - 1:
        return tissue
    chosen = np.zeros(count, dtype=bool)
    chosen[keep] = True
    return chosen[labels]


MIN_TISSUE_FRACTION = 0.5  # a region with less of its box over the breast lies mostly outside it


def tissue_fraction(box: tuple[float, float, float, float], tissue: np.ndarray) -> float:
    """The share of the box (top, left, bottom, right in original pixels) over tissue; what lies past the
    image edge counts as outside."""
    top, left, bottom, right = box
    area = max(bottom - top, 0.0) * max(right - left, 0.0)
    if area <= 0:
        return 0.0
    rows, cols = tissue.shape
    t, l = int(max(np.floor(top), 0)), int(max(np.floor(left), 0))
    b, r = int(min(np.ceil(bottom), rows)), int(min(np.ceil(right), cols))
    if b <= t or r <= l:
        return 0.0
    return float(np.count_nonzero(tissue[t:b, l:r])) / area
