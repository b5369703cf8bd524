"""The drawn model's maps as DICOM Segmentations (highdicom): one per view, one FRACTIONAL segment of type
PROBABILITY per class (benign, malignant for GMIC and GLAM) on the source image's own pixel grid, at the map's
full resolution, so that a PACS or a research viewer shows the heatmaps over the very image they were
computed from. A detector's findings (regions with an instance mask: Mask R-CNN) go to a second
Segmentation per view: one BINARY segment per detection, its mask pasted through its affine onto the source
image's grid, its class and score in the segment's label and description.

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
from app.cad_marks import shown_regions
from app.report.dicom_common import (ReportError, deidentify_header, require_distinct_instances, export_character_set,
                                     next_version, no_identifiers_in_warnings, read_source, stamp_report_time)
from inference.files import atomic_path
from inference.intake.views import View

ABNORMAL = Code("49755003", "SCT", "Morphologically Abnormal Structure")
LESION = Code("52988006", "SCT", "Lesion")
MASS = Code("4147007", "SCT", "Mass")
FRACTION_LEVELS = 255  # 8-bit fractions: maps in steps of 1/255


def map_stack(content, view: View) -> tuple[list[str], np.ndarray]:
    """(names, (rows, cols, maps) float32 in [0, 1]) of the drawn model's primary maps on the stored image's
    grid, 0 outside the model's input: one per class that has one (named by the class), then a map of no
    class (named by the layer: "attention")."""
    layers = content.drawn_layers(view)
    names = [layer.class_name or layer.name for layer in layers]
    maps = [content.layer_map(view, layer.class_name).astype(np.float32) / 255.0 for layer in layers]
    return names, (np.stack(maps, axis=-1) if maps else np.zeros((0, 0, 0), np.float32))


def detection_stack(content, view: View) -> tuple[list, np.ndarray]:
    """(regions, (rows, cols, n) bool) of the drawn model's regions that carry an instance mask, each mask
    pasted onto the stored image's grid; regions whose mask covers no pixel of the image are left out (a
    segment must hold at least one pixel)."""
    entry_result = content.entry_view(view)
    if entry_result is None:
        return [], np.zeros((0, 0, 0), bool)
    image = content.exam.views[view]
    shape = tuple(image.pixels.shape[:2])
    regions, masks = [], []
    # the detections the screen and the PDF show (the model's operating point, over the breast): a PACS drew
    # every one the model kept (95 outlines a view from a detector whose PDF showed three)
    for region in shown_regions(entry_result.regions, content.entry.members, image)[0]:
        if region.mask is None:
            continue
        pasted = region.mask.in_original(shape)
        if pasted.any():
            regions.append(region)
            masks.append(pasted)
    return regions, (np.stack(masks, axis=-1) if masks else np.zeros((0, 0, 0), bool))


def detection_segment_label(region) -> str:
    return f"#{region.rank} {region.kind}"[:64]


def detection_segment_description(region) -> str:
    """The class and the score of a detection, as the segment's description says them."""
    classes = ", ".join(f"{name} {p:.3f}" for name, p in (region.probabilities or {}).items())
    return f"{region.kind} #{region.rank}, score {region.score:.3f}" + (f" ({classes})" if classes else "")


def write_saliency_segs(content, folder: str | Path) -> list[Path]:
    """One Segmentation file per analysed view with one FRACTIONAL/PROBABILITY segment per class of the drawn
    model, named ``<exam>_<VIEW>_saliency_seg.dcm`` (with the model's id when several were analysed); and for
    a detector, one with a BINARY segment per detection, ``<exam>_<VIEW>_detections_seg.dcm``."""
    result, exam, entry = content.result, content.exam, content.entry
    if result is None:
        raise ReportError("saliency segmentations need an analysis result" + (
            f" ({content.report.model_withheld})" if content.report.model_withheld else ""))
    algorithm = hd.AlgorithmIdentificationSequence(  # the weights as every output names them (was the software's
        name=_algorithm_name(entry), version=_weights_version(entry),  # version, said in Software Versions)
        family=codes.cid7162.ArtificialIntelligence)
    require_distinct_instances(exam)
    folder = Path(folder)
    suffix = f"_{entry.id}" if len(result.entries) > 1 else ""
    written = []
    for number, (view, image) in enumerate(exam.views.items(), start=1):
        if view not in result.views:
            continue
        if not image.sop_instance_uid:
            raise ReportError("DICOM segmentations need DICOM source images (this exam is PNG)", image.source)
        source = None
        detections, masks = detection_stack(content, view)
        if detections:
            source = read_source(image, content.report.deidentify, content.exam.patient.patient_id)
            segments = []
            for index, region in enumerate(detections, start=1):
                segment = hd.seg.SegmentDescription(
                    segment_number=index, segment_label=detection_segment_label(region),
                    segmented_property_category=ABNORMAL, segmented_property_type=MASS,
                    algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
                segment.SegmentDescription = detection_segment_description(region)[:64]
                segments.append(segment)
            written.append(_write_segmentation(
                content, source, masks, segments, hd.seg.SegmentationTypeValues.BINARY, number, "DETECTIONS",
                f"{entry.family.upper()} detections (AI decision support)",
                folder / f"{content.file_name}_{view.value}{suffix}_detections_seg.dcm"))
        classes, stack = map_stack(content, view)
        if not classes:
            continue
        segments = [
            hd.seg.SegmentDescription(
                segment_number=index, segment_label=f"{name.replace('_', ' ')} map"[:64],
                segmented_property_category=ABNORMAL, segmented_property_type=LESION,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
            for index, name in enumerate(classes, start=1)
        ]
        if source is None:
            source = read_source(image, content.report.deidentify, content.exam.patient.patient_id)
        written.append(_write_segmentation(
            content, source, stack, segments, hd.seg.SegmentationTypeValues.FRACTIONAL, number, "SALIENCY",
            f"{entry.family.upper()} maps (AI decision support)",
            folder / f"{content.file_name}_{view.value}{suffix}_saliency_seg.dcm"))
    return written


def _write_segmentation(content, source, stack: np.ndarray, segments: list, kind, number: int, content_label: str,
                        series_description: str, path: Path) -> Path:
    """One Segmentation of ``stack`` ((rows, cols, segments): fractions in [0, 1] or bool) on ``source``'s grid."""
    entry = content.entry
    geometry = copy.deepcopy(source)
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in geometry:
            delattr(geometry, keyword)
    version = next_version(path, str(source.StudyInstanceUID))
    fractional = {}
    if kind == hd.seg.SegmentationTypeValues.FRACTIONAL:
        fractional = {"fractional_type": hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
                      "max_fractional_value": FRACTION_LEVELS}
    with no_identifiers_in_warnings():
        seg = hd.seg.Segmentation(
            source_images=[geometry], pixel_array=stack[None], segmentation_type=kind, segment_descriptions=segments,
            series_instance_uid=hd.UID(), series_number=9902 if content_label == "SALIENCY" else 9903,
            sop_instance_uid=hd.UID(), instance_number=number,
            manufacturer="Mammo Reader", manufacturer_model_name=f"Mammo Reader {entry.family.upper()}"[:64],
            software_versions=__version__, device_serial_number=__version__, transfer_syntax_uid=JPEG2000Lossless,
            series_description=version.described(series_description), content_label=content_label, **fractional,
            specific_character_set=export_character_set(source),  # the model's name in any script
        )
    seg.PatientOrientation = _valid_orientation(source)
    stamp_report_time(seg, content.report_time)
    if content.report.deidentify:
        deidentify_header(seg)
    with atomic_path(path) as temporary:
        seg.save_as(temporary, enforce_file_format=True)
    return path


def _algorithm_name(entry) -> str:
    """The model's label led by its family unless the label names it ("GMIC GMIC ensemble of 4" read twice)."""
    family = entry.family.upper()
    name = entry.label if entry.label.upper().startswith(family) else f"{family} {entry.label}"
    return name if len(name) <= 64 else name[:61] + "..."  # a LO holds 64: cut, and said to be (in ASCII, which
    # every character set a source may declare holds)


def _weights_version(entry) -> str:
    """The members' weights (``weights_id``) within the 64 characters a LO holds: an ensemble too long for it is
    its first member and how many more (a hash was cut in the middle: "…, sha256 88a81515bb0d, s")."""
    whole = ", ".join(m.weights_id for m in entry.members)
    if len(whole) <= 64:
        return whole
    return f"{entry.members[0].weights_id} + {len(entry.members) - 1} more (ensemble)"[:64]


def _valid_orientation(source) -> list[str] | str:
    """The source's Patient Orientation when it is well formed (two values of L, R, A, P, H, F), else
    empty: some archives (CBIS-DDSM) store the view name there."""
    values = list(source.get("PatientOrientation") or [])
    if len(values) == 2 and all(v and set(v) <= set("LRAPHF") for v in values):
        return values
    return ""
