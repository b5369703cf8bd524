"""Training the attention CNN on the MIAS classes (``python main.py train --family attention-cnn``).

The paper's protocol: a stratified 75/25 split of the images (MIAS: 247/83), the training part resampled
with replacement so that every class × severity group is equally frequent (1300 images), random horizontal
and vertical flips, Adam and categorical cross-entropy for 15 epochs; the VGG16 encoder pre-trained on
ImageNet and frozen. ImageNet weights come from a user-supplied torchvision ``vgg16`` state dict
(``encoder_weights``; read without executing pickled code, mapped by
:func:`inference.families.attention_cnn.model.remap_torchvision_vgg16`), never downloaded. Without them the encoder
is trained with the rest (``freeze_encoder`` false) or, if frozen anyway, stays random (a warning says so).

With a frozen encoder its output is computed once per image and flip (it has no dropout or batch norm, so
this is exactly the forward pass), and training runs only the feature batch norm, the attention and the
head. After every epoch: accuracy and macro F1 on the held-out part, and a checkpoint (resumable);
deterministic from the seed. At the end the weights are stored in float16 and the held-out classification
report of the stored model goes into the metadata.
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

from inference.families.attention_cnn.data import ClassSample, class_samples
from inference.families.attention_cnn.family import IMAGENET_MEAN, IMAGENET_STD, metadata, model_input
from inference.evaluation.classification_report import ClassificationReport, classification_report
from inference.files import write_text_atomic
from inference.families.attention_cnn.mias import CLASSES, balanced_resample, stratified_split
from inference.families.attention_cnn.model import AttentionCNN, AttentionCNNConfig, remap_torchvision_vgg16
from inference.training.common import JsonOptions, load_pretrained, store_float16
from inference.training.device import training_device, training_memory_format
from inference.training.resume import TRAINED_MODEL, TRAINING_CHECKPOINT, resume_epochs, run_record, save_checkpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttentionTrainConfig(JsonOptions):
    """Everything a run depends on (saved with the checkpoints and in the model's metadata)."""

    out: str = "runs/attention-cnn"
    data: str = "phantom"  # "phantom", a MIAS folder (Info.txt + PGM) or a CSV of path, view, label[, mask, severity]
    n_phantoms: int = 240
    test_fraction: float = 0.25
    balance_to: int = 1300  # training images per epoch after class x severity resampling (0: no resampling)
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    width: int = 64
    input_size: int = 224
    attention: str = "conv"
    gru_steps: int = 3
    encoder_weights: str = ""  # a torchvision vgg16 state dict (ImageNet); needs width 64
    freeze_encoder: bool = True
    malignancy: tuple[str, ...] = ()  # classes whose probabilities sum to P(malignant); () = no malignancy rule
    label: str = "Mammo Reader attention CNN (MIAS classes)"
    demo: bool = False
    memory_format: str = "auto"  # see inference.training.device.training_memory_format
    family: str = "attention-cnn"
    continue_with_changes: bool = False  # resume a checkpoint of other settings on purpose (training/resume.py)


    def __post_init__(self) -> None:
        object.__setattr__(self, "malignancy", tuple(self.malignancy))  # a JSON list
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, not {self.test_fraction}")
        unknown = set(self.malignancy) - set(CLASSES)
        if unknown:
            raise ValueError(f"malignancy names unknown classes {sorted(unknown)}; the classes are {list(CLASSES)}")

    def model_config(self) -> AttentionCNNConfig:
        return AttentionCNNConfig(width=self.width, input_size=self.input_size, num_classes=len(CLASSES),
                                  attention=self.attention, gru_steps=self.gru_steps)


# ------------------------------------------------------------------------------------------------- data


def model_inputs(samples: list[ClassSample], size: int) -> torch.Tensor:
    """(N, 3, size, size): every image as the network sees it at inference (``model_input``)."""
    return torch.from_numpy(np.stack([model_input(s.image.image, size, IMAGENET_MEAN, IMAGENET_STD) for s in samples]))


def flipped(x: torch.Tensor, variant: int) -> torch.Tensor:
    """Variant 0 as is, 1 left-right, 2 up-down, 3 both."""
    dims = [d for bit, d in ((1, 3), (2, 2)) if variant & bit]
    return torch.flip(x, dims) if dims else x


def load_encoder_weights(model: AttentionCNN, path: str) -> None:
    from inference.weights import read_state_dict  # noqa: PLC0415

    state = remap_torchvision_vgg16(read_state_dict(path))
    if not state:
        raise ValueError(f"{path}: no VGG16 'features.*' weights in this file (a torchvision vgg16 state dict?)")
    load_pretrained(model, state, lambda key: key.startswith("encoder."), path, "ImageNet VGG16 weights need width 64")


@torch.no_grad()
def encode(model: AttentionCNN, x: torch.Tensor, device: torch.device, batch: int = 16) -> torch.Tensor:
    model.encoder.eval()
    return torch.cat([model.encoder(x[i: i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


@torch.no_grad()
def predict(model: AttentionCNN, x: torch.Tensor, device: torch.device, batch: int = 16) -> np.ndarray:
    """(N, K) softmax probabilities of model inputs, in eval mode."""
    model.eval()
    out = [torch.softmax(model(x[i: i + batch].to(device)).logits.float(), dim=1).cpu()
           for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def _heads_forward(model: AttentionCNN, features: torch.Tensor) -> torch.Tensor:
    """The trainable part on cached encoder output: batch norm, attention, head (logits)."""
    features = model.feature_bn(features)
    _, pooled = model.attention(features)
    return model.head(pooled)


# ------------------------------------------------------------------------------------------------- run


def train_attention(config: AttentionTrainConfig, progress=None) -> Path:
    """Train (or resume) and write ``model.pt`` (float16 state dict) and ``model.pt.json``."""
    log = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    device = training_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    samples, description = class_samples(config.data, config.n_phantoms, config.seed)
    train_index, test_index = stratified_split([s.image.label for s in samples], config.test_fraction, config.seed)
    train, test = [samples[i] for i in train_index], [samples[i] for i in test_index]
    present = sorted({s.image.label for s in train}, key=CLASSES.index)
    if len(present) < 2:
        raise ValueError(f"{config.data}: the training part holds fewer than two classes")
    log(f"{len(train)} training and {len(test)} held-out images of {description}; training classes: "
        + ", ".join(f"{c} {sum(s.image.label == c for s in train)}" for c in present))

    model = AttentionCNN(config.model_config())
    if config.encoder_weights:
        load_encoder_weights(model, config.encoder_weights)
        log(f"encoder: ImageNet VGG16 weights from {Path(config.encoder_weights).name}")
    elif config.freeze_encoder:
        log("warning: no encoder weights given, so the frozen encoder is random; give encoder_weights (a torchvision "
            "vgg16 state dict) or set freeze_encoder false")
    model.encoder.requires_grad_(not config.freeze_encoder)
    memory_format = training_memory_format(device, config.memory_format)
    model = model.to(device=device, memory_format=memory_format)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr, weight_decay=config.weight_decay)

    x_train, x_test = model_inputs(train, config.input_size), model_inputs(test, config.input_size)
    y_train = torch.tensor([CLASSES.index(s.image.label) for s in train])
    y_test = np.array([CLASSES.index(s.image.label) for s in test])
    groups = [s.group for s in train]
    order = (balanced_resample(groups, config.balance_to, config.seed) if config.balance_to
             else list(range(len(train))))
    cached = None
    if config.freeze_encoder:
        started = time.perf_counter()
        cached = torch.stack([encode(model, flipped(x_train, v), device) for v in range(4)])  # (4, N, C, h, w)
        log(f"encoded {len(train)} images x 4 flips in {time.perf_counter() - started:.1f} s (frozen encoder)")

    checkpoint = out / TRAINING_CHECKPOINT
    # with the random state: dropout continues as in an uninterrupted run
    record = run_record("attention-cnn", config)
    start_epoch, history = resume_epochs(checkpoint, model, {"optimizer": optimizer}, device, log=log, run=record,
                                         continue_with_changes=config.continue_with_changes)
    for epoch in range(start_epoch, config.epochs):
        generator = np.random.default_rng([config.seed, epoch])
        epoch_order = np.asarray(order)[generator.permutation(len(order))]
        variants = generator.integers(0, 4, len(epoch_order))
        model.train()
        if config.freeze_encoder:
            model.encoder.eval()
        started, total, steps = time.perf_counter(), 0.0, 0
        for begin in range(0, len(epoch_order), config.batch_size):
            index = torch.from_numpy(epoch_order[begin: begin + config.batch_size])
            variant = torch.from_numpy(variants[begin: begin + config.batch_size])
            if cached is not None:
                logits = _heads_forward(model, cached[variant, index].to(device))
            else:
                x = torch.stack([flipped(x_train[i][None], int(v))[0] for i, v in zip(index, variant, strict=True)])
                logits = model(x.to(device).contiguous(memory_format=memory_format)).logits
            loss = F.cross_entropy(logits, y_train[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        rate = len(epoch_order) / (time.perf_counter() - started)
        report = _report(model, x_test, y_test, device)
        history.append({"epoch": epoch + 1, "loss": total / steps, "accuracy": report.accuracy,
                        "macro_f1": report.rows["macro avg"]["f1"]})
        log(f"epoch {epoch + 1}/{config.epochs}  loss {total / steps:.4f}  held-out accuracy {report.accuracy:.3f}  "
            f"macro F1 {report.rows['macro avg']['f1']:.3f}  {rate:.0f} images/s")
        save_checkpoint(checkpoint, model, {"optimizer": optimizer}, {"epoch": epoch + 1}, history, run=record)

    # the model as stored (float16 weights) is the one evaluated
    final = out / TRAINED_MODEL
    store_float16(model, final)
    model = model.to(memory_format=torch.contiguous_format)
    report = _report(model, x_test, y_test, device)
    log("held-out classification report of the stored model:\n" + report.text())
    meta = metadata(config.model_config(), label=config.label, demo=config.demo,
                    malignancy=list(config.malignancy),
                    evaluation={"data": f"held-out {config.test_fraction:.0%} of {description}",
                                "images": len(test), **report.as_dict()},
                    training={**dataclasses.asdict(config), "train_images": len(train), "history": history})
    if not config.malignancy:
        del meta["malignancy"]
    write_text_atomic(final.with_name(final.name + ".json"), json.dumps(meta, indent=1, allow_nan=False))
    log(f"wrote {final}")
    return final


def _report(model: AttentionCNN, x: torch.Tensor, truth: np.ndarray, device: torch.device) -> ClassificationReport:
    probabilities = predict(model, x, device)
    return classification_report(truth, probabilities.argmax(axis=1), CLASSES)
