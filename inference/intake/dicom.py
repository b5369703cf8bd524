"""DICOM mammograms (pydicom 3): header checks, view and laterality, grey levels, windows, spacing.

Grey levels follow PS3.3 C.11 and use pydicom's pixel-processing functions: the Modality LUT
(``apply_modality_lut``) gives ``pixels``; VOI (windows with LINEAR / LINEAR_EXACT / SIGMOID, or a VOI LUT
Sequence) and the MONOCHROME1 / Presentation LUT Shape INVERSE inversion happen at display time, inverting
once whether one or both say so.
"""

from __future__ import annotations

import logging
import math
import re
import warnings as warnings_module  # 'warnings' names the intake's notes here
import threading
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian

from inference.errors import ExamError, UnreadablePixelsError
from inference.log_privacy import install as install_log_privacy
from inference.intake.image import (
    MAX_PIXELS,
    DisplayWindow,
    PatientInfo,
    ViewImage,
    names_both_sides,
    orient,
    pixel_problem,
    screening_slot,
    size_problem,
    synthesized_marks,
    text_modifier,
    to_model_image,
    view_from_text,
)
from inference.intake.views import Laterality, View

logger = logging.getLogger(__name__)

FOR_PROCESSING_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.13.1.5",  # Breast Projection X-Ray Image Storage - For Processing
}
# above this, a view was taken magnified (magnification views use 1.5-2.0; a standard view's breast, on the
# detector, 1.05-1.15)
MAGNIFIED = 1.3

# transfer syntaxes that are lossy whatever the header says (JPEG 2000 and HTJ2K may be either: the header's
# LossyImageCompression says)
LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81"}

MULTIFRAME_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.13.1.3": "breast tomosynthesis"}

# ViewCodeSequence: SNOMED CT and the older SNOMED-RT (SRT) codes of CID 4014, and the meanings as text
PROJECTION_CODES = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399192003": "XCCL", "R-1024A": "XCCL",
    "399101009": "XCCM", "R-1024B": "XCCM",
    "399188001": "SIO", "R-102D0": "SIO",
    "441555000": "FB", "R-102CF": "FB",
}
PROJECTION_MEANINGS = (
    ("exaggerated cranio-caudal", "XCCL"),
    ("cranio-caudal exaggerated laterally", "XCCL"),  # CID 4014's own wording, after "cranio-caudal" took it
    ("cranio-caudal exaggerated medially", "XCCM"),
    ("caudo-cranial", "FB"),
    ("medio-lateral oblique", "MLO"),
    ("latero-medial oblique", "LMO"),
    ("cranio-caudal", "CC"),
    ("medio-lateral", "ML"),
    ("latero-medial", "LM"),
)
TRANSFER_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
    "1.2.840.10008.1.2.4.202": "HTJ2K Lossless RPCL",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
    "1.2.840.10008.1.2.5": "RLE Lossless",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
}


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value or "").strip()


def _floats(value: object) -> list[float]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [float(v) for v in value]
    return [float(value)]


def _read(path: Path) -> Dataset:
    try:
        return _header_if_cut(pydicom.dcmread(path), path, force=False)
    except InvalidDicomError:
        pass
    # some exports omit the 128-byte preamble; accept them only if they look like an image header
    try:
        ds = _header_if_cut(pydicom.dcmread(path, force=True), path, force=True)
        if "Rows" not in ds and "PixelData" not in ds and "SOPClassUID" not in ds:
            raise InvalidDicomError("no DICOM image attributes")
        return ds
    except Exception as error:  # noqa: BLE001
        raise ExamError("the file is not a DICOM image (and not a PNG)", path) from error


def _header_if_cut(ds: Dataset, path: Path, force: bool) -> Dataset:
    """The dataset, or, when pydicom lost it all to compressed pixel data cut short by the end of the file
    (it then keeps only the file meta), the header read again without the pixels, so that the view is
    known and the truncation is reported for its slot."""
    if _has_pixel_data(ds) or "Rows" in ds:
        return ds
    try:
        header = pydicom.dcmread(path, force=force, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - the first reading stands; it is judged as it is
        return ds
    return header if "Rows" in header else ds


def _frame_laterality(ds: Dataset) -> str:
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group, [])[:1]:
            for anatomy in item.get("FrameAnatomySequence", [])[:1]:
                value = str(anatomy.get("FrameLaterality", "") or "").strip().upper()
                if value:
                    return value
    return ""


def _laterality_sources(ds: Dataset, path: Path) -> list[tuple[Laterality, str]]:
    """Every side the file states, first choice first: (side, where it says so)."""
    found = []
    for keyword in ("ImageLaterality", "Laterality"):
        value = _text(ds, keyword).upper()
        if value in ("L", "R"):
            found.append((Laterality(value), keyword))
    value = _frame_laterality(ds)
    if value in ("L", "R"):
        found.append((Laterality(value), "FrameLaterality"))
    texts = [(keyword, _text(ds, keyword)) for keyword in ("SeriesDescription", "ProtocolName")]
    for keyword, text in [*texts, ("file name", path.stem)]:
        side, _ = view_from_text(text)
        if side is not None and not names_both_sides(text):
            found.append((side, keyword))
    return found


def _laterality(ds: Dataset, path: Path) -> tuple[Laterality | None, str, str]:
    """(side, its source, a warning when another source names the other side): a header saying left where
    the series description or the file name says right was read silently as left."""
    found = _laterality_sources(ds, path)
    if not found:
        return None, "", ""
    side, source = found[0]
    others = [f"{where} says {'right' if other == Laterality.RIGHT else 'left'}" for other, where in found
              if other != side]
    if not others:
        return side, source, ""
    said = "left" if side == Laterality.LEFT else "right"
    return side, source, (f"laterality: {source} says {said} but {' and '.join(others)}; shown as {said} "
                          f"({source}): check the image's side")


def _code_projection(item: Dataset) -> str | None:
    code = str(item.get("CodeValue", "") or "").strip()
    if code in PROJECTION_CODES:
        return PROJECTION_CODES[code]
    meaning = str(item.get("CodeMeaning", "") or "").lower()
    for text, projection in PROJECTION_MEANINGS:
        if text in meaning:
            return projection
    return None


def _modifiers(item: Dataset) -> list[str]:
    """The view modifiers' meanings (else codes); an empty item is none (it put a standard view aside)."""
    found = [str(m.get("CodeMeaning", "") or m.get("CodeValue", "") or "").strip()
             for m in item.get("ViewModifierCodeSequence", [])]
    return [m for m in found if m]


def _position(ds: Dataset) -> str:
    """ViewPosition as a projection code: "RMLO", "L CC", "CC-L" are MLO, CC, CC (the side is the laterality's)."""
    position = _text(ds, "ViewPosition").upper()
    bare = re.sub(r"[^A-Z]", "", position)
    codes = sorted(set(PROJECTION_CODES.values()))  # a fixed order: "LML" is the side then ML, not LM then the side
    for sided in (lambda side, code: side + code, lambda side, code: code + side):
        for code in codes:
            if any(bare == sided(side, code) for side in "LR"):
                return code
    return position


def _position_side(ds: Dataset) -> str:
    """The side a ViewPosition names beside its projection ("L" of "LCC", "CC-L"), else ""."""
    bare = re.sub(r"[^A-Z]", "", _text(ds, "ViewPosition").upper())
    code = _position(ds)
    if code != bare and code in PROJECTION_CODES.values() and len(bare) == len(code) + 1:
        return bare[0] if bare.endswith(code) else bare[-1]
    return ""


def _projection(ds: Dataset, path: Path) -> tuple[str | None, str, list[str]]:
    """(projection, source, modifiers) where modifiers are ViewModifierCodeSequence meanings."""
    modifiers: list[str] = []
    found: list[tuple[str, str]] = []
    for item in ds.get("ViewCodeSequence", [])[:1]:
        projection = _code_projection(item)
        if projection:
            found.append((projection, "ViewCodeSequence"))
        modifiers += _modifiers(item)
    modifiers += _modifiers(ds)
    position = _position(ds)
    if position:
        found.append((position, "ViewPosition"))
    for keyword in ("SeriesDescription", "ProtocolName", "PatientOrientation"):
        _, projection = view_from_text(_text(ds, keyword))
        if projection:
            found.append((projection, keyword))
    _, projection = view_from_text(path.stem)
    if projection:
        found.append((projection, "file name"))
    if not found:
        return None, "", modifiers
    return found[0][0], found[0][1], modifiers


def _magnified(ds: Dataset) -> list[str]:
    """A magnification view by its estimated radiographic magnification (it took a standard view's slot)."""
    try:
        factor = float(ds.get("EstimatedRadiographicMagnificationFactor", 0) or 0)
    except (TypeError, ValueError):
        return []
    return [f"magnification (estimated factor {factor:g})"] if math.isfinite(factor) and factor >= MAGNIFIED else []


def _text_marks(ds: Dataset) -> str:
    """What the image's series description or protocol calls it, when a non-standard view ("an implant-displaced
    view by its SeriesDescription"): the field named, not its free text (it may name people)."""
    for keyword in ("SeriesDescription", "ProtocolName"):
        kind = text_modifier(_text(ds, keyword))
        if kind:
            return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} view by its {keyword}"
    return ""


def _image_notes(ds: Dataset) -> list[str]:
    """What the reader should know of an image that is analysed: synthesized from a tomosynthesis scan, or
    compressed with loss (both were analysed without a word)."""
    notes = []
    synthesized = synthesized_marks(_image_type(ds))
    if synthesized:
        notes.append(f"a 2-D image synthesized from a tomosynthesis scan (ImageType {synthesized}), not "
                     "a conventional mammogram: the models were trained on conventional ones")
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if _text(ds, "LossyImageCompression") != "01" and syntax in LOSSY_SYNTAXES:
        notes.append(f"compressed with loss ({TRANSFER_SYNTAX_NAMES.get(syntax, syntax)}): fine detail such as "
                     "calcifications may be altered")
    if _text(ds, "LossyImageCompression") == "01":
        ratio = _text(ds, "LossyImageCompressionRatio")
        method = _text(ds, "LossyImageCompressionMethod")
        details = ", ".join(filter(None, (f"ratio {ratio}" if ratio else "", method)))
        notes.append("compressed with loss" + (f" ({details})" if details else "")
                     + ": fine detail such as calcifications may be altered")
    return notes


def _windows(ds: Dataset) -> tuple[tuple[DisplayWindow, ...], str]:
    """The file's display windows and a warning naming those left out (a width or centre not a finite number
    drew the view black)."""
    try:
        centers = _floats(ds.get("WindowCenter"))
        widths = _floats(ds.get("WindowWidth"))
    except (TypeError, ValueError):
        return (), (f"the display window (WindowCenter {_text(ds, 'WindowCenter')!r}, WindowWidth "
                    f"{_text(ds, 'WindowWidth')!r}) is not a number: not used")
    explanations = ds.get("WindowCenterWidthExplanation", [])
    if isinstance(explanations, str):
        explanations = [explanations]
    function = _text(ds, "VOILUTFunction").upper() or "LINEAR"
    windows, left_out = [], []
    for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
        if not (math.isfinite(center) and math.isfinite(width)):
            left_out.append(f"centre {center:g} width {width:g}")
            continue
        explanation = str(explanations[i]) if i < len(explanations) else f"window {i + 1}"
        windows.append(DisplayWindow(center=center, width=max(width, 1.0), explanation=explanation, function=function))
    warning = f"display window not a finite number ({'; '.join(left_out)}): not used" if left_out else ""
    return tuple(windows), warning


def _voi_lut_dataset(ds: Dataset) -> Dataset | None:
    """A dataset holding only what pydicom's ``apply_voi`` needs for the file's VOI LUT Sequence."""
    if "VOILUTSequence" not in ds:
        return None
    voi = Dataset()
    voi.file_meta = FileMetaDataset()  # pydicom reads OW LUT data with the file's byte order
    voi.file_meta.TransferSyntaxUID = ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)
    voi.VOILUTSequence = ds.VOILUTSequence
    voi.BitsStored = ds.get("BitsStored", 16)
    voi.PixelRepresentation = ds.get("PixelRepresentation", 0)
    return voi


# a mammogram's pixels measure some 0.025-0.2 mm (magnification views and scanned films included); a spacing
# far outside that is a unit or encoding error (microns written as millimetres, an overflowed value), and one
# taken at its word shrank the exam's other views to nothing when they were hung at one physical scale
PLAUSIBLE_SPACING_MM = (0.005, 2.0)


def _plausible(spacing: list[float]) -> bool:
    low, high = PLAUSIBLE_SPACING_MM
    return (len(spacing) == 2 and all(math.isfinite(v) and low <= v <= high for v in spacing)
            and max(spacing) <= 2 * min(spacing))


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str, str]:
    """(row and column spacing in mm, its source, a warning): an implausible spacing is named and not used."""
    ignored = []
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            spacing = _floats(ds.get(keyword))
        except (TypeError, ValueError):
            ignored.append(f"{keyword} {_text(ds, keyword)!r} is not a number")
            continue
        if not spacing:
            continue
        if not _plausible(spacing):
            shown = "\\".join(f"{v:g}" for v in spacing)
            ignored.append(f"{keyword} {shown} mm is not a mammogram's pixel spacing")
            continue
        warning = "; ".join(ignored) + ": not used" if ignored else ""
        if keyword == "PixelSpacing":
            return (spacing[0], spacing[1]), "PixelSpacing", warning
        magnification = _floats(ds.get("EstimatedRadiographicMagnificationFactor"))
        if magnification and math.isfinite(magnification[0]) and 1.0 <= magnification[0] <= 4.0:
            factor = magnification[0]
            return ((spacing[0] / factor, spacing[1] / factor), "ImagerPixelSpacing / magnification factor",
                    warning)
        if magnification:  # a geometric magnification lies between 1 and a few
            ignored.append(f"EstimatedRadiographicMagnificationFactor {magnification[0]:g} is no magnification")
            warning = "; ".join(ignored) + ": not used"
        return (spacing[0], spacing[1]), "ImagerPixelSpacing (detector plane)", warning
    warning = "; ".join(ignored) + ": not used, sizes are in pixels" if ignored else ""
    return None, "", warning


def _image_type(ds) -> str:
    """ImageType's values joined by backslashes, upper case ("DERIVED\\PRIMARY"); one value is a string, not a
    list of its letters."""
    value = ds.get("ImageType")
    values = [value] if isinstance(value, str) else list(value or [])
    return "\\".join(str(v).strip() for v in values).upper()


def _acquisition(ds: Dataset) -> str:
    value = _text(ds, "AcquisitionDateTime")
    if value:
        return value
    for date, time in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime")):
        if _text(ds, date):
            return _text(ds, date) + _text(ds, time)
    return ""


def _check_header(ds: Dataset, path: Path, warnings: list[str]) -> None:
    modality = _text(ds, "Modality").upper()
    if not modality:
        warnings.append("the file does not state its modality; assumed to be a mammogram")
    elif modality != "MG":
        if modality in ("DX", "CR") and "BREAST" in _text(ds, "BodyPartExamined").upper():
            warnings.append(f"modality {modality} of the breast, read as a mammogram")
        else:
            raise ExamError(f"this is not a mammogram (modality {modality})", path)
    sop_class = _text(ds, "SOPClassUID")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if sop_class in MULTIFRAME_SOP_CLASSES or frames > 1:
        kind = MULTIFRAME_SOP_CLASSES.get(sop_class, "multi-frame")
        raise ExamError(
            f"this is a {kind} object ({frames} frames); only 2-D mammograms are supported", path
        )
    if not _has_pixel_data(ds) and not _truncation(ds, path):
        if ds.get("Rows") is None and ds.get("Columns") is None:  # a header cut off before the image's size
            size = path.stat().st_size if path.is_file() else 0
            raise ExamError(f"the file ends after {size:,} bytes, in its header, before the image's size and "
                            "pixels: it is cut short (an interrupted copy or transfer) or damaged", path)
        raise ExamError("the file has no displayable pixel data (no Pixel Data element)", path)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = _text(ds, "PhotometricInterpretation").upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ExamError(
            f"this is a colour image ({photometric or 'unknown'}, {samples} samples per pixel); "
            "mammograms are greyscale",
            path,
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows < 2 or cols < 2 or rows * cols > MAX_PIXELS:  # no image, or more pixels than to allocate
        raise ExamError(size_problem(rows, cols), path)


def _has_pixel_data(ds: Dataset) -> bool:
    return "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00OB", b"\xe0\x7f\x10\x00OW", b"\xe0\x7f\x10\x00\xff\xff\xff\xff")
ITEM_TAG, SEQUENCE_END_TAG = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"


def _truncation(ds: Dataset, path: Path) -> str:
    """Why the pixel data is shorter than the header says, or "" when it is complete (or cannot be found).

    A file cut short (an interrupted copy or transfer) keeps a readable header: pydicom then holds a Pixel
    Data value shorter than its declared length, or, when compressed fragments run past the end of the file,
    drops the element altogether, which would otherwise read as "no Pixel Data element".
    """
    if "PixelData" in ds:
        raw = ds.get_item("PixelData")
        declared = getattr(raw, "length", UNDEFINED_LENGTH)
        present = len(getattr(raw, "value", b"") or b"")
        if declared != UNDEFINED_LENGTH and present < declared:
            return f"the pixel data is truncated: {present:,} bytes of {declared:,} expected"
        return ""
    if ds.get("Rows") is None:
        return ""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    starts = [data.find(tag) for tag in PIXEL_DATA_TAGS]
    found = [(start, tag) for start, tag in zip(starts, PIXEL_DATA_TAGS, strict=True) if start >= 0]
    if not found:
        return ""
    start, tag = min(found)
    value_start = start + (8 if tag.endswith(b"\xff\xff\xff\xff") else 12)
    if value_start > len(data):
        return "the pixel data is truncated: the file ends in its header"
    declared = int.from_bytes(data[value_start - 4:value_start], "little")
    present = len(data) - value_start
    if declared != UNDEFINED_LENGTH:
        return f"the pixel data is truncated: {present:,} bytes of {declared:,} expected" if present < declared else ""
    position = value_start  # encapsulated: items (offset table, fragments) until the sequence delimiter
    while position + 8 <= len(data):
        tag_bytes = data[position:position + 4]
        if tag_bytes == SEQUENCE_END_TAG:
            return ""
        if tag_bytes != ITEM_TAG:
            return "the compressed pixel data is damaged (a fragment header is not where it should be)"
        end = position + 8 + int.from_bytes(data[position + 4:position + 8], "little")
        if end > len(data):
            return (f"the pixel data is truncated: {present:,} bytes of at least {end - value_start:,} expected "
                    "(the file ends inside a compressed fragment)")
        position = end
    return f"the pixel data is truncated: the file ends after {present:,} bytes of compressed pixel data"


class _QuietDecoderFailures(logging.Filter):
    """Drops pydicom's per-plugin tracebacks (``LOGGER.exception`` in its decoder) while this thread decodes:
    the failure is turned into one message naming the damage, and a traceback per plugin on the console
    would only alarm the reader. Other threads' records pass."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "decoding", False)


_QUIET_DECODER = _QuietDecoderFailures()
logging.getLogger("pydicom.pixels.decoders.base").addFilter(_QUIET_DECODER)
# a cut file: pydicom says so twice (a log line and a UserWarning with its source line), in the middle of a
# progress line; the intake's own message names the file and how much of the pixel data is there
_CUT_FILE = "End of file reached before delimiter"
logging.getLogger("pydicom").addFilter(lambda record: not str(record.msg).startswith(_CUT_FILE))
warnings_module.filterwarnings("ignore", message=_CUT_FILE, category=UserWarning)


install_log_privacy()  # pydicom's complaints about header values name no value
ALL_PLUGINS_FAILED = "exceptions were raised by all available plugins"


def _damage(message: str) -> str:
    """The first plugin's reason from pydicom's 'all available plugins' failure ("  name: reason" lines)."""
    reasons = [line.split(":", 1)[-1].strip() for line in message.splitlines()[1:] if line.strip()]
    return reasons[0] if reasons else message


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    name = TRANSFER_SYNTAX_NAMES.get(syntax, syntax or "unknown transfer syntax")
    _QUIET_DECODER.local.decoding = True
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError) as error:
        message = str(error)
        if ALL_PLUGINS_FAILED in message:  # a decoder was there and read the data: the data is at fault
            short = "RLE" if name.startswith("RLE") else name
            raise ExamError(f"the {short}-compressed pixel data is damaged ({_damage(message)})", path) from error
        if "plugin" in message.lower() or "decod" in message.lower() or isinstance(error, NotImplementedError):
            raise ExamError(
                f"the pixel data is compressed with {name}, which this installation cannot decode", path
            ) from error
        raise ExamError(f"the pixel data could not be decoded ({name}): {message}", path) from error
    except (ValueError, AttributeError, KeyError, IndexError, TypeError) as error:
        raise ExamError(f"the pixel data is damaged or does not match the header ({error})", path) from error
    except BaseException as error:
        # a Rust decoder (pylibjpeg-rle) that panics on damaged runs raises pyo3's PanicException, a
        # BaseException that pydicom lets through: the data is at fault, not the program
        if type(error).__name__ != "PanicException":
            raise
        short = "RLE" if name.startswith("RLE") else name
        raise ExamError(f"the {short}-compressed pixel data is damaged (the decoder stopped: {error})", path) from None
    finally:
        _QUIET_DECODER.local.decoding = False


def _modality_lut_step(ds: Dataset) -> str:
    """" after" the Modality LUT step of PS3.3 C.11.1 as the file gives it, for messages; "" for a file that
    gives none (its stored values are the pixels: "after the Rescale Slope and Intercept (1)" named a step that
    file does not have)."""
    if "ModalityLUTSequence" in ds:
        return " after the Modality LUT"
    if "RescaleSlope" not in ds and "RescaleIntercept" not in ds:
        return ""
    slope, intercept = ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
    values = f"{float(slope):g}" if float(intercept or 0) == 0 else f"{float(slope):g}, {float(intercept):g}"
    return f" after the Rescale Slope and Intercept ({values})"


def _read_pixels(ds: Dataset, path: Path, invert: bool) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
    """(pixels after the Modality LUT, model image, background level, notes); :class:`ExamError` when the
    pixel data is truncated, cannot be decoded, or gives no finite, varying grey levels."""
    truncated = _truncation(ds, path)
    if truncated:
        raise ExamError(truncated, path)
    stored = _decode(ds, path)
    if stored.ndim != 2:
        raise ExamError(f"unexpected pixel array shape {stored.shape}; a single greyscale frame was expected", path)
    if stored.dtype.kind == "f" and not np.all(np.isfinite(stored)):  # Float Pixel Data as stored
        raise ExamError("the file's pixel data holds values that are not numbers (NaN or infinity)", path)
    with np.errstate(over="ignore", invalid="ignore"):  # an absurd slope overflows: reported below, not warned
        pixels = apply_modality_lut(stored, ds)
    problem = pixel_problem(pixels, _modality_lut_step(ds))
    if problem:
        raise ExamError(problem, path)
    if (pixels.dtype.kind == "f" and np.all(np.mod(pixels, 1) == 0)
            and -(2**31) <= pixels.min() and pixels.max() < 2**31):
        pixels = pixels.astype(np.int32)
    try:
        model_image, level, notes = to_model_image(pixels, dense_is_low=invert)
    except ValueError as error:
        raise ExamError(str(error), path) from error
    return pixels, model_image, level, notes


def load_dicom_view(path: Path, view_hint: View | None) -> ViewImage:
    """Read one DICOM file into a :class:`ViewImage` (see ``inference.intake.exam`` for the contract)."""
    warnings: list[str] = []
    ds = _read(path)
    _check_header(ds, path, warnings)

    intent = _text(ds, "PresentationIntentType").upper()
    analyzable = True
    if intent == "FOR PROCESSING" or _text(ds, "SOPClassUID") in FOR_PROCESSING_SOP_CLASSES:
        analyzable = False
        warnings.append("'For Processing' image (raw detector data): shown for viewing only, not analysed")

    if view_hint is not None:
        laterality, lat_source = view_hint.laterality, "manifest"
        projection, view_source, modifiers = view_hint.projection.value, "manifest", []
    else:
        laterality, lat_source, lat_warning = _laterality(ds, path)
        if lat_warning:
            warnings.append(lat_warning)
        projection, view_source, modifiers = _projection(ds, path)
    if laterality is None or projection is None:
        missing = "laterality (left or right)" if laterality is None else "view (CC or MLO)"
        raise ExamError(f"the {missing} of the image is not recorded in the file or its name", path)
    if lat_source not in ("ImageLaterality", "manifest"):
        warnings.append(f"laterality taken from {lat_source}, not ImageLaterality")
    if view_source not in ("ViewCodeSequence", "ViewPosition", "manifest"):
        warnings.append(f"view taken from {view_source}, not ViewCodeSequence or ViewPosition")
    position, position_side = _position(ds), _position_side(ds)
    if position_side and position_side != laterality.value:
        warnings.append(f"ViewPosition {_text(ds, 'ViewPosition')!r} names the other side; shown as "
                        f"{'right' if laterality == Laterality.RIGHT else 'left'} ({lat_source}): check the image's side")
    if view_source == "ViewCodeSequence" and position and position != projection:
        if projection in ("CC", "MLO") and position in PROJECTION_CODES.values():
            # an MLO coded CC was analysed as the CC: which is right is not known (an XCCL coded by its base
            # projection's position, "CC", is a unit's habit, and aside anyway as an XCCL)
            modifiers = [*modifiers, f"the headers disagree about the view: ViewCodeSequence says {projection}, "
                                     f"ViewPosition says {position}; check the image"]
        else:  # a wording of the vendor's own, or a non-screening code: said, the code used
            warnings.append(f"ViewCodeSequence says {projection} but ViewPosition says {position}; used {projection}")
    modifiers += _magnified(ds)

    photometric = _text(ds, "PhotometricInterpretation").upper()
    inverse_shape = _text(ds, "PresentationLUTShape").upper() == "INVERSE"
    invert = photometric == "MONOCHROME1" or inverse_shape
    if invert:
        warnings.append(
            f"{'MONOCHROME1' if photometric == 'MONOCHROME1' else 'Presentation LUT INVERSE'}: "
            "low values are dense; inverted for display and for the model"
        )
    view, aside_reason = screening_slot(laterality, projection, modifiers)
    spacing, spacing_source, spacing_warning = _spacing(ds)
    too_small = size_problem(int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0), spacing, dicom=True)
    if too_small:  # the view is known: its slot shows as unreadable, with the reason
        raise UnreadablePixelsError(too_small, path, view)
    try:
        pixels, model_image, level, notes = _read_pixels(ds, path, invert)
    except ExamError as error:  # the view is known: the exam shows its slot as unreadable, with the reason
        raise UnreadablePixelsError(error.message, path, view) from error
    warnings += notes

    if aside_reason:
        warnings.append(aside_reason)
    warnings += _image_notes(ds)
    orientation = _text(ds, "PatientOrientation")
    flip = orient(model_image, laterality, orientation, warnings)
    if spacing_warning:
        warnings.append(spacing_warning)
    windows, window_warning = _windows(ds)
    if window_warning:
        warnings.append(window_warning)
    voi = _voi_lut_dataset(ds)
    if not windows and voi is None:
        warnings.append("no display window in the file; an automatic window is used")
    patient = PatientInfo(
        name=str(ds.get("PatientName", "") or ""),
        patient_id=_text(ds, "PatientID"),
        birth_date=_text(ds, "PatientBirthDate"),
    )
    study = {
        "accession": _text(ds, "AccessionNumber"),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "date": _text(ds, "StudyDate"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "issuer": _text(ds, "IssuerOfPatientID"),
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
        "sop_class_uid": _text(ds, "SOPClassUID"),
        "image_type": _image_type(ds),
        "manufacturer": _text(ds, "Manufacturer"),
        "age": _text(ds, "PatientAge"),  # AS, "045Y": archives stripped of the birth date often keep it
        "burned_in": _text(ds, "BurnedInAnnotation").upper(),  # text in the pixels? (de-identified exports)
        # a retake's order where no acquisition time is given: a later series, a later instance in one series
        "series_number": _text(ds, "SeriesNumber"),
        "text_marks": _text_marks(ds),  # ranks it after a standard-looking image of its slot (exam._choose)
        "instance_number": _text(ds, "InstanceNumber"),
    }
    label = projection + (f" ({', '.join(modifiers)})" if modifiers else "")
    return ViewImage(
        view=view,
        pixels=pixels,
        model_image=model_image,
        horizontal_flip=flip,
        source=path,
        windows=windows,
        invert_display=invert,
        pixel_spacing=spacing,
        spacing_source=spacing_source,
        laterality_source=lat_source,
        laterality=laterality.value,
        view_source=view_source,
        view_label=label,
        orientation=orientation,
        analyzable=analyzable,
        warnings=tuple(warnings),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        acquisition=_acquisition(ds),
        background_level=level,
        voi_lut_dataset=voi,
        implant_displaced=any("implant" in m.lower() for m in modifiers),
        study=study,
        patient=patient,
    )
