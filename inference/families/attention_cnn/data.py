"""Labelled images for the attention CNN on the MIAS classes, from any of three sources:

* ``phantom``: phantom views, their findings named as MIAS classes (spiculated mass, circumscribed mass,
  calcification, normal; severity M for the spiculated mass, B for the others);
* a MIAS folder as distributed (``Info.txt`` beside the PGM files; :mod:`inference.families.attention_cnn.mias`);
* the project's generic CSV (``path, view, label[, mask]``; labels are the spelled-out class names,
  ``circumscribed_mass`` …; an optional ``severity`` column B/M).

Each sample carries a balancing group, class × severity, as the paper's resampling uses.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from inference.families.attention_cnn.mias import CLASSES, load_mias
from inference.training.labelled_images import LabelledImage, csv_images, phantom_images

PHANTOM_AS_MIAS = {"malignant": ("spiculated_mass", "M"), "benign": ("circumscribed_mass", "B"),
                   "benign_without_callback": ("calcification", "B"), "no_tumour": ("normal", "")}


@dataclass(frozen=True)
class ClassSample:
    image: LabelledImage
    severity: str  # "B", "M" or "" (normal or unknown)

    @property
    def group(self) -> str:
        return f"{self.image.label}/{self.severity or '-'}"


def phantom_samples(count: int, seed: int) -> list[ClassSample]:
    samples = []
    for image in phantom_images(count, seed):
        label, severity = PHANTOM_AS_MIAS[image.label]
        samples.append(ClassSample(LabelledImage(image.image, image.view, label, image.lesion, image.source), severity))
    return samples


def _csv_severities(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [(reader.line_num, row) for row in reader]  # the file's line: a blank line counts
    severities = []
    for number, row in rows:
        severity = (row.get("severity") or "").strip().upper()
        if severity not in ("", "B", "M"):
            raise ValueError(f"{path}, row {number}: severity must be B, M or empty, not {severity!r}")
        severities.append(severity)
    return severities


def class_samples(data: str, phantoms: int = 96, seed: int = 0,
                  classes: tuple[str, ...] = CLASSES) -> tuple[list[ClassSample], str]:
    """(samples, a description for reports) from ``phantom``, a MIAS folder or a CSV."""
    if data == "phantom":
        return phantom_samples(phantoms, seed), f"{phantoms} phantom views (seed {seed})"
    path = Path(data)
    if path.is_dir():
        images = load_mias(path)
        unknown = {m.labelled.label for m in images} - set(classes)
        if unknown:
            raise ValueError(f"{path}: classes {sorted(unknown)} are not among the model's {list(classes)}")
        return [ClassSample(m.labelled, m.severity) for m in images], f"MIAS {path.name} ({len(images)} images)"
    images = csv_images(path, classes)
    severities = _csv_severities(path)
    samples = [ClassSample(image, severity) for image, severity in zip(images, severities, strict=True)]
    return samples, f"{path.name} ({len(samples)} images)"
