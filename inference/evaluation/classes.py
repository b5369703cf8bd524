"""Labelled images of an exclusive-class family (those whose commands declare ``evaluation="classes"``), and
their probabilities read through the family's own preprocessing and ``run`` — exactly the path of the workstation and ``analyze``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from inference.training.labelled_images import LabelledImage

EVALUATION_SEED = 70_000  # phantoms for evaluation: none of the training, validation or calibration ones


def evaluation_images(family: str, data: str, classes: tuple[str, ...], phantoms: int, split: str,
                      training: dict[str, Any]) -> tuple[list[LabelledImage], str]:
    """(images, a description) from the family's own evaluation data. ``split`` "test": only the held-out part
    of the model's own training split (its data, seed and fraction from ``training``, the metadata's record)."""
    from inference.families.protocol import commands_of, resolve  # noqa: PLC0415
    from inference.families.registry import get  # noqa: PLC0415

    reference = commands_of(get(family)).evaluation_data
    if reference is None:
        raise ValueError(f"no class evaluation for the {family} family")
    source = resolve(reference)
    seed = EVALUATION_SEED
    if split == "test":
        if not training:
            raise ValueError("--split test needs the model's training record (its model.pt.json has none)")
        seed, phantoms = int(training.get("seed", 0)), int(training.get("n_phantoms", phantoms))
    images, description = source.evaluation_images(data, classes, phantoms, seed)
    unknown = {i.label for i in images} - set(classes)
    if unknown:
        raise ValueError(f"{data}: labels {sorted(unknown)} are not among the model's classes {list(classes)}")
    if split == "test":
        images = [images[i] for i in source.held_out(images, classes, training, seed)]
        description = f"the held-out part ({len(images)} images) of {description}"
    return images, description


def class_probabilities(loaded, images: list[LabelledImage], device: str | torch.device = "cpu",
                        progress: Callable[[int, int], None] | None = None, mode: str = "exact") -> np.ndarray:
    """(N, K) class probabilities of each image, as the family's ``run`` gives them (in ``mode``)."""
    from inference.families.protocol import commands_of, resolve  # noqa: PLC0415
    from inference.families.registry import get  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415
    from inference.finite_guard import not_finite_reason, run_guarded  # noqa: PLC0415

    identity = loaded.identity
    family = get(identity.family)
    source = commands_of(family).evaluation_data
    # a family that reads the image as stored needs no laterality; the others flip right breasts
    needs_view = getattr(resolve(source), "NEEDS_VIEW", True) if source else True
    device = torch.device(device)
    rows = []
    for number, image in enumerate(images, start=1):
        if image.view is None and needs_view:
            raise ValueError(f"{image.source}: the view (laterality) is needed to read this image")
        prepared = family.prepare(image.image, image.view or View.L_CC, False)
        output = run_guarded(family, loaded.model, [prepared], device, mode, identity)[0]
        if output.refused:  # a view the model does not read is an error here, never a row of numbers
            raise ValueError(f"{image.source}: the model did not read this image: {output.refused}")
        problem = not_finite_reason(output)
        if problem:  # never a row of an AUC or a calibration
            raise ValueError(f"{image.source}: the model's output is not a finite number ({problem})")
        rows.append([output.probabilities[c] for c in identity.classes])
        if progress:
            progress(number, len(images))
    return np.asarray(rows, np.float64)
