"""DICOM Comprehensive 3D SR with a TID 1500 Measurement Report (highdicom), so that a PACS can store the
findings next to the images: for every analysed model, each view's class probabilities (a group of its own that
references the image), each scored region as an image region (SCOORD polyline on the source image, pixel-edge
coordinates) with its own score alone (attention, glimpse or window probability …; a detection with an instance
mask, Mask R-CNN: its outline as a closed SCOORD POLYLINE — SCOORD's polygon, PS3.3 C.18.6.1.2 — and its class and
score), and the breast- and exam-level probabilities (a detector's class none of whose detections passed its
score threshold: the threshold and "no detection at or above it", never a probability of 0). A region's group never
carries the view's probabilities: a viewer showed a low-attention patch as "Probability of malignancy 0.91" (a site
lead's finding). Codes that no standard defines use the private scheme 99MAMMOREADER (benign and malignant keep
MR003 and MR002; other classes and scores get stable codes derived from their names)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage

from app import __version__
from app.cad_marks import mask_outline as outline_of
from app.cad_marks import shown_regions
from app.model_table import score_floor
from app.report.dicom_common import (ReportError, deidentify_header, require_distinct_instances, export_character_set,
                                     next_version, no_identifiers_in_warnings, read_source, stamp_report_time)
from inference.files import atomic_path
from inference.intake.views import Laterality

SCHEME = "99MAMMOREADER"
ATTENTION = Code("MR001", SCHEME, "Attention weight of the region")
P_MALIGNANT = Code("MR002", SCHEME, "Probability of malignancy")
P_BENIGN = Code("MR003", SCHEME, "Probability of benign finding")
SCORE_THRESHOLD = Code("MR004", SCHEME, "Detector score threshold")
NOTHING_DETECTED = Code("MR005", SCHEME, "No detection scored at or above the detector's threshold")
NO_UNITS = Code("1", "UCUM", "no units")
LESION = Code("52988006", "SCT", "Lesion")  # a detection (an instance mask)
IMAGE_REGION = codes.DCM.ImageRegion  # a region a model scored (retrieved patch, attention window): no lesion
BREAST = Code("76752008", "SCT", "Breast")
PROCEDURE = Code("24606-6", "LN", "MG Breast Screening")
LATERALITY = {Laterality.LEFT: Code("7771000", "SCT", "Left"), Laterality.RIGHT: Code("24028007", "SCT", "Right")}
KNOWN_CLASSES = {"malignant": P_MALIGNANT, "benign": P_BENIGN}
KNOWN_SCORES = {"attention": ATTENTION}


def _short_code(prefix: str, text: str) -> str:
    """A stable private code value (at most 16 characters) for a name no standard codes."""
    return f"{prefix}{hashlib.sha1(text.encode()).hexdigest()[:10].upper()}"


def class_code(name: str) -> Code:
    return KNOWN_CLASSES.get(name) or Code(_short_code("MRC", name), SCHEME, f"Probability of {name.replace('_', ' ')}")


def score_code(kind: str) -> Code:
    return KNOWN_SCORES.get(kind) or Code(_short_code("MRS", kind), SCHEME, f"Region score: {kind}")


def _measurement(name: Code, value: float) -> hd.sr.Measurement:
    if not np.isfinite(value):  # the analysis makes a non-finite output "no result": one here is a bug
        raise ValueError(f"{name.meaning} is {value}, not a finite number; refusing to write it in the SR")
    return hd.sr.Measurement(name=name, value=float(value), unit=NO_UNITS)


def _class_findings(entry, probabilities, malignancy) -> dict:
    """A group's class measurements: one per class; P(malignant) by the model's rule when its classes are not
    benign/malignant. A detector's class none of whose detections passed its score threshold has the score 0,
    which is no probability of 0 (the screen and the PDF say "< 5 %"): the group carries the threshold and, for
    that class, a coded "no detection at or above the threshold" instead of a number (keyword arguments of a
    highdicom measurement group)."""
    floor = score_floor(entry)
    named = [(class_code(c), probabilities[c]) for c in entry.classes]
    if malignancy is not None and "malignant" not in entry.classes:
        named.append((P_MALIGNANT, malignancy))
    below = [name for name, value in named if floor is not None and value == 0.0]
    measurements = [_measurement(name, value) for name, value in named if name not in below]
    if below:
        measurements.append(_measurement(SCORE_THRESHOLD, floor))
    return {"measurements": measurements,
            "qualitative_evaluations": [hd.sr.QualitativeEvaluation(name, NOTHING_DETECTED) for name in below] or None}


def mask_outline(mask, original_shape: tuple[int, int]) -> np.ndarray | None:
    """The outline the screen draws (``app.cad_marks.mask_outline``) as a closed polygon of (column, row) SCOORD
    points kept on the source image (pixel-edge coordinates: a pixel's centre is at +0.5); None when no cell of
    the mask is inside."""
    rows_cols = outline_of(mask)
    if rows_cols is None:
        return None
    rows, cols = original_shape
    points = np.stack([np.clip(rows_cols[:, 1], 0, cols), np.clip(rows_cols[:, 0], 0, rows)], axis=1)
    return np.concatenate([points, points[:1]])


def _region_graphic(region, rows: int, cols: int) -> np.ndarray:
    """The region's SCOORD: the outline of its instance mask where it has one, else its box."""
    if region.mask is not None:
        outline = mask_outline(region.mask, (rows, cols))
        if outline is not None:
            return outline
    top, left, bottom, right = region.box_original
    top, bottom = np.clip([top, bottom], 0, rows)
    left, right = np.clip([left, right], 0, cols)
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom], [left, top]], float)


def algorithm_of(entry, provenance) -> hd.sr.AlgorithmIdentification:
    """The model an entry's groups come from (TID 4019): its name, its weights' identity (the hash the PDF and the
    screen show) and how it ran; a demo model says so."""
    versions = [m.weights_id for m in entry.members]
    parameters = [f"family {entry.family}", f"{provenance.mode.value} mode ({provenance.numerics}) on {provenance.device}"]
    if any(m.demo for m in entry.members):
        from app.report.content import DEMO_WARNING  # noqa: PLC0415

        parameters.append(DEMO_WARNING.replace("—", "-"))  # a dash every character set holds
    return hd.sr.AlgorithmIdentification(name=entry.label, version=", ".join(versions), parameters=parameters,
                                         manufacturer="Mammo Reader")


def write_sr(content, path: str | Path) -> Path:
    """The SR of every analysed model: each view's class probabilities, each region (SCOORD polyline on its
    source image) with its own score, then breast and exam probabilities per model."""
    result, exam = content.result, content.exam
    if result is None:
        raise ReportError("a structured report needs an analysis result" + (
            f" ({content.report.model_withheld})" if content.report.model_withheld else ""))
    require_distinct_instances(exam)
    sources = {}
    for view, image in exam.views.items():
        if not image.sop_instance_uid:
            raise ReportError("a DICOM structured report needs DICOM source images (this exam is PNG)", image.source)
        sources[view] = read_source(image, content.report.deidentify, content.exam.patient.patient_id)
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="Mammo Reader",
                                                        manufacturer_name="Mammo Reader", model_name=__version__)
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                                      observer_identifying_attributes=device))
    groups = []
    for entry in result.entries:
        algorithm = algorithm_of(entry, result.provenance)
        for view, view_result in result.views.items():
            source = sources[view]
            rows, cols = int(source.Rows), int(source.Columns)
            r = view_result.result(entry.id)
            if r is None or not view_result.counted:
                # no result (not finite, or refused); or a possible laterality error, which every other output
                # leaves out of its breast: its regions here would be findings on a breast it may not show
                continue
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=hd.UID(), identifier=f"{entry.id[:40]} {view.value} view"),
                finding_type=BREAST,
                finding_sites=[hd.sr.FindingSite(anatomic_location=BREAST, laterality=LATERALITY[view.laterality])],
                **_class_findings(entry, r.probabilities, entry.malignant(r.probabilities)),
                algorithm_id=algorithm,
                source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)]))
            # the regions the screen and the PDF show (the model's operating point, on the breast), not every one a
            # PACS would draw: six patches where the screen showed three, 377 "Lesion" outlines of a detector whose
            # PDF showed three a view (a site lead's test); a detection with its own class and score
            image = exam.views.get(view)
            for region in shown_regions(r.regions, entry.members, image)[0]:
                area = hd.sr.ImageRegion(
                    graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=_region_graphic(region, rows, cols),
                    source_image=hd.sr.SourceImageForRegion.from_source_image(source))
                measurements = [_measurement(score_code(region.kind), region.score)]
                if region.mask is not None:  # a detection: its class and score (its class probability)
                    measurements += [_measurement(class_code(name), p)
                                     for name, p in (region.probabilities or {}).items()]
                groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=hd.UID(), identifier=f"{entry.id} {view.value} {region.kind} {region.rank}"[:64]),
                    referenced_region=area, finding_type=LESION if region.mask is not None else IMAGE_REGION,
                    finding_sites=[hd.sr.FindingSite(anatomic_location=BREAST, laterality=LATERALITY[view.laterality])],
                    measurements=measurements, algorithm_id=algorithm))
        for side, breast in result.breasts.items():
            scores = breast.entries.get(entry.id)
            if scores is None:
                continue
            # "(CC only)": a breast scored from one view says so, as on screen and in the PDF
            name = f"{entry.id[:40]} {side.value} breast {scores.one_view_note}".strip()
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=name),
                finding_type=BREAST, finding_sites=[hd.sr.FindingSite(anatomic_location=BREAST, laterality=LATERALITY[side])],
                **_class_findings(entry, scores.probabilities, scores.malignant),
                algorithm_id=algorithm))
        decision = result.exam[entry.id]
        if decision.probabilities:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{entry.id} exam"[:64]),
                finding_type=BREAST,
                **_class_findings(entry, decision.probabilities, decision.malignant),
                algorithm_id=algorithm))
    if not groups:  # TID 1500 carries at least one measurement group; highdicom's own error said only that
        raise ReportError("no model has a result on any view of this exam (the notices say why), so a structured "
                          "report would carry nothing")
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=PROCEDURE, imaging_measurements=groups)
    families = ", ".join(sorted({e.family.upper() for e in result.entries}))
    # a study analysed again, an exam exported again: the report names the one it replaces (Predecessor
    # Documents), and its series says its version
    version = next_version(path, str(next(iter(sources.values())).StudyInstanceUID))
    earlier = [version.earlier] if version.earlier is not None and str(
        version.earlier.get("SOPClassUID", "")) == Comprehensive3DSRStorage else []
    with no_identifiers_in_warnings():
        sr = hd.sr.Comprehensive3DSR(
            evidence=list(sources.values()), content=report, series_instance_uid=hd.UID(), series_number=9901,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Mammo Reader",
            series_description=version.described(f"AI decision support ({families})"), is_complete=True,
            is_final=False, is_verified=False, previous_versions=earlier or None,
            specific_character_set=export_character_set(next(iter(sources.values()))),
        )
    scheme = pydicom.Dataset()  # the private scheme, described where the standard asks (PS3.3 C.12.1.1.3.1)
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "Mammo Reader AI result concepts"
    scheme.CodingSchemeResponsibleOrganization = "Mammo Reader"
    sr.CodingSchemeIdentificationSequence = [scheme]
    stamp_report_time(sr, content.report_time)
    if content.report.deidentify:
        deidentify_header(sr)
    path = Path(path)
    with atomic_path(path) as temporary:
        sr.save_as(temporary, enforce_file_format=True)
    return path
