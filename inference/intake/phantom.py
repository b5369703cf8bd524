"""Synthetic four-view screening exams with known findings (the built-in demo and the demo model's data).

Each view: a breast outline (CC: a half ellipse from the chest wall; MLO: a longer, tilted outline with
the pectoral muscle in the upper chest-wall corner, axilla up), a skin line, fibroglandular texture from
filtered noise with a power-law spectrum (P(f) ~ f^-beta, beta about 3 as measured on mammograms), and
inserted findings with pixel masks: a spiculated mass (malignant), a circumscribed round mass and a
calcification cluster (benign). 12-bit, deterministic from the seed. Storage orientation is the usual
one: left views face right (chest wall at column 0), right views face left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.intake.views import Laterality, Projection, View

MAX_VALUE = 4095
DEFAULT_SHAPE = (1600, 1000)
PIXEL_SPACING_MM = 0.14
DICOM_LAYOUT_VERSION = 2  # bump when write_dicom_exam writes different headers: cached demo copies are renewed


@dataclass(frozen=True)
class Finding:
    """A lesion to insert: kind is ``spiculated`` (malignant), ``round`` or ``calcifications`` (benign).
    ``position`` is (row, col) as fractions of the breast's extent, facing right; None draws at random."""

    kind: str
    position: tuple[float, float] | None = None
    size: float = 1.0

    @property
    def malignant(self) -> bool:
        return self.kind == "spiculated"


@dataclass(frozen=True)
class PhantomView:
    """A synthetic view: the stored image, its breast mask and one mask per class (benign, malignant)."""

    view: View
    image: np.ndarray  # uint16, 12-bit
    breast_mask: np.ndarray
    lesion_masks: dict[str, np.ndarray] = field(default_factory=dict)  # "benign" / "malignant"


@dataclass(frozen=True)
class PhantomExam:
    views: dict[View, PhantomView]
    labels: dict[str, int]  # left_benign, left_malignant, right_benign, right_malignant
    seed: int


def power_law_noise(shape: tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as f^-beta, normalised to zero mean and unit std."""
    rows = np.fft.fftfreq(shape[0])[:, None]
    cols = np.fft.rfftfreq(shape[1])[None, :]
    frequency = np.sqrt(rows**2 + cols**2)
    frequency[0, 0] = 1.0
    spectrum = (rng.standard_normal(frequency.shape) + 1j * rng.standard_normal(frequency.shape)) * frequency ** (-beta / 2)
    spectrum[0, 0] = 0
    field_ = np.fft.irfft2(spectrum, s=shape)
    return ((field_ - field_.mean()) / (field_.std() + 1e-12)).astype(np.float32)


def _breast_geometry(projection: Projection, shape: tuple[int, int], rng: np.random.Generator):
    """Mask of a right-facing breast, normalised distance to the skin, and the pectoral-muscle mask."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    if projection == Projection.CC:
        cy, a, b = h * rng.uniform(0.46, 0.54), w * rng.uniform(0.62, 0.8), h * rng.uniform(0.36, 0.44)
        radius = np.sqrt((cols / a) ** 2 + ((rows - cy) / b) ** 2)
        pectoral = np.zeros(shape, bool)
    else:
        cy, a, b = h * rng.uniform(0.55, 0.62), w * rng.uniform(0.6, 0.75), h * rng.uniform(0.42, 0.48)
        tilt = rng.uniform(0.25, 0.4)
        # tilted ellipse widened towards the axilla (top, chest-wall side)
        x = cols + tilt * (rows - cy)
        radius = np.sqrt((np.clip(x, 0, None) / a) ** 2 + ((rows - cy) / b) ** 2)
        radius = np.where(rows < cy, np.minimum(radius, np.sqrt((cols / (a * 0.75)) ** 2 + ((rows - cy) / (b * 1.25)) ** 2)), radius)
        pw, ph = w * rng.uniform(0.28, 0.4), h * rng.uniform(0.35, 0.5)
        pectoral = (cols / pw + rows / ph) < 1.0
    mask = radius <= 1.0
    return mask, np.clip(radius, 0, 1), pectoral


def _box(shape: tuple[int, int], centre: tuple[float, float], reach: float) -> tuple[slice, slice]:
    """The part of the image within ``reach`` pixels of ``centre``: a lesion is drawn there only (every pixel
    outside it would be zero), the same pixels as drawn over the whole image, at a fraction of the work."""
    h, w = shape
    top, left = max(0, int(np.floor(centre[0] - reach))), max(0, int(np.floor(centre[1] - reach)))
    bottom, right = min(h, int(np.ceil(centre[0] + reach)) + 1), min(w, int(np.ceil(centre[1] + reach)) + 1)
    return slice(top, max(top, bottom)), slice(left, max(left, right))


def _grid(box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[box[0], box[1]].astype(np.float32)


def _spiculated(shape, centre, radius, rng) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    # the core reaches 1.2 x 1.28 radii (its widest wobble), a spicule 3.2 radii and 3 px across
    box = _box(shape, centre, 3.3 * radius + 8)
    rows, cols = _grid(box)
    distance = np.sqrt((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2)
    angle = np.arctan2(rows - centre[0], cols - centre[1])
    # irregular core: the radius wobbles with angle
    wobble = 1 + 0.18 * np.sin(5 * angle + rng.uniform(0, 6)) + 0.1 * np.sin(9 * angle + rng.uniform(0, 6))
    core = np.clip(1.2 - distance / (radius * wobble), 0, 1)
    spicules = np.zeros(rows.shape, np.float32)
    for theta in rng.uniform(0, 2 * np.pi, int(rng.integers(12, 22))):
        length = radius * rng.uniform(1.8, 3.2)
        along = (cols - centre[1]) * np.cos(theta) + (rows - centre[0]) * np.sin(theta)
        across = -(cols - centre[1]) * np.sin(theta) + (rows - centre[0]) * np.cos(theta)
        line = (along > 0) & (along < length) & (np.abs(across) < 1.5 + 1.5 * (1 - along / length))
        spicules = np.maximum(spicules, line * (1 - along / length))
    value = 1100 * core + 550 * spicules
    return value, (core > 0.15) | (spicules > 0.3), box


def _round_mass(shape, centre, radius) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    box = _box(shape, centre, radius + 8)
    rows, cols = _grid(box)
    distance = np.sqrt((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2)
    profile = np.clip((radius - distance) / 3.0, 0, 1) * np.sqrt(np.clip(1 - (distance / radius) ** 2, 0, 1))
    return 720 * profile, distance <= radius, box


def _calcifications(shape, centre, radius, rng) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    box = _box(shape, centre, radius + 16)  # dots up to 3.2 px across, the cluster's outline 6 px beyond
    rows, cols = _grid(box)
    value = np.zeros(rows.shape, np.float32)
    mask = np.zeros(rows.shape, bool)
    for _ in range(int(rng.integers(8, 16))):
        r = rng.uniform(0, radius)
        t = rng.uniform(0, 2 * np.pi)
        cy, cx = centre[0] + r * np.sin(t), centre[1] + r * np.cos(t)
        dot = (rows - cy) ** 2 + (cols - cx) ** 2 <= rng.uniform(1.5, 3.2) ** 2
        value[dot] = 1300
        mask |= dot
    grown = np.sqrt((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) <= radius + 6
    return value, mask | (grown & (mask.any())), box


def _place(finding: Finding, mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    top, bottom, right = rows.min(), rows.max(), cols.max()
    if finding.position is not None:
        fy, fx = finding.position
    else:
        fy, fx = rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6)
    row = top + fy * (bottom - top)
    col = fx * right
    # keep it inside the breast
    inside_cols = np.nonzero(mask[int(row)])[0]
    if inside_cols.size:
        col = float(np.clip(col, inside_cols.min() + 40, max(inside_cols.max() - 60, inside_cols.min() + 40)))
    return float(row), float(col)


def render_view(
    view: View,
    findings: list[Finding],
    rng: np.random.Generator,
    shape: tuple[int, int] = DEFAULT_SHAPE,
) -> PhantomView:
    """One synthetic view, stored facing the usual way for its side."""
    mask, radius, pectoral = _breast_geometry(view.projection, shape, rng)
    texture = power_law_noise(shape, beta=3.0, rng=rng)
    fine = power_law_noise(shape, beta=1.5, rng=rng)
    density_bias = rng.uniform(-0.6, 0.5)
    glandular = 1 / (1 + np.exp(-3.0 * (texture + density_bias - 1.2 * radius)))
    thickness = np.sqrt(np.clip(1 - radius**2, 0, 1)) ** 0.35
    image = (950 + 1150 * glandular + 90 * fine) * thickness
    image = np.where(pectoral, image + 700 + 60 * fine, image)
    skin = (radius > 0.985) & mask
    image = np.where(skin, image + 250, image)
    lesion_masks = {"benign": np.zeros(shape, bool), "malignant": np.zeros(shape, bool)}
    for finding in findings:
        centre = _place(finding, mask & ~pectoral, rng)
        size = finding.size
        if finding.kind == "spiculated":
            value, lesion, box = _spiculated(shape, centre, rng.uniform(22, 34) * size, rng)
        elif finding.kind == "round":
            value, lesion, box = _round_mass(shape, centre, rng.uniform(26, 40) * size)
        elif finding.kind == "calcifications":
            value, lesion, box = _calcifications(shape, centre, rng.uniform(22, 34) * size, rng)
        else:
            raise ValueError(f"unknown finding {finding.kind!r}")
        added = value * thickness[box]
        image = image.astype(np.result_type(image, added), copy=False)  # a spiculated mass's float64 widens it
        image[box] += added
        lesion_masks["malignant" if finding.malignant else "benign"][box] |= lesion & mask[box]
    image = image + rng.normal(0, 12, shape)
    image = np.where(mask, np.clip(image, 1, MAX_VALUE), 0)
    if view.laterality == Laterality.RIGHT:  # right views are stored facing left
        image = image[:, ::-1]
        mask = mask[:, ::-1]
        lesion_masks = {k: v[:, ::-1] for k, v in lesion_masks.items()}
    return PhantomView(
        view=view,
        image=np.ascontiguousarray(np.round(image).astype(np.uint16)),
        breast_mask=np.ascontiguousarray(mask),
        lesion_masks={k: np.ascontiguousarray(v) for k, v in lesion_masks.items()},
    )


def random_findings(rng: np.random.Generator) -> list[Finding]:
    """A breast's findings for training: about 40 % malignant, 30 % benign, the rest normal."""
    u = rng.uniform()
    if u < 0.4:
        return [Finding("spiculated", size=rng.uniform(0.8, 1.3))]
    if u < 0.7:
        return [Finding(rng.choice(["round", "calcifications"]), size=rng.uniform(0.8, 1.3))]
    return []


def generate_exam(
    seed: int,
    findings: dict[Laterality, list[Finding]] | None = None,
    shape: tuple[int, int] = DEFAULT_SHAPE,
) -> PhantomExam:
    """A four-view exam; ``findings`` per breast (random when None). Deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    if findings is None:
        findings = {side: random_findings(rng) for side in Laterality}
    views = {}
    for view in View:
        # the same lesion sits at a similar place in both projections of a breast
        position_rng = np.random.default_rng([seed, 1 if view.laterality == Laterality.LEFT else 2])
        placed = [
            Finding(f.kind, f.position or (position_rng.uniform(0.35, 0.65), position_rng.uniform(0.3, 0.55)), f.size)
            for f in findings[view.laterality]
        ]
        views[view] = render_view(view, placed, np.random.default_rng([seed, list(View).index(view)]), shape)
    labels = {}
    for side in Laterality:
        name = "left" if side == Laterality.LEFT else "right"
        labels[f"{name}_malignant"] = int(any(f.malignant for f in findings[side]))
        labels[f"{name}_benign"] = int(any(not f.malignant for f in findings[side]))
    return PhantomExam(views=views, labels=labels, seed=seed)


DEMO_SEED = 20261122
DEMO_FINDINGS = {
    Laterality.RIGHT: [Finding("spiculated", (0.45, 0.42), 1.2)],
    Laterality.LEFT: [Finding("round", (0.6, 0.45), 1.1), Finding("calcifications", (0.35, 0.35), 1.0)],
}


def demo_exam() -> PhantomExam:
    """The built-in demo: a malignant spiculated mass on the right, a round mass and calcifications left."""
    return generate_exam(DEMO_SEED, DEMO_FINDINGS)


def write_dicom_exam(exam: PhantomExam, folder: str | Path, compress: bool = True) -> list[Path]:
    """Write the exam as MG "For Presentation" DICOM (MONOCHROME2, 12 bit, view and laterality codes, a VOI
    window; RLE Lossless when ``compress``), so that the demo goes through the real intake."""
    import datetime  # noqa: PLC0415

    from pydicom.dataset import Dataset, FileMetaDataset  # noqa: PLC0415
    from pydicom.sequence import Sequence  # noqa: PLC0415
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "1.2.826.0.1.3680043.8.498."  # pydicom's UID root
    study_uid = generate_uid(prefix, entropy_srcs=[f"phantom-study-{exam.seed}"])
    codes = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
    paths = []
    for number, (view, phantom) in enumerate(exam.views.items(), start=1):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
        ds.SOPInstanceUID = generate_uid(prefix, entropy_srcs=[f"phantom-{exam.seed}-{view.value}"])
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = generate_uid(prefix, entropy_srcs=[f"phantom-series-{exam.seed}"])
        ds.FrameOfReferenceUID = generate_uid(prefix, entropy_srcs=[f"phantom-for-{exam.seed}-{view.value}"])
        ds.Modality, ds.PresentationIntentType = "MG", "FOR PRESENTATION"
        ds.Manufacturer, ds.ManufacturerModelName = "Mammo Reader", "synthetic phantom"
        ds.PatientName, ds.PatientID = "Phantom^Demo", f"PHANTOM-{exam.seed}"
        ds.PatientBirthDate, ds.PatientSex = "", "F"
        ds.StudyDate = ds.ContentDate = datetime.date(2026, 1, 15).strftime("%Y%m%d")
        ds.StudyTime = ds.ContentTime = "100000"
        ds.AccessionNumber, ds.StudyID = f"DEMO{exam.seed % 100000:05d}", "1"
        ds.SeriesNumber, ds.InstanceNumber = 1, number
        ds.ImageLaterality = view.laterality.value
        ds.ViewPosition = view.projection.value
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (*codes[view.projection.value][:1], "SCT",
                                                                          codes[view.projection.value][1])
        item.ViewModifierCodeSequence = Sequence([])
        ds.ViewCodeSequence = Sequence([item])
        ds.PatientOrientation = ["A", "R"] if view.laterality == Laterality.LEFT else ["P", "L"]
        # what the Digital Mammography X-Ray Image IOD requires (checked with dciodvfy in the tests)
        ds.ImageType = ["DERIVED", "PRIMARY", ""]  # synthetic: made by a program, not acquired
        ds.ReferringPhysicianName, ds.PositionReferenceIndicator, ds.DetectorType = "", "", ""
        ds.PositionerType, ds.OrganExposed, ds.BodyPartExamined = "MAMMOGRAPHIC", "BREAST", "BREAST"
        breast = Dataset()
        breast.CodeValue, breast.CodingSchemeDesignator, breast.CodeMeaning = "76752008", "SCT", "Breast"
        ds.AnatomicRegionSequence = Sequence([breast])
        ds.AcquisitionContextSequence = Sequence([])
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
        ds.PresentationLUTShape = "IDENTITY"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = -1  # higher values: less X-ray intensity (dense tissue bright)
        ds.LossyImageCompression = "00"
        ds.ImagerPixelSpacing = ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
        ds.Rows, ds.Columns = phantom.image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 1700, 2600
        ds.WindowCenterWidthExplanation = "STANDARD"
        ds.VOILUTFunction = "LINEAR"
        ds.BurnedInAnnotation = "NO"
        ds.ImageComments = "SYNTHETIC PHANTOM - not a patient image"
        if compress:
            ds.compress(RLELossless, phantom.image)
        else:
            ds.PixelData = phantom.image.tobytes()
        path = folder / f"{view.value}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
