"""The attention CNN's labelled images for ``evaluate``, and the held-out part of its own training split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inference.families.attention_cnn.data import class_samples
from inference.families.attention_cnn.mias import stratified_split
from inference.training.labelled_images import LabelledImage

NEEDS_VIEW = False  # the network reads the image as stored, whatever its laterality


def evaluation_images(data: str, classes: Sequence[str], phantoms: int, seed: int) -> tuple[list[LabelledImage], str]:
    samples, description = class_samples(data, phantoms, seed, tuple(classes))
    return [sample.image for sample in samples], description


def held_out(images: Sequence[LabelledImage], classes: Sequence[str], training: Mapping[str, Any],
             seed: int) -> list[int]:
    _, held = stratified_split([image.label for image in images], float(training.get("test_fraction", 0.25)), seed)
    return held
