"""GlimpseNet's labelled images for ``evaluate``, and the held-out part of its own training split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inference.families.glimpsenet.training import glimpse_images, split
from inference.training.labelled_images import LabelledImage


def evaluation_images(data: str, classes: Sequence[str], phantoms: int, seed: int) -> tuple[list[LabelledImage], str]:
    return glimpse_images(data, phantoms, seed)


def held_out(images: Sequence[LabelledImage], classes: Sequence[str], training: Mapping[str, Any],
             seed: int) -> list[int]:
    _, held = split([list(classes).index(image.label) for image in images], float(training.get("val_fraction", 0.2)),
                    seed)
    return held
