"""Reading labelled images with a window classifier, and what the readings say: per-image and per-window ROC
AUC, four-class window accuracy, NLL and ECE before and after the temperature, and the temperature fit
itself (``python main.py evaluate`` and ``python main.py calibrate``; the training's last step)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference.families.sliding_window.family import WindowSettings, prepare_windows, read_view, window_batch_size
from inference.evaluation.metrics import roc_auc
from inference.evaluation.temperature import (
    CalibrationFit,
    calibrate_logits,
    expected_calibration_error,
    negative_log_likelihood,
    softmax,
)
from inference.errors import MammoError
from inference.training.labelled_images import AMBIGUOUS, LabelledImage, background_class, window_labels


@dataclass(frozen=True)
class ImageReading:
    """One labelled image read window by window (logits before any temperature)."""

    source: str
    label: int
    logits: np.ndarray  # (M, K)
    window_labels: np.ndarray  # (M,), AMBIGUOUS where the mask gives no label


def read_images(model: torch.nn.Module, settings: WindowSettings, classes: tuple[str, ...],
                images: Sequence[LabelledImage], device: str | torch.device = "cpu",
                progress: Callable[[int, int], None] | None = None, mode: str = "exact") -> list[ImageReading]:
    """Every image's tissue windows through ``model`` (in ``mode``: exact numerics unless told), with the
    windows' labels.

    ``model`` itself runs (in eval mode, on ``device``), not the pipeline's cached copy: during training its
    weights change between calls."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    size = window_batch_size(device, settings.window, model.config.width)
    readings = []
    try:
        for number, image in enumerate(images, start=1):
            prepared = prepare_windows(image.image, image.view)
            read = read_view(model, prepared, device, mode, settings, size)
            if not np.isfinite(read.logits).all():  # a −inf logit is a sure 0 after the softmax: never an AUC's
                # row, nor a temperature fitted on it
                raise MammoError(f"{image.source}: the model's window logits are not finite numbers")
            labels = window_labels(image, read.grid.origins, settings.window, classes)
            readings.append(ImageReading(image.source, classes.index(image.label), read.logits, labels))
            if progress is not None:
                progress(number, len(images))
    finally:
        model.train(was_training)
    return readings


def labelled_windows(readings: Sequence[ImageReading]) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of every window with a label."""
    logits = [r.logits[r.window_labels != AMBIGUOUS] for r in readings]
    labels = [r.window_labels[r.window_labels != AMBIGUOUS] for r in readings]
    k = readings[0].logits.shape[1] if readings else 0
    return (np.concatenate(logits) if logits else np.zeros((0, k)),
            np.concatenate(labels) if labels else np.zeros(0, np.int64))


def evaluate_readings(readings: Sequence[ImageReading], classes: tuple[str, ...], temperature: float,
                      bins: int = 15) -> dict[str, Any]:
    """The measures of a window classifier on labelled images (NaN where a measure lacks both classes)."""
    background = background_class(classes)
    logits, labels = labelled_windows(readings)
    metrics: dict[str, Any] = {"images": len(readings), "windows": int(sum(len(r.logits) for r in readings)),
                               "labelled_windows": int(len(labels)), "temperature": float(temperature)}
    image_probabilities = np.array([softmax(r.logits, temperature).max(axis=0) for r in readings])
    image_labels = np.array([r.label for r in readings])
    for index, name in enumerate(classes):
        if index == background:
            continue
        metrics[f"image_auc_{name}"] = roc_auc(image_probabilities[:, index], image_labels == index)
    if len(labels):
        before, after = softmax(logits), softmax(logits, temperature)
        for index, name in enumerate(classes):
            if index != background:
                metrics[f"window_auc_{name}"] = roc_auc(after[:, index], labels == index)
        metrics["window_accuracy"] = float((after.argmax(axis=1) == labels).mean())
        metrics["window_class_counts"] = {name: int((labels == i).sum()) for i, name in enumerate(classes)}
        metrics["nll_before"] = negative_log_likelihood(before, labels)
        metrics["nll_after"] = negative_log_likelihood(after, labels)
        metrics["ece_before"] = expected_calibration_error(before, labels, bins)
        metrics["ece_after"] = expected_calibration_error(after, labels, bins)
    return metrics


def fit_on_readings(readings: Sequence[ImageReading], bins: int = 15) -> CalibrationFit:
    logits, labels = labelled_windows(readings)
    if len(labels) < 20 or len(np.unique(labels)) < 2:
        raise ValueError(f"a temperature needs at least 20 labelled windows of two classes or more; the data "
                         f"gives {len(labels)} of {len(np.unique(labels))} class(es)")
    return calibrate_logits(logits, labels, bins)


def calibration_record(fit: CalibrationFit, data: str, images: int, diagram: str = "") -> dict[str, Any]:
    """The ``calibration`` entry of a model's metadata for a temperature fit (``inference.evaluation.calibration``
    reads it; the workstation draws the reliability bins in the model's details)."""
    record = {
        "method": "temperature",
        "temperature": round(fit.temperature, 6),
        "data": data,
        "level": "window",
        "images": images,
        "windows": fit.samples,
        "fitted": dt.date.today().isoformat(),
        "nll_before": round(fit.nll_before, 6),
        "nll_after": round(fit.nll_after, 6),
        "ece_before": round(fit.ece_before, 6),
        "ece_after": round(fit.ece_after, 6),
        "reliability": {"bins": fit.bins, "before": fit.before.as_dict(), "after": fit.after.as_dict()},
    }
    if diagram:
        record["diagram"] = diagram
    return record
