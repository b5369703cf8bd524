"""DICOM Comprehensive 3D SR with a TID 1500 Measurement Report (highdicom), so that a PACS can store the
findings next to the images: each retrieved patch as an image region (SCOORD polyline on the source image,
pixel-edge coordinates) with its attention weight and the view's probabilities, and the breast- and
exam-level probabilities. Codes that no standard defines use the private scheme 99MAMMOREADER."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from app import __version__
from app.report.content import ReportInput
from app.report.dicom_common import deidentify_header, no_identifiers_in_warnings, read_source
from inference.errors import MammoError
from inference.views import Laterality

SCHEME = "99MAMMOREADER"
ATTENTION = Code("MR001", SCHEME, "Attention weight of the region")
P_MALIGNANT = Code("MR002", SCHEME, "Probability of malignancy")
P_BENIGN = Code("MR003", SCHEME, "Probability of benign finding")
NO_UNITS = Code("1", "UCUM", "no units")
LESION = Code("52988006", "SCT", "Lesion")
BREAST = Code("76752008", "SCT", "Breast")
PROCEDURE = Code("24606-6", "LN", "MG Breast Screening")
LATERALITY = {Laterality.LEFT: Code("7771000", "SCT", "Left"), Laterality.RIGHT: Code("24028007", "SCT", "Right")}


class ReportError(MammoError):
    """A report that cannot be made as asked."""


def _measurement(name: Code, value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=NO_UNITS)


def write_sr(report: ReportInput, path: str | Path) -> Path:
    result, exam = report.result, report.exam
    if result is None:
        raise ReportError("a structured report needs an analysis result")
    sources = {}
    for view, image in exam.views.items():
        if not image.sop_instance_uid:
            raise ReportError("a DICOM structured report needs DICOM source images (this exam is PNG)", image.source)
        sources[view] = read_source(image)
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="Mammo Reader GMIC",
                                                        manufacturer_name="Mammo Reader", model_name=__version__)
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                                      observer_identifying_attributes=device))
    groups = []
    for view, view_result in result.views.items():
        source = sources[view]
        rows, cols = int(source.Rows), int(source.Columns)
        for patch in view_result.patches:
            top, left, bottom, right = patch.box_original
            top, bottom = np.clip([top, bottom], 0, rows)
            left, right = np.clip([left, right], 0, cols)
            polyline = np.array([[left, top], [right, top], [right, bottom], [left, bottom], [left, top]], float)
            region = hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=polyline,
                source_image=hd.sr.SourceImageForRegion.from_source_image(source))
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{view.value} region {patch.rank}"),
                referenced_region=region, finding_type=LESION, finding_sites=[hd.sr.FindingSite(
                    anatomic_location=BREAST, laterality=LATERALITY[view.laterality])],
                measurements=[_measurement(ATTENTION, patch.attention),
                              _measurement(P_MALIGNANT, view_result.probabilities[1]),
                              _measurement(P_BENIGN, view_result.probabilities[0])]))
    for side, breast in result.breasts.items():
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{side.value} breast"),
            finding_type=BREAST, finding_sites=[hd.sr.FindingSite(anatomic_location=BREAST, laterality=LATERALITY[side])],
            measurements=[_measurement(P_MALIGNANT, breast.probabilities[1]), _measurement(P_BENIGN, breast.probabilities[0])]))
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="exam"),
        finding_type=BREAST,
        measurements=[_measurement(P_MALIGNANT, result.probabilities[1]), _measurement(P_BENIGN, result.probabilities[0])]))
    content = hd.sr.MeasurementReport(observation_context=context, procedure_reported=PROCEDURE, imaging_measurements=groups)
    with no_identifiers_in_warnings():
        sr = hd.sr.Comprehensive3DSR(
            evidence=list(sources.values()), content=content, series_instance_uid=hd.UID(), series_number=9901,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Mammo Reader",
            series_description="AI decision support (GMIC)", is_complete=True, is_final=False, is_verified=False,
        )
    scheme = pydicom.Dataset()  # the private scheme, described where the standard asks (PS3.3 C.12.1.1.3.1)
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "Mammo Reader GMIC result concepts"
    scheme.CodingSchemeResponsibleOrganization = "Mammo Reader"
    sr.CodingSchemeIdentificationSequence = [scheme]
    if report.deidentify:
        deidentify_header(sr, report)
    path = Path(path)
    sr.save_as(path, enforce_file_format=True)
    return path
