"""Training GlimpseNet (``python main.py train --family glimpsenet``), and its cross-validation.

Two stages, one after the other, because glimpse extraction (threshold, connected regions, suppression)
passes no gradient from the classifier to the FCGN, so a joint loss would train each network on its own
term anyway:

1. the FCGN, with mean squared error between its saliency and the lesion mask cropped, faced right and
   area-resized to 512 x 512 like the image (images without a mask sit this stage out); random up-down
   flips (left-right would turn the breast around);
2. the glimpse classifier and the MIL pooling, with cross-entropy of the pooled, renormalised image
   probabilities; the glimpses are the ones the trained FCGN picks, exactly as at inference, cut once and
   flipped at random.

Data: ``phantom`` (a spiculated mass is malignant, a round mass benign, a calcification cluster benign
without callback), or the GMIC training CSV (``path, view, benign, malignant``) with a ``mask`` column and,
for benign-without-callback images, a ``label`` (or CBIS-DDSM ``pathology``) column. 20 % of the images
(stratified) are held out for validation. After every epoch a checkpoint (resumable, with the random state;
deterministic from the seed). The weights are stored in float16 and the held-out classification report of
the model as stored goes into the metadata. ``folds`` > 1 runs a stratified k-fold cross-validation
instead (one model per fold, in ``out/fold_k``) and reports accuracy per fold and the mean.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inference.families.glimpsenet.family import (
    CLASSES,
    GLIMPSE_MEAN,
    GLIMPSE_STD,
    metadata,
    prepare_glimpse_view,
    view_glimpses,
)
from inference.evaluation.classification_report import ClassificationReport, classification_report
from inference.files import write_text_atomic
from inference.families.glimpsenet.glimpses import GlimpseSettings, mil_pool
from inference.families.glimpsenet.model import GlimpseNet, GlimpseNetConfig
from inference.training.common import JsonOptions, load_pretrained, store_float16
from inference.training.labelled_images import LabelledImage, phantom_images, read_lesion_mask
from inference.training.device import training_device
from inference.training.resume import TRAINED_MODEL, TRAINING_CHECKPOINT, resume, run_record, save_checkpoint

PATHOLOGY = {"benign_without_callback": "benign_without_callback", "benign": "benign", "malignant": "malignant"}


@dataclass(frozen=True)
class GlimpseTrainConfig(JsonOptions):
    """Everything a run depends on (saved with the checkpoints and in the model's metadata)."""

    out: str = "runs/glimpsenet"
    data: str = "phantom"
    n_phantoms: int = 120
    val_fraction: float = 0.2
    folds: int = 1
    fcgn_epochs: int = 50
    epochs: int = 50  # the classifier's (the poster's 50)
    batch_size: int = 8  # images per step (all of each image's glimpses)
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    fcgn_width: int = 16
    context: int = 4096
    classifier_width: float = 1.0
    classifier_weights: str = ""  # a torchvision inception_v3 state dict (ImageNet); needs classifier_width 1.0
    glimpse_size: int = 299
    top_k: int = 6
    threshold: float = 0.5
    min_box: int = 32
    pooling: str = "lse"
    label: str = "Mammo Reader GlimpseNet"
    demo: bool = False
    family: str = "glimpsenet"
    continue_with_changes: bool = False  # resume a checkpoint of other settings on purpose (training/resume.py)


    def __post_init__(self) -> None:
        if self.folds < 1 or not 0 < self.val_fraction < 1:
            raise ValueError("folds must be at least 1 and val_fraction between 0 and 1")
        self.settings()  # validates the glimpse options

    def model_config(self) -> GlimpseNetConfig:
        return GlimpseNetConfig(fcgn_width=self.fcgn_width, context=self.context,
                                classifier_width=self.classifier_width, num_classes=len(CLASSES))

    def settings(self) -> GlimpseSettings:
        return GlimpseSettings(threshold=self.threshold, top_k=self.top_k, min_box=self.min_box,
                               glimpse_size=self.glimpse_size, pooling=self.pooling)


# ------------------------------------------------------------------------------------------------- data


def glimpse_images(data: str, phantoms: int = 120, seed: int = 0) -> tuple[list[LabelledImage], str]:
    """(labelled images, a description): phantoms with one finding each, or the GMIC CSV with masks."""
    if data == "phantom":
        images = phantom_images(phantoms, seed, kinds=("spiculated", "round", "calcifications"))
        return images, f"{phantoms} phantom views (seed {seed})"
    return glimpse_csv(Path(data)), f"{Path(data).name}"


def glimpse_csv(path: Path) -> list[LabelledImage]:
    """Rows ``path, view, benign, malignant[, mask][, label | pathology]``; problems name the file and row."""
    import io  # noqa: PLC0415

    from inference.training.labelled_images import csv_table, load_row_view, read_csv_text  # noqa: PLC0415

    text = read_csv_text(path, "path, view, benign, malignant (or label), mask")
    images = []
    header, rows = csv_table(text, Path(path))
    columns = set(header)
    if "path" not in columns or not ({"label", "pathology"} & columns or {"benign", "malignant"} <= columns):
        raise ValueError(f"{path}: needs the columns path, view, benign, malignant (or label), and mask; its header "
                         f"has: {', '.join(header) or 'nothing'}")
    for number, row in rows:
        where = f"{path}, row {number}"  # the file's line: a blank line counts
        named = (row.get("label") or row.get("pathology") or "").strip().lower()
        if named:
            if named not in PATHOLOGY:
                raise ValueError(f"{where}: unknown label {named!r}; the classes are {list(CLASSES)}")
            label = PATHOLOGY[named]
        elif (row.get("malignant") or "0").strip() == "1":
            label = "malignant"
        elif (row.get("benign") or "0").strip() == "1":
            label = "benign"
        else:
            raise ValueError(f"{where}: neither benign nor malignant; give a label column "
                             "(benign_without_callback, benign, malignant)")
        file = Path(row["path"]) if Path(row["path"]).is_absolute() else path.parent / row["path"]
        image = load_row_view(file, row, where)
        lesion = read_lesion_mask(row.get("mask") or "", path, where, image.model_image.shape)
        images.append(LabelledImage(image.model_image, image.view, label, lesion, str(file)))
    if not images:
        raise ValueError(f"{path}: the CSV holds no rows")
    return images


@dataclass(frozen=True)
class TrainingView:
    image: np.ndarray  # (512, 512) FCGN input
    target: np.ndarray | None  # (512, 512) lesion fraction, or None without a mask
    label: int
    prepared: object  # GlimpsePrepared


def training_views(images: list[LabelledImage], size: int = 512) -> list[TrainingView]:
    views = []
    for image in images:
        if image.view is None:
            raise ValueError(f"{image.source}: GlimpseNet needs the view (laterality) of every image")
        prepared = prepare_glimpse_view(image.image, image.view, False, size)
        target = None
        if image.lesion is not None:
            top, left = prepared.frame.record["crop_origin"]
            rows, cols = prepared.frame.record["crop_shape"]
            mask = image.lesion[top: top + rows, left: left + cols].astype(np.float32)
            if prepared.frame.record["flipped"]:
                mask = mask[:, ::-1]
            target = cv2.resize(np.ascontiguousarray(mask), (size, size), interpolation=cv2.INTER_AREA)
        views.append(TrainingView(prepared.input, target, CLASSES.index(image.label), prepared))
    return views


def split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    index = list(range(len(labels)))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    held_out, present = math.ceil(fraction * len(labels)), int((counts > 0).sum())
    if stratify is not None and not present <= held_out <= len(labels) - present:  # (said in scikit-learn's words)
        raise ValueError(f"{len(labels)} image(s) of {present} classes cannot be split by val_fraction {fraction:g} "
                         f"with every class on both sides ({held_out} held out): give more images (n_phantoms, or "
                         "rows of the CSV) or another val_fraction")
    train, val = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    return sorted(train), sorted(val)


# ------------------------------------------------------------------------------------------------- stages


def load_classifier_weights(model: GlimpseNet, path: str) -> None:
    """ImageNet initialisation of the glimpse classifier from a torchvision ``inception_v3`` state dict (read
    without executing pickled code); the glimpse classes' ``fc`` stays as initialised."""
    from inference.families.nets.inception import remap_torchvision_inception_v3  # noqa: PLC0415
    from inference.weights import read_state_dict  # noqa: PLC0415

    state = remap_torchvision_inception_v3(read_state_dict(path))
    load_pretrained(model.classifier, state, lambda key: not key.startswith("fc."), path,
                    "ImageNet Inception-v3 weights need classifier_width 1.0")


def cut_all(model: GlimpseNet, views: list[TrainingView], settings: GlimpseSettings,
            device: torch.device) -> list[np.ndarray]:
    """Each view's glimpses as the trained FCGN picks them: (K, s, s) in [0, 1]."""
    model.eval()
    out = []
    with torch.no_grad():
        for view in views:
            saliency = model.fcgn(torch.from_numpy(view.image)[None, None].to(device)).float().cpu().numpy()[0, 0]
            out.append(view_glimpses(view.prepared, saliency, settings)[0])
    return out


def pooled_log_probabilities(model: GlimpseNet, glimpses: list[torch.Tensor], settings: GlimpseSettings) -> torch.Tensor:
    """(N, C) log of each image's pooled probabilities from its (K_i, 3, s, s) glimpse inputs."""
    logits = model.classifier(torch.cat(glimpses))
    probabilities = torch.softmax(logits, dim=1)
    pooled, start = [], 0
    for g in glimpses:
        pooled.append(mil_pool(probabilities[start: start + len(g)], settings))
        start += len(g)
    return torch.log(torch.stack(pooled).clamp_min(1e-7))


def _inputs(glimpses: np.ndarray, flips: np.ndarray | None = None) -> torch.Tensor:
    g = torch.from_numpy(glimpses)
    if flips is not None:
        g = torch.stack([torch.flip(x, [d for bit, d in ((1, 1), (2, 0)) if f & bit]) if f else x
                         for x, f in zip(g, flips, strict=True)])
    x = g[:, None].expand(-1, 3, -1, -1)
    return (x - torch.tensor(GLIMPSE_MEAN).view(1, 3, 1, 1)) / torch.tensor(GLIMPSE_STD).view(1, 3, 1, 1)


def evaluate_views(model: GlimpseNet, glimpses: list[np.ndarray], labels: list[int],
                   settings: GlimpseSettings, device: torch.device) -> ClassificationReport:
    model.eval()
    with torch.no_grad():
        predicted = [int(pooled_log_probabilities(model, [_inputs(g).to(device)], settings).argmax()) for g in glimpses]
    return classification_report(labels, predicted, CLASSES)


def train_glimpsenet(config: GlimpseTrainConfig, progress=None) -> Path:
    """Train (or resume) and write ``model.pt`` (float16) and ``model.pt.json``; with ``folds`` > 1 the
    cross-validation (``folds.json``; the path of the last fold's model is returned)."""
    log = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    images, description = glimpse_images(config.data, config.n_phantoms, config.seed)
    views = training_views(images)
    labels = [v.label for v in views]
    if len(set(labels)) < 2:
        raise ValueError(f"{config.data}: the images hold fewer than two classes")
    if config.folds == 1:
        train, val = split(labels, config.val_fraction, config.seed)
        return _train_one(config, views, train, val, Path(config.out), description, log)
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

    folds = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed).split(np.zeros(len(labels)), labels)
    results, final = [], Path(config.out)
    for number, (train, test) in enumerate(folds, start=1):
        log(f"fold {number}/{config.folds}: {len(train)} training, {len(test)} test images")
        final = _train_one(config, views, sorted(train.tolist()), sorted(test.tolist()),
                           Path(config.out) / f"fold_{number}", description, log)
        accuracy = json.loads(final.with_name(final.name + ".json").read_text())["evaluation"]["accuracy"]
        results.append({"fold": number, "test_images": len(test), "accuracy": accuracy})
        log(f"fold {number}: accuracy {accuracy:.3f}")
    mean = float(np.mean([r["accuracy"] for r in results]))
    spread = float(np.std([r["accuracy"] for r in results]))
    log(f"{config.folds}-fold cross-validation: accuracy " + " ".join(f"{r['accuracy']:.3f}" for r in results)
        + f"; mean {mean:.3f} (sd {spread:.3f})")
    write_text_atomic(Path(config.out) / "folds.json", json.dumps(
        {"data": description, "folds": results, "mean_accuracy": mean, "sd_accuracy": spread}, indent=1))
    return final


def _train_one(config: GlimpseTrainConfig, views: list[TrainingView], train: list[int], val: list[int], out: Path,
               description: str, log) -> Path:
    device = training_device(config.device)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    settings = config.settings()
    model = GlimpseNet(config.model_config())
    if config.classifier_weights:
        load_classifier_weights(model, config.classifier_weights)
        log(f"classifier: ImageNet Inception-v3 weights from {Path(config.classifier_weights).name}")
    model = model.to(device)
    fcgn_optimizer = torch.optim.Adam(model.fcgn.parameters(), lr=config.lr)
    classifier_optimizer = torch.optim.Adam(model.classifier.parameters(), lr=config.lr)
    history: list[dict] = []
    done = {"fcgn": 0, "classifier": 0}
    checkpoint = out / TRAINING_CHECKPOINT
    optimizers = {"fcgn": fcgn_optimizer, "classifier": classifier_optimizer}
    record = run_record("glimpsenet", config)
    resumed = resume(checkpoint, model, optimizers, device, run=record,
                     continue_with_changes=config.continue_with_changes, log=log)
    if resumed:
        done, history = resumed
        log(f"resumed after FCGN epoch {done['fcgn']} and classifier epoch {done['classifier']}")

    def save() -> None:
        save_checkpoint(checkpoint, model, optimizers, done, history, run=record)

    masked = [i for i in train if views[i].target is not None]
    log(f"stage 1, the FCGN: {len(masked)} training images with lesion masks")
    held_masked = [i for i in val if views[i].target is not None]
    for epoch in range(done["fcgn"], config.fcgn_epochs if masked else 0):
        generator = np.random.default_rng([config.seed, 1, epoch])
        order = np.asarray(masked)[generator.permutation(len(masked))]
        model.fcgn.train()
        started, total, steps = time.perf_counter(), 0.0, 0
        for begin in range(0, len(order), config.batch_size):
            chosen = order[begin: begin + config.batch_size]
            flips = generator.integers(0, 2, len(chosen))
            x = np.stack([views[i].image[::-1] if f else views[i].image for i, f in zip(chosen, flips, strict=True)])
            y = np.stack([views[i].target[::-1] if f else views[i].target for i, f in zip(chosen, flips, strict=True)])
            loss = F.mse_loss(model.fcgn(torch.from_numpy(np.ascontiguousarray(x))[:, None].to(device)),
                              torch.from_numpy(np.ascontiguousarray(y))[:, None].to(device))
            fcgn_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            fcgn_optimizer.step()
            total, steps = total + loss.item(), steps + 1
        model.fcgn.eval()
        with torch.no_grad():
            val_loss = float(np.mean([F.mse_loss(model.fcgn(torch.from_numpy(views[i].image)[None, None].to(device)),
                                                 torch.from_numpy(views[i].target)[None, None].to(device)).item()
                                      for i in held_masked])) if held_masked else None
        done["fcgn"] = epoch + 1
        history.append({"stage": "fcgn", "epoch": epoch + 1, "loss": total / steps, "val_mse": val_loss})
        held = "n/a" if val_loss is None else f"{val_loss:.5f}"
        log(f"FCGN epoch {epoch + 1}/{config.fcgn_epochs}  MSE {total / steps:.5f}  held-out {held}  "
            f"{len(order) / (time.perf_counter() - started):.1f} images/s")
        save()

    log("stage 2, the classifier: cutting the glimpses the trained FCGN picks")
    glimpses = cut_all(model, views, settings, device)
    counts = [len(g) for g in glimpses]
    log(f"glimpses per image: mean {np.mean(counts):.1f}, from {min(counts)} to {max(counts)}")
    labels = [v.label for v in views]
    for epoch in range(done["classifier"], config.epochs):
        generator = np.random.default_rng([config.seed, 2, epoch])
        order = np.asarray(train)[generator.permutation(len(train))]
        model.classifier.train()
        started, total, steps = time.perf_counter(), 0.0, 0
        for begin in range(0, len(order), config.batch_size):
            chosen = order[begin: begin + config.batch_size]
            batch = [_inputs(glimpses[i], generator.integers(0, 4, len(glimpses[i]))).to(device) for i in chosen]
            loss = F.nll_loss(pooled_log_probabilities(model, batch, settings),
                              torch.tensor([labels[i] for i in chosen], device=device))
            classifier_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            classifier_optimizer.step()
            total, steps = total + loss.item(), steps + 1
        report = evaluate_views(model, [glimpses[i] for i in val], [labels[i] for i in val], settings, device)
        done["classifier"] = epoch + 1
        history.append({"stage": "classifier", "epoch": epoch + 1, "loss": total / steps,
                        "val_accuracy": report.accuracy})
        log(f"classifier epoch {epoch + 1}/{config.epochs}  loss {total / steps:.4f}  held-out accuracy "
            f"{report.accuracy:.3f}  {len(order) / (time.perf_counter() - started):.1f} images/s")
        save()

    final = out / TRAINED_MODEL
    store_float16(model, final)
    report = evaluate_views(model, [glimpses[i] for i in val], [labels[i] for i in val], settings, device)
    log("held-out classification report of the stored model:\n" + report.text())
    meta = metadata(config.model_config(), settings, label=config.label, demo=config.demo,
                    evaluation={"data": f"{len(val)} held-out images of {description}", "images": len(val),
                                **report.as_dict()},
                    training={**dataclasses.asdict(config), "train_images": len(train), "history": history})
    write_text_atomic(final.with_name(final.name + ".json"), json.dumps(meta, indent=1, allow_nan=False))
    log(f"wrote {final}")
    return final
