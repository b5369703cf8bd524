"""Labelled images of an exclusive-class family (the attention CNN, GlimpseNet), and their probabilities read
through the family's own preprocessing and ``run`` — exactly the path of the workstation and ``analyze``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from inference.training.labelled_images import LabelledImage

EVALUATION_SEED = 70_000  # phantoms for evaluation: none of the training, validation or calibration ones


def evaluation_images(family: str, data: str, classes: tuple[str, ...], phantoms: int, split: str,
                      training: dict[str, Any]) -> tuple[list[LabelledImage], str]:
    """(images, a description). ``split`` "test": only the held-out part of the model's own training split
    (its data, seed and fraction from ``training``, the metadata's record)."""
    seed = EVALUATION_SEED
    if split == "test":
        if not training:
            raise ValueError("--split test needs the model's training record (its model.pt.json has none)")
        seed, phantoms = int(training.get("seed", 0)), int(training.get("n_phantoms", phantoms))
    if family == "attention-cnn":
        from inference.families.attention_cnn.data import class_samples  # noqa: PLC0415
        from inference.families.attention_cnn.mias import stratified_split  # noqa: PLC0415

        samples, description = class_samples(data, phantoms, seed, classes)
        images = [s.image for s in samples]
        if split == "test":
            _, held = stratified_split([i.label for i in images], float(training.get("test_fraction", 0.25)), seed)
    elif family == "glimpsenet":
        from inference.families.glimpsenet.training import glimpse_images, split as glimpse_split  # noqa: PLC0415

        images, description = glimpse_images(data, phantoms, seed)
        if split == "test":
            _, held = glimpse_split([classes.index(i.label) for i in images],
                                    float(training.get("val_fraction", 0.2)), seed)
    else:
        raise ValueError(f"no class evaluation for the {family} family")
    unknown = {i.label for i in images} - set(classes)
    if unknown:
        raise ValueError(f"{data}: labels {sorted(unknown)} are not among the model's classes {list(classes)}")
    if split == "test":
        images = [images[i] for i in held]
        description = f"the held-out part ({len(images)} images) of {description}"
    return images, description


def class_probabilities(loaded, images: list[LabelledImage], device: str | torch.device = "cpu",
                        progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(N, K) class probabilities of each image, as the family's ``run`` gives them (exact mode)."""
    from inference.families.registry import get  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415

    identity = loaded.identity
    family = get(identity.family)
    device = torch.device(device)
    rows = []
    for number, image in enumerate(images, start=1):
        if image.view is None and family.name != "attention-cnn":  # it reads the image as stored; others flip
            raise ValueError(f"{image.source}: the view (laterality) is needed to read this image")
        prepared = family.prepare(image.image, image.view or View.L_CC, False)
        output = family.run(loaded.model, [prepared], device, "exact", identity)[0]
        rows.append([output.probabilities[c] for c in identity.classes])
        if progress:
            progress(number, len(images))
    return np.asarray(rows, np.float64)
