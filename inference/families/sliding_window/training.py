"""Training the sliding-window classifier (``python main.py train --family sliding-window``).

Windows are sampled from labelled images (``inference.training.labelled_images``: phantoms, or a CSV of images with
their class and lesion masks): each draw picks a class uniformly among those the training images give (class
balancing), then one of that class's windows — lesion windows on a 32-pixel grid around the lesion, normal
windows from the breast on a 64-pixel grid — and augments it by a random flip and quarter turn. Four-class
cross-entropy, Adam. After every epoch: validation AUCs and window accuracy, and a checkpoint (resumable);
deterministic from the seed. At the end the weights are stored in float16 and the model as stored is
calibrated: one temperature fitted on the validation images' windows (the reliability bins go into the
metadata; ``python main.py calibrate`` refits it on other data).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.families.sliding_window.family import CLASSES, WindowSettings, standardise
from inference.files import write_text_atomic
from inference.families.sliding_window.model import PatchClassifier, PatchClassifierConfig
from inference.numbers import auc_text
from inference.training.common import JsonOptions, model_label, store_float16
from inference.training.labelled_images import LabelledImage, csv_images, phantom_images, window_labels
from inference.evaluation.temperature import unusable_fit
from inference.families.sliding_window.evaluation import calibration_record, evaluate_readings, fit_on_readings, read_images
from inference.families.sliding_window.windows import cut_windows, tissue_mask, window_grid
from inference.training.device import training_device, training_memory_format
from inference.training.resume import TRAINED_MODEL, TRAINING_CHECKPOINT, resume_epochs, run_record, save_checkpoint

logger = logging.getLogger(__name__)

DEMO_LABEL = "Mammo Reader demo sliding-window classifier (synthetic phantoms)"
LESION_STRIDE = 32
NORMAL_STRIDE = 64


@dataclass(frozen=True)
class WindowTrainConfig(JsonOptions):
    """Everything a run depends on (saved with the checkpoints and in the model's metadata)."""

    out: str = "runs/sliding-window"
    data: str = "phantom"  # "phantom" or a CSV of path, view, label[, mask]
    val_data: str = ""  # a CSV of held-out images; default: 20 % of ``data`` (phantoms: a fresh seed)
    n_train: int = 160  # phantom images
    n_val: int = 48
    epochs: int = 6
    windows_per_epoch: int = 1600
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    window: int = 256
    width: int = 16
    stages: int = 4
    blocks_per_stage: int = 1
    overlap: float = 0.5  # at inference (stored in the metadata)
    min_tissue: float = 0.25
    top: int = 5
    bins: int = 15
    label: str = ""  # default: the demo's on phantoms, else "sliding-window classifier trained on <data>"
    demo: bool | None = None  # default: true on phantoms only (model_label)
    memory_format: str = "auto"  # see inference.training.device.training_memory_format
    family: str = "sliding-window"
    continue_with_changes: bool = False  # resume a checkpoint of other settings on purpose (training/resume.py)


    def model_config(self) -> PatchClassifierConfig:
        return PatchClassifierConfig(window=self.window, width=self.width, stages=self.stages,
                                     blocks_per_stage=self.blocks_per_stage, num_classes=len(CLASSES))

    def settings(self, temperature: float = 1.0) -> WindowSettings:
        return WindowSettings(self.window, self.overlap, self.min_tissue, self.top, temperature)


# ------------------------------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class WindowPool:
    """Where a class's training windows are: (image index, row, col) rows per class index."""

    images: list[np.ndarray]  # as stored (standardised window by window, as ``standardise`` would)
    scaling: list[tuple[float, float]]  # (mean, std) of each image's breast
    by_class: dict[int, np.ndarray]


def window_pool(images: list[LabelledImage], config: WindowTrainConfig) -> WindowPool:
    stored, scaling, rows = [], [], {}
    for number, image in enumerate(images):
        mask = tissue_mask(image.image)
        _, mean, std = standardise(image.image, mask)
        stored.append(image.image)
        scaling.append((mean, std))
        for stride in (LESION_STRIDE, NORMAL_STRIDE):
            grid = window_grid(mask, config.window, stride, config.min_tissue)
            labels = window_labels(image, grid.origins, config.window, CLASSES)
            lesion = labels != 0 if stride == LESION_STRIDE else labels == 0
            for label, (r, c) in zip(labels[lesion & (labels >= 0)], grid.origins[lesion & (labels >= 0)], strict=True):
                rows.setdefault(int(label), []).append((number, int(r), int(c)))
    return WindowPool(stored, scaling, {k: np.array(v, np.int64) for k, v in sorted(rows.items())})


def missing_classes_warning(pool: WindowPool) -> str:
    """A warning naming the classes no training window has ("" when every class has some): the model never sees
    them, so its probability of each is learnt from nothing, however the run's other figures look."""
    absent = [name for index, name in enumerate(CLASSES) if index not in pool.by_class]
    if not absent:
        return ""
    return (f"warning: no training window is {' or '.join(absent)}: the model cannot learn to tell "
            f"{'it' if len(absent) == 1 else 'them'} (do such images have lesion masks, and does a window hold at "
            "least half of each lesion?)")


def sample_batch(pool: WindowPool, rng: np.random.Generator, size: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, 1, w, w) augmented windows and their labels, classes drawn uniformly."""
    classes = np.array(sorted(pool.by_class))
    labels = classes[rng.integers(0, len(classes), size)]
    out = np.empty((size, 1, window, window), np.float32)
    for index, label in enumerate(labels):
        candidates = pool.by_class[int(label)]
        number, r, c = candidates[rng.integers(0, len(candidates))]
        mean, std = pool.scaling[number]
        patch = (cut_windows(pool.images[number], np.array([[r, c]]), window, 0.0)[0] - np.float32(mean)) / np.float32(std)
        if rng.integers(0, 2):
            patch = patch[:, ::-1]
        out[index, 0] = np.rot90(patch, int(rng.integers(0, 4)))
    return out, labels.astype(np.int64)


# ------------------------------------------------------------------------------------------------- run


def window_training_memory_format(device: torch.device, width: int, requested: str = "auto") -> torch.memory_format:
    """The memory format of the window classifier's training.

    ``inference.training.device.training_memory_format`` decides by the CPU (never channels-last where oneDNN may use
    AVX-512); on top of that, on the CPU channels-last is used only for stem widths that are multiples of 8.
    Measured on an AVX2-only CPU with torch 2.13: the channels-last backward pass of this network crashed
    (segmentation fault) at width 4 with two stages and never finished at width 6, or at width 4 with four
    stages, while widths 8, 12 and 16 trained (width 16: 0.84 s per 32-window step, 1.20 s contiguous).
    """
    chosen = training_memory_format(device, requested)
    if requested == "auto" and device.type != "cuda" and width % 8:
        return torch.contiguous_format
    return chosen



def _data(config: WindowTrainConfig) -> tuple[list[LabelledImage], list[LabelledImage], str]:
    if config.data == "phantom":
        return (phantom_images(config.n_train, config.seed), phantom_images(config.n_val, config.seed + 10_000),
                f"{config.n_val} held-out phantom views (seed {config.seed + 10_000})")
    everything = csv_images(config.data, CLASSES)
    if config.val_data:
        return everything, csv_images(config.val_data, CLASSES), f"{config.val_data}"
    split = max(1, int(len(everything) * 0.8))
    if split >= len(everything):
        raise ValueError(f"{config.data}: too few images to hold some out for validation; give --val-data")
    return everything[:split], everything[split:], f"the last 20 % of {config.data}"


def train_windows(config: WindowTrainConfig, progress=None) -> Path:
    """Train (or resume) and write ``model.pt`` (float16 state dict) and ``model.pt.json``."""
    log = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    device = training_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    train_images, val_images, val_description = _data(config)
    if val_images and all(image.label == CLASSES[0] for image in val_images):  # said now, not after every epoch has run
        raise ValueError(f"{val_description} holds {CLASSES[0]} images only: the temperature fitted on it after "
                         "training needs windows of two classes or more; give --val-data with lesion images too")
    pool = window_pool(train_images, config)
    if len(pool.by_class) < 2:
        raise ValueError("the training images give windows of fewer than two classes")
    log("training windows per class: " + ", ".join(f"{CLASSES[k]} {len(v)}" for k, v in pool.by_class.items()))
    if warning := missing_classes_warning(pool):
        log(warning)
    memory_format = window_training_memory_format(device, config.width, config.memory_format)
    log(f"training on {device} in {'channels-last' if memory_format == torch.channels_last else 'contiguous'} "
        "memory format")
    model = PatchClassifier(config.model_config()).to(device=device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    checkpoint = out / TRAINING_CHECKPOINT
    record = run_record("sliding-window", config)
    start_epoch, history = resume_epochs(checkpoint, model, {"optimizer": optimizer}, device, log=log, run=record,
                                         continue_with_changes=config.continue_with_changes)
    steps = max(1, config.windows_per_epoch // config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        started, total = time.perf_counter(), 0.0
        for step in range(steps):
            x, y = sample_batch(pool, rng, config.batch_size, config.window)
            x = torch.from_numpy(x).to(device).contiguous(memory_format=memory_format)
            loss = F.cross_entropy(model(x), torch.from_numpy(y).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            if step % 10 == 0 or step == steps - 1:
                rate = (step + 1) * config.batch_size / (time.perf_counter() - started)
                log(f"epoch {epoch + 1}/{config.epochs}  step {step + 1}/{steps}  loss {total / (step + 1):.4f}  "
                    f"{rate:.0f} windows/s")
        metrics = evaluate_readings(read_images(model, config.settings(), CLASSES, val_images, device), CLASSES, 1.0,
                                    config.bins)
        history.append({"epoch": epoch + 1, "loss": total / steps,
                        **{k: metrics[k] for k in ("image_auc_malignant", "window_auc_malignant", "window_accuracy")
                           if k in metrics}})
        log(f"epoch {epoch + 1}: image AUC (malignant) {auc_text(metrics.get('image_auc_malignant', float('nan')))}  "
            f"window accuracy {metrics.get('window_accuracy', float('nan')):.3f}")
        save_checkpoint(checkpoint, model, {"optimizer": optimizer}, {"epoch": epoch + 1}, history, run=record)

    # the model as stored (float16 weights) is the one calibrated and evaluated
    final = out / TRAINED_MODEL
    store_float16(model, final)
    model = model.to(memory_format=torch.contiguous_format).eval()
    readings = read_images(model, config.settings(), CLASSES, val_images, device)
    try:
        fit = fit_on_readings(readings, config.bins)
    except ValueError as error:  # no model.pt left without its metadata (it is refused at load)
        final.unlink(missing_ok=True)
        raise ValueError(f"{error} (on {val_description}); give --val-data with images of two classes or more "
                         "and train into another --out") from error
    if problem := unusable_fit(fit, len(CLASSES)):  # stored, every image would read the same
        final.unlink(missing_ok=True)
        raise ValueError(f"{problem} (on {val_description}); the training checkpoint stays in {out}: train on "
                         "(more epochs), or give other --val-data")
    evaluation = evaluate_readings(readings, CLASSES, fit.temperature, config.bins)
    log(f"temperature {fit.temperature:.3f}: ECE {fit.ece_before:.4f} -> {fit.ece_after:.4f}, "
        f"NLL {fit.nll_before:.4f} -> {fit.nll_after:.4f} on {val_description}")
    label, demo = model_label(config, "sliding-window", DEMO_LABEL)
    meta = {
        "family": "sliding-window",
        "label": label,
        "demo": demo,
        "classes": list(CLASSES),
        "malignancy": ["malignant"],
        "config": dataclasses.asdict(config.model_config()),
        "windows": {"overlap": config.overlap, "min_tissue": config.min_tissue, "top": config.top},
        "calibration": calibration_record(fit, val_description, len(val_images)),
        "evaluation": {"data": val_description, **evaluation},
        "training": {**dataclasses.asdict(config), "history": history},
    }
    write_text_atomic(final.with_name(final.name + ".json"), json.dumps(finite(meta), indent=1, allow_nan=False))
    log(f"wrote {final}")
    return final


def finite(value: object) -> object:
    """``value`` with every NaN or infinity replaced by None (JSON has no NaN; a measure without both
    classes is "not available", not a number)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
