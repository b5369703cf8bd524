"""The MIAS database (Suckling et al., the mammographic image analysis society's digital mammogram database)
as distributed: 1024 x 1024 PGM files at 50 µm (``mdb001.pgm`` …) and the ``Info.txt`` table, one row per
abnormality::

    mdb001 G CIRC B 535 425 197     reference, background tissue (F/G/D), class, severity (B/M), x, y, radius
    mdb003 D NORM                   normal images have neither severity nor coordinates
    mdb059 F CIRC B *NOTE 3*        some abnormalities have no coordinates

Coordinates have their origin at the *bottom-left* corner of the image; rows here count from the top
(``row = 1024 - y``). An image with several rows keeps the first row's class and severity and every row's
circle in its lesion mask. The classes are spelled out (``CLASS_NAMES``); the codes stay in the metadata.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.training.labelled_images import LabelledImage

CODES = ("ARCH", "ASYM", "CALC", "CIRC", "MISC", "NORM", "SPIC")
CLASS_NAMES = {
    "ARCH": "architectural_distortion",
    "ASYM": "asymmetry",
    "CALC": "calcification",
    "CIRC": "circumscribed_mass",
    "MISC": "ill_defined_mass",
    "NORM": "normal",
    "SPIC": "spiculated_mass",
}
CLASSES = tuple(CLASS_NAMES[code] for code in CODES)
IMAGE_SIZE = 1024
PIXEL_SPACING_MM = 0.05
_ROW = re.compile(r"^(mdb\d{3})\s+([FGD])\s+([A-Z]{4})(?:\s+([BM]))?(?:\s+(\d+)\s+(\d+)\s+(\d+))?")


@dataclass(frozen=True)
class MiasRow:
    """One row of ``Info.txt``; ``centre`` is (row, col) from the top-left, or None."""

    reference: str
    tissue: str
    code: str
    severity: str | None
    centre: tuple[int, int] | None
    radius: int | None

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.code]


def parse_info(path: str | Path) -> list[MiasRow]:
    """Every abnormality row of an ``Info.txt``; other lines (headers, notes) are skipped. A line that names an
    image but cannot be read is an error naming the file and line."""
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        text = line.strip()
        if not text.lower().startswith("mdb"):
            continue
        match = _ROW.match(text)
        if match is None or match.group(3) not in CODES:
            raise ValueError(f"{path}, line {number}: not a MIAS row (reference, tissue F/G/D, class "
                             f"{'/'.join(CODES)}, severity B/M, x y radius): {text[:60]!r}")
        reference, tissue, code, severity, x, y, radius = match.groups()
        if code != "NORM" and severity is None:
            raise ValueError(f"{path}, line {number}: {reference} is {code} but has no severity (B or M)")
        centre = (IMAGE_SIZE - int(y), int(x)) if x is not None else None
        rows.append(MiasRow(reference, tissue, code, severity, centre, int(radius) if radius else None))
    if not rows:
        raise ValueError(f"{path}: no MIAS rows found")
    return rows


@dataclass(frozen=True)
class MiasImage:
    """One image of the database with its class, severity ("" for normal) and tissue."""

    labelled: LabelledImage
    severity: str
    tissue: str


def lesion_mask(rows: Sequence[MiasRow], shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)) -> np.ndarray | None:
    """The union of the rows' circles, or None when no row has coordinates."""
    circles = [r for r in rows if r.centre is not None and r.radius]
    if not circles:
        return None
    rr, cc = np.mgrid[0: shape[0], 0: shape[1]]
    mask = np.zeros(shape, bool)
    for row in circles:
        mask |= (rr - row.centre[0]) ** 2 + (cc - row.centre[1]) ** 2 <= row.radius**2
    return mask


def load_mias(folder: str | Path, info: str | Path | None = None) -> list[MiasImage]:
    """The images of a MIAS folder (``Info.txt`` and the PGM files beside it), in reference order."""
    import cv2  # noqa: PLC0415

    folder = Path(folder)
    info = Path(info) if info else folder / "Info.txt"
    if not info.is_file():
        raise FileNotFoundError(f"{info}: the MIAS table (Info.txt) is missing")
    by_image: dict[str, list[MiasRow]] = {}
    for row in parse_info(info):
        by_image.setdefault(row.reference, []).append(row)
    images = []
    for reference, rows in sorted(by_image.items()):
        file = folder / f"{reference}.pgm"
        pixels = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise ValueError(f"{file}: missing or not a readable PGM image")
        if pixels.ndim != 2:
            pixels = pixels.max(axis=2)
        first = rows[0]
        labelled = LabelledImage(pixels, None, first.class_name, lesion_mask(rows, pixels.shape), str(file))
        images.append(MiasImage(labelled, first.severity or "", first.tissue))
    return images


def stratified_split(labels: Sequence[str], test_fraction: float = 0.25, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices (train, test): a stratified split by class (the paper's 75/25). Classes with a single image
    go to the training set."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    labels = list(labels)
    counts = {label: labels.count(label) for label in set(labels)}
    alone = [i for i, label in enumerate(labels) if counts[label] < 2]
    rest = [i for i, label in enumerate(labels) if counts[label] >= 2]
    train, test = train_test_split(rest, test_size=test_fraction, random_state=seed,
                                   stratify=[labels[i] for i in rest])
    return sorted(train + alone), sorted(test)


def balanced_resample(groups: Sequence[str], total: int, seed: int = 0) -> list[int]:
    """``total`` indices drawn so that every group (class × severity) is equally frequent (with replacement;
    the paper balances its training set to 1300 images this way)."""
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    names = sorted(members)
    per_group = [total // len(names) + (1 if k < total % len(names) else 0) for k in range(len(names))]
    picked = [int(i) for name, n in zip(names, per_group, strict=True) for i in rng.choice(members[name], n)]
    return [picked[i] for i in rng.permutation(len(picked))]
