"""Build small, realistic MG DICOM files from the shared PNGs for intake tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.conftest import DATA

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
PATIENT_NAME = "Testpatient^Ada"
PATIENT_ID = "PID-0042-SECRET"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1000000000000000000000000000000000001"
CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique"),
         "ML": ("399260004", "medio-lateral")}


def sample_pixels(view: str = "L-CC", shrink: int = 4) -> np.ndarray:
    """A 12-bit exam-0 view (L views face right, R views face left), shrunk for speed."""
    image = cv2.imread(str(DATA / "gmic-exam0" / f"0_{view}.png"), cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(image[::shrink, ::shrink])


def code_item(value: str, meaning: str, scheme: str = "SCT") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def make_dataset(
    pixels: np.ndarray,
    view: str = "L-CC",
    *,
    photometric: str = "MONOCHROME2",
    projection: str | None = None,
    laterality_keyword: str = "ImageLaterality",
    sop_class: str = MG_FOR_PRESENTATION,
    intent: str = "FOR PRESENTATION",
    modifiers: tuple[str, ...] = (),
    **attributes,
) -> Dataset:
    side, proj = view.split("-")
    projection = proj if projection is None else projection
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, generate_uid()  # one exam unless a test says otherwise
    ds.Modality = "MG"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, "19600101"
    ds.AccessionNumber, ds.StudyDate = "ACC123", "20260101"
    if intent:
        ds.PresentationIntentType = intent
    if laterality_keyword:
        setattr(ds, laterality_keyword, side)
    if projection:
        ds.ViewPosition = projection
        code = CODES.get(projection)
        if code:
            item = code_item(*code)
            item.ViewModifierCodeSequence = Sequence([code_item("0", m) for m in modifiers])
            ds.ViewCodeSequence = Sequence([item])
    ds.PatientOrientation = ["A", "R"] if side == "L" else ["P", "L"]
    # 0.1 mm, coarser where a shrunk sample would cover less than 20 mm a side (the intake refuses an image that
    # small: no mammogram is)
    spacing = 0.1 if min(pixels.shape) >= 200 else round(24.0 / min(pixels.shape), 4)
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"  # required of a mammogram (a de-identified export refuses an image without it)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def write(ds: Dataset, folder: Path, name: str) -> Path:
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path
