"""Training Mask R-CNN (``python main.py train --family maskrcnn``).

Data: labelled images with lesion masks (``inference.training.labelled_images``: phantoms with masses, or a CSV ``path, view,
label, mask`` — CBIS-DDSM's ROI masks fit); each image's lesion is one target: its mask, the mask's bounding
box and its class (a label names a class of the detector, or its first word does: ``benign`` -> ``benign
mass``); a normal image has no target. Optionally from a user-supplied torchvision Mask R-CNN checkpoint
(``weights``, read with ``weights_only``; its class-specific layers are left out when its classes differ,
COCO's 91). The losses are the paper's (He et al. 2017, with Faster R-CNN's RPN), as torchvision computes
them: RPN objectness (binary cross-entropy) and box regression (smooth L1, beta 1/9) on 256 anchors an image
(half positive at most; positive from IoU 0.7 or the best anchor of a lesion, negative below 0.3); box
classification (cross-entropy) and class-specific regression (smooth L1, beta 1/9, weights 10, 10, 5, 5) on
512 proposals an image (a quarter positive at most, positive from IoU 0.5), the lesions added to the
proposals; mask binary cross-entropy on the label's channel against the lesion mask cut to each positive
proposal at 28 x 28. SGD (momentum 0.9, weight decay 1e-4) at lr 0.002, then 0.0002 from ``lr_drop_epoch``
(the seed paper's schedule), two images a batch, random horizontal flips. Checkpoints after every epoch hold
the model, the optimiser and the random state, so a stopped and resumed run ends bit-identical to one that
was not stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.families.maskrcnn import ops
from inference.families.maskrcnn.family import DEFAULT_CLASSES, metadata
from inference.families.maskrcnn.model import MaskRCNN, MaskRCNNConfig
from inference.files import write_text_atomic
from inference.training.common import JsonOptions, model_label, store_float16
from inference.training.labelled_images import BACKGROUND_NAMES, LabelledImage, csv_images, phantom_images
from inference.training.device import training_device
from inference.training.resume import TRAINED_MODEL, TRAINING_CHECKPOINT, resume_epochs, run_record, save_checkpoint

logger = logging.getLogger(__name__)

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
SMOOTH_L1_BETA = 1.0 / 9
MASK_SIZE = 28
DEMO_LABEL = "Mammo Reader demo Mask R-CNN (synthetic phantoms)"
EIGHT_BIT_MAX = 255.0  # an 8-bit image's full scale
BACKGROUND_CLASS_NAMES = ("background", "__background__")  # class 0's names (in any case): torchvision's layout


@dataclass(frozen=True)
class MaskRCNNTrainConfig(JsonOptions):
    """Everything a run depends on (saved with the checkpoints and in the model's metadata)."""

    out: str = "runs/maskrcnn"
    data: str = "phantom"  # "phantom" or a CSV of path, view, label, mask
    weights: str = ""  # a torchvision Mask R-CNN checkpoint to start from (COCO-pretrained …)
    n_train: int = 32  # phantom images
    phantom_size: tuple[int, int] = (512, 320)
    epochs: int = 12
    lr_drop_epoch: int = 8  # lr 0.002 before, 0.0002 from this epoch (0-based)
    lr: float = 0.002
    lr_after: float = 0.0002
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 2
    flip: float = 0.5
    seed: int = 0
    device: str = "auto"
    classes: tuple[str, ...] = DEFAULT_CLASSES
    max_value: float = 4095.0
    # the network, when no checkpoint is given (a narrow ResNet-FPN: phantoms and tests)
    block: str = "basic"
    layers: tuple[int, ...] = (1, 1, 1, 1)
    stem_width: int = 16
    fpn_channels: int = 32
    representation: int = 64
    mask_width: int = 32
    min_size: int = 1024
    max_size: int = 2048
    rpn_batch: int = 256
    roi_batch: int = 512
    label: str = ""  # default: the demo's on phantoms, else "Mask R-CNN trained on <data>" (model_label)
    demo: bool | None = None  # default: true on phantoms only
    family: str = "maskrcnn"
    continue_with_changes: bool = False  # resume a checkpoint of other settings on purpose (training/resume.py)

    def __post_init__(self) -> None:
        for name in ("phantom_size", "layers", "classes"):  # JSON gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be at least 1")
        if len(self.classes) < 2 or str(self.classes[0]).casefold() not in BACKGROUND_CLASS_NAMES:
            raise ValueError(f"classes must begin with the background class: class 0 is the background in "
                             f"torchvision's layout, and {list(self.classes)[:1] or 'nothing'} would be taken for it; "
                             f"write e.g. {['background', *self.classes[:2]]}")

    def model_config(self) -> MaskRCNNConfig:
        width = self.mask_width
        return MaskRCNNConfig(block=self.block, layers=self.layers, stem_width=self.stem_width,
                              fpn_channels=self.fpn_channels, num_classes=len(self.classes),
                              representation=self.representation, mask_layers=(width,) * 4, mask_dim=width,
                              min_size=self.min_size, max_size=self.max_size)


@dataclass(frozen=True)
class Target:
    """One image's lesions in input pixels: boxes (K, 4) x1, y1, x2, y2, labels (K,), masks (K, H, W) float."""

    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


# ------------------------------------------------------------------------------------------------- data


def class_index(label: str, classes: tuple[str, ...], where: str) -> int:
    """The detector's class of an image label (0: no finding); ``benign`` names ``benign mass``."""
    if label in BACKGROUND_NAMES:
        return 0
    for index, name in enumerate(classes[1:], start=1):
        if label == name or name.split()[0] == label:
            return index
    raise ValueError(f"{where}: the label {label!r} names none of the detector's classes {list(classes[1:])}")


@dataclass(frozen=True)
class LesionImage:
    """One image with all its lesions: ``image`` is its first row, ``lesions`` (class index, bool mask) one per
    lesion row."""

    image: LabelledImage
    lesions: tuple[tuple[int, np.ndarray], ...]


def image_key(image: LabelledImage) -> str:
    """Which image a row is: a CSV's file by its resolved path ("a.png" and "../data/a.png" are one image), a
    phantom by its name."""
    return str(Path(image.source).resolve()) if image.row is not None else image.source


def lesion_images(images: list[LabelledImage], classes: tuple[str, ...], data: str = "") -> list[LesionImage]:
    """The images, each once, with the lesions of all its rows: a CSV lists an image once per lesion (CBIS-DDSM's
    ROI rows), and taken row by row one lesion's detection counted as another row's false positive, the image as
    both a cancer and not, and training took the other lesions for background. In the order of first rows.
    ``data``: the CSV they came from, named in a refusal."""
    rows: dict[str, list[LabelledImage]] = {}
    for image in images:
        rows.setdefault(image_key(image), []).append(image)
    out = []
    for group in rows.values():
        source = group[0].source
        views = sorted({str(image.view.value) if image.view else "none" for image in group})
        if len(views) > 1:
            lines = ", ".join(str(image.row) for image in group if image.row is not None)
            csv = f"{data}: " if data and data != "phantom" else ""
            raise ValueError(f"{csv}{source}: its rows{f' ({lines})' if lines else ''} give it different views "
                             f"({', '.join(views)}); one image has one view: correct the view column")
        lesions: list[tuple[int, np.ndarray]] = []
        for image in group:
            label = class_index(image.label, classes, image.source)
            if not label or image.lesion is None or not image.lesion.any():
                continue
            if any(known == label and np.array_equal(mask, image.lesion) for known, mask in lesions):
                continue  # the same lesion listed twice (CSVs put together): one lesion, not two to find
            lesions.append((label, image.lesion))
        out.append(LesionImage(group[0], tuple(lesions)))
    return out


def target_of(entry: LesionImage) -> Target:
    """The image's lesions as the training target: a box around each mask, its class, the mask."""
    rows, cols = entry.image.image.shape
    if not entry.lesions:
        return Target(torch.zeros((0, 4)), torch.zeros((0,), dtype=torch.int64), torch.zeros((0, rows, cols)))
    boxes = []
    for _, mask in entry.lesions:
        r, c = np.nonzero(mask)
        boxes.append([c.min(), r.min(), c.max() + 1, r.max() + 1])
    return Target(torch.tensor(boxes, dtype=torch.float32), torch.tensor([label for label, _ in entry.lesions]),
                  torch.from_numpy(np.stack([mask.astype(np.float32) for _, mask in entry.lesions])))


def flipped(x: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """The image (3, H, W) and its target mirrored left to right."""
    width = x.shape[-1]
    boxes = target.boxes.clone()
    boxes[:, 0], boxes[:, 2] = width - target.boxes[:, 2], width - target.boxes[:, 0]
    return x.flip(-1), Target(boxes, target.labels, target.masks.flip(-1))


# ------------------------------------------------------------------------------------------------- losses


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of x1, y1, x2, y2 boxes."""
    top_left = torch.max(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (ops.box_area(a)[:, None] + ops.box_area(b)[None, :] - inter)


def encode_boxes(targets: torch.Tensor, references: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """The regression deltas that take ``references`` to ``targets`` (the inverse of ``ops.decode_boxes``)."""
    wx, wy, ww, wh = weights
    rw, rh = references[:, 2] - references[:, 0], references[:, 3] - references[:, 1]
    rx, ry = references[:, 0] + 0.5 * rw, references[:, 1] + 0.5 * rh
    tw, th = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
    tx, ty = targets[:, 0] + 0.5 * tw, targets[:, 1] + 0.5 * th
    return torch.stack((wx * (tx - rx) / rw, wy * (ty - ry) / rh, ww * torch.log(tw / rw), wh * torch.log(th / rh)), 1)


def match(iou: torch.Tensor, high: float, low: float, keep_best: bool) -> torch.Tensor:
    """Per reference box (columns of ``iou``: (lesions, boxes)) the lesion it matches, -1 (negative) or -2
    (between the thresholds: ignored); with ``keep_best``, each lesion's best boxes are positive too."""
    if iou.shape[0] == 0:
        return torch.full((iou.shape[1],), -1, dtype=torch.int64, device=iou.device)
    best, which = iou.max(dim=0)
    matched = which.clone()
    matched[best < low] = -1
    matched[(best >= low) & (best < high)] = -2
    if keep_best:
        highest = iou.max(dim=1, keepdim=True).values
        _, columns = torch.nonzero(iou == highest, as_tuple=True)
        matched[columns] = which[columns]
    return matched


def sample(matched: torch.Tensor, count: int, positive_fraction: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) indices: at most ``count`` in all, at most ``positive_fraction`` positive."""
    positive = torch.nonzero(matched >= 0).flatten()
    negative = torch.nonzero(matched == -1).flatten()
    n_pos = min(len(positive), int(count * positive_fraction))
    n_neg = min(len(negative), count - n_pos)
    # the permutations are drawn on the CPU (one random stream whatever the device)
    positive = positive[torch.randperm(len(positive), generator=generator)[:n_pos].to(positive.device)]
    negative = negative[torch.randperm(len(negative), generator=generator)[:n_neg].to(negative.device)]
    return positive, negative


def losses(model: MaskRCNN, images: list[torch.Tensor], targets: list[Target], config: MaskRCNNTrainConfig,
           generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The five Mask R-CNN losses of one batch of (3, H, W) images in [0, 1] and their targets (input pixels)."""
    cfg = model.config
    batch, sizes, scales = model._transform(images)
    targets = [Target(t.boxes * s if len(t.boxes) else t.boxes, t.labels, t.masks)
               for t, s in zip(targets, scales, strict=True)]
    features = model.backbone(batch)
    padded = tuple(int(s) for s in batch.shape[-2:])
    n, a = len(images), len(cfg.aspect_ratios)

    # RPN
    logits, deltas = model.rpn.head(features)
    anchors = torch.cat(model._anchors(features, padded)).float()
    objectness = torch.cat([l.view(n, a, 1, *l.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(n, -1) for l in logits], 1)
    regression = torch.cat([d.view(n, a, 4, *d.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
                            for d in deltas], 1)
    rpn_class, rpn_box = [], []
    for i, target in enumerate(targets):
        matched = match(box_iou(target.boxes, anchors), 0.7, 0.3, keep_best=True)
        positive, negative = sample(matched, config.rpn_batch, 0.5, generator)
        chosen = torch.cat([positive, negative])
        wanted = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).to(objectness.device)
        rpn_class.append(F.binary_cross_entropy_with_logits(objectness[i, chosen], wanted, reduction="sum"))
        encoded = encode_boxes(target.boxes[matched[positive]], anchors[positive], RPN_WEIGHTS) if len(positive) \
            else regression.new_zeros((0, 4))
        rpn_box.append(F.smooth_l1_loss(regression[i, positive], encoded, beta=SMOOTH_L1_BETA, reduction="sum"))
        rpn_class[-1], rpn_box[-1] = rpn_class[-1] / max(len(chosen), 1), rpn_box[-1] / max(len(chosen), 1)
    with torch.no_grad():
        proposals = [p[0] for p in model._proposals([f.detach() for f in features], padded, sizes)]

    # box head: proposals with the lesions added, sampled
    rois, roi_labels, roi_targets, roi_masks = [], [], [], []
    for i, (boxes, target) in enumerate(zip(proposals, targets, strict=True)):
        boxes = torch.cat([boxes, target.boxes])
        matched = match(box_iou(target.boxes, boxes), 0.5, 0.5, keep_best=False)
        positive, negative = sample(matched, config.roi_batch, 0.25, generator)
        chosen = torch.cat([positive, negative])
        rois.append(boxes[chosen])
        labels = torch.zeros(len(chosen), dtype=torch.int64, device=boxes.device)
        labels[:len(positive)] = target.labels[matched[positive]]
        roi_labels.append(labels)
        roi_targets.append(target.boxes[matched[positive]])
        roi_masks.append((i, matched[positive], boxes[positive]))
    pooled = model._pool(features, rois, sizes, 7)
    class_logits, box_regression = model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))
    labels = torch.cat(roi_labels)
    box_class = F.cross_entropy(class_logits, labels)
    positive_rows = torch.nonzero(labels > 0).flatten()
    wanted_deltas = encode_boxes(torch.cat(roi_targets), torch.cat(rois)[positive_rows], BOX_WEIGHTS) \
        if len(positive_rows) else box_regression.new_zeros((0, 4))
    per_class = box_regression.view(len(labels), -1, 4)[positive_rows, labels[positive_rows]]
    box_reg = F.smooth_l1_loss(per_class, wanted_deltas, beta=SMOOTH_L1_BETA, reduction="sum") / max(len(labels), 1)

    # mask head on the positive proposals; the lesion's mask cut to each box at 28 x 28
    positive_boxes = [boxes for _, _, boxes in roi_masks]
    if sum(len(b) for b in positive_boxes):
        mask_logits = model.roi_heads.mask_predictor(model.roi_heads.mask_head(
            model._pool(features, positive_boxes, sizes, 14)))
        goals = []
        for (i, lesion, boxes), scale, size in zip(roi_masks, scales, sizes, strict=True):
            if not len(boxes):
                continue
            masks = F.interpolate(targets[i].masks[:, None], size=size, mode="bilinear", align_corners=False)
            rows = torch.cat([lesion[:, None].float(), boxes], dim=1)
            goals.append(ops.roi_align(masks, rows, MASK_SIZE, 1.0)[:, 0])
        chosen_labels = labels[positive_rows]
        mask_loss = F.binary_cross_entropy_with_logits(
            mask_logits[torch.arange(len(chosen_labels), device=chosen_labels.device), chosen_labels], torch.cat(goals))
    else:
        mask_loss = features[0].sum() * 0.0
    return {"rpn_objectness": torch.stack(rpn_class).mean(), "rpn_box": torch.stack(rpn_box).mean(),
            "box_classification": box_class, "box_regression": box_reg, "mask": mask_loss}


# ------------------------------------------------------------------------------------------------- run


def _model(config: MaskRCNNTrainConfig, log) -> MaskRCNN:
    if not config.weights:
        return MaskRCNN(config.model_config())
    from inference.families.maskrcnn import checkpoint  # noqa: PLC0415

    from inference.weights import read_state_dict  # noqa: PLC0415

    path = Path(config.weights)
    state = read_state_dict(path)  # safely (weights only), unwrapping "model"; a damaged file said as such
    if not checkpoint.recognises(state):
        raise ValueError(f"{path}: not a torchvision Mask R-CNN checkpoint")
    state = checkpoint.remap(state, str(path))
    loaded = checkpoint.config_from(state, {"transform": {"min_size": config.min_size, "max_size": config.max_size}},
                                    str(path))
    built = dataclasses.replace(loaded, num_classes=len(config.classes))
    model = MaskRCNN(built)
    own = model.state_dict()
    usable = {k: v.float() for k, v in state.items() if k in own and own[k].shape == v.shape}
    left = sorted(set(own) - set(usable))
    if any(not k.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits")) for k in left):
        raise ValueError(f"{path}: does not fit the detector (missing or other shape: {left[:3]})")
    model.load_state_dict({**own, **usable})
    log(f"started from {path.name}" + (f"; new class layers for {len(config.classes)} classes" if left else "")
        + f"; its network ({architecture(built)}) is used, not the options' block, layers and widths")
    return model


ARCHITECTURE = ("block", "layers", "stem_width", "fpn_channels", "representation")


def architecture(config: MaskRCNNConfig) -> str:
    """The network's shape in words, as the training record names it."""
    return ", ".join(f"{name} {getattr(config, name)}" for name in ARCHITECTURE) + f", mask_width {config.mask_dim}"


def check_lesion_masks(images: list[LabelledImage], classes: tuple[str, ...], data: str, doing: str) -> None:
    """Refuse (ValueError) lesion images (a class of the detector) without a lesion: no mask in the CSV, or a
    blank one. Its detections would count as false positives and its lesion as none (``doing``: "train" or
    "evaluate"); every such row is named by its line in the CSV."""
    lacking = [(image.row, image) for image in images
               if class_index(image.label, classes, image.source)
               and (image.lesion is None or not image.lesion.any())]
    if not lacking:
        return
    labels = " or ".join(sorted({image.label for _, image in lacking}))
    need = f"a {labels} image needs its lesion mask to {doing} a detector"
    if data == "phantom":
        raise ValueError(f"{lacking[0][1].source}: {need}")
    rows = ", ".join(str(number) for number, _ in lacking[:10])
    rows += f" and {len(lacking) - 10} more" if len(lacking) > 10 else ""
    plural = len(lacking) > 1
    raise ValueError(f"{data}, row{'s' if plural else ''} {rows}: {need} (a mask file whose non-zero pixels are the "
                     f"lesion; {'these rows name' if plural else 'this row names'} none, or a blank one)")


def intake_notes(images: list[LabelledImage], max_value: float | None = None) -> list[str]:
    """The intake's notes on the images' files ("8-bit image: only 256 grey levels …"), each file once, named;
    with the detector's input maximum ``max_value``, what it means for an 8-bit image: the network reads the
    model image divided by it, so 255 where 4095 is the scale reads as 1/16 of the brightness."""
    said: dict[str, list[str]] = {}
    for image in images:
        if image.source in said:
            continue
        notes = list(image.notes)
        if image.eight_bit and max_value is not None and max_value != EIGHT_BIT_MAX:
            notes.append(f"the detector reads its grey levels 0 to 255 against its input maximum {max_value:g}, as "
                         f"if they were 1/{max_value / EIGHT_BIT_MAX:g} as bright (an analysis refuses such a view)")
        said[image.source] = notes
    return [f"{source}: {note}" for source, notes in said.items() for note in notes]


def check_bit_depth(images: list[LabelledImage], max_value: float, data: str) -> None:
    """Refuse (ValueError) an 8-bit image in a run whose ``max_value`` is not 255: the network reads the image
    divided by ``max_value`` (in training, and in every analysis after), so 8-bit images under 4095 train on a sixteenth
    of the scale of the 12-bit ones (and the model learns that scale). The other families standardise each image
    (the bit depth drops out); this one declares its input's scale, so the training's data must share it."""
    for image in images:
        if image.eight_bit and max_value != EIGHT_BIT_MAX:
            row = f"{data}, row {image.row}: " if image.row is not None else ""
            raise ValueError(f"{row}{image.source}: an 8-bit image (grey levels 0 to 255) in a run whose max_value is "
                             f"{max_value:g}: the network would read it at 1/{max_value / EIGHT_BIT_MAX:g} of its "
                             "scale; give the images at their full bit depth (12 to 16 bit), or, when every image is "
                             "8-bit, set max_value 255 in the training options")


def check_some_lesion(entries: list[LesionImage], data: str) -> None:
    """Refuse (ValueError) data without a single lesion, naming the labels read: the losses are all zero and
    the detector learns nothing to find."""
    if any(entry.lesions for entry in entries):
        return
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.image.label] = counts.get(entry.image.label, 0) + 1
    read = ", ".join(f"{label} {count}" for label, count in counts.items())
    raise ValueError(f"{data}: no image has a lesion: a detector learns nothing to find (the labels read: {read} "
                     "image(s)); give images with lesions (benign or malignant rows with their masks)")


def labelled_images(data: str, classes: tuple[str, ...], count: int, seed: int,
                    shape: tuple[int, int]) -> list[LabelledImage]:
    """Images with lesion masks: ``count`` phantom views of ``shape`` with masses (or none) from ``seed``, or a
    CSV's rows (labels: the detector's classes, their first words, or normal)."""
    if data == "phantom":
        return phantom_images(count, seed, tuple(shape), kinds=("spiculated", "round", None))
    labels = (*classes[1:], *BACKGROUND_NAMES, *(name.split()[0] for name in classes[1:]))
    return csv_images(data, tuple(dict.fromkeys(labels)))  # in this order: the refusal of a label lists them


def _images(config: MaskRCNNTrainConfig) -> list[LabelledImage]:
    return labelled_images(config.data, config.classes, config.n_train, config.seed, config.phantom_size)


def train_maskrcnn(config: MaskRCNNTrainConfig, progress=None) -> Path:
    """Train (or resume) and write ``model.pt`` (float16, torchvision's key layout) and ``model.pt.json``."""
    log = progress or (lambda text: print(text, file=sys.stderr, flush=True))

    device = training_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    images = _images(config)
    for image in images:  # the network reads [0, 1]: what inference reads (it refuses a view beyond max_value)
        high = float(np.max(image.image)) if image.image.size else 0.0
        if high > config.max_value:
            row = f"{config.data}, row {image.row}: " if image.row is not None else ""  # as every other row error
            raise ValueError(f"{row}{image.source}: its pixel values reach {high:.0f}, above max_value "
                             f"{config.max_value:g}; "
                             "set max_value (the training configuration) to the images' full scale, e.g. 65535 "
                             "for 16-bit scans")
    for note in intake_notes(images):  # an 8-bit image's scale: refused below
        log(f"note: {note}")
    check_bit_depth(images, config.max_value, config.data)
    check_lesion_masks(images, config.classes, config.data, "train")
    entries = lesion_images(images, config.classes, config.data)  # an image listed once per lesion: trained once
    check_some_lesion(entries, config.data)
    targets = [target_of(entry) for entry in entries]
    inputs = [torch.from_numpy(np.asarray(entry.image.image, np.float32) / np.float32(config.max_value))[None]
              .expand(3, -1, -1).contiguous() for entry in entries]
    model = _model(config, log).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    checkpoint_path = out / TRAINING_CHECKPOINT
    record = run_record("maskrcnn", config)
    start_epoch, history = resume_epochs(checkpoint_path, model, {"optimizer": optimizer}, device,
                                         {"sampling": generator}, log=log, run=record,
                                         continue_with_changes=config.continue_with_changes)
    for epoch in range(start_epoch, config.epochs):
        rate = config.lr if epoch < config.lr_drop_epoch else config.lr_after
        for group in optimizer.param_groups:
            group["lr"] = rate
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(entries))
        totals: dict[str, float] = {}
        steps = 0
        for first in range(0, len(order), config.batch_size):
            batch_x, batch_t = [], []
            for index in order[first:first + config.batch_size]:
                x, t = inputs[index], targets[index]
                if rng.random() < config.flip:
                    x, t = flipped(x, t)
                batch_x.append(x.to(device))
                batch_t.append(Target(t.boxes.to(device), t.labels.to(device), t.masks.to(device)))
            parts = losses(model, batch_x, batch_t, config, generator)
            loss = sum(parts.values())
            if not torch.isfinite(loss):
                raise ValueError(f"the loss is no longer a finite number at epoch {epoch + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach())
        means = {name: value / max(steps, 1) for name, value in totals.items()}
        history.append({"epoch": epoch + 1, "lr": rate, **means})
        log(f"epoch {epoch + 1}/{config.epochs}  lr {rate:g}  " + "  ".join(f"{k} {v:.4f}" for k, v in means.items()))
        save_checkpoint(checkpoint_path, model, {"optimizer": optimizer}, {"epoch": epoch + 1}, history,
                        {"sampling": generator}, run=record)
    final = out / TRAINED_MODEL
    store_float16(model, final)
    label, demo = model_label(config, "maskrcnn", DEMO_LABEL)
    meta = metadata(config.classes, min_size=config.min_size, max_size=config.max_size, max_value=config.max_value,
                    label=label, demo=demo,
                    # the network trained, as built: a checkpoint given (weights) sets it, not the options
                    training={**dataclasses.asdict(config), **{k: getattr(model.config, k) for k in ARCHITECTURE},
                              "mask_width": model.config.mask_dim, "history": history, "images": len(entries)})
    write_text_atomic(final.with_name(final.name + ".json"), json.dumps(meta, indent=1, allow_nan=False))
    log(f"wrote {final}")
    return final
