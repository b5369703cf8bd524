"""The report's PDF as a DICOM Encapsulated PDF (``--format epdf``), so that a PACS can keep it in the
exam's study: the patient and study of the source images (de-identified when the report is), a series of
its own (modality DOC), the PDF bytes as they are."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app import __version__
from app.report.dicom_common import ReportError, deidentify_header, next_version, read_source
from inference.files import atomic_path

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
STUDY_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "IssuerOfPatientID",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                    "AccessionNumber")


def write_encapsulated_pdf(content, pdf: bytes, path: str | Path) -> Path:
    """``pdf`` (the report's PDF) wrapped for the study of ``content``'s exam."""
    image = next(iter(content.exam.views.values()))
    if not image.sop_instance_uid:
        raise ReportError("the exam is PNG, an Encapsulated PDF needs the DICOM study", image.source)
    source = read_source(image, content.report.deidentify, content.exam.patient.patient_id)
    ds = pydicom.Dataset()
    if "SpecificCharacterSet" in source:  # the names' own character set: without it, "Müller" was written in
        ds.SpecificCharacterSet = source.SpecificCharacterSet  # Latin-1 undeclared, and a Japanese name as "????"
    for keyword in STUDY_ATTRIBUTES:
        if keyword in source:
            setattr(ds, keyword, source.data_element(keyword).value)
    now = content.report_time
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF, generate_uid()
    version = next_version(path, str(source.get("StudyInstanceUID", "")))
    # its own series number: the SR's 9901 made two series of one number
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "DOC", generate_uid(), 9904, 1
    ds.SeriesDescription = version.described("Mammo Reader AI report (PDF)")
    ds.Manufacturer, ds.SoftwareVersions = "Mammo Reader", __version__
    ds.ConversionType = "WSD"  # workstation
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "NO" if content.report.deidentify else "YES"  # the PDF names the patient unless de-identified
    ds.DocumentTitle = "Mammography AI reading report"
    ds.ConceptNameCodeSequence = pydicom.Sequence([])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    data = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocument = data
    ds.EncapsulatedDocumentLength = len(pdf)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    if content.report.deidentify:
        deidentify_header(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ENCAPSULATED_PDF, ds.SOPInstanceUID
    path = Path(path)
    with atomic_path(path) as temporary:
        ds.save_as(temporary, enforce_file_format=True)
    return path
