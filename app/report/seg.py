"""The saliency maps as DICOM Segmentations (highdicom): one per view, two FRACTIONAL segments of type
PROBABILITY (benign, malignant) on the source image's own pixel grid, so that a PACS or a research viewer
shows the heatmaps over the very image they were computed from.

A mammogram is a projection: it has no slice thickness, and highdicom would otherwise copy the pixel
spacing into a Pixel Measures macro that then requires one (dciodvfy refuses it and highdicom cannot read
it back). The segmentation lies on the referenced image's grid, so its spacing is the source's; the
geometry copy handed to highdicom leaves the spacing out.
"""

from __future__ import annotations

import copy
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import JPEG2000Lossless

from app import __version__
from app.report.content import ReportInput, exam_label
from app.report.dicom_common import deidentify_header, no_identifiers_in_warnings, read_source
from app.report.sr import ReportError
from inference.views import View

CLASSES = ((0, "benign"), (1, "malignant"))
ABNORMAL = Code("49755003", "SCT", "Morphologically Abnormal Structure")
LESION = Code("52988006", "SCT", "Lesion")
FRACTION_LEVELS = 255  # 8-bit fractions: saliency in steps of 1/255


def saliency_stack(report: ReportInput, view: View) -> np.ndarray:
    """(rows, cols, 2) float32 in [0, 1] on the stored image's grid; 0 outside the model's window."""
    view_result = report.result.views[view]
    maps = [np.nan_to_num(view_result.saliency_in_original(index), nan=0.0) for index, _ in CLASSES]
    return np.clip(np.stack(maps, axis=-1), 0.0, 1.0).astype(np.float32)


def _valid_orientation(source) -> list[str] | str:
    """The source's Patient Orientation when it is well formed (two values of L, R, A, P, H, F), else
    empty: some archives (CBIS-DDSM) store the view name there."""
    values = list(source.get("PatientOrientation") or [])
    if len(values) == 2 and all(v and set(v) <= set("LRAPHF") for v in values):
        return values
    return ""


def write_saliency_segs(report: ReportInput, folder: str | Path) -> list[Path]:
    """One Segmentation file per analysed view, named ``<exam>_<VIEW>_saliency_seg.dcm``."""
    result, exam = report.result, report.exam
    if result is None:
        raise ReportError("saliency segmentations need an analysis result")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="GMIC saliency", version=__version__, family=codes.cid7162.ArtificialIntelligence)
    segments = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=f"{name} saliency", segmented_property_category=ABNORMAL,
            segmented_property_type=LESION, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm)
        for number, (_, name) in enumerate(CLASSES, start=1)
    ]
    folder = Path(folder)
    written = []
    for number, (view, image) in enumerate(exam.views.items(), start=1):
        if view not in result.views:
            continue
        if not image.sop_instance_uid:
            raise ReportError("DICOM segmentations need DICOM source images (this exam is PNG)", image.source)
        source = read_source(image)
        geometry = copy.deepcopy(source)
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            if keyword in geometry:
                delattr(geometry, keyword)
        with no_identifiers_in_warnings():
            seg = hd.seg.Segmentation(
                source_images=[geometry], pixel_array=saliency_stack(report, view)[None],
                segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL, segment_descriptions=segments,
                series_instance_uid=hd.UID(), series_number=9902, sop_instance_uid=hd.UID(), instance_number=number,
                manufacturer="Mammo Reader", manufacturer_model_name="Mammo Reader GMIC", software_versions=__version__,
                device_serial_number=__version__, fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
                max_fractional_value=FRACTION_LEVELS, transfer_syntax_uid=JPEG2000Lossless,
                series_description="GMIC saliency (AI decision support)", content_label="SALIENCY",
            )
        seg.PatientOrientation = _valid_orientation(source)
        if report.deidentify:
            deidentify_header(seg, report)
        path = folder / f"{exam_label(report)}_{view.value}_saliency_seg.dcm"
        seg.save_as(path, enforce_file_format=True)
        written.append(path)
    return written
